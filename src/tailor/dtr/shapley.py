"""Shapley values of a linear DR-learner's predicted treatment effect, by variable and by domain.

For a model linear in its inputs, ``f(x) = b0 + sum_j beta_j x_j``, with the interventional
(marginal) value function ``v(S) = E_B[f(x_S, X_{-S})]`` over a background sample ``B``, the
Shapley value of variable ``j`` at ``x`` is exactly ``phi_j = beta_j (x_j - E_B X_j)``: each
coalition's marginal contribution of ``j`` is the same, so no sampling or approximation is
needed (Lundberg & Lee 2017, "linear SHAP"; the ``shap`` library's ``LinearExplainer`` with
``feature_perturbation="interventional"`` computes this same quantity). The values add up to
the prediction minus its background mean (efficiency). A domain taken as one player (its
variables moved together) gets the sum of its variables' values, again exactly for an
additive model, so the domain's importance reported is the mean over participants of
``|sum_{j in domain} phi_j|`` (in outcome units: how far, on average, the domain moves a
participant's predicted effect away from the average predicted effect).

Unlike permutation importance this is a description of the fitted model, not a test: it is
positive whenever a ridge coefficient is non-zero, also for a domain that modifies nothing, so
it carries no interval and is read beside the permutation importance's interval.

References
----------
Shapley LS (1953). A value for n-person games. Contributions to the Theory of Games II:307-17.
Lundberg SM, Lee S-I (2017). A unified approach to interpreting model predictions. NeurIPS 30.
Strumbelj E, Kononenko I (2014). Explaining prediction models and individual predictions with
feature contributions. Knowl Inf Syst 41:647-65.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tailor.exceptions import EstimationError

__all__ = ["domain_shapley", "linear_shapley"]


def linear_shapley(model: Any, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact Shapley values ``phi (n, p)`` of a fitted linear model's predictions at the rows
    of ``x``, with ``background`` (rows, p) as the reference distribution (module docstring).

    Raises
    ------
    EstimationError
        When the model has no linear coefficients (``coef_``) matching the columns of ``x``.
    """
    coef = getattr(model, "coef_", None)
    if coef is None:
        raise EstimationError(f"exact Shapley values need a linear model with coef_; "
                              f"{type(model).__name__} has none")
    beta = np.ravel(np.asarray(coef, dtype=float))
    if beta.shape[0] != x.shape[1]:
        raise EstimationError(f"the model has {beta.shape[0]} coefficients, the data "
                              f"{x.shape[1]} columns")
    return beta * (x - np.asarray(background, dtype=float).mean(axis=0))


def domain_shapley(phi: np.ndarray, spans: Sequence[np.ndarray]) -> np.ndarray:
    """Per-row Shapley value of each domain taken as one player: the sum of its variables'
    values (exact for an additive model); ``spans`` are the domains' column indices."""
    return np.column_stack([phi[:, span].sum(axis=1) for span in spans])
