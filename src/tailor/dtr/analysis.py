"""The SMART analysis ``tailor analyze`` runs: learn the regime, value it, map the phenotypes.

From the wide table of ``docs/data-contract.md`` and the protocol:

1. Q-learning over both stages (week-24 PEG, lower is better; feasible options from the
   stage-1 eligibility columns and the logged stage-2 option lists), with bootstrap intervals
   (percentile at stage 2, adaptive m-out-of-n at stage 1) for the coefficients, resampling
   whole sites when the data carry a site (the plan's ``cluster``; at least five sites);
2. values with site-clustered intervals (:mod:`tailor.dtr.inference`) of: as randomized,
   every single first treatment, the best single treatment (selection-adjusted), the deployed
   regime (Q-learning on week-24 PEG, both stages), "personalize stage 1 only", the
   interpretable regime (exact policy tree on censoring-weighted doubly robust scores) and the
   pre-specified phenotype-category regime, each cross-fitted as a whole on one shared fold
   partition (:mod:`tailor.dtr.crossfit`), on the mean week-24 PEG and on the responder rate;
3. the primary contrast: deployed regime minus the best single treatment, one-sided
   (intersection-union test against every single treatment), and the same for stage 1 only;
   the headline numbers at the protocol's time points computed from the data;
4. the embedded regimes of the SMART (weighted and replicated), best first, with a
   (site-clustered) sandwich covariance;
5. the phenotype map: for each first treatment, the profile of those for whom it is estimated
   best and their estimated benefit over the next-best feasible arm; effect-modifier
   importance by domain (permutation importance with intervals and Shapley values) at stage 1
   and at stage 2 (all, combination and single options); subgroup forest-plot data
   (site-clustered influence-function intervals);
6. a versioned model file of the deployed regime for the clinician's decision tool.

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tailor.dtr.crossfit import (
    FirstStageLearner,
    category_learner,
    crossfit_regime,
    fold_partition,
    tree_learner,
    tree_rewards,
)
from tailor.dtr.data import SmartData
from tailor.dtr.decision_model import crossfit_calibration, fit_decision_model
from tailor.dtr.embedded import WeightedReplicated, embedded_regimes
from tailor.dtr.heterogeneity import domain_tests
from tailor.dtr.importance import domain_forest, effect_importance, stage2_importance
from tailor.dtr.inference import best_of, cluster_multipliers, clustered, contrast_with_best
from tailor.dtr.phenotype import (
    modifier_importance,
    phenotype_profiles,
    responder_indicator,
    subgroup_effects,
)
from tailor.dtr.plan import TRIAL_COLUMNS, AnalysisPlan
from tailor.dtr.policytree import PolicyTreeResult
from tailor.dtr.qlearning import QLearning, QLearningResult
from tailor.dtr.regime_model import regime_document
from tailor.dtr.steps import StepGuard
from tailor.dtr.value import (
    AIPWValue,
    DRScoring,
    ValueEstimate,
    single_option_regime,
    value_data,
)
from tailor.exceptions import EstimationError, InputFileError
from tailor.protocol import Protocol
from tailor.rules import stage_options

if TYPE_CHECKING:
    from tailor.dtr.bootstrap import BootstrapResult

__all__ = ["AnalysisPlan", "AnalysisResult", "analyze", "censoring_weights",
           "covariate_fill_values", "default_plan", "interpretable_summary", "penalized_model",
           "single_treatment_values", "tree_rewards", "working_model"]


# Candidate features in order of preference; the plan keeps those present in the data.
PHENOTYPE_FEATURES = ("amplifier_index", "body_regions", "wpi", "sss", "fibromyalgianess",
                      "promis_sleep_t", "promis_fatigue_t", "promis_depression_t",
                      "promis_anxiety_t", "pcs_total", "peg_baseline", "pain_duration_months",
                      "lumbar_rom", "pfirrmann_max", "modic", "ppt", "age")
PROFILE_FEATURES = ("amplifier_index", "body_regions", "peg_baseline", "promis_depression_t",
                    "promis_sleep_t", "pcs_total", "age", "sex", "phenotype_label")
SUBGROUPS = ("phenotype_label", "pain_ge5", "opioid", "depression", "sex")
INTERPRETABLE = "interpretable regime (policy tree, exploratory)"


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
    from tailor.dtr.plan import builtin_plans, load_plan

    domains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if "best" in builtin_plans():  # the candidate domains of the built-in plan, where present
        spec = load_plan("best")
        domains = tuple((name, _present(data, dom.variables))
                        for name, dom in spec.candidates.items()
                        if _present(data, dom.variables))
    plan = AnalysisPlan(
        domains=domains,
        responder_threshold=threshold, main1=main1, tailoring1=tailor_cols, main2=main2,
        tailoring2=tailor_cols, tree_features=_present(data, PHENOTYPE_FEATURES),
        profile_features=_present(data, PROFILE_FEATURES), subgroups=_present(data, SUBGROUPS),
        cluster="site" if "site" in data.columns and data["site"].nunique() >= 2 else None,
        phenotype_categories=("phenotype_label", "eligible_DUL")
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
    contrasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    heterogeneity: pd.DataFrame = field(default_factory=pd.DataFrame)
    effect_importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    domain_forest: pd.DataFrame = field(default_factory=pd.DataFrame)
    effect_importance_stage2: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Variable importance by domain for the stage-2 options (all, combination, single)."""
    interpretable: dict[str, Any] = field(default_factory=dict)
    assignment_shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    time_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    plan_hash: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration_ece: float = float("nan")
    step_errors: dict[str, str] = field(default_factory=dict)
    """The analysis steps that could not be fitted to the data, and why (``{step: reason}``);
    their tables are empty."""

    def primary(self, outcome: str = "responder") -> dict[str, Any]:
        """The primary contrast: deployed regime minus the best single treatment."""
        c = self.contrasts
        row = c[(c["outcome"] == outcome) & c["contrast"].str.startswith("deployed")].iloc[0]
        return {k: (bool(row[k]) if k == "shows_benefit" else
                    str(row[k]) if k in ("contrast", "chosen_best") else float(row[k]))
                for k in ("contrast", "estimate", "lower", "upper", "one_sided_bound",
                          "p_one_sided", "chosen_best", "shows_benefit")}

    def headline(self) -> dict[str, Any]:
        """Responder rates (week 24) by regime with their intervals, primary contrast first."""
        out: dict[str, Any] = {}
        if not self.contrasts.empty:
            p = self.primary("responder")
            out["deployed minus best single treatment"] = {
                k: p[k] for k in ("estimate", "lower", "upper")}
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


def penalized_model(protocol: Protocol, plan: AnalysisPlan) -> list[dict[str, Any]]:
    """The working model widened to every candidate tailoring variable (main effects and
    option interactions at both stages), for penalized Q-learning
    (:class:`~tailor.dtr.penalized.PenalizedLinear` selects the terms)."""
    cands = [c for c in plan.tree_features if c not in ("response_category",)]
    stages = working_model(protocol, plan)
    for stage, main in ((stages[0], plan.main1), (stages[1], plan.main2)):
        terms = list(dict.fromkeys([*main, *cands]))
        stage["main"] = " + ".join(terms)
        stage["tailoring"] = " + ".join(cands) or None
    return stages


def _phenotype_categories(data: pd.DataFrame, plan: AnalysisPlan) -> np.ndarray:
    """Pre-specified categories: the pain phenotype label crossed with duloxetine eligibility."""
    label = data[plan.phenotype_categories[0]].astype(str).to_numpy()
    parts = [label]
    for col in plan.phenotype_categories[1:]:
        parts.append(np.where(pd.to_numeric(data[col], errors="coerce") == 1, f"{col}",
                              f"not {col}"))
    return np.array([" / ".join(p) for p in zip(*parts, strict=True)], dtype=object)


def _hash_frame(data: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(data, index=False).to_numpy()
                          .tobytes()).hexdigest()[:16]


def analyze(data: pd.DataFrame, protocol: Protocol, plan: AnalysisPlan | None = None, *,
            progress: Callable[[str], None] | None = None,
            plan_notes: Sequence[str] = ()) -> AnalysisResult:
    """Run the full analysis (see the module docstring); ``plan_notes`` (from
    :func:`tailor.dtr.plan.resolve_plan`) go into the report's methods.

    The analysis runs as named steps. The Q-learning fit, the cross-fitted regime values and
    contrasts, the regimes shown and the model file are required: an error there fails the
    analysis. The others (``heterogeneity``, ``stage2_importance``, ``embedded_regimes``, ``phenotype_map``,
    ``modifier_importance``, ``subgroups``, ``time_points``, ``decision_model``,
    ``calibration``) run under one :class:`~tailor.dtr.steps.StepGuard`: when one cannot be
    fitted to the data its tables stay empty and ``AnalysisResult.step_errors`` says which
    step failed and why (the report shows it).
    """
    a = _prepare(data, protocol, plan or default_plan(data, protocol), progress, plan_notes)
    guard = StepGuard()
    a.step("Q-learning and bootstrap")
    fit, boot = _step_qlearning(a)
    cf = _step_crossfit_setup(a)

    a.step("regime values and contrasts (cross-fitted AIPW, site-clustered)")
    values = _step_values(a, cf)

    a.step("heterogeneity by domain (Holm)")
    het = guard.run("heterogeneity", _step_heterogeneity, a, cf, values) or _Heterogeneity()
    a.step("variable importance at stage 2 (single vs combination options)")
    imp2 = guard.run("stage2_importance", _step_stage2_importance, a, cf)
    shares = assignment_shares(values.crossfit_rec["deployed"], a.data)

    a.step("regimes learned on all participants (shown)")
    shown = _step_shown_regimes(a, cf, fit, values)

    a.step("embedded regimes")
    emb_table, pairwise = guard.run("embedded_regimes", _step_embedded, a) or (
        pd.DataFrame(), pd.DataFrame())

    a.step("phenotype map")
    pmap = guard.run("phenotype_map", _step_phenotype_map, a, fit, boot)
    mods = guard.run("modifier_importance", _step_modifiers, a, fit)
    subs = guard.run("subgroups", _step_subgroups, a)
    deployed_fit = fit if cf.deployed_ql is a.ql else cf.deployed_ql.fit(
        a.data, outcome=a.plan.outcome, weights=a.weights)
    rec = deployed_fit.recommend(a.data)
    recommendations = pd.DataFrame({"participant_id": a.data["participant_id"],
                                    "A1_received": a.data["A1"], "A1_flexible": rec["A1"],
                                    "A1_interpretable": shown.tree_rec,
                                    "A1_category": shown.category_rec,
                                    "A2_received": a.data["A2"], "A2_flexible": rec["A2"]})
    response = _response_by_arm(a)
    time_points = guard.run("time_points", _time_points, a.data, protocol, a.ql, a.plan,
                            cf.clusters)
    balance = _balance(a)

    a.step("model file")
    doc = _step_decision_model(a, guard, fit, boot, deployed_fit, cf, rec)
    if doc.extra:  # one model speaks: the recommendations show the model file's first step
        recommendations["A1_flexible"] = doc.model_rec
    model = _model_file(a, cf, shown, doc)
    a.step("done")
    return AnalysisResult(
        plan=a.plan, protocol_name=protocol.name, protocol_hash=protocol.content_hash,
        data_hash=a.data_hash, n=len(a.data), n_outcome=a.n_outcome,
        coefficients={k: boot.coefficients(k) for k in (1, 2)}, values_peg=values.tables["peg"],
        values_responder=values.tables["responder"], embedded=emb_table,
        embedded_pairwise=pairwise.reset_index(drop=True), tree_rules=shown.tree.rules(),
        tree=shown.tree.tree_, recommendations=recommendations,
        phenotype_map=_or_empty(pmap), modifiers=_or_empty(mods), subgroups=_or_empty(subs),
        response_by_arm=response, balance=balance,
        model=json.loads(json.dumps(model, default=_jsonable)), contrasts=values.contrasts,
        heterogeneity=het.tests, assignment_shares=shares,
        effect_importance=het.importance, domain_forest=het.forest,
        effect_importance_stage2=_or_empty(imp2),
        interpretable=shown.interpretable, time_points=_or_empty(time_points),
        plan_hash=model["provenance"]["plan_hash"], notes=tuple(a.notes),
        calibration=doc.calibration, calibration_ece=doc.calibration_ece,
        step_errors=dict(guard.failures))


# --------------------------------------------------------------------------- the named steps
@dataclass
class _Analysis:
    """What the steps share: the prepared table, the plan, the working models, the random
    stream (drawn from in a fixed order) and the notes for the report."""

    data: pd.DataFrame
    protocol: Protocol
    plan: AnalysisPlan
    step: Callable[[str], None]
    rng: np.random.Generator
    notes: list[str]
    n_outcome: int
    weights: np.ndarray | None
    stages: list[dict[str, Any]]
    ql: QLearning
    ql_resp: QLearning
    props: list[str]

    @property
    def data_hash(self) -> str:
        return _hash_frame(self.data.drop(columns=["responder"]))

    @property
    def unit_weights(self) -> np.ndarray:
        return self.weights if self.weights is not None else np.ones(len(self.data))


@dataclass
class _CrossFit:
    """The cross-fitting set-up: the deployed learner, one fold partition, the clusters and
    their bootstrap multipliers, and the first-stage learners."""

    ql_pen: QLearning | None
    deployed_ql: QLearning
    deployed_label: str
    fold: np.ndarray
    clusters: np.ndarray | None
    multipliers: np.ndarray
    learners: dict[str, FirstStageLearner]


@dataclass
class _Values:
    tables: dict[str, pd.DataFrame]
    contrasts: pd.DataFrame
    crossfit_rec: dict[str, pd.DataFrame]
    chosen_best: dict[str, str]


@dataclass
class _Heterogeneity:
    tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    forest: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class _Shown:
    tree: PolicyTreeResult
    tree_rec: list[str | None]
    category_rec: list[str | None]
    interpretable: dict[str, Any]


@dataclass
class _Document:
    """What the model file is built from, and the calibration of its chance of response."""

    fit: QLearningResult
    boot: BootstrapResult | None
    stages: list[dict[str, Any]]
    extra: dict[str, Any]
    model_rec: Any
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration_ece: float = float("nan")


def _or_empty(table: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if table is None else table


def _prepare(data: pd.DataFrame, protocol: Protocol, plan: AnalysisPlan,
             progress: Callable[[str], None] | None, plan_notes: Sequence[str]) -> _Analysis:
    """Check the table, fill baseline covariates, add the responder indicator, build the
    censoring weights and the working models."""
    data = data.reset_index(drop=True).copy()
    _check_columns(data, protocol, plan)
    rng = np.random.default_rng(plan.seed)
    notes: list[str] = list(plan_notes)
    notes.extend(_fill_missing_covariates(data, plan))
    data["responder"] = responder_indicator(data, baseline=plan.baseline, followup=plan.outcome,
                                            threshold=plan.responder_threshold)
    n_outcome = int(data[plan.outcome].notna().sum())
    weights, censoring = censoring_weights(data, plan)
    if weights is not None:
        notes.append(f"{len(data) - n_outcome} of {len(data)} participants have no "
                     f"{plan.outcome}; sequential inverse-probability-of-censoring weights are "
                     f"used (logistic models of staying in the study: {censoring}).")
    stages = working_model(protocol, plan)
    return _Analysis(data=data, protocol=protocol, plan=plan,
                     step=progress or (lambda _msg: None), rng=rng, notes=notes,
                     n_outcome=n_outcome, weights=weights, stages=stages,
                     ql=QLearning(stages=stages, coding="dummy", maximize=False),
                     ql_resp=QLearning(stages=stages, coding="dummy", maximize=True),
                     props=list(TRIAL_COLUMNS.propensities))


def _step_qlearning(a: _Analysis) -> tuple[QLearningResult, BootstrapResult]:
    """Two-stage Q-learning on the outcome, with bootstrap intervals (adaptive m-out-of-n at
    stage 1, n-out-of-n at stage 2); whole sites are resampled when the plan has a cluster
    column with at least ``MIN_CLUSTERS`` sites (:mod:`tailor.dtr.bootstrap`)."""
    fit = a.ql.fit(a.data, outcome=a.plan.outcome, weights=a.weights)
    clusters = a.data[a.plan.cluster] if a.plan.cluster else None
    boot = fit.bootstrap(replicates=a.plan.bootstrap, m="adaptive",
                         random_state=int(a.rng.integers(2**31)), alpha=a.plan.alpha,
                         clusters=clusters)
    return fit, boot


def _step_crossfit_setup(a: _Analysis) -> _CrossFit:
    """The deployed learner (plain or penalized Q-learning), the shared fold partition, the
    clusters with their bootstrap multipliers, and the first-stage learners."""
    plan, data = a.plan, a.data
    ql_pen: QLearning | None = None
    if plan.penalized and plan.tree_features:
        from tailor.dtr.penalized import PenalizedLinear

        ql_pen = QLearning(stages=penalized_model(a.protocol, plan), coding="dummy",
                           maximize=False, regressor=PenalizedLinear(
                               l1_ratio=plan.l1_ratio, random_state=plan.seed))
    if plan.deployed == "penalized" and ql_pen is None:
        raise EstimationError("the plan deploys the penalized Q-learning regime but names no "
                              "candidate tailoring variables present in the data")
    deployed_ql = ql_pen if plan.deployed == "penalized" and ql_pen is not None else a.ql
    deployed_label = "penalized Q-learning" if deployed_ql is ql_pen else "Q-learning"
    fold = fold_partition(len(data), plan.folds, a.rng)
    clusters = data[plan.cluster].astype(str).to_numpy() if plan.cluster else None
    multipliers = cluster_multipliers(clusters, len(data), plan.bootstrap, a.rng)
    learners: dict[str, FirstStageLearner] = {
        "interpretable": tree_learner(a.ql, outcome=plan.outcome, propensities=a.props,
                                      features=plan.tree_features, depth=plan.tree_depth,
                                      min_node_size=plan.tree_min_node_size)}
    if plan.ensemble and plan.tree_features:
        from tailor.dtr.dr_learner import ensemble_learner

        learners["ensemble"] = ensemble_learner(
            a.ql, outcome=plan.outcome, propensities=a.props, features=[
                f for f in plan.tree_features if pd.api.types.is_numeric_dtype(data[f])],
            random_state=plan.seed)
    if plan.phenotype_categories:
        learners["category"] = category_learner(
            a.ql, outcome=plan.outcome, propensities=a.props,
            categories=lambda d: _phenotype_categories(d, plan))
    return _CrossFit(ql_pen, deployed_ql, deployed_label, fold, clusters, multipliers,
                     {k: _memoized(v) for k, v in learners.items()})


def _step_values(a: _Analysis, cf: _CrossFit) -> _Values:
    """Values (cross-fitted AIPW, site-clustered) of every regime on the mean PEG and the
    responder rate, and the contrasts with the best single treatment."""
    plan, data, protocol = a.plan, a.data, a.protocol
    tables: dict[str, pd.DataFrame] = {}
    contrasts: list[pd.DataFrame] = []
    crossfit_rec: dict[str, pd.DataFrame] = {}
    chosen_best: dict[str, str] = {}
    clusters = cf.clusters
    for label, outcome, nuisance in (("peg", plan.outcome, a.ql),
                                     ("responder", "responder", a.ql_resp)):
        larger = label == "responder"

        def clus(e: ValueEstimate) -> ValueEstimate:
            return clustered(e, clusters, alpha=plan.alpha)

        sd = value_data(data, nuisance, outcome=outcome, propensities=a.props,
                        weights=a.weights)
        as_rand = clus(AIPWValue(qlearning=nuisance, outcome_model="zero", alpha=plan.alpha,
                                 name="as randomized").fit(
            sd, {st.treatment: [None] * sd.n for st in sd.stages}))
        statics = single_treatment_values(sd, nuisance, protocol.arm_codes,
                                          clusters=clusters, alpha=plan.alpha)
        best = best_of(statics, larger_is_better=larger, clusters=clusters,
                       alpha=plan.alpha, multipliers=cf.multipliers,
                       labels=list(protocol.arm_codes))
        chosen_best[label] = best.chosen
        learned: dict[str, ValueEstimate] = {}
        for key, name, extra in _regime_specs(plan, cf):
            extra = {"learner": cf.deployed_ql, **extra}
            fitted = crossfit_regime(data, nuisance, regime_outcome=plan.outcome,
                                     outcome=outcome, propensities=a.props, weights=a.weights,
                                     folds=cf.fold, alpha=plan.alpha, name=name, **extra)
            learned[key] = clus(fitted.value)
            if label == "peg":
                crossfit_rec[key] = fitted.recommendations
        rows = [as_rand.to_frame(), *[e.to_frame() for e in statics], best.to_frame(),
                *[e.to_frame() for e in learned.values()]]
        tables[label] = pd.concat(rows, ignore_index=True)
        if larger:  # a responder rate: its interval is cut to [0, 1], which loses no coverage
            tables[label][["lower", "upper"]] = tables[label][["lower", "upper"]].clip(0.0, 1.0)
        for key in (k for k in ("deployed", "stage1", "penalized", "ensemble") if k in learned):
            c = contrast_with_best(learned[key], statics, clusters=clusters,
                                   larger_is_better=larger, alpha=plan.alpha,
                                   multipliers=cf.multipliers,
                                   name=f"{learned[key].name} - best single treatment")
            contrasts.append(c.to_frame().assign(outcome=label, chosen_best=best.chosen,
                                                 shows_benefit=c.shows_benefit))
        contrasts.append(pd.DataFrame([{
            "contrast": "as randomized (reference)", "estimate": as_rand.estimate,
            "std_error": as_rand.std_error, "lower": as_rand.lower, "upper": as_rand.upper,
            "one_sided_bound": np.nan, "p_one_sided": np.nan, "outcome": label,
            "chosen_best": best.chosen, "shows_benefit": False}]))
    return _Values(tables, pd.concat(contrasts, ignore_index=True), crossfit_rec, chosen_best)


def single_treatment_values(sd: SmartData, nuisance: QLearning, arms: Sequence[str], *,
                            clusters: Any = None, alpha: float = 0.05) -> list[ValueEstimate]:
    """The AIPW value of each single first treatment ("always ``arm`` first", stage 2 as
    randomized), site-clustered when ``clusters`` is given: the comparators of the primary
    contrast (:func:`~tailor.dtr.inference.best_of`,
    :func:`~tailor.dtr.inference.contrast_with_best`), as the values step computes them."""
    return [clustered(AIPWValue(qlearning=nuisance, alpha=alpha, name=f"always {arm} first").fit(
        sd, single_option_regime(sd, arm, stage=1)), clusters, alpha=alpha) for arm in arms]


def _regime_specs(plan: AnalysisPlan, cf: _CrossFit) -> list[tuple[str, str, dict[str, Any]]]:
    """The learned regimes valued: (key, name, crossfit_regime arguments)."""
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("deployed", f"deployed regime ({cf.deployed_label} on week-24 PEG)", {}),
        ("stage1", "personalize stage 1 only (Q-learning)", {"later_stages": False}),
        ("interpretable", INTERPRETABLE, {"first_stage": cf.learners["interpretable"]}),
    ]
    if cf.ql_pen is not None and plan.deployed != "penalized":
        specs.append(("penalized", "penalized Q-learning over all candidates (lasso, "
                      "one-SE)", {"learner": cf.ql_pen}))
    if "ensemble" in cf.learners:
        specs.append(("ensemble", "ensemble regime (stacked DR-learner, stage 1)",
                      {"first_stage": cf.learners["ensemble"]}))
    if "category" in cf.learners:
        specs.append(("category", "pre-specified phenotype categories",
                      {"first_stage": cf.learners["category"]}))
    return specs


def _step_heterogeneity(a: _Analysis, cf: _CrossFit, values: _Values) -> _Heterogeneity:
    """Heterogeneity by domain (Holm), effect-modifier importance and forest plots on the
    cross-fitted doubly robust scores of the first-stage options."""
    plan, data = a.plan, a.data
    domains = plan.domains or tuple((f, (f,)) for f in plan.tree_features)
    if not domains:
        return _Heterogeneity()
    scores = DRScoring(qlearning=a.ql, stage=1, folds=cf.fold).fit(
        value_data(data, a.ql, outcome=plan.outcome, propensities=a.props, weights=a.weights))
    out = _Heterogeneity()
    if plan.domains:
        out.tests = domain_tests(scores, data, plan.domains, clusters=cf.clusters,
                                 weights=a.weights, alpha=plan.alpha)
    a.step("variable importance and forest plots by domain")
    out.importance = effect_importance(scores, data, domains, folds=cf.fold,
                                       clusters=cf.clusters, weights=a.weights,
                                       alpha=plan.alpha,
                                       random_state=int(a.rng.integers(2**31)))
    out.forest = domain_forest(scores, data, domains, best=values.chosen_best["peg"],
                               clusters=cf.clusters, weights=a.weights, alpha=plan.alpha)
    return out


def _step_stage2_importance(a: _Analysis, cf: _CrossFit) -> pd.DataFrame:
    """Variable importance by domain for the stage-2 options of those with a stage-2
    decision (cross-fitted stage-2 doubly robust scores on the shared partition), over all
    options and by kind (combination = augment, single = switch or continue). Its
    permutations are seeded from the plan's seed, not the shared stream, so that adding this
    step left every other number of the analysis unchanged."""
    plan, data = a.plan, a.data
    domains = plan.domains or tuple((f, (f,)) for f in plan.tree_features)
    if not domains:
        return pd.DataFrame()
    scores = DRScoring(qlearning=a.ql, stage=2, folds=cf.fold).fit(
        value_data(data, a.ql, outcome=plan.outcome, propensities=a.props, weights=a.weights))
    return stage2_importance(scores, data, domains, folds=cf.fold, clusters=cf.clusters,
                             weights=a.weights, alpha=plan.alpha, random_state=plan.seed)


def _step_shown_regimes(a: _Analysis, cf: _CrossFit, fit: QLearningResult,
                        values: _Values) -> _Shown:
    """The interpretable tree and the category regime learned on all participants (shown)."""
    tree_predict = cf.learners["interpretable"](a.data, fit, cf.fold, a.unit_weights)
    tree = tree_predict.tree  # type: ignore[attr-defined]
    tree_rec = list(tree_predict(a.data))
    interpretable = interpretable_summary(values.tables, tree_rec,
                                          values.crossfit_rec["interpretable"])
    category_rec: list[str | None] = [None] * len(a.data)
    if "category" in cf.learners:
        category_rec = list(cf.learners["category"](a.data, fit, cf.fold,
                                                    a.unit_weights)(a.data))
    return _Shown(tree, tree_rec, category_rec, interpretable)


def _step_embedded(a: _Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SMART's embedded regimes (weighted and replicated), best first, and the pairwise
    comparisons among the ten best (site-clustered sandwich when the plan has a cluster)."""
    protocol = a.protocol
    categories = list(protocol.stage(2).options or {})

    def rule(a1: str, category: str) -> list[str]:
        return list(stage_options(protocol, a1, category).codes)

    regimes = embedded_regimes(list(protocol.arm_codes), rule, categories)
    emb = WeightedReplicated(alpha=a.plan.alpha).fit(
        a.data, regimes, outcome=a.plan.outcome, propensities=a.props, weights=a.weights,
        clusters=a.plan.cluster)
    table = emb.table().sort_values("estimate", ignore_index=True)
    keep = set(table.head(10)["regime"])
    pairwise = emb.pairwise()
    pairwise = pairwise[pairwise["first"].isin(keep) & pairwise["second"].isin(keep)]
    return table, pairwise


def _step_phenotype_map(a: _Analysis, fit: QLearningResult,
                        boot: BootstrapResult) -> pd.DataFrame:
    """Profiles of those for whom each first treatment is estimated best."""
    return phenotype_profiles(fit, a.data, covariates=list(a.plan.profile_features), stage=1,
                              bootstrap=boot, alpha=a.plan.alpha)


def _step_modifiers(a: _Analysis, fit: QLearningResult) -> pd.DataFrame:
    """Effect-modifier importance (permutation) at stage 1."""
    return modifier_importance(fit, a.data, stage=1, n_repeats=10,
                               random_state=int(a.rng.integers(2**31)))


def _step_subgroups(a: _Analysis) -> pd.DataFrame:
    """Subgroup effects of the first treatment (forest-plot data; site-clustered intervals
    when the plan has a cluster)."""
    plan = a.plan
    if not plan.subgroups:
        return pd.DataFrame()
    return subgroup_effects(a.data, subgroups=list(plan.subgroups), outcome=plan.outcome,
                            weights=a.weights,
                            reference="ESC" if "ESC" in a.protocol.arm_codes else None,
                            alpha=plan.alpha, clusters=plan.cluster)


def _response_by_arm(a: _Analysis) -> pd.DataFrame:
    data, plan = a.data, a.plan
    return (data.assign(week12_responder=responder_indicator(
        data, baseline=plan.baseline, followup="peg_w12", threshold=plan.responder_threshold)
        if "peg_w12" in data.columns else np.nan)
        .groupby("A1").agg(n=("participant_id", "size"),
                           week12_responder=("week12_responder", "mean"),
                           week24_responder=("responder", "mean"),
                           peg_w24_mean=(plan.outcome, "mean"))
        .reset_index().rename(columns={"A1": "arm"}))


def _balance(a: _Analysis) -> pd.DataFrame:
    data = a.data
    factor_cols = [f.name for f in a.protocol.stage(1).randomization.factors if f.name in data]
    if not factor_cols:
        return pd.DataFrame()
    return pd.concat([data.groupby(f)["A1"].value_counts().unstack(fill_value=0)
                      .assign(factor=f).reset_index().rename(columns={f: "level"})
                      for f in factor_cols], ignore_index=True)


def _step_decision_model(a: _Analysis, guard: StepGuard, fit: QLearningResult,
                         boot: BootstrapResult, deployed_fit: QLearningResult, cf: _CrossFit,
                         rec: pd.DataFrame) -> _Document:
    """The decision tool's model: the plan's model with a flexible stage 1 and a site
    bootstrap of the whole fit (:mod:`tailor.dtr.decision_model`; ``docs/decide.md``), and
    the cross-fitted calibration of its chance of response; the plan's linear working model
    when the flexible one cannot be fitted (both guarded steps)."""
    data = a.data
    doc = _Document(deployed_fit, boot if deployed_fit is fit else None,
                    [dict(cf.deployed_ql.stages[0]), dict(cf.deployed_ql.stages[1])], {},
                    rec["A1"].to_numpy())
    if deployed_fit is not fit:
        return doc
    dm = guard.run("decision_model", _fit_decision_model, a)
    if dm is None:
        a.notes.append("the decision tool's flexible model could not be fitted (see the steps "
                       "that could not be fitted); the model file carries the plan's linear "
                       "working model")
        return doc
    unit = "sites" if dm.clusters < len(data) else "participants"
    doc = _Document(dm.fit, dm.boot, dm.stages, {
        "basis": dm.basis, "cov_scale": dm.scale,
        "cov_note": f"bootstrap of the whole two-stage fit ({dm.clusters} {unit} resampled; "
                    "x G/(G-1))"}, dm.fit.recommend(dm.data)["A1"].to_numpy())
    calibrated = guard.run("calibration", _calibrate, a, cf)
    if calibrated is None:
        a.notes.append("no cross-fitted calibration of the response chance (see the steps "
                       "that could not be fitted)")
    else:
        doc.calibration, doc.calibration_ece = calibrated
    return doc


def _calibrate(a: _Analysis, cf: _CrossFit) -> tuple[pd.DataFrame, float]:
    plan = a.plan
    return crossfit_calibration(a.data, a.stages, outcome=plan.outcome, baseline=plan.baseline,
                                threshold=plan.responder_threshold, folds=cf.fold,
                                protocol=a.protocol, weights=a.weights, clusters=plan.cluster,
                                propensity=a.props[-1])


def _fit_decision_model(a: _Analysis) -> Any:
    return fit_decision_model(a.data, a.stages, outcome=a.plan.outcome, clusters=a.plan.cluster,
                              replicates=max(a.plan.bootstrap, 10), weights=a.weights,
                              propensity=a.props[-1], random_state=int(a.rng.integers(2**31)))


def _model_file(a: _Analysis, cf: _CrossFit, shown: _Shown, doc: _Document) -> dict[str, Any]:
    """The versioned model file of the deployed regime for the decision tool."""
    plan = a.plan
    agree = float(np.mean(np.asarray(shown.tree_rec, dtype=object) == doc.model_rec))
    model = regime_document(doc.fit, doc.boot, data=a.data, protocol=a.protocol,
                            stages=doc.stages, plan=asdict(plan), data_hash=a.data_hash,
                            outcome=plan.outcome, baseline=plan.baseline,
                            responder_threshold=plan.responder_threshold, tree=shown.tree.tree_,
                            tree_features=plan.tree_features, tree_agreement=agree,
                            **doc.extra)
    model["analysis_plan"] = model["provenance"]["plan_hash"]  # the plan that was fitted
    model["analysis_plan_file"] = {"name": plan.plan_name, "content_hash": plan.plan_file_hash}
    model["deployed"] = f"{cf.deployed_label} regime on {plan.outcome}" + (
        " (flexible stage 1 for the decision tool)" if doc.extra else "")
    return model


def covariate_fill_values(data: pd.DataFrame, plan: AnalysisPlan) -> dict[str, float]:
    """The trial mean of every baseline candidate modifier or stage-1 main effect that is
    missing for some participants but not all (e.g. optional phenotyping skipped by design):
    what the analysis fills in, and what a regime fitted on the filled data is given for a
    person without that measure (as the decision tool does)."""
    fills: dict[str, float] = {}
    for name in dict.fromkeys([*plan.tree_features, *plan.main1]):
        if name not in data.columns or not pd.api.types.is_numeric_dtype(data[name]):
            continue
        missing = data[name].isna()
        if missing.any() and not missing.all():
            fills[name] = float(data[name].mean())
    return fills


def _fill_missing_covariates(data: pd.DataFrame, plan: AnalysisPlan) -> list[str]:
    """Fill, in place, the covariates of :func:`covariate_fill_values` with the trial mean;
    notes say which and how many. Post-baseline columns (stage-2 history, outcomes) and the
    working model's tailoring terms are never filled: their missingness is the censoring the
    weights model."""
    notes = []
    for name, mean in covariate_fill_values(data, plan).items():
        missing = data[name].isna()
        data[name] = data[name].fillna(mean)
        notes.append(f"{name} is missing for {int(missing.sum())} of {len(data)} "
                     f"participants ({missing.mean():.0%}); filled with the trial mean "
                     f"({mean:.3g}) for the candidate modifiers and adjustments, as the "
                     "decision tool does for a patient without it.")
    return notes


def assignment_shares(recommendations: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    """Counterfactual assignment shares under a (cross-fitted) regime: first treatments, and
    at week 12 continue / augment / switch, for everyone and for those who cannot take
    duloxetine (the contraindicated subgroup, analysed separately)."""
    groups: list[tuple[str, np.ndarray]] = [("everyone", np.ones(len(data), dtype=bool))]
    if "eligible_DUL" in data.columns:
        groups.append(("cannot take DUL", pd.to_numeric(data["eligible_DUL"], errors="coerce")
                       .fillna(1).to_numpy() == 0))
    a1 = recommendations["A1"].astype(object)
    a2 = recommendations["A2"].astype(object) if "A2" in recommendations else None
    rows = []
    for group, sel in groups:
        if not sel.any():
            continue
        for arm, count in a1[sel].value_counts().items():
            rows.append({"group": group, "stage": "first treatment", "choice": str(arm),
                         "share": count / int(sel.sum()), "n": int(sel.sum())})
        if a2 is None:
            continue
        kind: list[str | None] = []
        for first, second in zip(data["A1"], a2, strict=True):
            if second is None or pd.isna(second):
                kind.append(None)
            elif str(second) == str(first):
                kind.append("continue")
            elif "+" in str(second):
                kind.append("augment")
            else:
                kind.append("switch")
        k = pd.Series(kind, dtype=object)[sel].dropna()
        for choice, count in k.value_counts().items():
            rows.append({"group": group, "stage": "week 12 (decided)", "choice": str(choice),
                         "share": count / max(len(k), 1), "n": len(k)})
    return pd.DataFrame(rows, columns=["group", "stage", "choice", "share", "n"])


def interpretable_summary(values: dict[str, pd.DataFrame], shown: Sequence[str | None],
                          crossfitted: pd.DataFrame) -> dict[str, Any]:
    """What the interpretable regime's value is the value *of*.

    The tree shown is fitted on all participants; no honest estimate of that one tree's value
    exists on the same data (its in-sample doubly robust value is optimistic: the tree was
    chosen to maximize it). The value reported is the cross-fitted value of the *procedure*
    that produced it (each participant scored by a tree learned without them, stage-2 rule
    included), i.e. the expected value of a tree learned this way from a trial of this size.
    ``agreement`` is the share of participants whose first treatment under the shown tree is
    the one their cross-fitted tree gave them: how far the procedure's value speaks for the
    tree shown.
    """
    out: dict[str, Any] = {"regime": INTERPRETABLE, "value_of": "procedure, cross-fitted"}
    for label, table in values.items():
        row = table[table["regime"] == INTERPRETABLE]
        if len(row):
            out[label] = {k: float(row.iloc[0][k]) for k in ("estimate", "lower", "upper")}
    cf = np.asarray(crossfitted["A1"].astype(object))
    sh = np.asarray(list(shown), dtype=object)
    decided = np.array([v is not None and not (isinstance(v, float) and np.isnan(v))
                        for v in cf])
    out["agreement"] = float(np.mean(sh[decided] == cf[decided])) if decided.any() else \
        float("nan")
    out["n_decided"] = int(decided.sum())
    return out


def _memoized(learner: FirstStageLearner) -> FirstStageLearner:
    """The learner, fitted once per training set (the PEG and responder values score the same
    cross-fitted regime, so each fold's tree is learned once)."""
    cache: dict[str, Callable[[pd.DataFrame], Sequence[str | None]]] = {}

    def learn(train: pd.DataFrame, result: QLearningResult, train_folds: np.ndarray,
              train_weights: np.ndarray) -> Callable[[pd.DataFrame], Sequence[str | None]]:
        key = hashlib.sha256("\x1f".join(map(str, train["participant_id"])).encode()
                             ).hexdigest()
        if key not in cache:
            cache[key] = learner(train, result, train_folds, train_weights)
        return cache[key]

    return learn


def _time_points(data: pd.DataFrame, protocol: Protocol, ql: QLearning, plan: AnalysisPlan,
                 clusters: np.ndarray | None) -> pd.DataFrame:
    """The headline numbers at the protocol's time points, computed from the data: the
    week-12 responder rate and the week-24 mean PEG as randomized (IPCW-weighted Hajek means
    with site-clustered intervals)."""
    rows = []
    targets = []
    early = f"peg_w{plan.responder_week}"
    if early in data.columns:
        d12 = data.assign(_resp_early=responder_indicator(
            data, baseline=plan.baseline, followup=early, threshold=plan.responder_threshold))
        targets.append((f"responder rate at week {plan.responder_week}", d12, "_resp_early"))
    week = plan.outcome.rsplit("_w", 1)[-1]
    targets.append((f"mean week-{week} PEG" if plan.outcome.startswith("peg_w")
                    else f"mean {plan.outcome}", data, plan.outcome))
    for label, frame, col in targets:
        sd = value_data(frame, ql, outcome=col, propensities=list(TRIAL_COLUMNS.propensities))
        est = AIPWValue(qlearning=ql, outcome_model="zero", alpha=plan.alpha, name=label).fit(
            sd, {st.treatment: [None] * sd.n for st in sd.stages})
        est = clustered(est, clusters, alpha=plan.alpha)
        rows.append({"measure": label, "estimate": est.estimate, "lower": est.lower,
                     "upper": est.upper, "n": est.n})
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
