"""The full BEST pipeline as a design replicate: simulate a trial with the truth known, analyse
it as ``tailor analyze`` does (leanly), and score the analysis against the truth.

One replicate (:func:`best_pipeline`):

1. **Simulate** a BEST trial with :func:`tailor.stats.simulation.simulate_trial` (compiled
   allocation path, no long or item-level tables, allocation log or truth paths, the
   generative model's summary scores) from a
   scenario adjusted by the design parameters (:func:`design_scenario`).
2. **Analyse** the wide table with the working model of :mod:`tailor.dtr.analysis`
   (:func:`~tailor.dtr.analysis.default_plan`, :func:`~tailor.dtr.analysis.working_model`):
   two-stage Q-learning of week-24 PEG (IPCW for missing outcomes, HC1 standard errors); a
   depth-2 exact policy tree on cross-fitted doubly robust stage-1 scores; AIPW values of a
   static regime, of the trial as randomized and of the cross-fitted learned regime; the
   weighted-and-replicated comparison of two embedded regimes. No bootstrap of the fits
   (the primary contrast's simultaneous intervals reweight influence functions by cluster
   multipliers, as the analysis does); ``folds`` (default 2) folds for cross-fitting.
3. **Score** against the truth: the learned regimes (Q-learning on the full data; the tree's
   first step with Q-learning's second) are evaluated exactly by
   :meth:`tailor.stats.truth.Truth.value` on the trial's own cohort and on a fixed population
   of ``truth_n`` participants drawn once per scenario (:func:`population_truth`, cached per
   process). The value intervals target a population value, so their coverage is scored
   against the population truth (and, for comparison, against the cohort's own values).
4. **Score the report's own claims**: the primary contrast (deployed regime minus the best
   single treatment) and the per-domain heterogeneity tests, computed with the functions
   ``tailor analyze`` uses, against the cohort's truth (``report_*`` metrics).

References
----------
Murphy SA (2005) JMLR 6:1073-97 (Q-learning); Zhang B et al. (2012) Biometrics 68:1010-8
(AIPW value); Athey S, Wager S (2021) Econometrica 89:133-61 (policy trees); Nahum-Shani I et
al. (2012) Psychol Methods 17:457-77 (embedded regimes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tailor.design import shared
from tailor.design.grid import number_param
from tailor.design.sizing import log_odds_ratio_wald
from tailor.dtr.analysis import (
    censoring_weights,
    covariate_fill_values,
    default_plan,
    penalized_model,
    single_treatment_values,
    tree_rewards,
    working_model,
)
from tailor.dtr.crossfit import crossfit_regime, crossfit_value
from tailor.dtr.data import decide, fold_partition
from tailor.dtr.embedded import EmbeddedRegime, WeightedReplicated
from tailor.dtr.formula import parse_options
from tailor.dtr.heterogeneity import domain_tests
from tailor.dtr.inference import (
    BestOf,
    Contrast,
    best_of,
    cluster_multipliers,
    clustered,
    contrast_with_best,
)
from tailor.dtr.penalized import PenalizedLinear
from tailor.dtr.phenotype import responder_indicator
from tailor.dtr.plan import load_plan, resolve_plan
from tailor.dtr.policytree import PolicyTree, PolicyTreeResult
from tailor.dtr.qlearning import QLearning, QLearningResult, StageFit
from tailor.dtr.steps import StepGuard
from tailor.dtr.value import (
    AIPWValue,
    DRScores,
    DRScoring,
    single_option_regime,
    value_data,
)
from tailor.exceptions import ScenarioError, TailorError
from tailor.protocol import Protocol, load_protocol
from tailor.rules import stage_options
from tailor.stats.scenarios import (
    Scenario,
    load_scenario,
    override_scenario,
    scale_effect_modification,
)
from tailor.stats.simulation import population_truth, simulate_trial
from tailor.stats.truth import TrueRegime, Truth, random_regime, responded
from tailor.stats.variables import domain_of, measured_domains

__all__ = ["DEFAULTS", "DESIGN_METRICS", "EMBEDDED", "METRICS", "STATIC_ARM", "VALIDATION_ONLY",
           "PipelineMetrics", "StepGuard", "best_pipeline", "best_trial_pipeline", "design_scenario",
           "design_trial_pipeline", "dropout_intercept",
           "primary_outcome", "report_contrast"]

DEFAULTS: dict[str, Any] = {"scenario": "amplifier-guitar", "n": 805, "effect": 1.0,
                            "contraindication": 0.45, "dropout": 0.20, "folds": 2,
                            "truth_n": 20_000, "oracle_inner": 64, "protocol": "best"}
"""Parameter values used when a cell does not set them."""

OUTCOME = "peg_w24"
PROPENSITIES = ["p_A1", "p_A2"]
STATIC_ARM = "EBEM"
"""The static regime whose AIPW interval's coverage is scored: start with EBEM (as randomized
where EBEM is contraindicated), stage 2 as randomized."""

EMBEDDED = (
    EmbeddedRegime("EBEM", (("excellent", "EBEM"), ("good", "ACT+EBEM"),
                            ("medium", "ACT+EBEM"), ("bad", "ACT"))),
    EmbeddedRegime("ACT", (("excellent", "ACT"), ("good", "ACT+EBEM"),
                           ("medium", "ACT+EBEM"), ("bad", "EBEM"))),
)
"""The two pre-specified embedded regimes compared (mirror images): exercise/manual therapy
first, adding ACT for good or medium responders and switching to ACT for bad ones; versus ACT
first, adding or switching to EBEM. Excellent responders continue."""

PHENOTYPES = {"nociceptive-predominant": "nociceptive", "mixed": "mixed",
              "nociplastic-predominant": "nociplastic"}
INTERACTION = re.compile(r"A1\[[^\]]+\]:amplifier_index")
NAN = float("nan")
METRICS = (
    "correct_first_line", *(f"correct_{p}" for p in PHENOTYPES.values()),
    "tree_correct_first_line", "share_of_oracle", "share_of_oracle_peg", "share_of_oracle_pop",
    "tree_share_of_oracle", "interaction_p", "interaction_reject", "interaction_q_p",
    "interaction_q_reject", "regime_p", "regime_reject", "regime_diff",
    "regime_responder_p", "regime_responder_reject", "regime_responder_logor",
    "regime_responder_diff",
    *(f"{v}_{m}" for v in ("static", "randomized", "learned")
      for m in ("covered", "covered_cohort", "error", "se", "covered_t")),
    "imbalance", "imbalance_eligible", "guess_rate", "missing_w24",
    "gain_captured", "gain_captured_peg", "deployed_minus_best_single", "tree_gain_captured",
    "tree_minus_best_single", "best_single_value", "oracle_value", "deployed_value",
    "q_discovery_power", "q_false_discovery", "tree_discovery_power", "tree_false_discovery",
    "pen_gain_captured", "pen_gain_captured_peg", "pen_minus_best_single", "pen_value",
    "pen_discovery_power", "pen_false_discovery",
    "report_claim", "report_p", "report_contrast", "report_contrast_covered",
    "best_single_covered", "report_discovery_power", "report_false_discovery")
"""Every metric :func:`best_trial_pipeline` returns, in order (NaN where a step could not be fitted)."""
VALIDATION_ONLY = tuple(m for m in METRICS if m.startswith(("pen_", "report_"))
                        or m == "best_single_covered")
"""The metrics of the validation matrix's extra methods (penalized Q-learning, the report's
primary contrast and domain tests), which :func:`design_trial_pipeline` does not compute."""
DESIGN_METRICS = tuple(m for m in METRICS if m not in VALIDATION_ONLY)
"""Every metric :func:`design_trial_pipeline` returns, in order."""
# Dropout: the scenario's per-visit logit hazard has 4 visits up to week 24; the offset makes
# 1 - (1 - h)^4 match the simulated share of missing week-24 PEG (intercept -2.75 -> 20.3%;
# -4.5 -> 4.0%; -2.0 -> 36.4%; checked on 20 x 805 participants per intercept).
DROPOUT_OFFSET = 0.09
NO_DROPOUT = -40.0


# --------------------------------------------------------------------------- the scenario
def dropout_intercept(share: float) -> float:
    """Intercept of the scenario's dropout hazard that leaves about ``share`` of week-24 PEG
    missing (the covariate terms of the hazard are kept; 0 means no dropout)."""
    if not 0 <= share < 1:
        raise ScenarioError(f"design parameter 'dropout' must be in [0, 1); got {share}")
    if share == 0:
        return NO_DROPOUT
    h = 1.0 - (1.0 - share) ** 0.25
    return float(np.log(h / (1.0 - h)) + DROPOUT_OFFSET)


@lru_cache(maxsize=32)
def design_scenario(name: str, effect: float = 1.0, contraindication: float = 0.45,
                    dropout: float = 0.20) -> Scenario:
    """The scenario ``name`` adjusted by the design parameters.

    ``effect`` multiplies every phenotype interaction (1: the scenario as written; 0: none;
    negative: reversed);
    ``contraindication`` is the share of candidates who cannot take duloxetine
    (``population.dul_contraindicated``); ``dropout`` the share of week-24 PEG missing, mapped to
    the intercept of the scenario's MAR dropout hazard (:func:`dropout_intercept`).
    """
    base = load_scenario(name)
    scen = scale_effect_modification(base, effect)
    return override_scenario(
        scen, {"population.dul_contraindicated": contraindication,
               "dropout.intercept": dropout_intercept(dropout)},
        name=f"{base.name} (effect x{effect:g}, DUL contraindicated {contraindication:g}, "
             f"dropout {dropout:g})")


@lru_cache(maxsize=4)
def _protocol(name: str) -> Protocol:
    return load_protocol(name)


@dataclass(frozen=True)
class _Population:
    truth: Truth
    randomized: dict[str, Any]
    oracle: dict[str, Any]
    static: dict[str, Any]


@lru_cache(maxsize=8)
def _population(protocol: str, scenario: str, effect: float, contraindication: float,
                dropout: float, n: int, inner: int) -> _Population:
    """A fixed population (seed 0) of the adjusted scenario with its standard regime values:
    read from the study's shared file when the client prepared one (:func:`_prepare`), else
    computed here (once per process)."""
    args = (protocol, scenario, effect, contraindication, dropout, n, inner)
    return shared.load(_population_key(*args), lambda: _compute_population(*args))


def _population_key(protocol: str, scenario: str, effect: float, contraindication: float,
                    dropout: float, n: int, inner: int) -> str:
    """The shared-store key of a population: everything that defines it (the protocol's and
    the adjusted scenario's content hashes, sizes, seed 0; the code hash is added by
    :func:`tailor.design.shared.key_of`)."""
    scen = design_scenario(scenario, effect, contraindication, dropout)
    return shared.key_of({
        "what": "best population truth", "protocol": _protocol(protocol).content_hash,
        "scenario": scen.model_dump(mode="json", by_alias=True), "effect": effect,
        "contraindication": contraindication, "dropout": dropout, "n": n, "inner": inner,
        "seed": 0})


def _population_args(params: Mapping[str, Any]) -> tuple[str, str, float, float, float, int, int]:
    """The arguments of :func:`_population` for a cell's ``params`` (``truth_n`` 0: none)."""
    p = {**DEFAULTS, **params}
    return (str(p["protocol"]), str(p["scenario"]),
            number_param(p, "effect", DEFAULTS["effect"], -10, 10),
            number_param(p, "contraindication", DEFAULTS["contraindication"], 0, 0.9),
            number_param(p, "dropout", DEFAULTS["dropout"], 0, 0.9),
            int(number_param(p, "truth_n", DEFAULTS["truth_n"], 0, 1e7)),
            int(number_param(p, "oracle_inner", DEFAULTS["oracle_inner"], 1, 4096)))


def _prepare(cells: Sequence[Any], directory: Path) -> dict[str, str]:
    """Compute (or find, verified, in ``directory``) each distinct truth population the
    ``cells`` need, once for the study; returns ``{key: file}`` for the workers
    (:func:`tailor.design.execution.run_study` calls this before submitting any batch)."""
    out: dict[str, str] = {}
    wanted: set[tuple[str, str, float, float, float, int, int]] = set()
    for c in cells:
        try:
            wanted.add(_population_args(c.params))
        except TailorError:
            continue  # an invalid cell: its replicates fail and are recorded, as without this
    for args in sorted(wanted):
        if args[5] == 0:  # truth_n 0: no population
            continue
        try:
            key = _population_key(*args)
        except TailorError:  # e.g. an unknown scenario: the replicates record the error
            continue
        if key not in out:
            # not through the lru cache: the client need not keep every population in memory
            out[key] = shared.prepare(directory, key, partial(_compute_population, *args))
    shared.install(out)
    return out


def _compute_population(protocol: str, scenario: str, effect: float, contraindication: float,
                        dropout: float, n: int, inner: int) -> _Population:
    """:func:`_population` computed. The trial-level site effects and site x arm effects are
    set to their mean (0): a population value averages over them, whereas one draw of 13 site
    effects would shift every population value by a common offset of about 0.05 PEG."""
    proto = _protocol(protocol)
    base = design_scenario(scenario, effect, contraindication, dropout)
    scen = override_scenario(base, {"population.site_effect_sd": 0.0, **{
        f"effects.stage1.{arm}.site_sd": 0.0 for arm in base.effects.stage1}})
    truth = population_truth(proto, scen, n=n, seed=0, oracle_inner=inner)
    return _Population(truth, _row(truth, "randomized"), _row(truth, "oracle"),
                       truth.value(_static_truth(STATIC_ARM)))


def _row(truth: Truth, regime: str) -> dict[str, float]:
    """A standard regime's values (``truth.values``) as ``{measure: value}``."""
    frame = truth.values
    row = frame.loc[frame["regime"] == regime].drop(columns="regime").iloc[0]
    return {str(k): float(v) for k, v in row.to_dict().items()}


# --------------------------------------------------------------------------- regimes as TrueRegime
def _codes(codes: np.ndarray) -> pd.Series:
    """A deterministic choice (n,) as the option codes a :class:`TrueRegime` chooser returns."""
    return pd.Series(codes, dtype=object)


_Feasible = tuple[np.ndarray, np.ndarray, np.ndarray]


def _feasibility(spec_feasible: Any, options: tuple[str, ...], frame: pd.DataFrame
                 ) -> _Feasible:
    """Mask (n, d) over ``options``, each row's only option ('' unless it has exactly one)
    and whether it has one. A truth's frames are read many times (the population's in every
    replicate): the last few frames' answers are kept (the frame object is held, so its id
    stays its own)."""
    key = (id(frame), repr(spec_feasible), options)
    hit = _FEASIBLE.get(key)
    if hit is not None and hit[0] is frame:
        return hit[1]
    n = len(frame)
    out: _Feasible
    if isinstance(spec_feasible, Mapping):
        mask = np.column_stack([frame[spec_feasible[o]].to_numpy() == 1 for o in options])
        out = (mask, np.full(n, "", dtype=object), np.zeros(n, dtype=bool))
    else:
        codes, uniques = pd.factorize(frame[str(spec_feasible)].fillna(""))
        sets = [parse_options(u) for u in uniques]
        umask = np.array([[o in s for o in options] for s in sets], dtype=bool).reshape(
            len(sets), len(options))
        # exactly one option; no scorable option among several (an option nobody received):
        # fall back to the first
        only = [s[0] if len(s) == 1 or (s and not m.any()) else "" for s, m in
                zip(sets, umask, strict=True)]
        uonly = np.array(only, dtype=object)
        out = (umask[codes], uonly[codes], (uonly != "")[codes])
    if len(_FEASIBLE) >= 4:
        _FEASIBLE.pop(next(iter(_FEASIBLE)))
    _FEASIBLE[key] = (frame, out)
    return out


_FEASIBLE: dict[tuple[Any, ...], tuple[pd.DataFrame, _Feasible]] = {}


def _history(spec: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``spec.history(frame, strict=False)``, kept for the last few frames: the fixed
    population's frames (20,000 and ~70,000 rows) are read in every replicate, and the
    matrices depend only on the frame and the stage's formulas with their levels (the key;
    a replicate whose fit saw other levels builds its own). Read-only."""
    key = (id(frame), repr(spec.main), repr(spec.tailoring), spec.has_intercept)
    hit = _HISTORY.pop(key, None)
    if hit is None or hit[0] is not frame:
        main, tail = spec.history(frame, strict=False)
        main.flags.writeable = tail.flags.writeable = False
        hit = (frame, (main, tail))
    _HISTORY[key] = hit  # most recently used last
    if len(_HISTORY) > 6:
        _HISTORY.pop(next(iter(_HISTORY)))
    return hit[1]


_HISTORY: dict[tuple[Any, ...], tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]]] = {}


def _best(stage: StageFit, frame: pd.DataFrame, sign: float) -> np.ndarray:
    """The stage's Q-learning choice for every row of ``frame`` (option codes)."""
    spec = stage.spec
    main, tail = _history(spec, frame)
    if stage.coef is None:
        q = stage.predict_designs(spec.option_designs(main, tail))
    else:  # Q(h, a) = main' beta + sum_j c_j(a) tail' psi_j without the (d, n, p) designs
        pm, pt = main.shape[1], tail.shape[1]
        codes = spec.treatment_codes(list(spec.options))  # (d, d_codes)
        psi = stage.coef[pm:].reshape(codes.shape[1], pt)
        q = (main @ stage.coef[:pm])[:, None] + (tail @ psi.T) @ codes.T
    mask, only, has_only = _feasibility(spec.feasible, tuple(spec.options), frame)
    scorable = mask & ~np.isnan(q)
    chosen = decide(q, scorable, maximize=sign > 0, active=scorable.any(axis=1))
    best = np.asarray(spec.options, dtype=object)[np.maximum(chosen, 0)]
    several = scorable.sum(axis=1) >= 2
    return np.where(several | ~has_only, best, only)


class _QChoices:
    """Q-learning's choices per stage, computed once per frame (the learned and the tree regime
    share the second stage)."""

    def __init__(self, fit: QLearningResult, fills: Mapping[str, float] | None = None) -> None:
        self.fit = fit
        self.fills = dict(fills or {})
        self._memo: dict[tuple[int, int], tuple[pd.DataFrame, np.ndarray]] = {}

    def __call__(self, stage: int, frame: pd.DataFrame) -> np.ndarray:
        hit = self._memo.get((stage, id(frame)))
        if hit is not None and hit[0] is frame:
            return hit[1]
        codes = _best(self.fit.stage(stage), _filled(frame, self.fills), self.fit.sign)
        self._memo[(stage, id(frame))] = (frame, codes)
        return codes

    def regime(self, name: str = "learned (Q-learning)",
               first: Callable[[pd.DataFrame], np.ndarray] | None = None) -> TrueRegime:
        """Q-learning's regime, or ``first`` at stage 1 then Q-learning's stage 2."""
        return TrueRegime(name, lambda b: _codes(first(b) if first else self(1, b)),
                          lambda h: _codes(self(2, h)))


def _filled(frame: pd.DataFrame, fills: Mapping[str, float]) -> pd.DataFrame:
    """``frame`` with the covariates the analysis filled (trial means) filled the same way:
    a regime fitted on the filled trial decides for a person without a measure as the
    decision tool does."""
    cols = [c for c in fills if c in frame.columns]
    if not cols or not frame[cols].isna().to_numpy().any():
        return frame
    return frame.fillna({c: fills[c] for c in cols})


def _tree_first(tree: PolicyTreeResult, features: list[str], arms: list[str],
                fills: Mapping[str, float]) -> Callable[[pd.DataFrame], np.ndarray]:
    def first(b: pd.DataFrame) -> np.ndarray:
        feasible = np.column_stack([b[f"eligible_{a}"].to_numpy() == 1 for a in arms])
        return np.asarray(tree.predict(_filled(b[features], fills), feasible=feasible),
                          dtype=object)

    return first


def _static_truth(arm: str) -> TrueRegime:
    """``arm`` first (uniform over the eligible arms where it is contraindicated), stage 2
    uniform over the permissible options: the estimand of the static AIPW value."""

    def stage1(b: pd.DataFrame) -> pd.DataFrame:
        elig = b["eligible_arms"].astype(str).str.get_dummies(sep=";").astype(float)
        uniform = elig.div(elig.sum(axis=1), axis=0)
        on = b[f"eligible_{arm}"].to_numpy() == 1
        uniform.loc[on, :] = 0.0
        uniform.loc[on, arm] = 1.0
        return uniform

    return TrueRegime(f"always {arm} first (stage 2 as randomized)", stage1, random_regime().stage2)


# --------------------------------------------------------------------------- metrics
def _share(v: float, v_random: float, v_oracle: float) -> float:
    gain = v_oracle - v_random
    return (v - v_random) / gain if abs(gain) > 1e-9 else float("nan")


def _best_single(truth: Truth) -> tuple[float, float]:
    """The truly best static first treatment (stage 2 as randomized) on the cohort: its
    week-24 responder rate, and the best mean week-24 PEG of a static first treatment."""
    v = truth.values
    static = v[v["regime"].str.startswith("always ")]
    return float(static["responder_w24"].max()), float(static["mean_peg_w24"].min())


def _true_domains(truth: Truth) -> set[str]:
    """Domains in which a true stage-1 modifier can be named (latent factors -> proxies)."""
    m = truth.modifiers
    if m.empty:
        return set()
    hit = m[(m["stage"] == "stage1") & m["modifies_contrast"] & (m["variable"] != "site")]
    return measured_domains(set(hit["domain"]))


def _split_features(node: Mapping[str, Any]) -> set[str]:
    """The features a fitted policy tree (``tree_``) splits on."""
    if "feature" not in node:
        return set()
    return {str(node["feature"])} | _split_features(node["left"]) | _split_features(
        node["right"])


def _discovery(prefix: str, named: set[str], true: set[str]) -> dict[str, float]:
    """Share of the true modifier domains named (NaN without one) and whether any other
    domain was named (a family-wise false discovery)."""
    power = len(named & true) / len(true) if true else NAN
    return {f"{prefix}_discovery_power": power,
            f"{prefix}_false_discovery": float(bool(named - true))}


def _interaction_p(fit: QLearningResult) -> float:
    """Joint Wald test (chi-square) of the stage-1 ``A1[..]:amplifier_index`` terms."""
    st = fit.stage(1)
    idx = [i for i, t in enumerate(st.spec.term_names) if INTERACTION.fullmatch(t)]
    if not idx or st.coef is None or st.cov is None:
        return float("nan")
    b = st.coef[idx]
    v = st.cov[np.ix_(idx, idx)]
    stat = float(b @ np.linalg.solve(v, b))
    return float(stats.chi2.sf(stat, len(idx)))


def _check_embedded(protocol: Protocol) -> None:
    for reg in EMBEDDED:
        for category, option in reg.rules:
            allowed = stage_options(protocol, reg.a1, category).codes
            if option not in allowed:
                raise ScenarioError(f"embedded regime '{reg.name}': option {option} is not "
                                    f"permitted after {reg.a1} for {category} responders by "
                                    f"protocol '{protocol.name}' ({list(allowed)})")


def _covered(est: Any, truth: float) -> float:
    return float(est.lower <= truth <= est.upper) if np.isfinite(truth) else NAN


def best_trial_pipeline(params: Mapping[str, Any], seed: np.random.SeedSequence, *,
                        validation: bool = True) -> PipelineMetrics:
    """One simulated BEST trial, analysed as ``tailor analyze`` does; metrics vs the truth.

    With ``validation=False`` (:func:`design_trial_pipeline`, what ``tailor design`` runs) the
    validation matrix's extra methods (penalized Q-learning, the report's primary contrast and
    domain tests: :data:`VALIDATION_ONLY`) are skipped; every other metric is the same number.

    ``params`` (defaults in :data:`DEFAULTS`): ``scenario`` (a built-in name or YAML path),
    ``n`` (participants randomized), ``effect`` (multiplier of the scenario's effect
    modification), ``contraindication`` (share who cannot take duloxetine), ``dropout``
    (share of week-24 PEG missing; MAR), ``folds`` (cross-fitting), ``truth_n`` (size of the
    population the coverage and population metrics use; 0 skips them), ``oracle_inner``,
    ``protocol``.

    Metrics (PEG: week-24 PEG, lower is better; responder: PEG reduced >= 30% at week 24):

    * ``correct_first_line``: share of the trial's participants whose learned (Q-learning)
      first treatment is the two-stage oracle's; ``correct_nociceptive`` / ``_mixed`` /
      ``_nociplastic`` by phenotype label; ``tree_correct_first_line`` for the policy tree.
    * ``share_of_oracle`` (responder rate) and ``share_of_oracle_peg``: (V(learned) -
      V(random)) / (V(oracle) - V(random)) on the trial's cohort; ``share_of_oracle_pop`` on the
      population; ``tree_share_of_oracle`` for the tree's first step + Q-learning's second.
    * ``interaction_p`` / ``interaction_reject``: joint Wald test (HC1, 5%) of the
      ``A1[..]:amplifier_index`` terms of the stage-1 working model fitted to the observed
      week-24 PEG (stage 2 as randomized; IPCW): does the first-line arm's effect vary with
      the amplifier index. ``interaction_q_p`` / ``interaction_q_reject``: the same terms in
      Q-learning's stage 1 (on the pseudo-outcome), whose model-based standard errors ignore
      the estimation of stage 2 and the non-regular max (``tailor analyze`` uses the
      m-out-of-n bootstrap there); reported to show how far that shortcut is from 5%.
    * ``regime_p`` / ``regime_reject`` / ``regime_diff``: the two embedded regimes of
      :data:`EMBEDDED` (EBEM-first minus ACT-first, mean week-24 PEG).
    * ``regime_responder_p`` / ``_reject`` / ``_logor`` / ``_diff``: the same two regimes
      on the binary end point, week-24 responder (PEG reduced >= 30%; missing where week-24
      PEG is, IPCW as above): Wald test of the log odds ratio of the weighted-and-replicated
      responder rates (Kidwell et al. 2018), ``_diff`` the difference in rates.
    * ``static_covered``, ``randomized_covered``, ``learned_covered``: the 95% intervals of
      the AIPW value of always-``STATIC_ARM``-first, of the trial as randomized, and of the
      cross-fitted learned regime cover the population value (for the learned regime: of the
      regime Q-learning fits on the full data); ``*_error`` (estimate - population value) and
      ``*_se``; ``*_covered_cohort`` against the cohort's own values. The intervals are the
      site-clustered (CR1, normal quantile) ones ``tailor analyze`` reports when the trial has
      sites; ``*_covered_t`` is the same interval with the t quantile on G - 1 degrees of
      freedom (G sites), recorded to show what that small-sample choice would change.
    * ``imbalance`` (max - min stage-1 arm totals), ``imbalance_eligible`` (among those
      eligible for every arm), ``guess_rate`` (mean largest stage-1 allocation probability),
      ``missing_w24`` (share of week-24 PEG missing).
    * ``gain_captured`` / ``_peg`` (``tree_gain_captured``): (V(deployed) - V(best single)) /
      (V(oracle) - V(best single)) on the cohort, the best single treatment being the truly
      best static first treatment with stage 2 as randomized (``docs/validation.md``);
      ``deployed_minus_best_single`` (``tree_minus_best_single``) the difference in responder
      rate; ``best_single_value``, ``oracle_value``, ``deployed_value`` (responder rates).
    * ``q_discovery_power`` / ``tree_discovery_power``: the share of the domains of the true
      stage-1 modifiers (``truth.modifiers``; a latent factor counts through its proxies'
      domains) that the method names (Q-learning: the amplifier index when
      ``interaction_reject``; the tree: the domains of its split variables);
      ``*_false_discovery``: 1 when it names any other domain (family-wise). The tree
      searches every candidate tailoring variable of the built-in plan (``plans/best.yaml``),
      covariates missing for some participants (the optional phenotyping block skipped by
      design) filled with the trial mean as ``tailor analyze`` fills them.
    * ``pen_*``: penalized Q-learning over the same candidates (lasso, cross-validated one-SE
      penalty, as ``tailor analyze``'s penalized method): ``pen_gain_captured`` / ``_peg``,
      ``pen_minus_best_single``, ``pen_value`` (true responder rate of its regime on the
      cohort), ``pen_discovery_power`` / ``pen_false_discovery`` (the domains of the stage-1
      interactions the lasso keeps).
    * ``report_*``: what the report itself says (``docs/validation.md``: "the report's own
      words and test"). ``report_claim``: 1 when the primary contrast (:func:`report_contrast`:
      the deployed regime minus the best single first treatment on the scale
      ``plans/best.yaml`` names, the responder rate; cross-fitted on ``folds`` folds,
      site-clustered, one-sided intersection-union test at 2.5%) claims that personalizing
      beats the best single treatment, as ``tailor analyze`` computes and words it;
      ``report_p`` its one-sided p, ``report_contrast`` its estimate;
      ``report_contrast_covered``: its 95% interval covers the cohort's true contrast (the
      true responder rate of Q-learning's regime fitted on all the data minus the truly best
      single treatment's, i.e. ``deployed_minus_best_single``); ``best_single_covered``: the
      selection-aware interval of the best single value covers the truly best single
      treatment's responder rate on the cohort. ``report_discovery_power`` /
      ``report_false_discovery``: the domains named by the report's per-domain
      heterogeneity tests (:func:`tailor.dtr.heterogeneity.domain_tests`, Holm across the
      built-in plan's domains, site-clustered, on the tree's cross-fitted DR scores; a plan
      domain's variables mapped to the catalogue's domains by :func:`_named_domains`).

    The analysis runs as named steps (``marginal_model``, ``qlearning``, ``policy_tree``,
    ``static_value``, ``randomized_value``, ``learned_value``, ``embedded_regimes``,
    ``penalized_qlearning``, then ``report_contrast`` and ``domain_tests``, whose random
    draws come after every earlier step's so that the earlier numbers are unchanged) under one
    :class:`~tailor.dtr.steps.StepGuard`: a metric is NaN when its step cannot be fitted to
    that trial (e.g. an option nobody received at a small N), and the returned :class:`PipelineMetrics` says in
    ``failures`` which step failed and why (the study's ``step_errors`` column); the
    summary's ``n_ok`` counts the others.
    """
    p = {**DEFAULTS, **params}
    n = int(number_param(p, "n", DEFAULTS["n"], 40, 1e6))
    effect = number_param(p, "effect", DEFAULTS["effect"], -10, 10)
    contra = number_param(p, "contraindication", DEFAULTS["contraindication"], 0, 0.9)
    dropout = number_param(p, "dropout", DEFAULTS["dropout"], 0, 0.9)
    folds = int(number_param(p, "folds", DEFAULTS["folds"], 2, 10))
    truth_n = int(number_param(p, "truth_n", DEFAULTS["truth_n"], 0, 1e7))
    inner = int(number_param(p, "oracle_inner", DEFAULTS["oracle_inner"], 1, 4096))
    scenario_name = str(p["scenario"])
    proto = _protocol(str(p["protocol"]))
    _check_embedded(proto)
    scen = design_scenario(scenario_name, effect, contra, dropout)
    state = seed.generate_state(2, np.uint64)
    rng = np.random.default_rng(int(state[1]))

    res = simulate_trial(proto, scen, participants=n, seed=int(state[0]), items=False,
                         engine=False, scoring=None, long=False, log=False, paths=False,
                         oracle_inner=inner)
    wide, truth = res.wide, res.truth
    out: dict[str, float] = {"missing_w24": float(wide[OUTCOME].isna().mean())}
    arms = list(proto.arm_codes)
    totals = wide["A1"].value_counts().reindex(arms, fill_value=0)
    all_eligible = (wide[[f"eligible_{a}" for a in arms]] == 1).all(axis=1)
    tot_e = wide.loc[all_eligible, "A1"].value_counts().reindex(arms, fill_value=0)
    out.update(imbalance=float(totals.max() - totals.min()),
               imbalance_eligible=float(tot_e.max() - tot_e.min()),
               guess_rate=float(wide[[f"p1_{a}" for a in arms]].max(axis=1).mean()))

    plan = default_plan(wide, proto, folds=folds)
    candidates = _candidate_plan(wide)
    fills = covariate_fill_values(wide, candidates)
    w, _ = censoring_weights(wide, plan)  # sequential IPCW, as `tailor analyze` uses
    ql = QLearning(stages=working_model(proto, plan), coding="dummy", maximize=False,
                   cov_type="HC1")
    guard = StepGuard()
    guard.run("marginal_model", _step_marginal, out, wide, ql, w)
    v_rand, v_orc = _row(truth, "randomized"), _row(truth, "oracle")
    best_resp, best_peg = _best_single(truth)
    out.update(best_single_value=best_resp, oracle_value=v_orc["responder_w24"])
    true_domains = _true_domains(truth)
    named_q = {"widespread"} if out.get("interaction_reject") == 1.0 else set()
    out.update(_discovery("q", named_q, true_domains))
    pop = (_population(str(p["protocol"]), scenario_name, effect, contra, dropout, truth_n,
                       inner) if truth_n else None)
    run = _Run(wide=wide, truth=truth, plan=plan, candidates=candidates, fills=fills,
               filled=_filled(wide, fills),
               clusters=wide[plan.cluster].astype(str).to_numpy() if plan.cluster else None,
               protocol=proto, ql=ql, w=w, folds=folds, rng=rng, pop=pop,
               out=out, v_rand=v_rand, v_orc=v_orc, best_resp=best_resp, best_peg=best_peg,
               true_domains=true_domains, oracle_first=truth.baseline["oracle_A1"].to_numpy())
    learned = guard.run("qlearning", _step_qlearning, run)
    scores = None
    if learned is not None:
        scores = guard.run("policy_tree", _step_tree, run, learned.choices)
    for name, (estimate, v_pop, v_cohort) in _estimands(run, learned).items():
        guard.run(f"{name}_value", _step_value, run, name, estimate, v_pop, v_cohort)
    guard.run("embedded_regimes", _step_embedded, out, wide, w)
    if not validation:
        return PipelineMetrics({m: float(out.get(m, NAN)) for m in DESIGN_METRICS},
                               guard.failures)
    guard.run("penalized_qlearning", _step_penalized, run)
    # the report's own claims, after every earlier step (their random draws are unchanged)
    guard.run("report_contrast", _step_report_contrast, run, learned)
    if scores is not None:
        guard.run("domain_tests", _step_domain_tests, run, scores)
    return PipelineMetrics({m: float(out.get(m, NAN)) for m in METRICS}, guard.failures)


def design_trial_pipeline(params: Mapping[str, Any], seed: np.random.SeedSequence
                          ) -> PipelineMetrics:
    """:func:`best_trial_pipeline` without the validation matrix's extra methods: the
    replicate ``tailor design`` runs (metrics :data:`DESIGN_METRICS`, the same numbers)."""
    return best_trial_pipeline(params, seed, validation=False)


best_trial_pipeline.prepare = _prepare  # type: ignore[attr-defined]
design_trial_pipeline.prepare = _prepare  # type: ignore[attr-defined]
best_pipeline = best_trial_pipeline
"""Deprecated alias of :func:`best_trial_pipeline` (removed in the next release)."""


# --------------------------------------------------------------------------- the named steps
class PipelineMetrics(dict[str, float]):
    """A replicate's metrics (a plain ``{metric: float}`` mapping) plus ``failures``: each
    step that could not be fitted and why (``{step: "TypeName: message"}``), which the study
    runner writes to the results' ``step_errors`` column."""

    def __init__(self, metrics: Mapping[str, float], failures: Mapping[str, str]) -> None:
        super().__init__(metrics)
        self.failures = dict(failures)


@dataclass
class _Run:
    """What the steps share: one simulated trial, its analysis set-up and the metrics so far."""

    wide: pd.DataFrame
    truth: Truth
    plan: Any
    candidates: Any
    fills: dict[str, float]
    filled: pd.DataFrame
    clusters: np.ndarray | None
    protocol: Protocol
    ql: QLearning
    w: Any
    folds: int
    rng: np.random.Generator
    pop: Any
    out: dict[str, float]
    v_rand: dict[str, float]
    v_orc: dict[str, float]
    best_resp: float
    best_peg: float
    true_domains: set[str]
    oracle_first: np.ndarray


@dataclass
class _Learned:
    """The Q-learning step's result, used by the tree and the learned regime's value."""

    fit: QLearningResult
    choices: _QChoices
    value: dict[str, Any]
    value_pop: dict[str, Any]


def _step_marginal(out: dict[str, float], wide: pd.DataFrame, ql: QLearning, w: Any) -> None:
    """The stage-1 working model fitted to the observed outcome (stage 2 as randomized)."""
    marginal = QLearning(stages=ql.stages[:1], coding="dummy", maximize=False,
                         cov_type="HC1").fit(wide, outcome=OUTCOME, weights=w)
    out["interaction_p"] = _interaction_p(marginal)
    out["interaction_reject"] = float(out["interaction_p"] < 0.05)


def _step_qlearning(r: _Run) -> _Learned:
    """Two-stage Q-learning: the learned regime, its agreement with the oracle and values."""
    out, truth, v_rand, v_orc = r.out, r.truth, r.v_rand, r.v_orc
    fit = r.ql.fit(r.wide, outcome=OUTCOME, weights=r.w)
    out["interaction_q_p"] = _interaction_p(fit)
    out["interaction_q_reject"] = float(out["interaction_q_p"] < 0.05)
    choices = _QChoices(fit)
    agree = choices(1, truth.baseline) == r.oracle_first
    out["correct_first_line"] = float(agree.mean())
    labels = truth.baseline["phenotype_label"].to_numpy()
    for label, short in PHENOTYPES.items():
        m = labels == label
        out[f"correct_{short}"] = float(agree[m].mean()) if m.any() else NAN
    learned = choices.regime()
    learned_value = truth.value(learned)
    out["share_of_oracle"] = _share(learned_value["responder_w24"],
                                    v_rand["responder_w24"], v_orc["responder_w24"])
    out["share_of_oracle_peg"] = _share(learned_value["mean_peg_w24"],
                                        v_rand["mean_peg_w24"], v_orc["mean_peg_w24"])
    out.update(deployed_value=learned_value["responder_w24"],
               gain_captured=_share(learned_value["responder_w24"], r.best_resp,
                                    v_orc["responder_w24"]),
               gain_captured_peg=_share(learned_value["mean_peg_w24"], r.best_peg,
                                        v_orc["mean_peg_w24"]),
               deployed_minus_best_single=learned_value["responder_w24"] - r.best_resp)
    learned_value_pop: dict[str, Any] = {}
    if r.pop is not None:
        learned_value_pop = r.pop.truth.value(learned)
        out["share_of_oracle_pop"] = _share(learned_value_pop["responder_w24"],
                                            r.pop.randomized["responder_w24"],
                                            r.pop.oracle["responder_w24"])
    return _Learned(fit, choices, learned_value, learned_value_pop)


def _step_tree(r: _Run, choices: _QChoices) -> DRScores:
    """The interpretable regime: a depth-2 tree on cross-fitted DR scores (returned: the
    domain tests use the same scores)."""
    wide, out, truth = r.wide, r.out, r.truth
    scores = DRScoring(qlearning=r.ql, stage=1, folds=r.folds,
                       random_state=int(r.rng.integers(2**31))).fit(
        value_data(wide, r.ql, outcome=OUTCOME, propensities=PROPENSITIES, weights=r.w),
        fitted=choices.fit)
    usable = scores.feasible.any(axis=1)
    # every candidate of the built-in plan, as `tailor analyze` searches them; covariates
    # missing for some participants (optional phenotyping skipped by design) filled with the
    # trial mean, as the analysis does
    cand = r.candidates
    features = list(cand.tree_features)
    tree = PolicyTree(depth=cand.tree_depth, min_node_size=cand.tree_min_node_size).fit(
        r.filled.loc[np.asarray(usable, dtype=bool), features],
        pd.DataFrame(tree_rewards(scores.rewards, scores.feasible)[usable],
                     columns=list(scores.options)))
    tree_first = _tree_first(tree, features, list(scores.options), r.fills)
    out["tree_correct_first_line"] = float(
        (tree_first(truth.baseline) == r.oracle_first).mean())
    vt = truth.value(choices.regime("interpretable (tree)", tree_first))
    out["tree_share_of_oracle"] = _share(vt["responder_w24"], r.v_rand["responder_w24"],
                                         r.v_orc["responder_w24"])
    out.update(tree_gain_captured=_share(vt["responder_w24"], r.best_resp,
                                         r.v_orc["responder_w24"]),
               tree_minus_best_single=vt["responder_w24"] - r.best_resp)
    named = {d for f in _split_features(tree.tree_) if (d := domain_of(f))}
    out.update(_discovery("tree", named, r.true_domains))
    return scores


def _step_penalized(r: _Run) -> None:
    """Penalized Q-learning over every candidate of the built-in plan (the lasso with a
    cross-validated one-SE penalty, as ``tailor analyze``'s penalized method): the gain its
    regime captures on the cohort, and the domains of the stage-1 interactions it keeps."""
    cand = r.candidates
    ql = QLearning(stages=penalized_model(r.protocol, cand), coding="dummy", maximize=False,
                   regressor=PenalizedLinear(l1_ratio=cand.l1_ratio,
                                             random_state=int(r.rng.integers(2**31))))
    fit = ql.fit(r.filled, outcome=OUTCOME, weights=r.w)
    value = r.truth.value(_QChoices(fit, r.fills).regime("penalized Q-learning"))
    v_orc = r.v_orc
    r.out.update(
        pen_value=value["responder_w24"],
        pen_gain_captured=_share(value["responder_w24"], r.best_resp, v_orc["responder_w24"]),
        pen_gain_captured_peg=_share(value["mean_peg_w24"], r.best_peg,
                                     v_orc["mean_peg_w24"]),
        pen_minus_best_single=value["responder_w24"] - r.best_resp)
    coefs = fit.stage(1).coefficients()
    kept = [str(t) for t, c in zip(coefs["term"], coefs["estimate"], strict=True)
            if ":" in str(t) and abs(c) > 1e-12]
    named = {d for t in kept if (d := domain_of(t.split(":", 1)[1]))}
    r.out.update(_discovery("pen", named, r.true_domains))


def primary_outcome() -> str:
    """The outcome scale of the report's primary contrast: ``responder`` or ``value`` (mean
    week-24 PEG), from the built-in plan's ``primary_contrast.outcome``, as ``tailor
    analyze``'s report reads it."""
    return str(load_plan("best").primary_contrast.outcome)


def report_contrast(wide: pd.DataFrame, protocol: Protocol, plan: Any, weights: Any,
                    fold: np.ndarray, multipliers: np.ndarray, outcome: str = "responder"
                    ) -> tuple[Contrast, BestOf]:
    """The report's primary contrast on ``wide``, computed as ``tailor analyze``'s values step
    computes it (:func:`tailor.dtr.analysis.single_treatment_values`,
    :func:`~tailor.dtr.inference.best_of`, :func:`~tailor.dtr.crossfit.crossfit_regime`,
    :func:`~tailor.dtr.inference.contrast_with_best`): the deployed regime (Q-learning of the
    working model on week-24 PEG, both stages, cross-fitted on the partition ``fold``) minus
    the best single first treatment, valued by AIPW on ``outcome`` (``responder``: the
    responder rate, larger is better; ``value``: mean week-24 PEG), site-clustered when the
    plan has a cluster, one-sided intersection-union test at ``plan.alpha / 2``
    (``Contrast.shows_benefit`` is the report's "the trial shows that personalizing beats the
    best single treatment"). ``multipliers`` are the cluster-bootstrap multipliers of the
    simultaneous intervals. Returns the contrast and the selection-aware best single value."""
    larger = outcome == "responder"
    data = wide.assign(responder=responder_indicator(
        wide, baseline=plan.baseline, followup=plan.outcome, threshold=plan.responder_threshold))
    stages = working_model(protocol, plan)
    ql = QLearning(stages=stages, coding="dummy", maximize=False)
    nuisance = QLearning(stages=stages, coding="dummy", maximize=True) if larger else ql
    column = "responder" if larger else plan.outcome
    clusters = data[plan.cluster].astype(str).to_numpy() if plan.cluster else None
    sd = value_data(data, nuisance, outcome=column, propensities=PROPENSITIES, weights=weights)
    arms = list(protocol.arm_codes)
    statics = single_treatment_values(sd, nuisance, arms, clusters=clusters, alpha=plan.alpha)
    best = best_of(statics, larger_is_better=larger, clusters=clusters, alpha=plan.alpha,
                   multipliers=multipliers, labels=arms)
    deployed = clustered(crossfit_regime(
        data, nuisance, regime_outcome=plan.outcome, outcome=column, propensities=PROPENSITIES,
        weights=weights, folds=fold, alpha=plan.alpha, learner=ql,
        name="deployed regime (Q-learning on week-24 PEG)").value, clusters, alpha=plan.alpha)
    c = contrast_with_best(deployed, statics, clusters=clusters, larger_is_better=larger,
                           alpha=plan.alpha, multipliers=multipliers,
                           name=f"{deployed.name} - best single treatment")
    return c, best


def _step_report_contrast(r: _Run, learned: _Learned | None) -> None:
    """The report's claim: its primary contrast (:func:`report_contrast`, on the scale the
    built-in plan names), whether it claims benefit, and whether its interval and the
    selection-aware best single value's cover the cohort's true values. The fold partition
    and the bootstrap multipliers are drawn here, after every earlier step's draws."""
    plan, n = r.plan, len(r.wide)
    fold = fold_partition(n, r.folds, r.rng)
    multipliers = cluster_multipliers(r.clusters, n, plan.bootstrap, r.rng)
    outcome = primary_outcome()
    c, best = report_contrast(r.wide, r.protocol, plan, r.w, fold, multipliers, outcome)
    measure, true_best = (("responder_w24", r.best_resp) if outcome == "responder"
                          else ("mean_peg_w24", r.best_peg))
    r.out.update(report_claim=float(c.shows_benefit), report_p=c.p_one_sided,
                 report_contrast=c.estimate, best_single_covered=_covered(best, true_best))
    if learned is not None:  # the deployed regime's truth: Q-learning's regime on all the data
        r.out["report_contrast_covered"] = _covered(c, learned.value[measure] - true_best)


def _step_domain_tests(r: _Run, scores: DRScores) -> None:
    """The report's heterogeneity tests: one test per domain of the built-in plan, Holm
    across domains (:func:`tailor.dtr.heterogeneity.domain_tests`, site-clustered, on the
    cross-fitted DR scores the tree uses, covariates filled as the analysis fills them); the
    rejected plan domains are named in the catalogue's domains by :func:`_named_domains`."""
    cand = r.candidates
    tests = domain_tests(scores, r.filled, cand.domains, clusters=r.clusters, weights=r.w,
                         alpha=cand.alpha)
    named = _named_domains(tests.loc[tests["modifies"], "domain"], dict(cand.domains),
                           r.true_domains)
    r.out.update(_discovery("report", named, r.true_domains))


def _named_domains(rejected: Iterable[str], variables: Mapping[str, Sequence[str]],
                   true: set[str]) -> set[str]:
    """The catalogue domains (:func:`tailor.stats.variables.domain_of`, those
    :func:`_true_domains` uses) named by rejecting the plan domains ``rejected``
    (``variables``: plan domain -> its variables). A plan domain may group variables of
    several catalogue domains (``imaging_biomechanics_qst``: imaging, biomechanics, QST), so a
    rejected one names the true modifier domains among its variables' domains when it has
    any (a true one explains the rejection) and otherwise all of them (a false discovery)."""
    named: set[str] = set()
    for domain in rejected:
        covers = {d for v in variables[domain] if (d := domain_of(v))}
        named |= (covers & true) or covers
    return named


def _candidate_plan(wide: pd.DataFrame) -> Any:
    """The built-in analysis plan (``plans/best.yaml``) resolved on the trial: its candidate
    tailoring variables, tree size and penalty mix."""
    return resolve_plan(load_plan("best"), wide)[0]


def _estimands(r: _Run, learned: _Learned | None
               ) -> dict[str, tuple[Callable[[], Any], float, float]]:
    """The values whose AIPW intervals are scored: (estimate, population value, cohort
    value); the learned regime's only when Q-learning was fitted."""
    wide, w, ql, pop = r.wide, r.w, r.ql, r.pop

    def static() -> Any:
        sd = value_data(wide, ql, outcome=OUTCOME, propensities=PROPENSITIES, weights=w)
        return AIPWValue(qlearning=ql).fit(sd, single_option_regime(sd, STATIC_ARM, stage=1))

    def randomized() -> Any:
        sd = value_data(wide, ql, outcome=OUTCOME, propensities=PROPENSITIES, weights=w)
        return AIPWValue(qlearning=ql, outcome_model="zero").fit(
            sd, {st.treatment: [None] * sd.n for st in sd.stages})

    estimands: dict[str, tuple[Callable[[], Any], float, float]] = {
        "static": (static, pop.static["mean_peg_w24"] if pop else NAN,
                   r.truth.value(_static_truth(STATIC_ARM))["mean_peg_w24"]),
        "randomized": (randomized, pop.randomized["mean_peg_w24"] if pop else NAN,
                       r.v_rand["mean_peg_w24"]),
    }
    if learned is not None:
        estimands["learned"] = (lambda: crossfit_value(
            wide, ql, outcome=OUTCOME, propensities=PROPENSITIES, weights=w, folds=r.folds,
            random_state=int(r.rng.integers(2**31))),
            learned.value_pop.get("mean_peg_w24", NAN), learned.value["mean_peg_w24"])
    return estimands


def _step_value(r: _Run, name: str, estimate: Callable[[], Any], v_pop: float,
                v_cohort: float) -> None:
    """One value estimate's standard error, error and interval coverage: the site-clustered
    interval ``tailor analyze`` reports when the trial has sites (the plan's ``cluster``)."""
    clusters = r.clusters
    est = clustered(estimate(), clusters)
    r.out[f"{name}_se"] = est.std_error
    r.out[f"{name}_covered_cohort"] = _covered(est, v_cohort)
    if r.pop is not None:
        r.out[f"{name}_covered"] = _covered(est, v_pop)
        r.out[f"{name}_error"] = est.estimate - v_pop
        # the same SE with the t quantile on G - 1 degrees of freedom (G sites), the usual
        # small-sample choice for few clusters (Cameron & Miller 2015, sec. VI.D); recorded
        # beside the reported (normal) interval to show what it would change
        g = len(np.unique(clusters)) if clusters is not None else 0
        q = stats.t.ppf(0.975, g - 1) if g > 1 else stats.norm.ppf(0.975)
        r.out[f"{name}_covered_t"] = float(abs(est.estimate - v_pop) <= q * est.std_error) \
            if np.isfinite(v_pop) else NAN


def _step_embedded(out: dict[str, float], wide: pd.DataFrame, w: Any) -> None:
    """The two embedded regimes of :data:`EMBEDDED` compared (weighted and replicated)."""
    emb = WeightedReplicated().fit(wide, list(EMBEDDED), outcome=OUTCOME,
                                   propensities=PROPENSITIES, weights=w)
    pair = emb.pairwise(adjust="none").iloc[0]
    out.update(regime_p=float(pair["p_value"]), regime_reject=float(pair["p_value"] < 0.05),
               regime_diff=float(pair["difference"]))
    # the binary end point: week-24 responder (PEG reduced >= 30%), log-odds-ratio Wald test
    # of the same two regimes (Kidwell et al. 2018; sized by sizing.binary_sample_size)
    peg = wide[OUTCOME].to_numpy(float)
    resp = np.where(np.isnan(peg), np.nan,
                    responded(wide["peg_baseline"].to_numpy(float), peg).astype(float))
    emb_b = WeightedReplicated().fit(wide.assign(responder_w24=resp), list(EMBEDDED),
                                     outcome="responder_w24", propensities=PROPENSITIES,
                                     weights=w)
    log_or, se = log_odds_ratio_wald(emb_b.estimate, emb_b.covariance)
    p_b = float(2 * stats.norm.sf(abs(log_or / se))) if se > 0 else NAN
    out.update(regime_responder_p=p_b, regime_responder_reject=float(p_b < 0.05)
               if not np.isnan(p_b) else NAN, regime_responder_logor=log_or,
               regime_responder_diff=float(emb_b.estimate[0] - emb_b.estimate[1]))
