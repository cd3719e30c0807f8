"""Allocation algorithms: BEST's restricted minimization, permuted blocks, simple randomization.

Every algorithm is a pure function of the current state (counts or open blocks) and the draws
(uniforms on [0, 1)), and returns an :class:`Allocation` carrying the chosen option, the
probability of every option, the imbalance scores and the draws used, so that any allocation can
be re-derived later from the logged inputs.

Restricted minimization (Pocock & Simon 1975, as implemented in the BEST trial's released
stage-1 randomization code), for a participant with eligible options E and factor levels l_f:

1. the very first participant of the sequence: uniform over E, picked by u1 on equal intervals;
2. otherwise, for every option a in the balancing set (eligible or not), add the participant to
   a hypothetically and compute G(a) = sum_f [max_b n_f(b) - min_b n_f(b)], the range over the
   balancing set of the counts at the participant's level of factor f;
3. the minimizers are the eligible options with the smallest G; ties are split by u1 on equal
   intervals in the option order;
4. u2 <= theta(m) assigns the minimizer m; otherwise u3 picks among the other eligible options on
   cumulative intervals proportional to omega.

``probabilities`` are the marginal randomization probabilities given the history (averaged over
tied minimizers), the propensities an analysis should use; ``conditional_probabilities`` are
those given the minimizer u1 chose, as the BEST package logs them. Both coincide without ties.

References
----------
Pocock SJ, Simon R (1975). Sequential treatment assignment with balancing for prognostic
factors in the controlled clinical trial. Biometrics 31:103-115.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from tailor.exceptions import AllocationError

__all__ = [
    "Allocation",
    "BlockState",
    "Draws",
    "MinimizationState",
    "minimization",
    "permuted_block",
    "simple",
]


@dataclass(frozen=True)
class Draws:
    """The uniforms an allocation uses; each in [0, 1)."""

    u1: float
    u2: float
    u3: float

    def __post_init__(self) -> None:
        for name in ("u1", "u2", "u3"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0.0 <= float(v) < 1.0):
                raise AllocationError(f"draw {name} must be a number in [0, 1); got {v!r}")

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> Draws:
        u = rng.random(3)
        return cls(float(u[0]), float(u[1]), float(u[2]))

    def as_dict(self) -> dict[str, float]:
        return {"u1": self.u1, "u2": self.u2, "u3": self.u3}


@dataclass(frozen=True)
class Allocation:
    """The result of one allocation.

    Attributes
    ----------
    option : the option assigned (an arm code at stage 1, an option code such as ``ACT+EBEM``
        at stage 2)
    options : the options considered, in draw-interval order
    probabilities : marginal probability of every option given the history (sums to 1)
    conditional_probabilities : probability of every option given the chosen minimizer
    minimizer : the (tie-broken) minimizing option; None for other methods and the first
        participant
    imbalance : G(a) for every option in the balancing set (minimization only)
    draws : the uniforms used
    method : ``minimization``, ``permuted_block`` or ``simple``
    """

    option: str
    options: tuple[str, ...]
    probabilities: Mapping[str, float]
    conditional_probabilities: Mapping[str, float]
    minimizer: str | None
    imbalance: Mapping[str, float]
    draws: Mapping[str, float]
    method: str
    first: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def probability(self) -> float:
        """Probability of the option actually assigned."""
        return float(self.probabilities[self.option])


# --------------------------------------------------------------------------- the kernel
@njit(cache=True)
def _pick_equal(u: float, k: int) -> int:
    """Index j in 0..k-1 with j/k <= u < (j+1)/k (R's findInterval on equal breaks)."""
    j = 0
    for i in range(1, k):
        if u >= i / k:
            j = i
    return j


@njit(cache=True)
def _imbalance(level_counts: np.ndarray, in_range: np.ndarray, out_g: np.ndarray) -> None:
    """G(a) for every option a: sum over factors of the range of counts if a gets one more.

    Per factor: with hi/lo the max/min over the balancing set, adding one to option a gives
    max(hi, c_a + 1) - (second-lowest or c_a + 1 if a is the unique minimum, else lo).
    """
    n_factors, n_options = level_counts.shape
    for a in range(n_options):
        out_g[a] = 0.0
    for f in range(n_factors):
        hi = -1e300
        lo = 1e300
        lo2 = 1e300  # the second-smallest count (equal to lo when lo is tied)
        n_lo = 0
        for b in range(n_options):
            if in_range[b]:
                c = level_counts[f, b]
                if c > hi:
                    hi = c
                if c < lo:
                    lo2 = lo
                    lo = c
                    n_lo = 1
                elif c == lo:
                    n_lo += 1
                    lo2 = lo
                elif c < lo2:
                    lo2 = c
        for a in range(n_options):
            c = level_counts[f, a] + 1.0
            new_hi = hi if hi > c else c
            if in_range[a] and level_counts[f, a] == lo and n_lo == 1:
                new_lo = lo2 if lo2 < c else c
            elif in_range[a]:
                new_lo = lo
            else:
                new_lo = lo  # an option outside the balancing set does not enter the range
                new_hi = hi
            out_g[a] += new_hi - new_lo


@njit(cache=True)
def _minimization_core(level_counts: np.ndarray, eligible: np.ndarray, in_range: np.ndarray,
                       theta: np.ndarray, omega: np.ndarray, first: bool,
                       u1: float, u2: float, u3: float,
                       out_prob: np.ndarray, out_cond: np.ndarray, out_g: np.ndarray
                       ) -> tuple[int, int]:
    """One restricted-minimization allocation. Returns (chosen, minimizer) option indices.

    Fills ``out_prob`` (marginal probabilities), ``out_cond`` (given the minimizer) and
    ``out_g`` (imbalance scores). ``minimizer`` is -1 for the first participant.
    """
    n = eligible.shape[0]
    n_elig = 0
    for a in range(n):
        out_prob[a] = 0.0
        out_cond[a] = 0.0
        if eligible[a]:
            n_elig += 1
    if first:
        for a in range(n):
            out_g[a] = np.nan
            if eligible[a]:
                out_prob[a] = 1.0 / n_elig
                out_cond[a] = 1.0 / n_elig
        j = _pick_equal(u1, n_elig)
        seen = 0
        for a in range(n):
            if eligible[a]:
                if seen == j:
                    return a, -1
                seen += 1
        return -1, -1
    _imbalance(level_counts, in_range, out_g)
    best = 1e300
    for a in range(n):
        if eligible[a] and out_g[a] < best:
            best = out_g[a]
    n_min = 0
    for a in range(n):
        if eligible[a] and out_g[a] == best:
            n_min += 1
    j = _pick_equal(u1, n_min)
    minimizer = -1
    seen = 0
    # marginal probabilities: average the conditional ones over the tied minimizers
    for m in range(n):
        if not (eligible[m] and out_g[m] == best):
            continue
        if seen == j:
            minimizer = m
        seen += 1
        w_other = 0.0
        for b in range(n):
            if eligible[b] and b != m:
                w_other += omega[b]
        for b in range(n):
            if not eligible[b]:
                continue
            if n_elig == 1:
                p = 1.0
            elif b == m:
                p = theta[m]
            else:
                p = (1.0 - theta[m]) * omega[b] / w_other
            out_prob[b] += p / n_min
            if minimizer == m and seen - 1 == j:
                out_cond[b] = p
    if n_elig == 1 or u2 <= theta[minimizer]:
        return minimizer, minimizer
    w_other = 0.0
    for b in range(n):
        if eligible[b] and b != minimizer:
            w_other += omega[b]
    cum = 0.0
    last = -1
    for b in range(n):
        if eligible[b] and b != minimizer:
            cum += omega[b] / w_other
            last = b
            if u3 < cum:
                return b, minimizer
    return last, minimizer  # u3 beyond the last break by round-off: the last interval


# --------------------------------------------------------------------------- states
class MinimizationState:
    """Counts of allocated participants per (factor, level) and option.

    The state is derived data: :meth:`from_history` rebuilds it from the allocation log, so the
    stored state can always be checked against a recomputation.
    """

    def __init__(self, factors: Sequence[str]) -> None:
        self.factors = tuple(factors)
        self.n_allocated = 0
        self._counts: dict[tuple[str, str], dict[str, int]] = {}

    def count(self, factor: str, level: Any, option: str) -> int:
        return self._counts.get((factor, str(level)), {}).get(option, 0)

    def level_counts(self, levels: Mapping[str, Any], options: Sequence[str]) -> np.ndarray:
        """Counts at the participant's level of each factor: array (n_factors, n_options)."""
        out = np.zeros((len(self.factors), len(options)), dtype=np.float64)
        for i, f in enumerate(self.factors):
            row = self._counts.get((f, str(levels[f])), {})
            for j, o in enumerate(options):
                out[i, j] = row.get(o, 0)
        return out

    def add(self, option: str, levels: Mapping[str, Any]) -> None:
        for f in self.factors:
            row = self._counts.setdefault((f, str(levels[f])), {})
            row[option] = row.get(option, 0) + 1
        self.n_allocated += 1

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        """Plain nested dict ``factor -> level -> option -> count`` (for storage and display)."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (f, level), row in sorted(self._counts.items()):
            out.setdefault(f, {})[level] = dict(sorted(row.items()))
        return out

    @classmethod
    def from_snapshot(cls, factors: Sequence[str],
                      snapshot: Mapping[str, Mapping[str, Mapping[str, int]]],
                      n_allocated: int) -> MinimizationState:
        """The state stored by :meth:`snapshot` (plus its allocation count), read back.

        Raises ``ValueError`` when the snapshot is not internally consistent: an unknown
        factor, a negative count, or a factor whose counts do not add up to ``n_allocated``
        (each allocation adds exactly one count per factor).
        """
        state = cls(factors)
        unknown = set(snapshot) - set(state.factors)
        if unknown:
            raise ValueError(f"snapshot has unknown factor(s) {sorted(unknown)}")
        for f in state.factors:
            total = 0
            for level, row in snapshot.get(f, {}).items():
                counts = {str(o): int(c) for o, c in row.items()}
                if any(c < 0 for c in counts.values()):
                    raise ValueError(f"negative count in factor {f!r} level {level!r}")
                state._counts[(f, str(level))] = counts
                total += sum(counts.values())
            if total != n_allocated:
                raise ValueError(f"factor {f!r} counts add up to {total}, not {n_allocated}")
        state.n_allocated = int(n_allocated)
        return state

    @classmethod
    def from_history(cls, factors: Sequence[str],
                     history: Sequence[tuple[str, Mapping[str, Any]]]) -> MinimizationState:
        state = cls(factors)
        for option, levels in history:
            state.add(option, levels)
        return state


class BlockState:
    """Open permuted blocks, one per stratum key; each block is the list of unused slots."""

    def __init__(self) -> None:
        self.open: dict[str, list[str]] = {}


def _check_options(options: Sequence[str], eligible: Sequence[str]) -> None:
    if not options:
        raise AllocationError("no options to allocate among")
    if len(set(options)) != len(options):
        raise AllocationError(f"options must be distinct; got {list(options)}")
    if not eligible:
        raise AllocationError("the participant is eligible for none of the options "
                              f"({', '.join(options)})")
    unknown = [e for e in eligible if e not in options]
    if unknown:
        raise AllocationError(f"eligible option(s) {unknown} not among the options {list(options)}")


def _per_option(values: float | Mapping[str, float], options: Sequence[str], name: str,
                default: float) -> np.ndarray:
    if isinstance(values, Mapping):
        arr = np.array([float(values.get(o, values.get("default", default))) for o in options])
    else:
        arr = np.full(len(options), float(values))
    if name == "theta" and np.any((arr < 0) | (arr > 1)):
        raise AllocationError(f"theta must lie in [0, 1]; got {arr.tolist()}")
    if name == "omega" and np.any(arr <= 0):
        raise AllocationError(f"omega weights must be > 0; got {arr.tolist()}")
    return arr


def minimization(state: MinimizationState, *, options: Sequence[str], eligible: Sequence[str],
                 levels: Mapping[str, Any], draws: Draws,
                 theta: float | Mapping[str, float] = 2.0 / 3.0,
                 omega: float | Mapping[str, float] = 1.0,
                 balance_over: Sequence[str] | None = None) -> Allocation:
    """Restricted minimization (see the module docstring).

    Parameters
    ----------
    state : counts so far (not modified; call ``state.add`` with the result to record it)
    options : all options in draw-interval order (BEST stage 1: ACT, DUL, EBEM, ESC)
    eligible : the options this participant may receive
    levels : the participant's level of every factor in ``state.factors``
    draws : the uniforms u1, u2, u3
    theta, omega : probability of the minimizer, and weights of the others (per option or one
        number)
    balance_over : the options whose counts the imbalance ranges over (default ``options``)
    """
    _check_options(options, eligible)
    missing = [f for f in state.factors if f not in levels]
    if missing:
        raise AllocationError(f"missing level for factor(s) {missing}")
    balance = set(options if balance_over is None else balance_over)
    elig = np.array([o in eligible for o in options])
    in_range = np.array([o in balance for o in options])
    if np.any(elig & ~in_range):
        raise AllocationError("every eligible option must be in the balancing set")
    th = _per_option(theta, options, "theta", 2.0 / 3.0)
    om = _per_option(omega, options, "omega", 1.0)
    counts = state.level_counts(levels, options)
    prob = np.zeros(len(options))
    cond = np.zeros(len(options))
    g = np.zeros(len(options))
    first = state.n_allocated == 0
    chosen, minimizer = _minimization_core(counts, elig, in_range, th, om, first,
                                           draws.u1, draws.u2, draws.u3, prob, cond, g)
    return Allocation(
        option=options[chosen],
        options=tuple(options),
        probabilities={o: float(p) for o, p in zip(options, prob, strict=True)},
        conditional_probabilities={o: float(p) for o, p in zip(options, cond, strict=True)},
        minimizer=None if minimizer < 0 else options[minimizer],
        imbalance={} if first else {o: float(v) for o, v in zip(options, g, strict=True)
                                     if o in balance},
        draws=draws.as_dict(),
        method="minimization",
        first=first,
    )


def permuted_block(state: BlockState, *, stratum: str, options: Sequence[str],
                   eligible: Sequence[str], block_multiples: Sequence[int], draws: Draws
                   ) -> Allocation:
    """Permuted blocks within a stratum, over the participant's eligible options.

    A new block holds every eligible option ``r`` times, ``r`` drawn by u1 from
    ``block_multiples``; u2 picks one unused slot uniformly. The stratum key should include the
    eligible set, so every block's options are the same. ``state`` is updated in place.
    """
    _check_options(options, eligible)
    if not block_multiples or any(int(r) < 1 for r in block_multiples):
        raise AllocationError(f"block multiples must be positive integers; got {block_multiples}")
    ordered = [o for o in options if o in eligible]
    key = stratum + "|" + "/".join(ordered)
    block = state.open.get(key)
    new_block = not block
    if not block:
        r = int(block_multiples[_pick_equal(draws.u1, len(block_multiples))])
        block = [o for o in ordered for _ in range(r)]
    slot = _pick_equal(draws.u2, len(block))
    probs = {o: block.count(o) / len(block) for o in options}
    chosen = block[slot]
    remaining = block[:slot] + block[slot + 1:]
    state.open[key] = remaining
    return Allocation(option=chosen, options=tuple(options), probabilities=probs,
                      conditional_probabilities=dict(probs), minimizer=None, imbalance={},
                      draws=draws.as_dict(), method="permuted_block",
                      details={"new_block": new_block, "slots_left": len(remaining)})


def simple(*, options: Sequence[str], eligible: Sequence[str], draws: Draws,
           omega: float | Mapping[str, float] = 1.0) -> Allocation:
    """Simple randomization over the eligible options, proportional to ``omega``; u1 decides."""
    _check_options(options, eligible)
    om = _per_option(omega, options, "omega", 1.0)
    w = np.array([om[i] if o in eligible else 0.0 for i, o in enumerate(options)])
    p = w / w.sum()
    cum = np.cumsum(p)
    idx = int(np.searchsorted(cum, draws.u1, side="right"))
    idx = min(idx, len(options) - 1)
    while p[idx] == 0.0:  # round-off past the last eligible break
        idx -= 1
    probs = {o: float(v) for o, v in zip(options, p, strict=True)}
    return Allocation(option=options[idx], options=tuple(options), probabilities=probs,
                      conditional_probabilities=dict(probs), minimizer=None, imbalance={},
                      draws=draws.as_dict(), method="simple")
