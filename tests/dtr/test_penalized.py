"""Penalized Q-functions: the lasso finds a modifier among many candidates and keeps noise out."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet

from tailor.dtr.penalized import PenalizedLinear
from tailor.exceptions import NotFittedError


def _trial(rng: np.random.Generator, n: int = 600, p: int = 20, modifier: float = 0.5):
    x = rng.normal(size=(n, p))
    arm = rng.integers(2, size=n)
    design = np.column_stack([np.ones(n), x, arm, arm[:, None] * x])
    names = ("Intercept", *[f"x{j}" for j in range(p)], "A[1]",
             *[f"A[1]:x{j}" for j in range(p)])
    y = x[:, 0] + 0.3 * arm + modifier * arm * x[:, 7] + rng.normal(size=n)
    return design, y, names


def test_without_term_names_it_is_the_standardized_lasso_at_the_chosen_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([1, 10, 0.1, 1, 1, 1]) + 5
    y = 2 + x[:, 0] - 0.05 * x[:, 1] + rng.normal(size=300)
    m = PenalizedLinear(random_state=1, refit=False).fit(x, y)
    z = (x - x.mean(0)) / x.std(0)
    ref = ElasticNet(alpha=m.alpha_, l1_ratio=1.0).fit(z, y - y.mean())
    np.testing.assert_allclose(m.coef_ * x.std(0), ref.coef_, atol=1e-5)
    assert 0.5 < m.coef_[0] <= 1.05  # shrunk towards 0 by the one-SE penalty, not past it
    with pytest.raises(NotFittedError):
        PenalizedLinear().predict(x)


def test_selects_the_modifier_keeps_noise_out_and_never_drops_the_arm_effect():
    rng = np.random.default_rng(4)
    design, y, names = _trial(rng)
    m = PenalizedLinear(random_state=0, term_names=names).fit(design, y)
    inter = m.coef_[22:]
    assert inter[7] == pytest.approx(0.5, abs=0.15)  # relaxed: selected, then not shrunk
    assert np.count_nonzero(np.delete(inter, 7)) <= 2
    null_design, null_y, _ = _trial(rng, modifier=0.0)
    null = PenalizedLinear(random_state=0, term_names=names).fit(null_design, null_y)
    assert np.count_nonzero(null.coef_[22:]) <= 1
    assert null.coef_[21] == pytest.approx(0.3, abs=0.2)  # the arm effect is free
    ols, *_ = np.linalg.lstsq(null_design[:, :22], null_y, rcond=None)
    if null.n_selected_ == 0:  # nothing selected: exactly least squares on the free terms
        np.testing.assert_allclose(null.coef_[1:22], ols[1:], atol=1e-8)
