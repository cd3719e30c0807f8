"""Compiled kernels of the exact policy-tree search (private; see ``policytree.py``).

A *node* is a set of ``m`` participants held as plain arrays:

``V`` (p, m)
    feature values, each row sorted ascending (ties by participant index);
``ORD`` (p, m)
    local participant id at each sorted position;
``RK`` (p, m)
    inverse of ``ORD``: ``RK[k, i]`` is the sorted position of participant ``i`` on feature ``k``;
``G`` (m, d)
    rewards, with infeasible entries set to 0;
``C`` (m, d)
    1.0 where the option is infeasible for the participant, else 0.0;
``RNG`` (m,)
    best minus worst feasible reward of each participant (used by the bounds).

A tree's value is the pair ``(c, v)``: ``c`` the number of members whose leaf action is infeasible
for them, ``v`` the sum of rewards over the others. Pairs are compared lexicographically (fewer
infeasible assignments first, then larger reward), so whenever a tree with ``c == 0`` exists the
search returns the best such tree, exactly as if infeasible rewards were ``-inf``.

Without a feasibility mask ``c`` is always 0 and three bounds prune the search; each only skips a
candidate that cannot be *strictly* better than the incumbent, so the first-found tie-break of
policytree is kept:

1. along one feature's scan, moving one member across the split changes the depth-1 value by at
   most its reward range, so positions whose chained bound is <= the incumbent are not evaluated;
2. per feature ``k`` the depth-1 value of the growing left child rises by at most the new member's
   best reward and that of the shrinking right child falls by at least its worst reward, so a
   feature whose bound cannot beat the best feature so far is not scanned (``min_node_size == 1``
   and ``split_step == 1`` only);
3. the same two chains one level up skip whole root splits of a depth-2 or depth-3 search.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tailor.dtr import _policytree_hist as _h

_BIG = 1e300  # "no key yet" count
_SEG_BLOCK_BYTES = 2 << 20  # prefix maxima of one block of option pairs (see _seg_blocks)
_SEG_MIN_PAIRS = 16


@njit(cache=True)
def _better(c1: float, v1: float, c2: float, v2: float) -> bool:
    return c1 < c2 or (c1 == c2 and v1 > v2)


@njit(cache=True)
def leaf_key(T: np.ndarray, CT: np.ndarray, has_mask: bool) -> tuple[float, float, int]:
    """Best single action for a node with reward totals ``T`` and infeasible counts ``CT``."""
    bc = _BIG
    bv = -np.inf
    ba = 0
    for a in range(T.shape[0]):
        c = CT[a] if has_mask else 0.0
        if _better(c, T[a], bc, bv):
            bc = c
            bv = T[a]
            ba = a
    return bc, bv, ba


@njit(cache=True)
def _scan(k: int, plist: np.ndarray, nmem: int, V: np.ndarray, ORD: np.ndarray, G: np.ndarray,
          C: np.ndarray, RNG: np.ndarray, T: np.ndarray, CT: np.ndarray, theta: float,
          tol: float, mmin: int, step: int, has_mask: bool, use_bound: bool,
          acc: np.ndarray, cacc: np.ndarray) -> tuple[float, float, int]:
    """Best depth-1 split on feature ``k`` of the members at sorted positions ``plist[:nmem]``.

    Returns ``(c, v, n_valid)``: the best key among the evaluated split positions and the number of
    valid positions. Without a mask only positions that may beat ``theta`` are evaluated, so ``v``
    is exact when ``v > theta`` and otherwise only says the true value is <= ``theta``.
    """
    d = G.shape[1]
    for a in range(d):
        acc[a] = 0.0
        cacc[a] = 0.0
    bc = _BIG
    bv = -np.inf
    nvalid = 0
    b = -np.inf
    if use_bound:
        for a in range(d):
            if T[a] > b:
                b = T[a]
    else:
        b = np.inf
    counter = 0
    for q in range(nmem - 1):
        t = plist[q]
        i = ORD[k, t]
        for a in range(d):
            acc[a] += G[i, a]
        if has_mask:
            for a in range(d):
                cacc[a] += C[i, a]
        b += RNG[i]
        counter += 1
        if V[k, t] == V[k, plist[q + 1]]:
            continue
        nl = q + 1
        if nl < mmin or nmem - nl < mmin:
            continue
        if counter < step:
            continue
        counter = 0
        nvalid += 1
        if b + tol <= theta:
            continue
        if has_mask:
            lc = _BIG
            lv = -np.inf
            rc = _BIG
            rv = -np.inf
            for a in range(d):
                c = cacc[a]
                v = acc[a]
                if c < lc or (c == lc and v > lv):
                    lc = c
                    lv = v
                c = CT[a] - cacc[a]
                v = T[a] - acc[a]
                if c < rc or (c == rc and v > rv):
                    rc = c
                    rv = v
            if _better(lc + rc, lv + rv, bc, bv):
                bc = lc + rc
                bv = lv + rv
        else:
            lv = -np.inf
            rv = -np.inf
            for a in range(d):
                lv = max(lv, acc[a])
                rv = max(rv, T[a] - acc[a])
            v = lv + rv
            b = v
            if v > bv:
                bc = 0.0
                bv = v
                if v > theta:
                    theta = v
    return bc, bv, nvalid


@njit(cache=True)
def _members(k: int, RJk: np.ndarray, s: int, left: bool, buf: np.ndarray) -> int:
    """Sorted positions on feature ``k`` of the left (rank on the root feature < s) or right
    child, written to ``buf`` without branches; returns their number."""
    m = RJk.shape[1]
    q = 0
    if left:
        for t in range(m):
            buf[q] = t
            q += RJk[k, t] < s
    else:
        for t in range(m):
            buf[q] = t
            q += RJk[k, t] >= s
    return q


@njit(cache=True)
def _side_best(RJk: np.ndarray, s: int, left: bool, buf: np.ndarray, V: np.ndarray,
               ORD: np.ndarray, G: np.ndarray, C: np.ndarray, RNG: np.ndarray, T: np.ndarray,
               CT: np.ndarray, ub: np.ndarray, theta: float, tol: float, mmin: int, step: int,
               has_mask: bool, use_kb: bool, acc: np.ndarray,
               cacc: np.ndarray) -> tuple[float, float]:
    """Best depth-1 tree of one child (all features), pruned against ``theta`` (see ``_scan``).

    The child is the left (``left``) or right part of the node split after ``s`` members on the
    root feature; ``RJk[k, t]`` is the root-feature rank of the member at position ``t`` of
    feature ``k``. ``ub[k]`` bounds the child's best split on feature ``k``; it is tightened here.
    """
    p = V.shape[0]
    bc = _BIG
    bv = -np.inf
    use_bound = not has_mask
    # the feature with the largest bound first: it raises theta fastest
    first = 0
    if use_kb:
        for k in range(1, p):
            if ub[k] > ub[first]:
                first = k
    for kk in range(p):
        if kk == 0:
            k = first
        elif kk <= first:
            k = kk - 1
        else:
            k = kk
        if use_kb and ub[k] + tol <= theta:
            continue
        theta0 = theta
        nmem = _members(k, RJk, s, left, buf)
        c, v, nvalid = _scan(k, buf, nmem, V, ORD, G, C, RNG, T, CT, theta, tol, mmin, step,
                             has_mask, use_bound, acc, cacc)
        if nvalid == 0:  # no split on k: the child is a leaf
            c, v, _ = leaf_key(T, CT, has_mask)
            if use_kb:
                ub[k] = v
        elif use_kb:
            ub[k] = max(theta0, v)
        if _better(c, v, bc, bv):
            bc = c
            bv = v
            if use_bound and v > theta:
                theta = v
    return bc, bv


@njit(cache=True)
def node_totals(G: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m, d = G.shape
    T = np.zeros(d)
    CT = np.zeros(d)
    for i in range(m):
        for a in range(d):
            T[a] += G[i, a]
            CT[a] += C[i, a]
    return T, CT


@njit(cache=True)
def depth1(V: np.ndarray, ORD: np.ndarray, G: np.ndarray, C: np.ndarray, RNG: np.ndarray,
           tol: float, mmin: int, step: int, has_mask: bool) -> tuple[float, float]:
    """Best depth-1 value of a whole node."""
    p, m = V.shape
    d = G.shape[1]
    RJk = np.zeros((p, m), dtype=np.int64)  # everybody "left of" s = 1
    T, CT = node_totals(G, C)
    ub = np.full(p, np.inf)
    return _side_best(RJk, 1, True, np.empty(m, dtype=np.int64), V, ORD, G, C, RNG, T, CT, ub,
                      -np.inf, tol, mmin, step, has_mask, False, np.empty(d), np.empty(d))


@njit(cache=True)
def _d2_feature(j: int, V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                C: np.ndarray, RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray,
                ub_right0: np.ndarray, theta: float, shared: np.ndarray, tol: float, mmin: int,
                step: int, has_mask: bool, use_kb: bool) -> tuple[float, float, int, int]:
    """Best depth-2 tree whose root splits on feature ``j``.

    Returns ``(c, v, s, n_valid)`` where ``s`` is the number of members sent left (-1 when no
    split beat ``theta``) and ``n_valid`` the number of valid root split positions. ``shared[0]``
    is a value reached by some tree (possibly found by another thread): splits whose bound is
    strictly below it are skipped. ``ub_right0[k]`` bounds the node's best depth-1 split on ``k``.
    """
    p, m = V.shape
    d = G.shape[1]
    RJk = np.empty((p, m), dtype=np.int64)
    for k in range(p):
        for t in range(m):
            RJk[k, t] = RK[j, ORD[k, t]]
    buf = np.empty(m, dtype=np.int64)
    TL = np.zeros(d)
    CL = np.zeros(d)
    TR, CR = node_totals(G, C)
    ubL = np.zeros(p)
    ubR = ub_right0.copy()
    acc = np.empty(d)
    cacc = np.empty(d)
    bc = 0.0 if not has_mask else _BIG
    bv = theta
    if has_mask:
        bv = -np.inf
    best_s = -1
    nvalid = 0
    counter = 0
    for s in range(1, m):
        x = ORD[j, s - 1]
        for a in range(d):
            TL[a] += G[x, a]
            TR[a] -= G[x, a]
            CL[a] += C[x, a]
            CR[a] -= C[x, a]
        if use_kb:
            for k in range(p):
                ubL[k] += RMAX[x]
                ubR[k] -= RMIN[x]
        counter += 1
        if V[j, s - 1] == V[j, s]:
            continue
        if s < mmin or m - s < mmin:
            continue
        if counter < step:
            continue
        counter = 0
        nvalid += 1
        if has_mask:
            lc, lv = _side_best(RJk, s, True, buf, V, ORD, G, C, RNG, TL, CL, ubL, -np.inf, tol, mmin,
                                step, True, False, acc, cacc)
            rc, rv = _side_best(RJk, s, False, buf, V, ORD, G, C, RNG, TR, CR, ubR, -np.inf, tol, mmin,
                                step, True, False, acc, cacc)
            if _better(lc + rc, lv + rv, bc, bv):
                bc = lc + rc
                bv = lv + rv
                best_s = s
            continue
        # the incumbent: this thread's best (ties kept for the first) or, strictly, another's
        th = max(bv, shared[0] - 2.0 * tol)
        uR = np.inf
        if use_kb:
            uL = -np.inf
            uR = -np.inf
            for k in range(p):
                uL = max(uL, ubL[k])
                uR = max(uR, ubR[k])
            if uL + uR + tol <= th:
                continue
        thL = th - uR
        lc, lv = _side_best(RJk, s, True, buf, V, ORD, G, C, RNG, TL, CL, ubL, thL, tol, mmin, step,
                            False, use_kb, acc, cacc)
        if lv + tol <= thL:
            continue
        thR = th - lv
        rc, rv = _side_best(RJk, s, False, buf, V, ORD, G, C, RNG, TR, CR, ubR, thR, tol, mmin, step,
                            False, use_kb, acc, cacc)
        if rv + tol <= thR:
            continue
        tot = lv + rv
        if tot > bv:
            bv = tot
            best_s = s
            if tot > shared[0]:
                shared[0] = tot
    return bc, bv, best_s, nvalid


@njit(cache=True)
def _right_bounds(V: np.ndarray, ORD: np.ndarray, G: np.ndarray, C: np.ndarray, RNG: np.ndarray,
                  tol: float, mmin: int, step: int, has_mask: bool) -> np.ndarray:
    """Exact best depth-1 value of the whole node on each feature (the right child at s = 0)."""
    p, m = V.shape
    d = G.shape[1]
    ub = np.empty(p)
    pos = np.empty(m, dtype=np.int64)
    for t in range(m):
        pos[t] = t
    T, CT = node_totals(G, C)
    acc = np.empty(d)
    cacc = np.empty(d)
    for k in range(p):
        _, v, nvalid = _scan(k, pos, m, V, ORD, G, C, RNG, T, CT, -np.inf, tol, mmin, step,
                             has_mask, not has_mask, acc, cacc)
        if nvalid == 0:
            _, v, _ = leaf_key(T, CT, has_mask)
        ub[k] = v
    return ub


@njit(cache=True)
def depth2_serial(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray, C: np.ndarray,
                  RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray, theta: float, tol: float,
                  mmin: int, step: int, has_mask: bool,
                  use_kb: bool) -> tuple[float, float, int, int]:
    """Best depth-2 tree of a node: ``(c, v, j, s)``; ``j == -1`` when nothing beat ``theta``.

    When the node has no valid root split at all the result is its best leaf with ``j == -2``.
    """
    p = V.shape[0]
    ub0 = _right_bounds(V, ORD, G, C, RNG, tol, mmin, step, has_mask)
    shared = np.array([-np.inf])
    bc = _BIG
    bv = theta
    bj = -1
    bs = -1
    anyvalid = False
    for j in range(p):
        c, v, s, nv = _d2_feature(j, V, ORD, RK, G, C, RNG, RMAX, RMIN, ub0, bv, shared, tol,
                                  mmin, step, has_mask, use_kb)
        if nv > 0:
            anyvalid = True
        if s >= 0 and (bj < 0 or _better(c, v, bc, bv)):
            bc = c
            bv = v
            bj = j
            bs = s
    if not anyvalid:
        T, CT = node_totals(G, C)
        c, v, _ = leaf_key(T, CT, has_mask)
        return c, v, -2, -1
    return bc, bv, bj, bs


@njit(cache=True, parallel=True)
def depth2_parallel(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray, C: np.ndarray,
                    RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray, incumbent: float,
                    tol: float, mmin: int, step: int, has_mask: bool,
                    use_kb: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per root feature ``j`` (in parallel): best depth-2 key and left size (see ``_d2_feature``).

    ``incumbent`` is a value some depth-2 tree reaches (e.g. the greedy tree); it only prunes.
    """
    p = V.shape[0]
    ub0 = _right_bounds(V, ORD, G, C, RNG, tol, mmin, step, has_mask)
    shared = np.array([incumbent])
    rc = np.empty(p)
    rv = np.empty(p)
    rs = np.empty(p, dtype=np.int64)
    rn = np.empty(p, dtype=np.int64)
    for j in prange(p):
        c, v, s, nv = _d2_feature(j, V, ORD, RK, G, C, RNG, RMAX, RMIN, ub0, -np.inf, shared,
                                  tol, mmin, step, has_mask, use_kb)
        rc[j] = c
        rv[j] = v
        rs[j] = s
        rn[j] = nv
    return rc, rv, rs, rn


@njit(cache=True)
def subset(V: np.ndarray, ORD: np.ndarray, G: np.ndarray, C: np.ndarray, RNG: np.ndarray,
           RMAX: np.ndarray, RMIN: np.ndarray, member: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                      np.ndarray, np.ndarray, np.ndarray]:
    """The child node made of the members flagged in ``member`` (by local id)."""
    p, m = V.shape
    d = G.shape[1]
    newid = np.full(m, -1, dtype=np.int64)
    mc = 0
    for i in range(m):
        if member[i]:
            newid[i] = mc
            mc += 1
    V2 = np.empty((p, mc))
    O2 = np.empty((p, mc), dtype=np.int64)
    RK2 = np.empty((p, mc), dtype=np.int64)
    for k in range(p):
        q = 0
        for t in range(m):
            i = ORD[k, t]
            if member[i]:
                V2[k, q] = V[k, t]
                O2[k, q] = newid[i]
                RK2[k, newid[i]] = q
                q += 1
    G2 = np.empty((mc, d))
    C2 = np.empty((mc, d))
    RNG2 = np.empty(mc)
    RMAX2 = np.empty(mc)
    RMIN2 = np.empty(mc)
    for i in range(m):
        q = newid[i]
        if q >= 0:
            for a in range(d):
                G2[q, a] = G[i, a]
                C2[q, a] = C[i, a]
            RNG2[q] = RNG[i]
            RMAX2[q] = RMAX[i]
            RMIN2[q] = RMIN[i]
    return V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, newid


@njit(cache=True)
def _d3_feature(j: int, V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                C: np.ndarray, RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray,
                d2_all: float, shared: np.ndarray, tol: float, mmin: int, step: int,
                has_mask: bool, use_kb: bool, kb: int) -> tuple[float, float, int, int]:
    """Best depth-3 tree whose root splits on feature ``j``: ``(c, v, s, n_valid)``.

    ``kb`` is -1 to solve the children by the pruned scan, else the ``_policytree_hist`` mode of
    their exact depth-2 sweeps (no mask, ``split_step`` 1).
    """
    seg = kb >= 0
    m = V.shape[1]
    member = np.zeros(m, dtype=np.bool_)
    ubL = 0.0
    ubR = d2_all
    bc = 0.0 if not has_mask else _BIG
    bv = -np.inf
    best_s = -1
    nvalid = 0
    counter = 0
    for s in range(1, m):
        x = ORD[j, s - 1]
        member[x] = True
        ubL += RMAX[x]
        ubR -= RMIN[x]
        counter += 1
        if V[j, s - 1] == V[j, s]:
            continue
        if s < mmin or m - s < mmin:
            continue
        if counter < step:
            continue
        counter = 0
        nvalid += 1
        if has_mask:
            thL = -np.inf
        else:
            th = max(bv, shared[0] - 2.0 * tol)
            if use_kb:
                if ubL + ubR + tol <= th:
                    continue
                thL = th - ubR
            else:
                thL = -np.inf
        V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, _ = subset(V, ORD, G, C, RNG, RMAX, RMIN, member)
        if seg:
            lc = 0.0
            lv, _, _ = depth2_seg_serial(V2, O2, RK2, G2, mmin, kb)
        else:
            lc, lv, _, _ = depth2_serial(V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, thL, tol, mmin,
                                         step, has_mask, use_kb)
        if has_mask:
            V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, _ = subset(V, ORD, G, C, RNG, RMAX, RMIN,
                                                                ~member)
            rc, rv, _, _ = depth2_serial(V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, -np.inf, tol,
                                         mmin, step, True, False)
            if _better(lc + rc, lv + rv, bc, bv):
                bc = lc + rc
                bv = lv + rv
                best_s = s
            continue
        if use_kb:
            ubL = max(thL, lv)
        if lv + tol <= thL:
            continue
        thR = th - lv
        V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, _ = subset(V, ORD, G, C, RNG, RMAX, RMIN, ~member)
        if seg:
            rv, _, _ = depth2_seg_serial(V2, O2, RK2, G2, mmin, kb)
        else:
            rc, rv, _, _ = depth2_serial(V2, O2, RK2, G2, C2, RNG2, RMAX2, RMIN2, thR, tol, mmin,
                                         step, False, use_kb)
        if use_kb:
            ubR = max(thR, rv)
        if rv + tol <= thR:
            continue
        tot = lv + rv
        if tot > bv:
            bv = tot
            best_s = s
            if tot > shared[0]:
                shared[0] = tot
    return bc, bv, best_s, nvalid


@njit(cache=True, parallel=True)
def depth3_parallel(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray, C: np.ndarray,
                    RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray, d2_all: float,
                    incumbent: float, tol: float, mmin: int, step: int, has_mask: bool,
                    use_kb: bool, kb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per root feature ``j`` (in parallel): best depth-3 key and left size.

    ``d2_all`` is the node's exact best depth-2 value (the right child's bound at s = 0).
    """
    p = V.shape[0]
    shared = np.array([incumbent])
    rc = np.empty(p)
    rv = np.empty(p)
    rs = np.empty(p, dtype=np.int64)
    rn = np.empty(p, dtype=np.int64)
    for j in prange(p):
        c, v, s, nv = _d3_feature(j, V, ORD, RK, G, C, RNG, RMAX, RMIN, d2_all, shared, tol,
                                  mmin, step, has_mask, use_kb, kb)
        rc[j] = c
        rv[j] = v
        rs[j] = s
        rn[j] = nv
    return rc, rv, rs, rn


@njit(cache=True)
def depth1_argmax(V: np.ndarray, ORD: np.ndarray, G: np.ndarray, C: np.ndarray, mmin: int,
                  step: int, has_mask: bool) -> tuple[int, int, int, int, float, float]:
    """Reconstruct the best depth-1 split with policytree's tie-breaks (no pruning).

    Returns ``(k, s, left_action, right_action, c, v)``; ``k == -1`` when no split is valid.
    First feature, then first split position, then lowest action index win ties.
    """
    p, m = V.shape
    d = G.shape[1]
    T, CT = node_totals(G, C)
    acc = np.empty(d)
    cacc = np.empty(d)
    bc = _BIG
    bv = -np.inf
    bk = -1
    bs = -1
    bla = 0
    bra = 0
    for k in range(p):
        for a in range(d):
            acc[a] = 0.0
            cacc[a] = 0.0
        counter = 0
        for q in range(m - 1):
            i = ORD[k, q]
            for a in range(d):
                acc[a] += G[i, a]
                cacc[a] += C[i, a]
            counter += 1
            if V[k, q] == V[k, q + 1]:
                continue
            nl = q + 1
            if nl < mmin or m - nl < mmin:
                continue
            if counter < step:
                continue
            counter = 0
            lc = _BIG
            lv = -np.inf
            la = 0
            rc = _BIG
            rv = -np.inf
            ra = 0
            for a in range(d):
                c = cacc[a] if has_mask else 0.0
                if _better(c, acc[a], lc, lv):
                    lc = c
                    lv = acc[a]
                    la = a
                c = CT[a] - cacc[a] if has_mask else 0.0
                if _better(c, T[a] - acc[a], rc, rv):
                    rc = c
                    rv = T[a] - acc[a]
                    ra = a
            if bk < 0 or _better(lc + rc, lv + rv, bc, bv):
                bc = lc + rc
                bv = lv + rv
                bk = k
                bs = nl
                bla = la
                bra = ra
    return bk, bs, bla, bra, bc, bv


# --------------------------------------------------------------------------------------------
# Depth 2 without mask and split_step 1: prefix-maximum segment trees.
#
# For a child S and a feature k, the best depth-1 value is
#     g_k(S) = max_t [max_a A_a(t) + max_b (T_b - A_b(t))] = max_{a,b} [T_b + max_t (A_a - A_b)(t)]
# where A(t) sums the rewards of the members before boundary t (t runs over the boundaries between
# distinct values of feature k, t = 0 included). For each ordered pair (a, b), max_t (A_a - A_b)(t)
# is a maximum prefix sum, which a segment tree over the sorted positions of k keeps up to date in
# ORD(log n) when one member is added. Sweeping the root split along feature j adds one member to
# the left child at a time (and, sweeping backwards, to the right child), so every root split of j
# gets its children's exact depth-1 values on every k in ORD(p d^2 log n) instead of ORD(p n d).
# Boundaries with an empty side give the leaf value, which never beats a real split, so g_k equals
# policytree's value (best split, or the leaf when k has no split).
#
# Layout: a node of the tree stores the per-option reward sums S[node, a] of its members (d values,
# not one difference per pair) and the largest prefix sum MP[node, bb * d + a] of the pair
# (a, b0 + bb), for the right-side options b0 .. b0 + nb - 1 of the block; the pair's sum is
# S[node, a] - S[node, b]. Only the ``size - 1`` inner nodes store prefix maxima; a leaf's (one
# sorted position) follows from its sums and whether it is a boundary. The diagonal pairs (a, a) are
# kept (their prefix maximum is 0 or -inf, which the value's max(0, .) ignores) so each option's
# row of pairs is contiguous. An insertion is one flat loop nest (no call per node): per pair and
# level one subtraction, one addition and one maximum over rows that stay in the L2 cache.


@njit(cache=True)
def _seg_bounds(k: int, V: np.ndarray, size: int, BND: np.ndarray, HB: np.ndarray) -> None:
    """``BND[u]``: sorted position ``u`` of feature ``k`` ends a run of equal values (a split
    boundary); ``HB[node]``: the node's range holds a boundary (leaves at ``size + u``)."""
    m = V.shape[1]
    for u in range(size):
        b = u < m and (u == m - 1 or V[k, u] < V[k, u + 1])
        BND[u] = b
        HB[size + u] = b
    for node in range(size - 1, 0, -1):
        HB[node] = HB[2 * node] or HB[2 * node + 1]


@njit(cache=True)
def _seg_init(size: int, Pn: int, HB: np.ndarray, S: np.ndarray, MP: np.ndarray) -> None:
    """No member yet: every sum 0, every prefix maximum 0 where the range holds a boundary."""
    d = S.shape[1]
    for node in range(1, 2 * size):
        for a in range(d):
            S[node, a] = 0.0
    for node in range(1, size):
        e = 0.0 if HB[node] else -np.inf
        for q in range(Pn):
            MP[node, q] = e


@njit(cache=True)
def _seg_insert(u: int, x: int, G: np.ndarray, BND: np.ndarray, b0: int, nb: int, size: int,
                S: np.ndarray, MP: np.ndarray) -> None:
    """Add member ``x`` at sorted position ``u`` to the trees of the block ``b0 .. b0 + nb - 1``:
    its leaf's sums, its parent from the two leaves, then the inner nodes up to the root
    (written out flat: the loops over a row of pairs are what the sweeps cost)."""
    d = G.shape[1]
    for a in range(d):
        S[size + u, a] = G[x, a]
    node = (size + u) >> 1
    lft = 2 * node
    rgt = lft + 1
    cl = 0.0 if BND[lft - size] else -np.inf  # a leaf's prefix maximum: its sum at a boundary
    cr = 0.0 if BND[rgt - size] else -np.inf
    for a in range(d):
        S[node, a] = S[lft, a] + S[rgt, a]
    for bb in range(nb):
        sbl = S[lft, b0 + bb]
        sbr = S[rgt, b0 + bb]
        o = bb * d
        for a in range(d):
            dl = S[lft, a] - sbl
            MP[node, o + a] = max(dl + cl, dl + ((S[rgt, a] - sbr) + cr))
    node >>= 1
    while node >= 1:
        lft = 2 * node
        rgt = lft + 1
        for a in range(d):
            S[node, a] = S[lft, a] + S[rgt, a]
        for bb in range(nb):
            sb = S[lft, b0 + bb]
            o = bb * d
            for a in range(d):
                MP[node, o + a] = max(MP[lft, o + a], (S[lft, a] - sb) + MP[rgt, o + a])
        node >>= 1


@njit(cache=True)
def _seg_value(T: np.ndarray, H: np.ndarray, row: int, b0: int, nb: int) -> float:
    """Best of the options ``b0 .. b0 + nb - 1`` on the right: ``T_b + max(0, max_a H[row, (a,
    b)])`` (0: the leaf, an empty left side)."""
    d = T.shape[0]
    best = -np.inf
    for bb in range(nb):
        h = 0.0
        o = bb * d
        for a in range(d):
            h = max(h, H[row, o + a])
        best = max(best, T[b0 + bb] + h)
    return best


@njit(cache=True)
def _fen_add(F: np.ndarray, u: int) -> None:
    """Count sorted position ``u`` in the Fenwick tree ``F`` (1-based, ``F[0]`` unused)."""
    i = u + 1
    n = F.shape[0] - 1
    while i <= n:
        F[i] += 1
        i += i & (-i)


@njit(cache=True)
def _fen_kth(F: np.ndarray, kth: int, top: int) -> int:
    """Sorted position of the ``kth`` smallest counted position (``top``: the largest power of
    two <= the tree's size)."""
    n = F.shape[0] - 1
    pos = 0
    rem = kth
    step = top
    while step > 0:
        nxt = pos + step
        if nxt <= n and F[nxt] < rem:
            pos = nxt
            rem -= F[nxt]
        step >>= 1
    return pos


@njit(cache=True)
def _seg_range(BND: np.ndarray, b0: int, nb: int, size: int, S: np.ndarray, MP: np.ndarray,
               lo: int, hi: int, H: np.ndarray, PS: np.ndarray, SL: np.ndarray, ML: np.ndarray,
               MR: np.ndarray) -> None:
    """``H[0, q]``: the largest prefix sum of pair ``q`` over the boundaries at sorted positions
    ``lo .. hi - 1`` (those with both sides >= min_node_size), -inf when there is none. A leaf's
    prefix maximum is computed from its sums (only inner nodes store theirs)."""
    d = S.shape[1]
    Pn = nb * d
    for a in range(d):
        PS[a] = 0.0
        SL[a] = 0.0
    for q in range(Pn):
        ML[q] = -np.inf
        MR[q] = -np.inf
    lft = size
    rgt = size + lo
    while lft < rgt:  # the sums of the positions before lo
        if lft & 1:
            for a in range(d):
                PS[a] += S[lft, a]
            lft += 1
        if rgt & 1:
            rgt -= 1
            for a in range(d):
                PS[a] += S[rgt, a]
        lft >>= 1
        rgt >>= 1
    lft = size + lo
    rgt = size + hi
    while lft < rgt:  # (sums, largest prefix sum) of [lo, hi), combined from both ends
        if lft & 1:
            leaf = lft >= size
            cb = -np.inf if leaf and not BND[lft - size] else 0.0
            for bb in range(nb):
                sb = SL[b0 + bb]
                sn = S[lft, b0 + bb]
                o = bb * d
                for a in range(d):
                    mp = (S[lft, a] - sn) + cb if leaf else MP[lft, o + a]
                    ML[o + a] = max(ML[o + a], (SL[a] - sb) + mp)
            for a in range(d):
                SL[a] += S[lft, a]
            lft += 1
        if rgt & 1:
            rgt -= 1
            leaf = rgt >= size
            cb = -np.inf if leaf and not BND[rgt - size] else 0.0
            for bb in range(nb):
                sb = S[rgt, b0 + bb]
                o = bb * d
                for a in range(d):
                    mp = (S[rgt, a] - sb) + cb if leaf else MP[rgt, o + a]
                    MR[o + a] = max(mp, (S[rgt, a] - sb) + MR[o + a])
        lft >>= 1
        rgt >>= 1
    for bb in range(nb):
        b = b0 + bb
        o = bb * d
        for a in range(d):
            H[0, o + a] = (PS[a] - PS[b]) + max(ML[o + a], (SL[a] - SL[b]) + MR[o + a])


@njit(cache=True)
def _seg_blocks(m: int, d: int) -> int:
    """Right-side options per block of the pair trees: a block's prefix maxima fit in
    ``_SEG_BLOCK_BYTES`` (about one core's L2 cache), so the sweeps do not stream them from
    memory, in blocks of equal width, but a block keeps at least ``_SEG_MIN_PAIRS`` pairs (short
    rows vectorize badly)."""
    size = 2
    while size < m:
        size *= 2
    per_option = size * d * 8
    most = min(d, max(1, _SEG_BLOCK_BYTES // per_option, -(-_SEG_MIN_PAIRS // d)))
    nblocks = -(-d // most)
    return -(-d // nblocks)


@njit(cache=True)
def _d2_feature_seg(j: int, V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                    valid: np.ndarray, mmin: int, mode: int, BK: np.ndarray,
                    K: np.ndarray) -> tuple[float, int]:
    """Best depth-2 tree whose root splits on ``j``: (value, left size), or (-inf, -1).

    Each child feature ``k`` is swept with prefix-maximum segment trees or with histograms
    (``_policytree_hist``), as ``mode`` and the cost model say. The segment trees are kept for
    blocks of right-side options (``_seg_blocks``), one block after the other; with
    ``min_node_size > 1`` the prefix maximum is read over the range of positions whose both sides
    keep ``min_node_size`` members (found with a Fenwick tree of the members' positions).
    """
    p, m = V.shape
    d = G.shape[1]
    nvj = 0
    for s in range(m):
        nvj += valid[s]
    gL = np.full(m, -np.inf)
    gR = np.full(m, -np.inf)
    T = np.empty(d)
    use_hist = np.empty(p, dtype=np.bool_)
    need_seg = False
    kmax = 1
    for k in range(p):
        use_hist[k] = _h.pair_uses_hist(m, d, nvj, K[k], mmin, mode)
        need_seg = need_seg or not use_hist[k]
        kmax = max(kmax, K[k])
    size = 2
    while size < m:
        size *= 2
    top = 1
    while 2 * top <= m:
        top *= 2
    nbo = _seg_blocks(m, d)  # options per block
    Pb = nbo * d if need_seg else 0
    S = np.empty((2 * size if need_seg else 0, d))  # sums of every node, leaves included
    MP = np.empty((size if need_seg else 0, Pb))  # prefix maxima of the inner nodes
    BND = np.empty(size, dtype=np.bool_)
    HB = np.empty(2 * size, dtype=np.bool_)
    H = np.empty((1, Pb))
    PS = np.empty(d)
    SL = np.empty(d)
    ML = np.empty(Pb)
    MR = np.empty(Pb)
    FW = np.zeros(m + 1, dtype=np.int64)
    L = np.empty((kmax, d))
    CNT = np.empty(kmax, dtype=np.int64)
    acc = np.empty(d)
    for k in range(p):
        if nvj == 0:
            break
        if use_hist[k]:
            _h.hist_sweep(j, k, ORD, RK, G, BK, K[k], valid, mmin, gL, gR, L, CNT, T, acc)
            continue
        _seg_bounds(k, V, size, BND, HB)
        for b0 in range(0, d, nbo):
            nb = min(nbo, d - b0)
            for left in (True, False):
                _seg_init(size, nb * d, HB, S, MP)
                T[:] = 0.0
                if mmin > 1:
                    FW[:] = 0
                for u in range(1, m):
                    s = u if left else m - u
                    x = ORD[j, s - 1] if left else ORD[j, s]
                    r = RK[k, x]
                    _seg_insert(r, x, G, BND, b0, nb, size, S, MP)
                    for a in range(d):
                        T[a] += G[x, a]
                    if mmin > 1:
                        _fen_add(FW, r)
                    if not valid[s]:
                        continue
                    if mmin == 1:  # every boundary: the root's prefix maxima
                        v = _seg_value(T, MP, 1, b0, nb)
                    else:
                        # the range's value is at most the unconstrained one (the root's prefix
                        # maxima): when that cannot raise the child's best, skip the range read
                        if _seg_value(T, MP, 1, b0, nb) <= (gL[s] if left else gR[s]):
                            continue
                        if u >= 2 * mmin:
                            lo = _fen_kth(FW, mmin, top)
                            hi = _fen_kth(FW, u - mmin + 1, top)
                            _seg_range(BND, b0, nb, size, S, MP, lo, hi, H, PS, SL, ML, MR)
                        else:  # fewer than 2 min_node_size members: the leaf only
                            for q in range(nb * d):
                                H[0, q] = -np.inf
                        v = _seg_value(T, H, 0, b0, nb)
                    if left:
                        gL[s] = max(gL[s], v)
                    else:
                        gR[s] = max(gR[s], v)
    bv = -np.inf
    bs = -1
    for s in range(1, m):
        if valid[s] and gL[s] + gR[s] > bv:
            bv = gL[s] + gR[s]
            bs = s
    return bv, bs


@njit(cache=True)
def _valid_roots(j: int, V: np.ndarray, mmin: int, step: int) -> np.ndarray:
    """valid[s]: the root split after ``s`` members on feature ``j`` is allowed."""
    m = V.shape[1]
    valid = np.zeros(m, dtype=np.bool_)
    counter = 0
    for s in range(1, m):
        counter += 1
        if V[j, s - 1] == V[j, s]:
            continue
        if s < mmin or m - s < mmin:
            continue
        if counter < step:
            continue
        counter = 0
        valid[s] = True
    return valid


@njit(cache=True, parallel=True)
def depth2_seg_parallel(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                        mmin: int, mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per root feature ``j`` (in parallel): best depth-2 value, left size, number of valid splits."""
    p = V.shape[0]
    BK, K = _h.buckets(V)
    rv = np.empty(p)
    rs = np.empty(p, dtype=np.int64)
    rn = np.empty(p, dtype=np.int64)
    for j in prange(p):
        valid = _valid_roots(j, V, mmin, 1)
        v, s = _d2_feature_seg(j, V, ORD, RK, G, valid, mmin, mode, BK, K)
        rv[j] = v
        rs[j] = s
        rn[j] = valid.sum()
    return rv, rs, rn


@njit(cache=True)
def depth2_seg_serial(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                      mmin: int, mode: int) -> tuple[float, int, int]:
    """Best depth-2 tree of a node: (value, j, s); j == -2 when no root split is valid."""
    p = V.shape[0]
    BK, K = _h.buckets(V)
    bv = -np.inf
    bj = -1
    bs = -1
    anyvalid = False
    for j in range(p):
        valid = _valid_roots(j, V, mmin, 1)
        if valid.any():
            anyvalid = True
        v, s = _d2_feature_seg(j, V, ORD, RK, G, valid, mmin, mode, BK, K)
        if s >= 0 and (bj < 0 or v > bv):
            bv = v
            bj = j
            bs = s
    if not anyvalid:
        C = np.zeros_like(G)
        T, CT = node_totals(G, C)
        _, v, _ = leaf_key(T, CT, False)
        return v, -2, -1
    return bv, bj, bs


@njit(cache=True)
def _d3_feature_bb(j: int, V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                   C: np.ndarray, RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray,
                   d2_all: float, shared: np.ndarray, tol: float,
                   mode: int) -> tuple[float, int, int]:
    """Best depth-3 tree whose root splits on ``j`` (no mask, min_node_size 1, split_step 1).

    Branch and bound over intervals of root split positions. Once the children's exact depth-2
    values are known at two positions a < b, every position s between them is bounded from both
    sides: the left child gains the members a..s-1 (each adds at most its best reward) and loses
    s..b-1 from L_b (each removes at least its worst reward); symmetrically for the right child.
    An interval whose largest bound is strictly below the incumbent is dropped; otherwise its
    position with the largest bound is solved exactly and the interval is split there. Strict
    comparison keeps every position that could tie, so the first best position is returned.
    Returns ``(value, s, n_valid)``.
    """
    m = V.shape[1]
    valid = _valid_roots(j, V, 1, 1)
    nvalid = 0
    for s in range(m):
        nvalid += valid[s]
    cmax = np.zeros(m + 1)
    cmin = np.zeros(m + 1)
    for u in range(m):
        x = ORD[j, u]
        cmax[u + 1] = cmax[u] + RMAX[x]
        cmin[u + 1] = cmin[u] + RMIN[x]
    eL = np.zeros(m + 1)
    eR = np.zeros(m + 1)
    eL[0] = 0.0
    eR[0] = d2_all
    eL[m] = d2_all
    eR[m] = 0.0
    member = np.zeros(m, dtype=np.bool_)
    bv = -np.inf
    bs = -1
    stack = np.empty((2 * m + 2, 2), dtype=np.int64)
    top = 0
    stack[0, 0] = 0
    stack[0, 1] = m
    top = 1
    while top > 0:
        top -= 1
        a = stack[top, 0]
        b = stack[top, 1]
        th = max(bv, shared[0] - 2.0 * tol)
        su = -1
        ub_best = -np.inf
        for s in range(a + 1, b):
            if not valid[s]:
                continue
            uL = min(eL[a] + (cmax[s] - cmax[a]), eL[b] - (cmin[b] - cmin[s]))
            uR = min(eR[a] - (cmin[s] - cmin[a]), eR[b] + (cmax[b] - cmax[s]))
            if uL + uR > ub_best:
                ub_best = uL + uR
                su = s
        if su < 0 or ub_best + tol < th:
            continue
        for u in range(m):
            member[ORD[j, u]] = u < su
        sub = subset(V, ORD, G, C, RNG, RMAX, RMIN, member)
        lv, _, _ = depth2_seg_serial(sub[0], sub[1], sub[2], sub[3], 1, mode)
        sub = subset(V, ORD, G, C, RNG, RMAX, RMIN, ~member)
        rv, _, _ = depth2_seg_serial(sub[0], sub[1], sub[2], sub[3], 1, mode)
        eL[su] = lv
        eR[su] = rv
        tot = lv + rv
        if tot > bv or (tot == bv and su < bs):
            bv = tot
            bs = su
            if tot > shared[0]:
                shared[0] = tot
        stack[top, 0] = a
        stack[top, 1] = su
        stack[top + 1, 0] = su
        stack[top + 1, 1] = b
        top += 2
    return bv, bs, nvalid


@njit(cache=True, parallel=True)
def depth3_bb_parallel(V: np.ndarray, ORD: np.ndarray, RK: np.ndarray, G: np.ndarray,
                       C: np.ndarray, RNG: np.ndarray, RMAX: np.ndarray, RMIN: np.ndarray,
                       d2_all: float, incumbent: float, tol: float,
                       mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per root feature ``j`` (in parallel): best depth-3 value, left size, valid splits."""
    p = V.shape[0]
    shared = np.array([incumbent])
    rv = np.empty(p)
    rs = np.empty(p, dtype=np.int64)
    rn = np.empty(p, dtype=np.int64)
    for j in prange(p):
        v, s, nv = _d3_feature_bb(j, V, ORD, RK, G, C, RNG, RMAX, RMIN, d2_all, shared, tol,
                                  mode)
        rv[j] = v
        rs[j] = s
        rn[j] = nv
    return rv, rs, rn
