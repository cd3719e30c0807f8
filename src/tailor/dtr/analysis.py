"""The SMART analysis ``tailor analyze`` runs: learn the regime, value it, map the phenotypes.

From the wide table of ``docs/data-contract.md`` and the protocol:

1. Q-learning over both stages (week-24 PEG, lower is better; feasible options from the
   stage-1 eligibility columns and the logged stage-2 option lists), with bootstrap intervals
   (percentile at stage 2, m-out-of-n at stage 1);
2. values with intervals of: as randomized, every single first treatment, the best single
   treatment, the interpretable regime (a cross-fitted exact depth-k policy tree on doubly
   robust scores, then the Q-learning second step), a regime interpretable by design (the best
   feasible arm per expert category: phenotype label x duloxetine eligibility), and the
   flexible (Q-learning) regime,
   cross-fitted; on the mean week-24 PEG and on the responder rate (the protocol's default
   responder definition), answering "from 1 in 3 to how many";
3. the embedded regimes of the SMART (weighted and replicated), best first;
4. the phenotype map: for each first treatment, the profile of those for whom it is estimated
   best and their estimated benefit over the next-best feasible arm; effect-modifier
   importance; subgroup forest-plot data;
5. a versioned model file for the clinician's decision tool.

Missing week-24 outcomes are handled by sequential inverse-probability-of-censoring weights
(:func:`censoring_weights`: one model per visit on the history observed by then), passed to
every estimator.

References
----------
Murphy SA (2005); Zhang B et al. (2012) Biometrics 68:1010-8; Athey S, Wager S (2021)
Econometrica 89:133-61; Nahum-Shani I et al. (2012) Psychol Methods 17:457-77.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from tailor.dtr.embedded import WeightedReplicated, embedded_regimes
from tailor.dtr.phenotype import (
    modifier_importance,
    phenotype_profiles,
    responder_indicator,
    subgroup_effects,
)
from tailor.dtr.phenotype_regime import PhenotypeRegime
from tailor.dtr.policytree import PolicyTree
from tailor.dtr.qlearning import QLearning, QLearningResult
from tailor.dtr.regime_model import FORMAT, regime_document
from tailor.dtr.value import aipw_value, compare_regimes, dr_scores
from tailor.exceptions import InputFileError
from tailor.protocol import Protocol
from tailor.rules import stage_options

__all__ = ["AnalysisPlan", "AnalysisResult", "analyze", "censoring_weights", "default_plan",
           "tree_rewards", "working_model"]

MODEL_FORMAT = FORMAT

# Candidate features in order of preference; the plan keeps those present in the data.
PHENOTYPE_FEATURES = ("amplifier_index", "body_regions", "wpi", "sss", "fibromyalgianess",
                      "promis_sleep_t", "promis_fatigue_t", "promis_depression_t",
                      "promis_anxiety_t", "pcs_total", "peg_baseline", "pain_duration_months",
                      "lumbar_rom", "pfirrmann_max", "modic", "ppt", "age")
PROFILE_FEATURES = ("amplifier_index", "body_regions", "peg_baseline", "promis_depression_t",
                    "promis_sleep_t", "pcs_total", "age", "sex", "phenotype_label")
SUBGROUPS = ("phenotype_label", "pain_ge5", "opioid", "depression", "sex")


@dataclass(frozen=True)
class AnalysisPlan:
    """What the analysis fits; :func:`default_plan` builds one from the data's columns."""

    outcome: str = "peg_w24"
    baseline: str = "peg_baseline"
    responder_threshold: float = 0.30
    main1: tuple[str, ...] = ("peg_baseline", "amplifier_index")
    tailoring1: tuple[str, ...] = ("amplifier_index",)
    main2: tuple[str, ...] = ("peg_baseline", "peg_w12", "response_category")
    tailoring2: tuple[str, ...] = ("amplifier_index",)
    tree_features: tuple[str, ...] = ("amplifier_index", "peg_baseline")
    tree_depth: int = 2
    tree_min_node_size: int = 30
    profile_features: tuple[str, ...] = ("amplifier_index", "peg_baseline")
    expert_categories: tuple[str, ...] = ()
    subgroups: tuple[str, ...] = ()
    bootstrap: int = 500
    folds: int = 5
    alpha: float = 0.05
    seed: int = 1


def _present(data: pd.DataFrame, names: Sequence[str]) -> tuple[str, ...]:
    """The names that are columns of ``data`` and vary (a constant column cannot be fitted)."""
    return tuple(n for n in names if n in data.columns and data[n].nunique(dropna=True) > 1)


def default_plan(data: pd.DataFrame, protocol: Protocol, **overrides: Any) -> AnalysisPlan:
    """A plan using the protocol's default responder definition and the available features."""
    responder = protocol.default_responder
    threshold = responder.threshold if responder is not None and \
        responder.kind == "relative_reduction" else 0.30
    tailor_cols = _present(data, ("amplifier_index",)) or _present(data, ("phenotype",))
    main1 = _present(data, ("peg_baseline", "amplifier_index", "opioid", "depression"))
    # A1 is left out of the stage-2 main effects: the stage-2 options are nested in the
    # stage-1 arm (ESC + X exists only after ESC), so A1 dummies would alias option dummies.
    main2 = (*_present(data, ("peg_baseline", "peg_w12", "amplifier_index")),
             "response_category")
    plan = AnalysisPlan(
        responder_threshold=threshold, main1=main1, tailoring1=tailor_cols, main2=main2,
        tailoring2=tailor_cols, tree_features=_present(data, PHENOTYPE_FEATURES),
        profile_features=_present(data, PROFILE_FEATURES), subgroups=_present(data, SUBGROUPS),
        expert_categories=("phenotype_label", "eligible_DUL")
        if {"phenotype_label", "eligible_DUL"} <= set(data.columns) else ())
    return replace(plan, **overrides)


@dataclass(frozen=True)
class AnalysisResult:
    """Everything ``tailor analyze`` reports; tables are DataFrames, ``model`` is JSON-ready."""

    plan: AnalysisPlan
    protocol_name: str
    protocol_hash: str
    data_hash: str
    n: int
    n_outcome: int
    coefficients: dict[int, pd.DataFrame]
    values_peg: pd.DataFrame
    values_responder: pd.DataFrame
    embedded: pd.DataFrame
    embedded_pairwise: pd.DataFrame
    tree_rules: str
    tree: dict[str, Any]
    recommendations: pd.DataFrame
    phenotype_map: pd.DataFrame
    modifiers: pd.DataFrame
    subgroups: pd.DataFrame
    response_by_arm: pd.DataFrame
    balance: pd.DataFrame
    model: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def headline(self) -> dict[str, Any]:
        """Responder rates: as randomized, best single, interpretable, flexible (with CIs)."""
        out: dict[str, Any] = {}
        for _, row in self.values_responder.iterrows():
            out[str(row["regime"])] = {k: float(row[k]) for k in ("estimate", "lower", "upper")}
        return out


REQUIRED = ("participant_id", "A1", "p_A1", "A2", "p_A2", "options2", "response_category")


def _check_columns(data: pd.DataFrame, protocol: Protocol, plan: AnalysisPlan) -> None:
    needed = list(REQUIRED) + [f"eligible_{a}" for a in protocol.arm_codes] + [
        plan.outcome, plan.baseline, *plan.main1, *plan.tailoring1,
        *[c for c in plan.main2 if c not in ("A1",)], *plan.tailoring2]
    missing = sorted({c for c in needed if c not in data.columns})
    if missing:
        raise InputFileError(f"the analysis table lacks column(s) {', '.join(missing)} "
                             "(see docs/data-contract.md)")
    bad = sorted(set(data["A1"].dropna().astype(str)) - set(protocol.arm_codes))
    if bad:
        raise InputFileError(f"A1 holds {bad}, which are not arms of protocol "
                             f"'{protocol.name}' ({', '.join(protocol.arm_codes)})", column="A1")
    for col, treatment in (("p_A1", "A1"), ("p_A2", "A2")):
        given = data[treatment].notna()  # no stage-2 treatment after an early dropout
        p = pd.to_numeric(data.loc[given, col], errors="coerce")
        if ((p <= 0) | (p > 1)).any() or p.isna().any():
            raise InputFileError(f"{col} must be a probability in (0, 1] wherever {treatment} "
                                 "is given", column=col)


def censoring_weights(data: pd.DataFrame, plan: AnalysisPlan) -> tuple[np.ndarray | None, str]:
    """Sequential inverse-probability-of-censoring weights for monotone dropout.

    One logistic model per visit up to the outcome's week (6, 12, 18, 24), each among those
    still observed, on the history observed by then: baseline PEG, age and the first arm; the
    previous visit's PEG; from week 12 the intolerance flag; from week 18 the week-12 response
    category. A participant missing a visit leaves the risk set there (conservative under
    intermittent missingness). Returns (None, "") when the outcome is never missing.

    References
    ----------
    Robins JM, Rotnitzky A, Zhao LP (1995). Analysis of semiparametric regression models for
    repeated outcomes in the presence of missing data. JASA 90:106-21.
    """
    y = pd.to_numeric(data[plan.outcome], errors="coerce")
    if y.notna().all():
        return None, ""
    from tailor.dtr.missing import ipcw_weights

    week = int(plan.outcome.rsplit("_w", 1)[1]) if "_w" in plan.outcome else None
    visits = [wk for wk in (6, 12, 18, 24, 36) if f"peg_w{wk}" in data.columns
              and (week is None or wk <= week)]
    if not visits or f"peg_w{visits[-1]}" != plan.outcome:
        visits = []
    base = [c for c in ("peg_baseline", "age") if c in data.columns
            and data[c].notna().all()] + ["A1"]
    observed: list[np.ndarray] = []
    formulas: list[str] = []
    history = list(base)
    previous: int | None = None
    for wk in visits:
        if previous is not None:
            history.append(f"peg_w{previous}")
        if wk >= 12 and "intolerance_s1" in data.columns and "intolerance_s1" not in history:
            history.append("intolerance_s1")
        if wk >= 18 and "response_category" in data.columns and "response_category" \
                not in history:
            history.append("response_category")
        observed.append(pd.to_numeric(data[f"peg_w{wk}"], errors="coerce").notna().to_numpy())
        formulas.append(" + ".join(history))
        previous = wk
    if not observed:  # no visit history: one step on the baseline history
        observed, formulas = [y.notna().to_numpy()], [" + ".join(base)]
    w = ipcw_weights(data, observed=observed, covariates=formulas)
    labels = [f"week {wk}" for wk in visits] or ["outcome"]
    desc = "; ".join(f"{lab}: {f}" for lab, f in zip(labels, formulas, strict=True))
    return w, desc


def working_model(protocol: Protocol, plan: AnalysisPlan) -> list[dict[str, Any]]:
    """The two-stage Q-learning working model of ``plan`` (the ``stages`` of a QLearning):
    stage 1 over the protocol's arms with the ``eligible_*`` columns as feasibility, stage 2
    over the logged option lists (``options2``)."""
    arms = list(protocol.arm_codes)
    return [
        dict(treatment="A1", main=" + ".join(plan.main1) or None,
             tailoring=" + ".join(plan.tailoring1) or None,
             feasible={a: f"eligible_{a}" for a in arms}, options=arms),
        dict(treatment="A2", main=" + ".join(plan.main2) or None,
             tailoring=" + ".join(plan.tailoring2) or None, feasible="options2"),
    ]


def _crossfit_tree(data: pd.DataFrame, ql: QLearning, plan: AnalysisPlan, outcome: str,
                   rng: np.random.Generator, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, PolicyTree, Any, np.ndarray]:
    """Cross-fitted recommendations of the tree and of the expert-category regime (each row's
    from a fit without its fold), and the tree fitted on all rows (the one reported)."""
    scores = dr_scores(data, ql, outcome=outcome, stage=1, propensities=["p_A1", "p_A2"],
                       weights=weights, folds=plan.folds, random_state=int(rng.integers(2**31)))
    opts = list(scores.options)
    x = data[list(plan.tree_features)]
    usable = scores.feasible.any(axis=1)  # rows with a score (not censored)
    folds = rng.permutation(np.arange(len(data)) % plan.folds)
    rec = np.empty(len(data), dtype=object)
    # every row's own eligibility decides what may be recommended to it, scored or not
    feas = np.column_stack([pd.to_numeric(data[f"eligible_{o}"], errors="coerce")
                            .fillna(0).to_numpy() == 1 for o in opts])
    rewards = tree_rewards(scores.rewards, scores.feasible)
    for f in range(plan.folds):
        train = (folds != f) & usable
        tree = PolicyTree(depth=plan.tree_depth, min_node_size=plan.tree_min_node_size).fit(
            x[train], rewards[train])
        test = folds == f
        idx = tree.predict(x[test], feasible=feas[test])
        rec[test] = [opts[int(i)] for i in idx]
    full = PolicyTree(depth=plan.tree_depth, min_node_size=plan.tree_min_node_size).fit(
        x[usable], pd.DataFrame(rewards[usable], columns=opts))
    expert = np.empty(len(data), dtype=object)
    if plan.expert_categories:
        cats = _expert_categories(data, plan)
        for f in range(plan.folds):
            train = (folds != f) & usable
            regime = PhenotypeRegime(min_category_size=10).fit(
                cats[train], scores.rewards[train], feasible=scores.feasible[train])
            test = folds == f
            expert[test] = [opts[int(i)] for i in regime.predict(cats[test], feasible=feas[test])]
    return rec, full, scores, expert


def tree_rewards(rewards: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Rewards for fitting a regime tree when some options are infeasible for some members.

    Requiring every leaf's action to be feasible for all its members is crippling here (45% of
    BEST's participants cannot take duloxetine, and 1-2% each other arm, so large leaves could
    choose almost nothing). Instead an infeasible option scores the member's mean feasible
    reward (neither a gain nor a loss for choosing it), and feasibility is enforced when the
    tree recommends: a member who cannot take the leaf's action gets the next feasible option
    of the leaf's ranking. The regime's value is then estimated honestly (cross-fitted AIPW).
    """
    r = np.where(feasible, rewards, np.nan)
    mean = np.nanmean(np.where(feasible.any(axis=1, keepdims=True), r, 0.0), axis=1)
    return np.where(feasible, rewards, mean[:, None])


def _expert_categories(data: pd.DataFrame, plan: AnalysisPlan) -> np.ndarray:
    """Expert-defined categories: the pain phenotype label crossed with duloxetine eligibility."""
    label = data[plan.expert_categories[0]].astype(str).to_numpy()
    parts = [label]
    for col in plan.expert_categories[1:]:
        parts.append(np.where(pd.to_numeric(data[col], errors="coerce") == 1, f"{col}",
                              f"not {col}"))
    return np.array([" / ".join(p) for p in zip(*parts, strict=True)], dtype=object)


def _hash_frame(data: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(data, index=False).to_numpy()
                          .tobytes()).hexdigest()[:16]


def analyze(data: pd.DataFrame, protocol: Protocol, plan: AnalysisPlan | None = None, *,
            progress: Callable[[str], None] | None = None) -> AnalysisResult:
    """Run the full analysis (see the module docstring)."""
    plan = plan or default_plan(data, protocol)
    step = progress or (lambda _msg: None)
    data = data.reset_index(drop=True).copy()
    _check_columns(data, protocol, plan)
    rng = np.random.default_rng(plan.seed)
    notes: list[str] = []
    data["responder"] = responder_indicator(data, baseline=plan.baseline, followup=plan.outcome,
                                            threshold=plan.responder_threshold)
    n_outcome = int(data[plan.outcome].notna().sum())
    weights, censoring = censoring_weights(data, plan)
    if weights is not None:
        notes.append(f"{len(data) - n_outcome} of {len(data)} participants have no "
                     f"{plan.outcome}; sequential inverse-probability-of-censoring weights are "
                     f"used (logistic models of staying in the study: {censoring}).")
    stages = working_model(protocol, plan)
    ql = QLearning(stages=stages, coding="dummy", maximize=False)
    ql_resp = QLearning(stages=stages, coding="dummy", maximize=True)

    step("Q-learning and bootstrap")
    fit: QLearningResult = ql.fit(data, outcome=plan.outcome, weights=weights)
    boot = fit.bootstrap(replicates=plan.bootstrap, m="adaptive",
                         random_state=int(rng.integers(2**31)), alpha=plan.alpha)
    coefficients = {k: boot.coefficients(k) for k in (1, 2)}

    step("interpretable regime (cross-fitted policy tree)")
    tree_rec, tree, _scores, expert_rec = _crossfit_tree(data, ql, plan, plan.outcome, rng,
                                                         weights)
    stage2_rec = fit.recommend(data)["A2"]
    interpretable = {"A1": list(tree_rec), "A2": list(stage2_rec)}

    step("regime values (AIPW, cross-fitted)")
    values = {}
    for label, outcome, learner in (("peg", plan.outcome, ql),
                                    ("responder", "responder", ql_resp)):
        table = compare_regimes(data, learner, outcome=outcome, propensities=["p_A1", "p_A2"],
                                weights=weights,
                                folds=plan.folds, random_state=int(rng.integers(2**31)),
                                alpha=plan.alpha)
        tree_value = aipw_value(data, interpretable, outcome=outcome, qlearning=learner,
                                propensities=["p_A1", "p_A2"], weights=weights,
                                alpha=plan.alpha,
                                name="interpretable regime (policy tree)").to_frame()
        rows = [table, tree_value]
        if plan.expert_categories:
            rows.append(aipw_value(data, {"A1": list(expert_rec), "A2": list(stage2_rec)},
                                   outcome=outcome, qlearning=learner,
                                   propensities=["p_A1", "p_A2"], weights=weights,
                                   alpha=plan.alpha,
                                   name="expert phenotype categories").to_frame())
        table = pd.concat(rows, ignore_index=True)
        table["regime"] = table["regime"].replace({"learned regime": "flexible regime "
                                                   "(Q-learning)"})
        values[label] = table

    step("embedded regimes")
    categories = list(protocol.stage(2).options or {})

    def rule(a1: str, category: str) -> list[str]:
        return list(stage_options(protocol, a1, category).codes)

    regimes = embedded_regimes(list(protocol.arm_codes), rule, categories)
    emb = WeightedReplicated(alpha=plan.alpha).fit(
        data, regimes, outcome=plan.outcome, propensities=["p_A1", "p_A2"], weights=weights)
    emb_table = emb.table().sort_values("estimate", ignore_index=True)
    top = emb_table.head(10)
    pairwise = emb.pairwise()
    keep = set(top["regime"])
    pairwise = pairwise[pairwise["first"].isin(keep) & pairwise["second"].isin(keep)]

    step("phenotype map")
    pmap = phenotype_profiles(fit, data, covariates=list(plan.profile_features), stage=1,
                              bootstrap=boot, alpha=plan.alpha)
    mods = modifier_importance(fit, data, stage=1, n_repeats=10,
                               random_state=int(rng.integers(2**31)))
    subs = subgroup_effects(data, subgroups=list(plan.subgroups), outcome=plan.outcome,
                            weights=weights,
                            reference="ESC" if "ESC" in protocol.arm_codes else None,
                            alpha=plan.alpha) if plan.subgroups else pd.DataFrame()

    rec = fit.recommend(data)
    recommendations = pd.DataFrame({"participant_id": data["participant_id"],
                                    "A1_received": data["A1"], "A1_flexible": rec["A1"],
                                    "A1_interpretable": tree_rec, "A1_expert": expert_rec,
                                    "A2_received": data["A2"],
                                    "A2_flexible": rec["A2"]})
    response = (data.assign(week12_responder=responder_indicator(
        data, baseline=plan.baseline, followup="peg_w12", threshold=plan.responder_threshold)
        if "peg_w12" in data.columns else np.nan)
        .groupby("A1").agg(n=("participant_id", "size"),
                           week12_responder=("week12_responder", "mean"),
                           week24_responder=("responder", "mean"),
                           peg_w24_mean=(plan.outcome, "mean"))
        .reset_index().rename(columns={"A1": "arm"}))
    factor_cols = [f.name for f in protocol.stage(1).randomization.factors if f.name in data]
    balance = pd.concat([data.groupby(f)["A1"].value_counts().unstack(fill_value=0)
                         .assign(factor=f).reset_index().rename(columns={f: "level"})
                         for f in factor_cols], ignore_index=True) if factor_cols else \
        pd.DataFrame()

    step("model file")
    data_hash = _hash_frame(data.drop(columns=["responder"]))
    agree = float(np.mean(np.asarray(tree_rec, dtype=object) == rec["A1"].to_numpy()))
    model = regime_document(fit, boot, data=data, protocol=protocol, stages=stages,
                            plan=asdict(plan), data_hash=data_hash, outcome=plan.outcome,
                            baseline=plan.baseline,
                            responder_threshold=plan.responder_threshold, tree=tree.tree_,
                            tree_features=plan.tree_features, tree_agreement=agree)
    step("done")
    return AnalysisResult(
        plan=plan, protocol_name=protocol.name, protocol_hash=protocol.content_hash,
        data_hash=data_hash, n=len(data), n_outcome=n_outcome,
        coefficients=coefficients, values_peg=values["peg"],
        values_responder=values["responder"], embedded=emb_table,
        embedded_pairwise=pairwise.reset_index(drop=True), tree_rules=tree.rules(),
        tree=tree.tree_, recommendations=recommendations, phenotype_map=pmap,
        modifiers=mods, subgroups=subs, response_by_arm=response, balance=balance,
        model=json.loads(json.dumps(model, default=_jsonable)), notes=tuple(notes))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
