"""Compiled allocation of many simulated trials at once, through the one minimization kernel.

The simulator's fast path and the allocation diagnostics both allocate thousands of cohorts;
both use these loops, which call :func:`tailor.stats.randomization._minimization_core` (the
kernel the allocation engine itself uses), so every path allocates by the same code. Trials are
independent and run in parallel; each trial's sequence is serial, so results do not depend on
the number of threads.

:class:`StageTwoTables` compiles the protocol's stage-2 option rules
(:func:`tailor.stats.allocation.stage_option_sets`) into masks the loops index by stage-1 arm,
response category and contraindicated arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tailor.protocol import Protocol
from tailor.stats.allocation import OptionSet, stage_option_sets
from tailor.stats.randomization import _minimization_core

__all__ = ["StageTwoTables", "stage1_batch", "stage2_batch"]


@dataclass(frozen=True)
class StageTwoTables:
    """Stage-2 option masks for every (stage-1 arm, category, contraindication).

    ``arms`` orders the first axis and the contraindication index ``k`` (``k = 0``: none;
    ``k = j + 1``: ``arms[j]`` contraindicated); ``options`` is every option code the protocol can
    produce, in allocation order; ``candidates[a, c, k, o]`` marks the options minimization
    balances over and ``eligible[a, c, k, o]`` those that may be assigned.
    """

    arms: tuple[str, ...]
    categories: tuple[str, ...]
    options: tuple[str, ...]
    candidates: np.ndarray
    eligible: np.ndarray
    sets: dict[tuple[int, int, int], OptionSet]

    @classmethod
    def build(cls, protocol: Protocol, *, arms: Sequence[str],
              categories: Sequence[str]) -> StageTwoTables:
        arms = tuple(arms)
        k = len(arms)
        sets: dict[tuple[int, int, int], OptionSet] = {}
        universe: list[str] = []
        for ai, arm in enumerate(arms):
            for ci, cat in enumerate(categories):
                for kk in range(k + 1):
                    contra = None if kk == 0 else arms[kk - 1]
                    if contra == arm:
                        continue  # nobody receives an arm they are contraindicated to
                    eligible = [a for a in arms if a != contra]
                    os_ = stage_option_sets(protocol, 2, eligible_arms=eligible, stage1_arm=arm,
                                            category=cat)
                    sets[(ai, ci, kk)] = os_
                    universe.extend(o for o in os_.options if o not in universe)
        order = protocol.allocation_order
        universe.sort(key=lambda code: tuple(sorted(order.index(a) for a in code.split("+"))))
        cand = np.zeros((k, len(categories), k + 1, len(universe)), dtype=np.bool_)
        elig = np.zeros_like(cand)
        for (ai, ci, kk), os_ in sets.items():
            for o in os_.balance_over:
                cand[ai, ci, kk, universe.index(o)] = True
            for o in os_.eligible:
                elig[ai, ci, kk, universe.index(o)] = True
        return cls(arms, tuple(categories), tuple(universe), cand, elig, sets)


@njit(parallel=True, cache=True)
def stage1_batch(levels: np.ndarray, eligible: np.ndarray, u: np.ndarray, theta: np.ndarray,
                 omega: np.ndarray, out_arm: np.ndarray, out_prob: np.ndarray) -> None:
    """Stage-1 restricted minimization of every trial (options in allocation order).

    ``levels`` (T, n, F) binary factor levels; ``eligible`` (T, n, K); ``u`` (T, n, 3) draws.
    Fills ``out_arm`` (T, n) and ``out_prob`` (T, n, K), the marginal probabilities.
    """
    n_trials, n, n_f = levels.shape
    k = theta.shape[0]
    for t in prange(n_trials):
        counts = np.zeros((n_f, 2, k))
        lc = np.zeros((n_f, k))
        in_range = np.ones(k, dtype=np.bool_)
        cond = np.zeros(k)
        g = np.zeros(k)
        prob = np.zeros(k)
        for i in range(n):
            for f in range(n_f):
                for a in range(k):
                    lc[f, a] = counts[f, levels[t, i, f], a]
            chosen, _m = _minimization_core(lc, eligible[t, i], in_range, theta, omega, i == 0,
                                            u[t, i, 0], u[t, i, 1], u[t, i, 2], prob, cond, g)
            out_arm[t, i] = chosen
            for a in range(k):
                out_prob[t, i, a] = prob[a]
            for f in range(n_f):
                counts[f, levels[t, i, f], chosen] += 1.0


@njit(parallel=True, cache=True)
def stage2_batch(order: np.ndarray, arm1: np.ndarray, cat: np.ndarray, contra: np.ndarray,
                 u: np.ndarray, cand: np.ndarray, elig_tab: np.ndarray, theta: np.ndarray,
                 omega: np.ndarray, out_opt: np.ndarray, out_prob: np.ndarray) -> None:
    """Stage-2 minimization over (stage-1 arm, category) of every trial, in ``order``.

    ``arm1`` indexes ``StageTwoTables.arms``; ``cat`` < 0 marks participants with no
    week-12 decision (``out_opt`` -1); ``contra`` is the table's contraindication index.
    Participants with a single defined option (e.g. excellent responders) are not randomized
    and do not enter the counts (probability 1).
    """
    n_trials, n = arm1.shape
    n_arms, n_cats, _nc, n_opt = cand.shape
    for t in prange(n_trials):
        counts_arm = np.zeros((n_arms, n_opt))
        counts_cat = np.zeros((n_cats, n_opt))
        lc = np.zeros((2, n_opt))
        prob = np.zeros(n_opt)
        cond = np.zeros(n_opt)
        g = np.zeros(n_opt)
        n_done = 0
        for j in range(n):
            i = order[t, j]
            c = cat[t, i]
            if c < 0:
                out_opt[t, i] = -1
                continue
            a1 = arm1[t, i]
            in_range = cand[a1, c, contra[t, i]]
            elig = elig_tab[a1, c, contra[t, i]]
            n_cand = 0
            for o in range(n_opt):
                if in_range[o]:
                    n_cand += 1
            if n_cand <= 1:
                for o in range(n_opt):
                    out_prob[t, i, o] = 0.0
                    if elig[o]:
                        out_opt[t, i] = o
                        out_prob[t, i, o] = 1.0
                continue
            for o in range(n_opt):
                lc[0, o] = counts_arm[a1, o]
                lc[1, o] = counts_cat[c, o]
            chosen, _m = _minimization_core(lc, elig, in_range, theta, omega, n_done == 0,
                                            u[t, i, 0], u[t, i, 1], u[t, i, 2], prob, cond, g)
            out_opt[t, i] = chosen
            for o in range(n_opt):
                out_prob[t, i, o] = prob[o]
            counts_arm[a1, chosen] += 1.0
            counts_cat[c, chosen] += 1.0
            n_done += 1
