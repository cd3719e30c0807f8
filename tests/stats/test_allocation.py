"""Protocol-level allocation (both stages) and replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailor.exceptions import InputFileError
from tailor.stats.allocation import allocate, new_stage_state, replay, stage_option_sets
from tailor.stats.randomization import Draws

ARMS = ["ESC", "ACT", "EBEM", "DUL"]


def _fixture_as_replay_input(reference_data) -> pd.DataFrame:
    df = pd.read_csv(reference_data / "best_stage1rand" / "expected_sim1.csv")
    return pd.DataFrame({
        "participant_id": df["subjectid"].astype(str), "pain_ge5": df["pain"],
        "opioid": df["opioid"], "depression": df["depress"], "phenotype": df["pheno"],
        "eligible_ESC": df["esc_elig_w0"], "eligible_ACT": df["act_elig_w0"],
        "eligible_EBEM": df["ebem_elig_w0"], "eligible_DUL": df["dulox_elig_w0"],
        "u1": df["u1"], "u2": df["u2"], "u3": df["u3"],
        "theta_ACT": df["rpt1a"], "theta_DUL": df["rpt2a"], "theta_EBEM": df["rpt3a"],
        "theta_ESC": df["rpt4a"], "omega_ACT": df["rpt5a"], "omega_DUL": df["rpt6a"],
        "omega_EBEM": df["rpt7a"], "omega_ESC": df["rpt8a"],
    }), df["stage1trt"].map({"act": "ACT", "dulox": "DUL", "ebem": "EBEM", "esc": "ESC"})


def test_replay_reproduces_the_best_fixture_through_the_protocol(best, reference_data):
    table, expected = _fixture_as_replay_input(reference_data)
    out = replay(best, 1, table)
    assert (out["arm"] == expected).all()
    probs = out[[f"p_{a}" for a in ARMS]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (out.loc[out["eligible_DUL"] == 0, "p_DUL"] == 0).all()


def test_replay_with_a_seed_writes_its_draws_and_replays_identically(best, reference_data):
    table, _ = _fixture_as_replay_input(reference_data)
    bare = table.drop(columns=["u1", "u2", "u3"]).head(200)
    first = replay(best, 1, bare, seed=7)
    again = replay(best, 1, first)  # the written draws reproduce the sequence
    assert (first["arm"] == again["arm"]).all()
    assert (replay(best, 1, bare, seed=7)["arm"] == first["arm"]).all()
    assert not (replay(best, 1, bare, seed=8)["arm"] == first["arm"]).all()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.drop(columns=["phenotype"]), "missing column(s): phenotype"),
    (lambda t: t.assign(opioid=t["opioid"].where(t.index != 4, 2)), "row 5, column 'opioid': "
                                                                    "must be 0 or 1; got 2"),
    (lambda t: t.assign(u2=t["u2"].where(t.index != 0, 1.5)), "row 1, column 'u2': must be a "
                                                              "number in [0, 1)"),
    (lambda t: t.drop(columns=["u3"]), "give all of u1, u2, u3 or none"),
    (lambda t: t.assign(theta_ACT="x"), "column 'theta_ACT': must be a probability"),
    (lambda t: t.assign(participant_id="7"), "participant_id '7' appears twice"),
    (lambda t: t.assign(eligible_ESC=0, eligible_ACT=0, eligible_EBEM=0, eligible_DUL=0),
     "no eligible option"),
])
def test_bad_replay_inputs_name_row_column_and_rule(best, reference_data, edit, message):
    table, _ = _fixture_as_replay_input(reference_data)
    with pytest.raises(InputFileError) as info:
        replay(best, 1, edit(table.head(10)), source="in.csv")
    assert message in str(info.value)


def _stage2_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arms = rng.choice(ARMS, n)
    contra = rng.choice([None, "DUL", "ACT"], n, p=[0.5, 0.45, 0.05])
    contra = np.where(contra == arms, None, contra)
    return pd.DataFrame({
        "participant_id": [f"P{i:04d}" for i in range(n)], "stage1_arm": arms,
        "response_category": rng.choice(["excellent", "good", "medium", "bad"], n,
                                        p=[0.125, 0.36, 0.265, 0.25]),
        **{f"eligible_{a}": (contra != a).astype(int) for a in ARMS},
    })


def test_stage_two_replay_respects_options_and_probabilities(best):
    out = replay(best, 2, _stage2_table(400, 1), seed=3)
    for r in out.itertuples():
        contra = [a for a in ARMS if getattr(r, f"eligible_{a}") == 0]
        s = stage_option_sets(best, 2, eligible_arms=[a for a in ARMS if a not in contra],
                              stage1_arm=r.stage1_arm, category=r.response_category)
        assert r.option in s.eligible
        assert r.action == s.actions[r.option]
        p = {c[2:]: getattr(out, c)[r.Index] for c in out.columns if c.startswith("p_")}
        assert sum(p.values()) == pytest.approx(1.0)
        assert p[r.option] > 0
        assert all(v == 0 for k, v in p.items() if k not in s.eligible)
    excellent = out[out["response_category"] == "excellent"]
    assert (excellent["option"] == excellent["stage1_arm"]).all()
    assert (excellent["randomized"] == 0).all()


def test_stage_two_replay_errors_name_the_row(best):
    table = _stage2_table(5, 2)
    table.loc[3, "response_category"] = "great"
    with pytest.raises(InputFileError, match="row 4, column 'response_category'"):
        replay(best, 2, table, seed=1)


@given(seed=st.integers(0, 2**32 - 1))
def test_stage_two_minimization_balances_within_strata(best, seed):
    rng = np.random.default_rng(seed)
    state = new_stage_state(best, 2)
    counts: dict[str, int] = {}
    for _ in range(60):  # 60 ACT bad responders, all eligible for EBEM and DUL
        s = stage_option_sets(best, 2, eligible_arms=ARMS, stage1_arm="ACT", category="bad")
        a = allocate(best, state, s, {"stage1_arm": "ACT", "response_category": "bad"},
                     Draws.from_rng(rng))
        counts[a.option] = counts.get(a.option, 0) + 1
    assert set(counts) <= {"EBEM", "DUL"}
    assert abs(counts.get("EBEM", 0) - counts.get("DUL", 0)) <= 20
