"""The two-stage oracle's inner Monte Carlo (``truth.oracle``) against a brute-force evaluation.

The oracle evaluates, per participant, inner draw and arm, only the permissible stage-2
options laid out in slots (``_stage2_slots``, ``_best_slots``). The brute force here follows the
docstring's definition directly: for every draw, the week-12 state under every arm, the
stage-2 response probability of every option (``_stage2_probabilities``, the per-trial stage-2
oracle's function), the best permissible one, averaged over the draws. Issue 18 item 5 made the
slot evaluation sparser; its values must not move."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import ndtr

import tailor.stats.simulation as simulation
from tailor.stats.truth import CATEGORIES, _best_slots, _p_stage2, _stage2_probabilities


def _captured_oracle_inputs(monkeypatch, participants: int, inner: int, scenario: str):
    """The arguments ``simulate_trial`` hands ``oracle`` and its answer."""
    seen = []
    real = simulation.oracle

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append((args, kwargs, out))
        return out

    monkeypatch.setattr(simulation, "oracle", spy)
    simulation.simulate_trial("best", scenario, participants=participants, seed=5,
                              items=False, engine=False, scoring=None, long=False, log=False,
                              paths=False, oracle_inner=inner)
    assert len(seen) == 1
    return seen[0]


def _brute_force_value(args, inner: int, seed: int = 20240607) -> np.ndarray:
    model, base, noise, _site, po, cat_of_pgic, intol_cat, contra = args
    sc, ns = model.scenario, model.scenario.noise
    retained = sc.effects.intolerance_retained
    tau, qi, x, peg0 = po["tau"], po["q_intol"], po["x"], base["peg_visit0"]
    n, k = tau.shape
    known_common = po["common"] - noise["b"]
    rng = np.random.default_rng(seed)  # the oracle's draws, in its order
    zb = ns.responsiveness_sd * rng.standard_normal(inner)
    z1 = ns.stage1_sd * rng.standard_normal(inner)
    zg = np.sqrt(sc.pgic.generosity_sd**2 + sc.pgic.noise_sd**2) * rng.standard_normal(inner)
    ui = rng.random(inner)
    cuts = np.asarray(sc.pgic.cutpoints)  # decreasing: PGIC code 1 above the first cut
    total = np.zeros((n, k))
    for i in range(inner):
        intol = ui[i] < qi  # (n, K)
        t_eff = np.where(intol, retained * tau, tau)
        com = known_common + zb[i]
        g = t_eff + com[:, None] + z1[i] + zg[i]
        code = 1 + (g < cuts[:, None, None]).sum(axis=0)  # PGIC 1-7
        cat = np.where(intol, intol_cat, cat_of_pgic[code])
        known = (com + ns.persistence * z1[i])[:, None] * np.ones((1, k))
        p = _stage2_probabilities(model, tau, t_eff, cat, x, qi, known, peg0)
        allowed = model.eligible[np.arange(k)[None, :], cat, contra[:, None]]
        total += np.where(allowed, p, -np.inf).max(axis=-1)
    return total / inner


@pytest.mark.parametrize("scenario", ["amplifier-guitar", "mood"])
def test_oracle_inner_monte_carlo_equals_brute_force(monkeypatch, scenario):
    inner = 8
    args, _kwargs, out = _captured_oracle_inputs(monkeypatch, 120, inner, scenario)
    assert len(CATEGORIES) == 4
    brute = _brute_force_value(args, inner)
    elig1 = args[4]["eligible1"]
    # a contraindicated arm has no stage-2 option at all (-inf); every other arm has values
    assert np.isfinite(out["v24"][elig1]).all() and not elig1.all()
    # the sums over draws run in another order: equal to rounding
    np.testing.assert_allclose(out["v24"], brute, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(
        out["a1"], np.argmax(np.where(elig1, brute, -np.inf), axis=1))


def test_best_slots_reads_only_filled_slots_and_gives_minus_inf_without_options():
    model = SimpleNamespace(scenario=SimpleNamespace(noise=SimpleNamespace(  # what it reads
        stage2_sd=0.3, peg_measurement_sd=0.5)))

    ok = np.array([[0.2, 0.6, 99.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])
    bad = np.array([[0.1, 0.3, 99.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    q = np.array([[0.5, 0.2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    filled = np.array([2, 1, 0])  # row 0's third slot (99) is empty: never read
    rows = np.array([[0, 1], [2, 0]])
    known = np.array([[0.05], [-0.1]])
    peg0 = np.array([[6.0], [3.0]])
    got = _best_slots(model, rows, filled, ok, bad, q, known, peg0)
    s = np.sqrt(0.3**2 + (0.5 / peg0) ** 2)

    def p(r, j, cell):
        kn, s_ = known[cell], s[cell]
        return ((1 - q[r, j]) * ndtr((ok[r, j] + kn - 0.3) / s_)
                + q[r, j] * ndtr((bad[r, j] + kn - 0.3) / s_)).item()

    want = np.array([[max(p(0, 0, 0), p(0, 1, 0)), p(1, 0, 0)],
                     [-np.inf, max(p(0, 0, 1), p(0, 1, 1))]])
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] == _p_stage2(model, ok[0, 1] + 0.05, bad[0, 1] + 0.05, q[0, 1], 6.0)
