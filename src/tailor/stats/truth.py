"""The truth of a simulated trial: potential outcomes, the oracle regime and regime values.

Every participant's outcome is generated under every stage-1 arm and every stage-2 option with
common random numbers (:mod:`tailor.stats.generative`), so the value of any regime on a simulated
cohort is exact: follow the regime's choices through the potential outcomes and average.

The oracle knows the latent factors. At week 12, with the participant's realized state (latent
responsiveness and stage-1 noise), it picks the permissible option with the highest probability
of a week-24 response (PEG reduced >= 30%; normal approximation over the noise still to come).
At baseline it picks the eligible arm with the highest expected week-24 response under that
stage-2 rule, the expectation taken by an inner Monte Carlo over the noise of weeks 0-12
(``inner`` common draws, default 64). The "oracle first treatment" maximizes the week-12
response probability instead (closed form).

References
----------
Murphy SA (2003). Optimal dynamic treatment regimes. JRSS-B 65:331-355 (regimes and their
values); Rubin DB (1974) (potential outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from tailor.exceptions import ScenarioError
from tailor.stats.generative import CATEGORIES, OutcomeModel, peg_at, pgic_at
from tailor.stats.variables import VARIABLES, term_values

__all__ = [
    "TrueRegime",
    "Truth",
    "evaluate_regime",
    "fixed_regime",
    "oracle_regime",
    "potential_outcomes",
    "random_regime",
    "responded",
    "true_modifiers",
]

RESPONSE = 0.30  # PEG reduction defining response (the protocol's default responder rule)


# --------------------------------------------------------------------------- outcomes
def potential_outcomes(model: OutcomeModel, base: Mapping[str, np.ndarray],
                       noise: Mapping[str, np.ndarray], site_effect: np.ndarray,
                       cat_of_pgic: np.ndarray, intol_cat: int, contra: np.ndarray,
                       only_arm: np.ndarray | None = None,
                       site_arm: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Outcomes of every participant (n) under every arm (K) and option (O).

    ``cat_of_pgic[code]`` is the category index of PGIC ``code`` (1-7); ``contra`` the
    contraindicated arm index + 1 (0 = none). Returns stage-1 arrays (n, K) and stage-2 arrays
    (n, K, O) with NaN where an option is impossible; ``permissible`` (n, K, O) marks the
    options the protocol allows after each arm given the week-12 category under it.
    With ``only_arm`` (n,) the stage-2 arrays are (n, O), after that arm only (the fast path).
    ``site_arm`` (n, K) is each participant's site x arm effect (added to the arm effects).
    """
    sc = model.scenario
    x = model.design(base)
    q = model.intolerance(x)
    peg0 = base["peg_visit0"]
    tau = model.tau(x)
    if site_arm is not None:
        tau = tau + site_arm
    common = model.common(dict(base), dict(noise), site_effect)
    s1 = model.stage1(tau, common, dict(noise), q)
    out: dict[str, np.ndarray] = {"tau": tau, "common": common, "intol": s1["intol"],
                                  "tau_eff": s1["tau_eff"], "r12": s1["r12"], "x": x,
                                  "q_intol": q}
    for w, r in ((6, s1["r6"]), (12, s1["r12"])):
        out[f"peg_w{w}"] = peg_at(peg0[:, None], r, noise[f"m{w}"][:, None])
        out[f"pgic_w{w}"] = pgic_at(sc, r, noise["nu"][:, None], noise[f"h{w}"][:, None])
    cat = cat_of_pgic[out["pgic_w12"]]
    cat = np.where(s1["intol"], intol_cat, cat).astype(np.int8)
    out["cat"] = cat
    n, k = tau.shape
    if only_arm is not None:
        rows = np.arange(n)
        tau2 = model.stage2_one(tau, s1["tau_eff"][rows, only_arm], only_arm,
                                cat[rows, only_arm], noise["u_intol2"], x, q)
        later = model.later_weeks(s1["r12"][rows, only_arm], tau2, common, dict(noise))
        ex: tuple[Any, ...] = (slice(None), None)
    else:
        tau2 = model.stage2_all(tau, s1["tau_eff"], cat, noise["u_intol2"], x, q)
        later = model.later_weeks(s1["r12"], tau2, common, dict(noise))
        ex = (slice(None), None, None)
    for w in (18, 24, 36):
        r = later[f"r{w}"]
        out[f"peg_w{w}"] = peg_at(peg0[ex], r, noise[f"m{w}"][ex])
        out[f"pgic_w{w}"] = pgic_at(sc, r, noise["nu"][ex], noise[f"h{w}"][ex])
    out["tau2"] = tau2
    arm = np.broadcast_to(np.arange(k), (n, k))
    out["permissible"] = model.eligible[arm, cat, contra[:, None]]
    out["eligible1"] = np.arange(k)[None, :] != (contra[:, None] - 1)
    return out


def responded(peg0: np.ndarray, peg: np.ndarray) -> np.ndarray:
    """The responder rule: PEG reduced by at least :data:`RESPONSE` (30%) from baseline."""
    return (peg0 - peg >= RESPONSE * peg0 - 1e-9) & (peg0 > 0)


# --------------------------------------------------------------------------- oracle
def _p_stage2(model: OutcomeModel, mean_no_intol: np.ndarray, mean_intol: np.ndarray,
              q: np.ndarray, peg0: np.ndarray) -> np.ndarray:
    """P(week-24 response) from the means without / with intolerance of a new arm."""
    return _p_response(mean_no_intol, mean_intol, q, _stage2_sd(model, peg0))


def _stage2_sd(model: OutcomeModel, peg0: np.ndarray) -> np.ndarray:
    """SD of the week-24 improvement still to come at week 12 (stage-2 noise and PEG
    measurement error on the baseline's scale), elementwise in ``peg0``."""
    ns = model.scenario.noise
    return np.sqrt(ns.stage2_sd**2 + (ns.peg_measurement_sd / np.maximum(peg0, 0.5))**2)


def _p_response(mean_no_intol: np.ndarray, mean_intol: np.ndarray, q: np.ndarray,
                s: np.ndarray) -> np.ndarray:
    """:func:`_p_stage2` given the SD ``s`` (:func:`_stage2_sd`)."""
    return ((1 - q) * ndtr((mean_no_intol - RESPONSE) / s) + q * ndtr((mean_intol - RESPONSE) / s))


def _stage2_probabilities(model: OutcomeModel, tau: np.ndarray, tau_eff1: np.ndarray,
                          cat: np.ndarray, x: np.ndarray, qi: np.ndarray, known: np.ndarray,
                          peg0: np.ndarray) -> np.ndarray:
    """P(week-24 response) after every arm, of every option (..., K, O), given the week-12
    state ``known`` (..., K) (the latent improvement carried into stage 2); ``x`` (..., F) the
    features and ``qi`` (..., K) the intolerance probabilities."""
    t_ok = model.stage2_all(tau, tau_eff1, cat, 1.0, x, qi)
    t_bad = model.stage2_all(tau, tau_eff1, cat, 0.0, x, qi)
    q = qi[..., np.maximum(model.partner, 0)] * (model.partner >= 0)
    return _p_stage2(model, t_ok + known[..., None], t_bad + known[..., None], q,
                     peg0[..., None, None])


def _stage2_slots(model: OutcomeModel, tau: np.ndarray, qi: np.ndarray, x: np.ndarray,
                  intol_cat: int, contra: np.ndarray) -> np.ndarray:
    """Per participant, week-12 state (categories, then intolerant) and arm, the permissible
    stage-2 options as J slots (n * states * K, 4, J): the stage-2 mean with the new arm
    tolerated, and not, its intolerance probability, and 1 where the slot holds an option
    (J: the most options any arm, category and contraindication allows; the options fill the
    first slots, the empty slots after them hold zeros)."""
    k = tau.shape[1]
    n_cat = len(CATEGORIES)
    state_cat = np.array([*range(n_cat), intol_cat])
    eligible = model.eligible  # (K, C, contra, O)
    j = max(1, int(eligible.sum(axis=-1).max()))
    # option index per (K, C, contra, slot), padded with option 0 (slot not valid)
    order = np.argsort(~eligible, axis=-1, kind="stable")[..., :j]
    filled = np.take_along_axis(eligible, order, axis=-1)
    arm = np.arange(k)[None, None, :]
    opt = order[arm, state_cat[None, :, None], contra[:, None, None]]  # (n, S, K, J)
    valid = filled[arm, state_cat[None, :, None], contra[:, None, None]]
    t = tau[:, None, :]
    q1 = qi[:, None, :]
    s_eff = np.where((np.arange(n_cat + 1) == n_cat)[None, :, None],
                     model.scenario.effects.intolerance_retained * t, t)
    s_cat = np.broadcast_to(state_cat[None, :, None], s_eff.shape)
    xs = x[:, None, :]
    ok = np.take_along_axis(model.stage2_all(t, s_eff, s_cat, 1.0, xs, q1), opt, axis=-1)
    bad = np.take_along_axis(model.stage2_all(t, s_eff, s_cat, 0.0, xs, q1), opt, axis=-1)
    q_opt = q1[..., np.maximum(model.partner, 0)] * (model.partner >= 0)  # (n, 1, K, O)
    q = np.take_along_axis(np.broadcast_to(q_opt, (*ok.shape[:3], q_opt.shape[-1])), opt,
                           axis=-1)
    packed = np.where(valid[..., None, :], np.stack([ok, bad, q, valid], axis=-2), 0.0)
    return packed.reshape(-1, 4, j)


def _best_slots(model: OutcomeModel, rows: np.ndarray, filled: np.ndarray, ok: np.ndarray,
                bad: np.ndarray, q: np.ndarray, known: np.ndarray, peg0: np.ndarray
                ) -> np.ndarray:
    """The highest P(week-24 response) over each cell's filled slots (``rows``' shape; -inf
    for a cell without options). ``rows`` index the slot tables ``ok``, ``bad``, ``q`` (R, J)
    of :func:`_stage2_slots`, whose row r holds options in its first ``filled[r]`` slots;
    ``known`` and ``peg0`` broadcast to ``rows``; the tables are C-contiguous. Only the
    filled slots are evaluated, each by :func:`_p_stage2`'s operations as over the full
    (cell, slot) table."""
    r = rows.ravel()
    count = filled[r]
    cell = np.repeat(np.arange(r.size), count)  # one entry per (cell, filled slot)
    start = np.cumsum(count) - count
    slot = np.arange(cell.size) - np.repeat(start, count)
    at = r[cell] * ok.shape[1] + slot  # flat positions in the (R, J) slot tables
    kn = np.broadcast_to(known, rows.shape).ravel()[cell]
    # the SD depends on the participant only: computed once each, then read per slot (the
    # same elementwise numbers as over every slot)
    sd = np.broadcast_to(_stage2_sd(model, peg0), rows.shape).ravel()[cell]
    p = _p_response(ok.take(at) + kn, bad.take(at) + kn, q.take(at), sd)
    best = np.full(r.size, -np.inf)
    has = count > 0
    best[has] = np.maximum.reduceat(p, start[has])
    return best.reshape(rows.shape)


def oracle(model: OutcomeModel, base: Mapping[str, np.ndarray], noise: Mapping[str, np.ndarray],
           site_effect: np.ndarray, po: Mapping[str, np.ndarray], cat_of_pgic: np.ndarray,
           intol_cat: int, contra: np.ndarray, *, inner: int = 64, seed: int = 20240607
           ) -> dict[str, np.ndarray]:
    """Oracle choices: first treatment (week 12), two-stage first treatment, stage-2 options.

    Returns ``a1_w12`` and ``a1`` (n) arm indices and ``a2`` (n, K) option indices after each
    arm, and the expected response probabilities behind them.
    """
    sc = model.scenario
    ns = sc.noise
    eff = sc.effects
    x, qi = po["x"], po["q_intol"]
    peg0 = base["peg_visit0"]
    n, k = po["tau"].shape
    tau = po["tau"]
    known_common = po["common"] - noise["b"]  # prognostic + site: known to the oracle
    elig1 = po["eligible1"]
    # first treatment, week-12 criterion (closed form)
    s12 = np.sqrt(ns.responsiveness_sd**2 + ns.stage1_sd**2
                  + (ns.peg_measurement_sd / np.maximum(peg0, 0.5))[:, None]**2)
    m = known_common[:, None]
    p12 = ((1 - qi) * ndtr((tau + m - RESPONSE) / s12)
           + qi * ndtr((eff.intolerance_retained * tau + m - RESPONSE) / s12))
    a1_w12 = np.argmax(np.where(elig1, p12, -np.inf), axis=1)
    # stage 2 given the realized week-12 state
    known = (po["common"] + ns.persistence * noise["e1"])[:, None] * np.ones((1, k))
    p24 = _stage2_probabilities(model, tau, po["tau_eff"], po["cat"], x, qi, known, peg0)
    p24 = np.where(po["permissible"], p24, -np.inf)
    a2 = np.argmax(p24, axis=2)
    # two-stage first treatment: inner Monte Carlo over weeks 0-12 (common draws)
    rng = np.random.default_rng(seed)
    zb = ns.responsiveness_sd * rng.standard_normal(inner)
    z1 = ns.stage1_sd * rng.standard_normal(inner)
    zg = np.sqrt(sc.pgic.generosity_sd**2 + sc.pgic.noise_sd**2) * rng.standard_normal(inner)
    ui = rng.random(inner)
    value = np.zeros((n, k))
    chunk = max(1, 200_000 // (inner * k))
    ascending = np.asarray(sc.pgic.cutpoints)[::-1]  # validated strictly decreasing
    # A draw changes stage 2 only through its state under each arm: tolerated with week-12
    # category c (states 0-3) or intolerant (state 4). Each participant's permissible options,
    # their stage-2 means and intolerance probabilities are laid out once per arm and state
    # (``_stage2_slots``); a draw picks its state's slots, and only the filled ones (about 40%
    # of n x draws x K x J) are evaluated, as one flat run of (draw, arm) cells. Every
    # probability is computed by the same elementwise operations as over all (draw, arm,
    # option) cells, and the maximum over the permissible ones is the same number.
    slots = _stage2_slots(model, tau, qi, x, intol_cat, contra)  # (n * S * K, 4, J)
    s_ok, s_bad, s_q = (np.ascontiguousarray(slots[:, i, :]) for i in range(3))
    filled = (slots[:, 3, :] > 0).sum(axis=1)  # the options fill slots 0 .. filled - 1
    cuts_n = len(ascending)
    n_cat = len(CATEGORIES)
    n_states = n_cat + 1
    arm_k = np.arange(k)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        t = tau[sl][:, None, :]  # (m, 1, K)
        intol = ui[None, :, None] < qi[sl][:, None, :]  # (m, I, K)
        t_eff = np.where(intol, eff.intolerance_retained * t, t)  # (m, I, K)
        com = known_common[sl][:, None, None] + zb[None, :, None]
        g = t_eff + com + z1[None, :, None] + zg[None, :, None]
        code = 1 + (cuts_n - np.searchsorted(ascending, g, side="right"))
        state = np.where(intol, n_cat, cat_of_pgic[code])  # (m, I, K)
        rows = (np.arange(lo, sl.stop)[:, None, None] * n_states + state) * k + arm_k
        value[sl] = _best_slots(model, rows, filled, s_ok, s_bad, s_q,
                                com + ns.persistence * z1[None, :, None],  # (m, I, 1)
                                peg0[sl][:, None, None]).mean(axis=1)
    a1 = np.argmax(np.where(elig1, value, -np.inf), axis=1)
    return {"a1_w12": a1_w12, "a1": a1, "a2": a2, "p12": p12, "v24": value}


# --------------------------------------------------------------------------- regimes
Chooser = Callable[[pd.DataFrame], Any]


@dataclass(frozen=True)
class TrueRegime:
    """A two-stage regime of the simulator, valued exactly on the potential outcomes:
    ``stage1(baseline) -> arm`` and ``stage2(history) -> option``.

    (One of the kinds of the one regime concept, see :mod:`tailor.dtr.result`; it was called
    ``Regime``, a deprecated alias removed in the next release.)

    ``baseline`` has one row per participant (the wide table's baseline columns, ``eligible_*``
    and the oracle's ``oracle_A1`` / ``oracle_A1_w12``); ``history`` one row per participant and
    stage-1 arm (baseline plus ``A1``, ``peg_w12``, ``pgic_w12``, ``intolerance_s1``,
    ``response_category``, ``options2`` and ``oracle_A2``). A chooser returns option codes, or a
    DataFrame of probabilities with option codes as columns (e.g. uniform randomization).
    Choices must be permissible (eligible arm; an option in ``options2``).
    """

    name: str
    stage1: Chooser
    stage2: Chooser


def __getattr__(name: str) -> Any:
    """The deprecated alias ``Regime`` of :class:`TrueRegime` (removed in the next release)."""
    if name == "Regime":
        import warnings

        warnings.warn("tailor.stats.truth.Regime is deprecated: use TrueRegime",
                      DeprecationWarning, stacklevel=2)
        return TrueRegime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _uniform(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Uniform probabilities over each row's ';'-separated options in ``column``. A truth's
    frames are read by many regimes: the last few frames' tables are kept (read-only; the
    frame object is held, so its id stays its own)."""
    key = (id(frame), column)
    hit = _UNIFORM.get(key)
    if hit is None or hit[0] is not frame:
        # the option lists take few distinct values: split each once
        codes, uniques = pd.factorize(frame[column].astype(str))
        dummies = pd.Series(uniques).str.get_dummies(sep=";").astype(float)
        dummies = dummies.div(dummies.sum(axis=1), axis=0)
        table = dummies.to_numpy()[codes]
        table.flags.writeable = False
        if len(_UNIFORM) >= 8:
            _UNIFORM.pop(next(iter(_UNIFORM)))
        hit = _UNIFORM[key] = (frame, table, dummies.columns)
    return pd.DataFrame(hit[1], columns=hit[2], index=frame.index, copy=True)


_UNIFORM: dict[tuple[int, str], tuple[pd.DataFrame, np.ndarray, pd.Index]] = {}


def random_regime() -> TrueRegime:
    """Uniform randomization among eligible arms, then among permissible options."""
    return TrueRegime("randomized", lambda b: _uniform(b, "eligible_arms"),
                  lambda h: _uniform(h, "options2"))


def oracle_regime(kind: str = "two-stage") -> TrueRegime:
    """The oracle: ``two-stage`` (both stages), or ``stage1`` (oracle first treatment for
    week-12 response, then uniform randomization at stage 2)."""
    if kind == "two-stage":
        return TrueRegime("oracle", lambda b: b["oracle_A1"], lambda h: h["oracle_A2"])
    if kind == "stage1":
        return TrueRegime("oracle first treatment", lambda b: b["oracle_A1_w12"],
                      lambda h: _uniform(h, "options2"))
    raise ScenarioError(f"oracle kind must be 'two-stage' or 'stage1'; got {kind!r}")


def fixed_regime(preference: tuple[str, ...] | str, stage2: str = "oracle") -> TrueRegime:
    """The first eligible arm of ``preference``; then ``stage2`` = ``oracle`` or ``random``."""
    pref = (preference,) if isinstance(preference, str) else tuple(preference)

    def first(b: pd.DataFrame) -> pd.Series:
        # the eligible sets take few distinct values: choose for each once
        codes, uniques = pd.factorize(b["eligible_arms"])
        if (codes < 0).any():
            raise ScenarioError(f"row {int(np.argmax(codes < 0)) + 1}: no eligible arms")
        chosen = [next((a for a in pref if a in s), s[0]) for s in
                  (str(u).split(";") for u in uniques)]
        return pd.Series(np.array(chosen, dtype=object)[codes], index=b.index)

    second: Chooser = ((lambda h: h["oracle_A2"]) if stage2 == "oracle"
                       else (lambda h: _uniform(h, "options2")))
    return TrueRegime(f"always {'/'.join(pref)} (stage 2: {stage2})", first, second)


def _code_index(values: Sequence[Any] | pd.Series, codes: tuple[str, ...], what: str,
                regime: str) -> np.ndarray:
    """Each value's index in ``codes`` (each distinct value looked up once); the first value
    (in row order) that is not a code raises."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    uniques: Sequence[Any]
    try:
        inverse, found = pd.factorize(series)
        uniques = list(found)
    except TypeError:  # unhashable values: none of them is a code
        inverse, uniques = np.arange(len(series)), list(series)
    where = [codes.index(u) if u in codes else -1 for u in uniques]
    index = np.array([*where, -1], dtype=np.int64)[inverse]
    if (index < 0).any():
        v = series.iloc[int(np.argmax(index < 0))]
        raise ScenarioError(f"regime '{regime}': unknown {what} code {v!r}")
    return index


def _chosen(choice: Any, frame: pd.DataFrame, codes: tuple[str, ...], allowed: np.ndarray,
            what: str, regime: str) -> np.ndarray:
    """A chooser's answer on ``frame`` as probabilities (rows, len(codes)), or, when it chose
    one code per row, as the chosen codes' indices (rows,) (a deterministic choice: one-hot
    probabilities, see :func:`_as_probs`). Unknown codes, choices that ``allowed`` (rows,
    len(codes)) forbids and probabilities that do not sum to 1 raise."""
    if isinstance(choice, pd.DataFrame):
        unknown = [c for c in choice.columns if c not in codes]
        if unknown:
            raise ScenarioError(f"regime '{regime}': unknown {what} code(s) {unknown}")
        out = np.zeros((len(frame), len(codes)))
        out[:, [codes.index(c) for c in choice.columns]] = choice.to_numpy(dtype=float)
        bad = (out > 0) & ~allowed
    else:
        values = choice if isinstance(choice, pd.Series) else list(choice)
        if len(values) != len(frame):
            raise ScenarioError(f"regime '{regime}': {what} chooser returned {len(values)} "
                                f"choices for {len(frame)} rows")
        out = _code_index(values, codes, what, regime)
        bad = ~allowed[np.arange(len(out)), out]
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ScenarioError(f"regime '{regime}' chose a non-permissible {what} for row {i} "
                            f"({frame.index[i]}): only eligible arms / permissible options may "
                            "be recommended")
    if out.ndim == 2 and not np.allclose(out.sum(axis=1), 1.0):
        raise ScenarioError(f"regime '{regime}': {what} probabilities must sum to 1 per row")
    return out


def _as_probs(chosen: np.ndarray, width: int) -> np.ndarray:
    """:func:`_chosen`'s answer as probabilities (rows, ``width``)."""
    if chosen.ndim == 2:
        return chosen
    out = np.zeros((len(chosen), width))
    out[np.arange(len(chosen)), chosen] = 1.0
    return out


@dataclass(frozen=True)
class Truth:
    """Potential outcomes of a simulated cohort and the oracle; regime values exact.

    ``paths``: one row per participant x stage-1 arm (eligible) x permissible stage-2 option,
    with the outcomes along that path; ``participants``: latent factors, arm effects and oracle
    choices; ``values``: the values of the standard regimes on this cohort.
    """

    paths: pd.DataFrame
    participants: pd.DataFrame
    values: pd.DataFrame
    baseline: pd.DataFrame
    history: pd.DataFrame
    arrays: Mapping[str, np.ndarray]
    arms: tuple[str, ...]
    options: tuple[str, ...]
    modifiers: pd.DataFrame = field(default_factory=pd.DataFrame)

    def value(self, regime: TrueRegime) -> dict[str, float]:
        """Exact value of ``regime`` on this cohort (see :func:`evaluate_regime`)."""
        return evaluate_regime(self, regime)

    @cached_property
    def outcome_tables(self) -> dict[str, np.ndarray]:
        """What every regime's outcomes average, computed once per truth: week-12 response
        (n, K); week-24/36 PEG with NaN (impossible paths) as 0 and response (n, K, O); and
        ``cat{c}`` (n, K), the week-12 category being ``c`` (index into CATEGORIES)."""
        a = self.arrays
        peg0 = a["peg0"]
        out = {"responder_w12": responded(peg0[:, None], a["peg_w12"])}
        for w in (24, 36):
            peg = np.nan_to_num(a[f"peg_w{w}"])
            out[f"peg_w{w}"] = peg
            out[f"responder_w{w}"] = responded(peg0[:, None, None], peg)
        for ci in range(len(CATEGORIES)):
            out[f"cat{ci}"] = a["cat"] == ci
        out["finite_w12"] = np.asarray(np.isfinite(a["peg_w12"]).all())
        return out


def regime_outcomes(truth: Truth, regime: TrueRegime) -> dict[str, np.ndarray]:
    """Each participant's expected outcome under ``regime`` (n,): PEG and response at weeks
    12, 24, 36 and the week-12 category shares (exact: averaged over the regime's own
    randomization, if any, through the potential outcomes)."""
    a = truth.arrays
    n, k = a["peg_w12"].shape
    c1 = _chosen(regime.stage1(truth.baseline), truth.baseline, truth.arms, a["eligible1"],
                 "stage-1 arm", regime.name)
    hist = truth.history  # rows ordered participant-major, arm-minor, eligible arms only
    rows = hist["_row"].to_numpy()
    c2 = _chosen(regime.stage2(hist), hist, truth.options,
                 a["permissible"].reshape(n * k, -1)[rows], "stage-2 option", regime.name)
    tab = truth.outcome_tables
    if c1.ndim == 1 and c2.ndim == 1 and tab["finite_w12"]:
        option = np.full(n * k, -1)
        option[rows] = c2
        path = (np.arange(n), c1, option[np.arange(n) * k + c1])
        if (path[2] >= 0).all():
            return _followed(truth, path[:2], path)
    w1 = _as_probs(c1, len(truth.arms))
    w2 = np.zeros((n * k, len(truth.options)))
    w2[rows] = _as_probs(c2, len(truth.options))
    w2 = w2.reshape(n, k, -1)
    out: dict[str, np.ndarray] = {
        "mean_peg_w12": (w1 * a["peg_w12"]).sum(axis=1),
        "responder_w12": (w1 * tab["responder_w12"]).sum(axis=1)}
    joint = w1[:, :, None] * w2
    for w in (24, 36):
        out[f"mean_peg_w{w}"] = (joint * tab[f"peg_w{w}"]).sum(axis=(1, 2))
        out[f"responder_w{w}"] = (joint * tab[f"responder_w{w}"]).sum(axis=(1, 2))
    for ci, name in enumerate(CATEGORIES):
        out[f"share_{name}"] = (w1 * tab[f"cat{ci}"]).sum(axis=1)
    return out


def _followed(truth: Truth, arm: tuple[np.ndarray, np.ndarray],
              path: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`regime_outcomes` of a deterministic regime: each participant's outcomes along
    the one path it chooses (``arm``: participant and arm indices; ``path``: with the
    option). The general sum over probabilities adds only zeros (0 x a finite outcome) to the
    chosen path's outcome, so it is that outcome exactly (``+ 0.0`` as in the sum: a -0.0
    becomes 0.0); the week-12 PEG table must be finite (the other tables are)."""
    a, tab = truth.arrays, truth.outcome_tables
    _, k, o = tab["peg_w24"].shape
    cell = arm[0] * k + arm[1]  # flat positions: one take per table
    leaf = cell * o + path[2]
    out: dict[str, np.ndarray] = {
        "mean_peg_w12": a["peg_w12"].take(cell) + 0.0,
        "responder_w12": tab["responder_w12"].take(cell) + 0.0}
    for w in (24, 36):
        out[f"mean_peg_w{w}"] = tab[f"peg_w{w}"].take(leaf) + 0.0
        out[f"responder_w{w}"] = tab[f"responder_w{w}"].take(leaf) + 0.0
    for ci, name in enumerate(CATEGORIES):
        out[f"share_{name}"] = tab[f"cat{ci}"].take(cell) + 0.0
    return out


def evaluate_regime(truth: Truth, regime: TrueRegime) -> dict[str, Any]:
    """Mean week-12/24/36 PEG, response rates and week-12 category shares when everyone
    follows ``regime`` (exact on the cohort)."""
    per = regime_outcomes(truth, regime)
    return {"regime": regime.name, **{k: float(v.mean()) for k, v in per.items()}}


# --------------------------------------------------------------------------- modifiers
MODIFIER_COLUMNS = ("stage", "target", "variable", "domain", "form", "slope", "cut", "with",
                    "contribution_sd", "modifies_contrast", "contrast_sd")


def true_modifiers(model: OutcomeModel, base: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The truth of the scientific question: which baseline variables change which effect.

    One row per term of the scenario (stage 1 per arm, stage-2 adjustments, intolerance,
    dropout) and per arm with a site x arm effect: ``contribution_sd`` is the SD of the term's
    contribution over the cohort ``base``. ``modifies_contrast`` says whether the variable
    changes the *difference* between arms (at stage 1: its terms differ between arms; a term
    shared by every arm is prognostic only), and ``contrast_sd`` the largest SD, over pairs of
    arms, of the difference of that variable's contributions (for an interaction term, both of
    its variables). Stage-2 adjustments that single out an option, action, arm or category
    modify the stage-2 contrasts; intolerance terms change who tolerates an arm (a modifier of
    the realized effect); dropout terms change only who is observed.
    """
    sc = model.scenario
    eff = sc.effects
    rows: list[dict[str, Any]] = []

    def row(stage: str, target: str, t: Any) -> dict[str, Any]:
        return {"stage": stage, "target": target, "variable": t.variable,
                "domain": VARIABLES[t.variable].domain, "form": t.form, "slope": t.slope,
                "cut": t.cut, "with": t.with_,
                "contribution_sd": float(np.std(term_values(t, base)))}

    # stage 1: per variable and arm, the summed contributions; contrasts between arms
    contrib: dict[str, dict[str, np.ndarray]] = {}
    zero = np.zeros(np.shape(base["_C"]))
    for arm in model.arms:
        for t in eff.stage1[arm].all_terms():
            rows.append(row("stage1", arm, t))
            value = term_values(t, base)
            for v in (t.variable, t.with_):
                if v is not None:
                    contrib.setdefault(v, {}).setdefault(arm, zero.copy())
                    contrib[v][arm] = contrib[v][arm] + value
    contrast: dict[str, float] = {}
    for v, per_arm in contrib.items():
        vecs = [per_arm.get(a, zero) for a in model.arms]
        contrast[v] = max((float(np.std(a - b)) for i, a in enumerate(vecs)
                           for b in vecs[i + 1:]), default=0.0)
    for r in rows:
        r["contrast_sd"] = contrast.get(r["variable"], 0.0)
        r["modifies_contrast"] = r["contrast_sd"] > 1e-12
    for arm in model.arms:
        sd = eff.stage1[arm].site_sd
        if sd > 0:
            rows.append({"stage": "stage1", "target": arm, "variable": "site",
                         "domain": "site", "form": "random", "slope": sd, "cut": None,
                         "with": None, "contribution_sd": sd, "modifies_contrast": True,
                         "contrast_sd": sd})
    for adj in eff.stage2.adjustments:
        keys = {k: getattr(adj, k) for k in ("option", "action", "stage1_arm", "adds",
                                             "category") if getattr(adj, k) is not None}
        target = ", ".join(f"{k}={v}" for k, v in keys.items()) or "every option"
        for t in adj.all_terms():
            r = row("stage2", target, t)
            r["modifies_contrast"] = bool(keys)
            r["contrast_sd"] = r["contribution_sd"] if keys else 0.0
            rows.append(r)
    for arm, terms in eff.intolerance_terms.items():
        for t in terms:
            r = row("intolerance", arm, t)
            r.update(modifies_contrast=True, contrast_sd=r["contribution_sd"])
            rows.append(r)
    for t in sc.dropout.terms:
        r = row("dropout", "dropout hazard", t)
        r.update(modifies_contrast=False, contrast_sd=0.0)
        rows.append(r)
    return pd.DataFrame(rows, columns=list(MODIFIER_COLUMNS))
