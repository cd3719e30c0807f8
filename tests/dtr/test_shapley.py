"""Exact Shapley values of a linear DR-learner against a brute-force computation over every
coalition (small p), by variable and by domain."""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from tailor.dtr.shapley import domain_shapley, linear_shapley
from tailor.exceptions import EstimationError


def _brute_force(predict, x: np.ndarray, background: np.ndarray,
                 players: list[np.ndarray]) -> np.ndarray:
    """Interventional Shapley values by enumerating all coalitions of ``players`` (column
    groups): v(S) = mean over the background of f(x_S, b_{-S})."""
    m = len(players)
    out = np.zeros((len(x), m))
    for i, row in enumerate(x):
        def value(coalition: tuple[int, ...], row: np.ndarray = row) -> float:
            z = background.copy()
            for k in coalition:
                z[:, players[k]] = row[players[k]]
            return float(predict(z).mean())

        for k in range(m):
            others = [q for q in range(m) if q != k]
            for size in range(m):
                weight = factorial(size) * factorial(m - size - 1) / factorial(m)
                for s in combinations(others, size):
                    out[i, k] += weight * (value((*s, k)) - value(s))
    return out


def _fitted(seed: int = 0, p: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, p))
    y = x @ rng.normal(size=p) + rng.normal(size=200)
    return Ridge(alpha=3.0).fit(x, y), x, rng.normal(size=(6, p))


def test_exact_linear_shapley_equals_all_coalitions():
    model, background, new = _fitted()
    phi = linear_shapley(model, new, background)
    brute = _brute_force(model.predict, new, background, [np.array([j]) for j in range(5)])
    np.testing.assert_allclose(phi, brute, atol=1e-10)
    # efficiency: the values add up to the prediction minus the background mean prediction
    np.testing.assert_allclose(phi.sum(axis=1),
                               model.predict(new) - model.predict(background).mean(), atol=1e-10)


def test_domain_as_one_player_is_the_sum_of_its_variables():
    model, background, new = _fitted(1)
    spans = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    grouped = domain_shapley(linear_shapley(model, new, background), spans)
    np.testing.assert_allclose(grouped, _brute_force(model.predict, new, background, spans),
                               atol=1e-10)


def test_the_brute_force_can_tell_a_wrong_answer():
    model, background, new = _fitted(2)
    phi = linear_shapley(model, new, background)
    wrong = phi.copy()
    wrong[:, [0, 1]] = wrong[:, [1, 0]]  # values attributed to the wrong variables
    brute = _brute_force(model.predict, new, background, [np.array([j]) for j in range(5)])
    assert not np.allclose(wrong, brute, atol=1e-6)


def test_a_model_without_coefficients_is_refused_by_name():
    class Constant:
        def predict(self, x):
            return np.zeros(len(x))

    with pytest.raises(EstimationError, match="Constant has none"):
        linear_shapley(Constant(), np.zeros((2, 3)), np.zeros((4, 3)))
    model, background, new = _fitted()
    with pytest.raises(EstimationError, match="5 coefficients, the data 3 columns"):
        linear_shapley(model, new[:, :3], background[:, :3])
