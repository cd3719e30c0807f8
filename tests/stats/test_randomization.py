"""The allocation engine: BEST's fixture, invariants, and agreement with a slow reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailor.exceptions import AllocationError
from tailor.stats.randomization import (
    BlockState,
    Draws,
    MinimizationState,
    minimization,
    permuted_block,
    simple,
)

from .reference_minimization import reference_allocate

ARMS = ["ACT", "DUL", "EBEM", "ESC"]
FACTORS = ["pain", "opioid", "depress", "pheno"]


def test_reproduces_all_738_assignments_of_the_best_fixture(reference_data):
    """The BEST trial's released package fixture (shared/reference-data/best_stage1rand)."""
    df = pd.read_csv(reference_data / "best_stage1rand" / "expected_sim1.csv")
    names = {"act": "ACT", "dulox": "DUL", "ebem": "EBEM", "esc": "ESC"}
    state = MinimizationState(FACTORS)
    got = []
    for r in df.itertuples():
        eligible = [a for a, c in zip(ARMS, ("act_elig_w0", "dulox_elig_w0", "ebem_elig_w0",
                                             "esc_elig_w0"), strict=True) if getattr(r, c) == 1]
        levels = {f: getattr(r, f) for f in FACTORS}
        a = minimization(state, options=ARMS, eligible=eligible, levels=levels,
                         draws=Draws(r.u1, r.u2, r.u3), theta=2 / 3, omega=1.0)
        state.add(a.option, levels)
        got.append(a.option)
    expected = [names[x] for x in df["stage1trt"]]
    assert len(got) == 738
    assert got == expected


participant = st.fixed_dictionaries({
    "levels": st.fixed_dictionaries({f: st.integers(0, 1) for f in FACTORS}),
    "contra": st.sampled_from([None, None, "DUL", "ACT", "EBEM", "ESC"]),
    "u": st.tuples(*(st.floats(0, 1, exclude_max=True) for _ in range(3))),
})


@given(seq=st.lists(participant, min_size=1, max_size=40),
       theta=st.sampled_from([2 / 3, 0.5, 0.8, 1.0]),
       omega=st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=4, max_size=4))
def test_fast_kernel_agrees_with_slow_reference(seq, theta, omega):
    state = MinimizationState(FACTORS)
    history = []
    th = dict.fromkeys(ARMS, theta)
    om = dict(zip(ARMS, omega, strict=True))
    for p in seq:
        eligible = [a for a in ARMS if a != p["contra"]]
        a = minimization(state, options=ARMS, eligible=eligible, levels=p["levels"],
                         draws=Draws(*p["u"]), theta=th, omega=om)
        ref_arm, ref_min, ref_prob = reference_allocate(history, p["levels"], eligible, ARMS,
                                                        th, om, *p["u"])
        assert a.option == ref_arm
        assert a.minimizer == ref_min
        for arm in ARMS:
            assert a.probabilities[arm] == pytest.approx(float(ref_prob[arm]), abs=1e-12)
        state.add(a.option, p["levels"])
        history.append((a.option, p["levels"]))


@given(seq=st.lists(participant, min_size=1, max_size=30))
def test_invariants(seq):
    state = MinimizationState(FACTORS)
    history = []
    for p in seq:
        eligible = [a for a in ARMS if a != p["contra"]]
        a = minimization(state, options=ARMS, eligible=eligible, levels=p["levels"],
                         draws=Draws(*p["u"]))
        # never an ineligible arm; probabilities sum to 1 and are 0 off the eligible set
        assert a.option in eligible
        assert sum(a.probabilities.values()) == pytest.approx(1.0)
        assert sum(a.conditional_probabilities.values()) == pytest.approx(1.0)
        assert all(a.probabilities[x] == 0 for x in ARMS if x not in eligible)
        assert a.probabilities[a.option] > 0
        # the probabilities are the ones used: with the minimizer, the conditional ones
        if a.minimizer is not None:
            assert a.conditional_probabilities[a.minimizer] == pytest.approx(2 / 3)
        state.add(a.option, p["levels"])
        history.append((a.option, p["levels"]))
    # the state equals a recomputation from the history
    assert MinimizationState.from_history(FACTORS, history).snapshot() == state.snapshot()


@given(u=st.floats(0, 1, exclude_max=True), contra=st.sampled_from([None, "DUL", "ESC"]))
def test_first_participant_is_uniform_over_eligible_arms(u, contra):
    eligible = [a for a in ARMS if a != contra]
    a = minimization(MinimizationState(FACTORS), options=ARMS, eligible=eligible,
                     levels=dict.fromkeys(FACTORS, 0), draws=Draws(u, 0.99, 0.99))
    assert a.first and a.minimizer is None
    assert a.option == eligible[int(u * len(eligible))]
    assert all(a.probabilities[x] == pytest.approx(1 / len(eligible)) for x in eligible)


def _state_with_unique_minimizer() -> MinimizationState:
    state = MinimizationState(FACTORS)
    lv = dict.fromkeys(FACTORS, 1)
    for arm in ["DUL", "EBEM", "ESC"]:  # ACT is now the unique minimizer for this profile
        state.add(arm, lv)
    return state


def test_four_eligible_gets_two_thirds_versus_one_ninth():
    a = minimization(_state_with_unique_minimizer(), options=ARMS, eligible=ARMS,
                     levels=dict.fromkeys(FACTORS, 1), draws=Draws(0.5, 0.1, 0.5))
    assert a.minimizer == "ACT" and a.option == "ACT"
    assert a.probabilities["ACT"] == pytest.approx(2 / 3)
    for arm in ["DUL", "EBEM", "ESC"]:
        assert a.probabilities[arm] == pytest.approx(1 / 9)


def test_three_eligible_gets_two_thirds_versus_one_sixth():
    a = minimization(_state_with_unique_minimizer(), options=ARMS, eligible=["ACT", "EBEM", "ESC"],
                     levels=dict.fromkeys(FACTORS, 1), draws=Draws(0.5, 0.9, 0.6))
    assert a.probabilities["ACT"] == pytest.approx(2 / 3)
    assert a.probabilities["EBEM"] == pytest.approx(1 / 6)
    assert a.probabilities["ESC"] == pytest.approx(1 / 6)
    assert a.probabilities["DUL"] == 0
    # u2 = 0.9 > 2/3: u3 = 0.6 falls in the second of the two 1/2-intervals (EBEM, ESC)
    assert a.option == "ESC"


def test_imbalance_scores_are_reported_for_every_arm():
    a = minimization(_state_with_unique_minimizer(), options=ARMS, eligible=ARMS,
                     levels=dict.fromkeys(FACTORS, 1), draws=Draws(0.5, 0.1, 0.5))
    # adding to ACT evens every factor (range 0); adding elsewhere gives range 2 -1 ... = 2 each
    assert a.imbalance == {"ACT": 0.0, "DUL": 8.0, "EBEM": 8.0, "ESC": 8.0}


def test_tied_minimizers_average_into_marginal_probabilities():
    state = MinimizationState(FACTORS)
    state.add("ACT", dict.fromkeys(FACTORS, 0))
    a = minimization(state, options=ARMS, eligible=ARMS, levels=dict.fromkeys(FACTORS, 1),
                     draws=Draws(0.0, 0.0, 0.0))
    # a different profile: every arm ties; each arm has 1/4 * 2/3 + 3/4 * 1/9 = 1/4
    assert all(a.probabilities[x] == pytest.approx(0.25) for x in ARMS)
    assert a.conditional_probabilities["ACT"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("draws", [(1.0, 0.1, 0.1), (-0.1, 0.1, 0.1), (float("nan"), 0, 0)])
def test_draws_outside_unit_interval_are_rejected(draws):
    with pytest.raises(AllocationError, match="must be a number in"):
        Draws(*draws)


def test_no_eligible_option_is_an_error():
    with pytest.raises(AllocationError, match="eligible for none"):
        minimization(MinimizationState(FACTORS), options=ARMS, eligible=[],
                     levels=dict.fromkeys(FACTORS, 0), draws=Draws(0.1, 0.1, 0.1))


def test_permuted_blocks_balance_each_completed_block():
    state = BlockState()
    rng = np.random.default_rng(3)
    got = []
    for _ in range(24):
        a = permuted_block(state, stratum="s", options=ARMS, eligible=ARMS,
                           block_multiples=[1, 2], draws=Draws.from_rng(rng))
        assert sum(a.probabilities.values()) == pytest.approx(1.0)
        got.append(a.option)
        if not state.open["s|ACT/DUL/EBEM/ESC"]:
            counts = pd.Series(got).value_counts()
            assert counts.nunique() == 1  # every arm equally often at each block's end
    assert set(got) == set(ARMS)


@given(u=st.floats(0, 1, exclude_max=True))
def test_simple_randomization_follows_weights(u):
    a = simple(options=ARMS, eligible=["ACT", "EBEM"], draws=Draws(u, 0, 0),
               omega={"ACT": 1, "EBEM": 3, "DUL": 1, "ESC": 1})
    assert a.probabilities == {"ACT": 0.25, "DUL": 0.0, "EBEM": 0.75, "ESC": 0.0}
    assert a.option == ("ACT" if u < 0.25 else "EBEM")
