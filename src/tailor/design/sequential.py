"""Interim analyses: O'Brien-Fleming group-sequential boundaries and the sample-size inflation.

With ``K`` equally spaced looks the standardized statistics ``Z_1 .. Z_K`` of a two-sided test
are jointly normal with ``corr(Z_i, Z_j) = sqrt(i / j)`` (i <= j) and mean ``theta sqrt(k / K)``
at look k, ``theta`` the drift of the final look. The O'Brien-Fleming boundary is
``c_k = C sqrt(K / k)``, with ``C`` chosen so that ``P(any |Z_k| >= c_k | theta = 0) = alpha``
(computed from the multivariate normal rectangle probability, not tabulated). The maximum
sample size of a group-sequential trial is the fixed-design N times the inflation factor
``R = (theta_K / theta_fixed)^2``, ``theta_K`` the drift giving power ``1 - beta`` with the
boundaries (efficacy stopping only; no futility boundary).

Checked against Jennison & Turnbull (2000), Table 2.3 (O'Brien-Fleming ``C`` for two-sided
alpha 0.05: K = 2: 1.977, 3: 2.004, 4: 2.024, 5: 2.040).

References
----------
O'Brien PC, Fleming TR (1979). A multiple testing procedure for clinical trials. Biometrics
35:549-556. Jennison C, Turnbull BW (2000). Group Sequential Methods with Applications to
Clinical Trials. Chapman & Hall/CRC.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from tailor.exceptions import ScenarioError

__all__ = ["inflation_factor", "obrien_fleming"]


def _corr(k: int) -> np.ndarray:
    i = np.arange(1, k + 1)
    return np.sqrt(np.minimum.outer(i, i) / np.maximum.outer(i, i))


def _cross(bounds: np.ndarray, mean: np.ndarray, corr: np.ndarray) -> float:
    """P(some |Z_k| >= bounds_k) for Z ~ N(mean, corr)."""
    mvn = stats.multivariate_normal(mean=mean, cov=corr, allow_singular=False)
    inside = mvn.cdf(bounds, lower_limit=-bounds, rng=np.random.default_rng(0))
    return float(1.0 - inside)


def _check(looks: int, alpha: float) -> None:
    if not 1 <= looks <= 10:
        raise ScenarioError(f"looks must be between 1 and 10; got {looks}")
    if not 0 < alpha < 0.5:
        raise ScenarioError(f"alpha must be in (0, 0.5); got {alpha}")


def obrien_fleming(looks: int, alpha: float = 0.05) -> np.ndarray:
    """Two-sided O'Brien-Fleming boundaries ``c_1 .. c_K`` for equally spaced looks."""
    _check(looks, alpha)
    if looks == 1:
        return np.array([stats.norm.ppf(1 - alpha / 2)])
    corr = _corr(looks)
    scale = np.sqrt(looks / np.arange(1, looks + 1))
    zero = np.zeros(looks)
    c = optimize.brentq(lambda c: _cross(c * scale, zero, corr) - alpha, 1.5, 4.0, xtol=1e-5)
    return c * scale


def inflation_factor(looks: int, alpha: float = 0.05, power: float = 0.80) -> float:
    """Maximum N of the group-sequential design / N of the fixed design (same alpha, power)."""
    _check(looks, alpha)
    if not 0 < power < 1:
        raise ScenarioError(f"power must be in (0, 1); got {power}")
    bounds = obrien_fleming(looks, alpha)
    corr = _corr(looks)
    frac = np.sqrt(np.arange(1, looks + 1) / looks)
    fixed = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    theta = optimize.brentq(lambda t: _cross(bounds, t * frac, corr) - power,
                            fixed * 0.9, fixed * 1.5, xtol=1e-5)
    return float((theta / fixed) ** 2) if math.isfinite(theta) else float("nan")
