"""Histogram sweeps of the exact policy-tree search for features with few distinct values
(private; see ``policytree.py`` and ``_policytree_kernels.py``).

Questionnaire scores, counts and gradings take a handful of distinct values. Splits are only
possible between distinct values, so a child's best depth-1 split on a feature ``k`` with ``K_k``
distinct values needs only the per-value reward sums ``L[b, a]`` (value bucket ``b``, option
``a``) of its members: one pass over the ``K_k`` buckets with cumulative sums gives every split.
Sweeping a depth-2 root split along feature ``j`` adds one member at a time to ``L`` (``O(d)``)
and evaluates the child at each of the ``K_j - 1`` distinct boundaries of ``j`` (``O(K_k d)``),
so one (root feature, child feature) pair costs ``O(n d + K_j K_k d)`` per direction, against
``O(n d^2 log n)`` for the prefix-maximum segment trees and ``O(K_j n d)`` (before pruning) for
the scan. ``pair_uses_hist`` is the cost model that picks the cheaper of the first two
per pair (``docs/policytree.md``).

Every split respects ``min_node_size`` through per-bucket member counts. A boundary with an empty
side gives the leaf value, which never beats a valid split, so including the leaf as the starting
value gives exactly policytree's depth-1 value (the best valid split, or the leaf when there is
none).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MODE_SEG = 0  # prefix-maximum segment trees for every pair
MODE_HIST = 1  # histograms for every pair
MODE_AUTO = 2  # the cheaper per (root feature, child feature) pair by the cost model

# Cost model: weights of the elementary steps of each sweep, relative to one histogram add
# (operation counts; the choices they make were checked against the same-run timings of
# benchmarks/bench_policytree_ties.py, see docs/policytree.md). The segment-tree weights were
# halved when the trees' layout halved their cost (issue 18: per model unit 0.77 -> 0.40 ns at
# n = 1,000, d = 20, same run, against 0.23-0.67 ns for the histograms' units).
SEG_STEP = 0.5  # one (pair of options, tree level) update of the segment tree
SEG_VALUE = 0.5  # one pair of options read at the root of the segment tree
SEG_RANGE = 2.0  # per tree level, one pair's range read (min_node_size > 1): two walks, 2 nodes
HIST_ADD = 1.0  # one option added to a bucket
HIST_EVAL = 1.5  # one (bucket, option) step of the depth-1 evaluation


@njit(cache=True)
def buckets(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``BK[k, t]``: value bucket (0-based rank among distinct values) of sorted position ``t``
    on feature ``k``; ``K[k]``: number of distinct values of ``k``."""
    p, m = V.shape
    BK = np.empty((p, m), dtype=np.int64)
    K = np.zeros(p, dtype=np.int64)
    for k in range(p):
        b = 0
        for t in range(m):
            if t > 0 and V[k, t] != V[k, t - 1]:
                b += 1
            BK[k, t] = b
        if m > 0:
            K[k] = b + 1
    return BK, K


@njit(cache=True)
def pair_uses_hist(m: int, d: int, nvj: int, Kk: int, mmin: int, mode: int) -> bool:
    """Whether the (root feature with ``nvj`` valid splits, child feature with ``Kk`` distinct
    values) pair is swept with histograms rather than segment trees."""
    if mode == MODE_HIST:
        return True
    if mode == MODE_SEG:
        return False
    lg = 0
    size = 1
    while size < m:
        size *= 2
        lg += 1
    P = d * (d - 1)
    read = SEG_VALUE if mmin == 1 else SEG_VALUE + (lg + 1) * SEG_RANGE
    seg = m * (lg + 1) * P * SEG_STEP + nvj * P * read
    hist = m * d * HIST_ADD + nvj * Kk * d * HIST_EVAL
    return hist <= seg


@njit(cache=True)
def hist_value(L: np.ndarray, CNT: np.ndarray, Kk: int, T: np.ndarray, n_side: int,
               mmin: int, acc: np.ndarray) -> float:
    """Best depth-1 value of a child with bucket sums ``L[:Kk]``, bucket counts ``CNT[:Kk]``,
    totals ``T`` and ``n_side`` members, splitting on the bucketed feature (or a leaf)."""
    d = T.shape[0]
    best = -np.inf
    for a in range(d):
        acc[a] = 0.0
        if T[a] > best:
            best = T[a]
    cl = 0
    for b in range(Kk - 1):
        if CNT[b] == 0:  # no member at this value: the same boundary as the previous one
            continue
        cl += CNT[b]
        lv = -np.inf
        rv = -np.inf
        for a in range(d):
            acc[a] += L[b, a]
            lv = max(lv, acc[a])
            rv = max(rv, T[a] - acc[a])
        if cl < mmin or n_side - cl < mmin:
            continue
        if lv + rv > best:
            best = lv + rv
    return best


@njit(cache=True)
def hist_sweep(j: int, k: int, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
               BK: np.ndarray, Kk: int, valid: np.ndarray, mmin: int, gL: np.ndarray,
               gR: np.ndarray, L: np.ndarray, CNT: np.ndarray, T: np.ndarray,
               acc: np.ndarray) -> None:
    """Raise ``gL[s]`` / ``gR[s]`` to the children's best depth-1 value on feature ``k`` for every
    valid root split after ``s`` members on feature ``j`` (left child, then right child)."""
    m = ORD.shape[1]
    d = G.shape[1]
    for left in (True, False):
        for b in range(Kk):
            CNT[b] = 0
            for a in range(d):
                L[b, a] = 0.0
        for a in range(d):
            T[a] = 0.0
        for u in range(1, m):
            s = u if left else m - u
            x = ORD[j, s - 1] if left else ORD[j, s]
            b = BK[k, RK[k, x]]
            CNT[b] += 1
            for a in range(d):
                g = G[x, a]
                L[b, a] += g
                T[a] += g
            if valid[s]:
                if left:
                    v = hist_value(L, CNT, Kk, T, s, mmin, acc)
                    if v > gL[s]:
                        gL[s] = v
                else:
                    v = hist_value(L, CNT, Kk, T, m - s, mmin, acc)
                    if v > gR[s]:
                        gR[s] = v
