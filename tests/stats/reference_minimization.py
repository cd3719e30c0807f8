"""A plain, slow, independent implementation of BEST's restricted minimization.

Written from the protocol text (shared/docs/best-protocol.md), not from the fast kernel, to be
compared with it on random inputs. Fractions keep the probabilities exact.
"""

from __future__ import annotations

from fractions import Fraction


def reference_allocate(history, levels, eligible, arms, theta, omega, u1, u2, u3):
    """history: list of (arm, levels-dict); returns (arm, minimizer, marginal probabilities)."""
    elig = [a for a in arms if a in eligible]
    if not history:
        k = len(elig)
        idx = min(int(u1 * k), k - 1)
        while idx + 1 < k and u1 >= Fraction(idx + 1, k):
            idx += 1
        return elig[idx], None, {a: (Fraction(1, k) if a in elig else Fraction(0)) for a in arms}
    g = {}
    for a in arms:
        total = 0
        for f, level in levels.items():
            counts = {b: sum(1 for arm, lv in history if arm == b and lv[f] == level) for b in arms}
            counts[a] += 1
            total += max(counts.values()) - min(counts.values())
        g[a] = total
    best = min(g[a] for a in elig)
    minimizers = [a for a in elig if g[a] == best]
    k = len(minimizers)
    j = 0
    for i in range(1, k):
        if u1 >= i / k:
            j = i
    m = minimizers[j]
    marginal = {a: Fraction(0) for a in arms}
    for mm in minimizers:
        others = [a for a in elig if a != mm]
        th = Fraction(theta[mm]).limit_denominator(1000)
        if not others:
            marginal[mm] += Fraction(1, k)
            continue
        marginal[mm] += th / k
        w = sum(Fraction(omega[a]).limit_denominator(1000) for a in others)
        for a in others:
            marginal[a] += (1 - th) * Fraction(omega[a]).limit_denominator(1000) / w / k
    others = [a for a in elig if a != m]
    if not others or u2 <= theta[m]:
        return m, m, marginal
    w = sum(omega[a] for a in others)
    cum = 0.0
    for a in others:
        cum += omega[a] / w
        if u3 < cum:
            return a, m, marginal
    return others[-1], m, marginal
