"""Variable importance by domain and forest plots by domain, on DR scores of a simulated world
where only mood modifies the effect of one arm (small n, linear DR-learner: fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.dtr.analysis import interpretable_summary
from tailor.dtr.importance import domain_forest, effect_importance
from tailor.dtr.value import DRScores
from tailor.exceptions import EstimationError

DOMAINS = [("sleep_fatigue", ("sleep", "fatigue")), ("mood", ("mood",)),
           ("fear", ("fear",)), ("demographics", ("age",))]


def _mood_world(seed: int, n: int = 500, effect: float = 1.0):
    """DR scores (larger is better) of three first treatments; ACT's effect grows with mood;
    30% cannot take DUL; 15 sites with site effects shared by the arms."""
    rng = np.random.default_rng(seed)
    site = rng.integers(15, size=n)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=["mood", "sleep", "fatigue", "fear", "age"])
    s = rng.normal(size=(n, 1)) + rng.normal(0, 0.5, size=(15, 1))[site] + \
        2 * rng.normal(size=(n, 3))
    s[:, 1] += effect * x["mood"].to_numpy()
    feas = np.ones((n, 3), dtype=bool)
    feas[rng.uniform(size=n) < 0.3, 2] = False
    s[~feas] = np.nan
    fold = rng.permutation(np.arange(n) % 5)
    return DRScores(s, feas, ("ESC", "ACT", "DUL"), True), x, site, fold


def test_mood_ranks_first_with_an_interval_excluding_zero():
    scores, x, site, fold = _mood_world(3)
    t = effect_importance(scores, x, DOMAINS, folds=fold, clusters=site, random_state=1)
    assert t.iloc[0]["domain"] == "mood" and t.iloc[0]["rank"] == 1
    assert t.iloc[0]["lower"] > 0
    assert (t["lower"] <= t["importance"]).all() and (t["importance"] <= t["upper"]).all()
    # the modifier's importance dwarfs every other domain's
    assert t.iloc[0]["importance"] > 3 * t.iloc[1:]["importance"].abs().max()


def test_without_a_modifier_no_domain_stands_out_often():
    hits = []
    for seed in range(12):
        scores, x, site, fold = _mood_world(100 + seed, n=300, effect=0.0)
        t = effect_importance(scores, x, DOMAINS, folds=fold, clusters=site, random_state=1)
        hits.append(int((t["lower"] > 0).sum()))
    # 48 null domain intervals; nominal 1.2 one-sided exceedances (2.5%); allow a liberal few
    assert sum(hits) <= 6


def test_forest_by_domain_finds_moods_modification_and_intervals_hold_the_estimate():
    scores, x, site, _fold = _mood_world(4)
    f = domain_forest(scores, x, DOMAINS, best="ESC", clusters=site)
    assert set(f["subgroup"]) == {"bottom third", "top third", "top minus bottom"}
    assert (f["lower"] <= f["estimate"]).all() and (f["estimate"] <= f["upper"]).all()
    mood = f[(f["domain"] == "mood") & (f["option"] == "ACT")].set_index("subgroup")
    assert mood.loc["top minus bottom", "lower"] > 0  # the effect grows with mood
    assert mood.loc["bottom third", "upper"] < 0 < mood.loc["top third", "lower"]
    # the estimate is the plain mean of the DR contrast in the subgroup (unit weights)
    z = x["mood"].to_numpy()
    z = (z - z.mean()) / z.std()
    bottom = z <= np.quantile(z, 1 / 3)
    diff = scores.scores[:, 1] - scores.scores[:, 0]
    assert mood.loc["bottom third", "estimate"] == pytest.approx(diff[bottom].mean())
    assert mood.loc["bottom third", "n"] == bottom.sum()
    dul = f[(f["domain"] == "mood") & (f["option"] == "DUL")].set_index("subgroup")
    assert dul.loc["bottom third", "n"] == (bottom & scores.feasible[:, 2]).sum() < bottom.sum()


def test_bad_inputs_are_named():
    scores, x, _site, fold = _mood_world(5, n=100)
    with pytest.raises(EstimationError, match="at least one domain"):
        effect_importance(scores, x, [], folds=fold)
    with pytest.raises(EstimationError, match="fold partition has shape"):
        effect_importance(scores, x, DOMAINS, folds=fold[:10])
    with pytest.raises(EstimationError, match="reference option 'EBEM'"):
        domain_forest(scores, x, DOMAINS, best="EBEM")


def test_interpretable_summary_is_the_cross_fitted_procedure_value():
    row = {"regime": "interpretable regime (policy tree, exploratory)", "estimate": 0.4,
           "lower": 0.3, "upper": 0.5}
    values = {"responder": pd.DataFrame([row]),
              "peg": pd.DataFrame([{**row, "estimate": 4.0, "lower": 3.5, "upper": 4.5}])}
    cf = pd.DataFrame({"A1": ["ESC", "ACT", "ACT", None]})
    info = interpretable_summary(values, ["ESC", "DUL", "ACT", "ESC"], cf)
    assert info["value_of"] == "procedure, cross-fitted"
    assert info["responder"] == {"estimate": 0.4, "lower": 0.3, "upper": 0.5}
    assert info["peg"]["estimate"] == 4.0
    assert info["agreement"] == pytest.approx(2 / 3) and info["n_decided"] == 3


class _Spy:
    """A regressor that remembers its training rows and fails if asked to predict one."""

    def fit(self, x, y, sample_weight=None):
        self.seen = {tuple(r) for r in np.round(x, 12)}
        self.mean = float(np.average(y, weights=sample_weight))
        return self

    def predict(self, x):
        assert not any(tuple(r) in self.seen for r in np.round(x, 12)), \
            "a participant was scored by a model fitted on them"
        return np.full(len(x), self.mean)


def test_importance_never_scores_a_participant_with_a_model_fitted_on_them():
    scores, x, site, fold = _mood_world(6, n=150)
    t = effect_importance(scores, x, DOMAINS, folds=fold, clusters=site, regressor=_Spy,
                          n_repeats=1)
    # a constant model uses no variable: every importance is exactly 0
    assert np.allclose(t["importance"], 0) and np.allclose(t["std_error"], 0)
    with pytest.raises(AssertionError, match="fitted on them"):  # the spy can fail
        _Spy().fit(x.to_numpy(), np.ones(150)).predict(x.to_numpy()[:5])
    with pytest.raises(EstimationError, match="at least 2 folds"):
        effect_importance(scores, x, DOMAINS, folds=np.zeros(150, dtype=int))


def test_forest_interval_is_statsmodels_cluster_robust_mean():
    import statsmodels.api as sm

    scores, x, site, _fold = _mood_world(7, n=300)
    f = domain_forest(scores, x, DOMAINS, best="ESC", clusters=site).set_index(
        ["domain", "subgroup", "option"])
    z = x["fear"].to_numpy()
    top = z > np.quantile((z - z.mean()) / z.std(), 2 / 3) * z.std() + z.mean()
    diff = scores.scores[:, 1] - scores.scores[:, 0]
    ols = sm.OLS(diff[top], np.ones(top.sum())).fit(cov_type="cluster",
                                                    cov_kwds={"groups": site[top]})
    row = f.loc[("fear", "top third", "ACT")]
    assert row["estimate"] == pytest.approx(ols.params[0])
    # statsmodels' CR1 factor uses the subgroup's n, tailor's the whole trial's: equal to 1%
    assert row["std_error"] == pytest.approx(ols.bse[0], rel=0.01)


def test_shapley_column_ranks_the_modifier_and_is_nan_for_a_non_linear_learner():
    scores, x, site, fold = _mood_world(3)
    t = effect_importance(scores, x, DOMAINS, folds=fold, clusters=site, random_state=1)
    assert t.set_index("domain")["shapley"].idxmax() == "mood"
    assert (t["shapley"] >= 0).all()
    spy = effect_importance(scores, x, DOMAINS, folds=fold, regressor=_Spy, n_repeats=1)
    assert spy["shapley"].isna().all()


# ------------------------------------------------------------------- stage 2 (h14, issue 14)
def _stage2_null_world(seed: int, n: int = 400):
    """Stage-2 DR scores (larger is better) with the protocol's feasible sets (first arm x
    week-12 category) and no modification by any variable; 12 sites."""
    from tests.dtr.best_like import ARMS, CATEGORIES, stage2_options

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=["mood", "sleep", "fatigue", "fear", "age"])
    a1 = rng.choice(ARMS, size=n)
    cat = rng.choice(CATEGORIES, size=n, p=[0.2, 0.3, 0.3, 0.2])
    sets = [stage2_options(a, c) for a, c in zip(a1, cat, strict=True)]
    options = tuple(sorted({o for s in sets for o in s}))
    site = rng.integers(12, size=n)
    s = rng.normal(size=(n, 1)) + rng.normal(0, 0.5, size=(12, 1))[site] + \
        2 * rng.normal(size=(n, len(options))) + rng.normal(0, 0.3, size=len(options))
    feas = np.array([[o in st for o in options] for st in sets])
    s[~feas] = np.nan
    fold = rng.permutation(np.arange(n) % 5)
    return DRScores(s, feas, options, True), x, site, fold


def test_stage2_groups_options_by_kind_and_null_intervals_cover_zero():
    from tailor.dtr.importance import option_kind, stage2_importance

    assert option_kind("ESC+DUL") == "combination (augment)"
    assert option_kind("DUL") == "single (switch or continue)"
    covered, above, total, means = 0, 0, 0, []
    for seed in range(15):
        scores, x, site, fold = _stage2_null_world(200 + seed)
        t = stage2_importance(scores, x, DOMAINS, folds=fold, clusters=site, random_state=1)
        assert set(t["options"]) == {"all stage-2 options", "combination (augment)",
                                     "single (switch or continue)"}
        assert (t.groupby("options")["rank"].max() == len(DOMAINS)).all()
        covered += int(((t["lower"] <= 0) & (0 <= t["upper"])).sum())
        above += int((t["lower"] > 0).sum())
        total += len(t)
        means.append(t["importance"].mean())
    # 180 null intervals (15 worlds x 3 option groups x 4 domains). Measured (these seeds:
    # 159/180 cover 0; 40 worlds: 427/480 = 0.89, 15 lower bounds above 0 = 3.1%): the
    # interval is conditional on the fitted models and under-covers two-sided (nominal 0.95),
    # the misses mostly below 0; the false "this domain matters" rate (lower bound above 0)
    # stays near its one-sided nominal 2.5%.
    assert covered >= 0.85 * total, (covered, total)
    assert above <= 0.05 * total, (above, total)
    assert abs(np.mean(means)) < 0.02


def test_stage2_excellent_responders_carry_no_contrast_and_errors_are_named():
    from tailor.dtr.importance import stage2_importance

    scores, x, site, fold = _stage2_null_world(7, n=200)
    lone = scores.feasible.sum(axis=1) == 1
    assert lone.any()  # excellent responders continue without a decision
    t = stage2_importance(scores, x, DOMAINS, folds=fold, clusters=site)
    assert t[t["options"] == "all stage-2 options"]["n"].iloc[0] == int((~lone).sum())
    only_one = DRScores(scores.scores[:, :1], scores.feasible[:, :1], scores.options[:1], True)
    with pytest.raises(EstimationError, match="no stage-2 option is open"):
        stage2_importance(only_one, x, DOMAINS, folds=fold)


def test_stage2_only_world_ranks_its_stage2_modifier_first_at_stage_2_only(best):
    """scenarios/stage2-only.yaml: no stage-1 modification; at week 12 adding or switching to
    DUL / EBEM depends on central sensitization (the amplifier index, pain spread domain) and
    EBEM on Modic changes. On four simulated 805-participant trials (seeds 0-3; the analysis'
    working model, censoring weights and site clusters), the stage-2 importance ranks pain
    spread first over all stage-2 options and over the combination options (augmentations) in
    3 of 4 trials (seed 3 puts mood first, its interval covering 0), with an interval above 0
    in those 3; at stage 1, where nothing modifies, pain spread's interval covers 0 in all 4."""
    from tailor.dtr import QLearning, value_data
    from tailor.dtr.analysis import censoring_weights, default_plan, working_model
    from tailor.dtr.crossfit import fold_partition
    from tailor.dtr.importance import stage2_importance
    from tailor.dtr.value import DRScoring
    from tailor.stats.simulation import simulate_trial

    first2, first2_combo, stage1_covers = 0, 0, 0
    for seed in range(4):
        d = simulate_trial(best, "stage2-only", participants=805, seed=seed, items=False,
                           engine=False, oracle_inner=4, scoring=None).wide
        plan = default_plan(d, best)
        ql = QLearning(stages=working_model(best, plan), coding="dummy", maximize=False)
        w, _ = censoring_weights(d, plan)
        fold = fold_partition(len(d), 5, np.random.default_rng(seed))
        sd = value_data(d, ql, outcome=plan.outcome, propensities=["p_A1", "p_A2"], weights=w)
        kw = dict(folds=fold, clusters=d["site"], weights=w)
        t2 = stage2_importance(DRScoring(qlearning=ql, stage=2, folds=fold).fit(sd), d,
                               plan.domains, **kw)
        top = t2[t2["rank"] == 1].set_index("options")
        spread = "pain_spread_nociplastic"
        first2 += top.loc["all stage-2 options", "domain"] == spread and \
            top.loc["all stage-2 options", "lower"] > 0
        first2_combo += top.loc["combination (augment)", "domain"] == spread and \
            top.loc["combination (augment)", "lower"] > 0
        t1 = effect_importance(DRScoring(qlearning=ql, stage=1, folds=fold).fit(sd), d,
                               plan.domains, **kw).set_index("domain")
        stage1_covers += t1.loc[spread, "lower"] <= 0 <= t1.loc[spread, "upper"]
    assert first2 >= 3 and first2_combo >= 3
    assert stage1_covers == 4
