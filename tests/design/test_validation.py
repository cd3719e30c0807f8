"""The validation matrix's scoring: true domains, discovery, targets and the heat map page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailor.design.pipeline import _discovery, _split_features, _true_domains
from tailor.design.validation import misses, render_html, validation_table
from tailor.stats.simulation import simulate_trial
from tailor.stats.variables import domain_of


@pytest.mark.parametrize(("world", "domains"), [
    ("amplifier-guitar", {"widespread", "imaging", "biomechanics"}),  # C and P (proxies)
    ("mood", {"mood"}), ("imaging", {"imaging", "biomechanics"}), ("opioid", {"opioid"}),
    ("strict-null", set()), ("stage2-only", set()),
])
def test_true_domains_of_library_worlds(world, domains):
    res = simulate_trial("best", world, participants=60, seed=1, engine=False, long=False,
                         scoring=None, oracle_inner=4)
    assert _true_domains(res.truth) == domains


def test_discovery_and_split_features():
    assert _discovery("t", {"mood", "pain"}, {"mood", "opioid"}) == {
        "t_discovery_power": 0.5, "t_false_discovery": 1.0}
    out = _discovery("t", set(), set())
    assert np.isnan(out["t_discovery_power"]) and out["t_false_discovery"] == 0.0
    tree = {"feature": "phq9", "left": {"action": "DUL"},
            "right": {"feature": "peg_baseline", "left": {"action": "ACT"},
                      "right": {"action": "EBEM"}}}
    assert _split_features(tree) == {"phq9", "peg_baseline"}
    assert {domain_of(f) for f in _split_features(tree)} == {"mood", "pain"}
    assert domain_of("sex") == "demographic" and domain_of("A1") is None


def _summary(rows):
    return pd.DataFrame(rows, columns=["scenario", "n", "metric", "mean", "mc_se", "n_ok"])


def test_validation_table_names_the_misses_and_renders_a_heat_map():
    summary = _summary([
        ("strict-null", 805, "interaction_reject", 0.20, 0.02, 200),  # claim rate: a miss
        ("strict-null", 805, "learned_covered", 0.95, 0.015, 200),  # met
        ("mood", 805, "gain_captured", 0.05, 0.02, 200),  # a miss (>= 0.6)
        ("mood", 805, "tree_gain_captured", 0.58, 0.02, 200),  # met within 2 MC SE
        ("mood", 400, "gain_captured", 0.01, 0.02, 200),  # n = 400: no target
        ("mood", 805, "interaction_reject", 0.9, 0.02, 200),  # claims: no target off-null
    ])
    table = validation_table(summary)
    got = table.set_index(["world", "n", "method", "metric"])["met"]
    assert got[("strict-null", 805, "Q-learning (flexible)", "claim rate")] is False
    assert got[("strict-null", 805, "Q-learning (flexible)", "value coverage")] is True
    assert got[("mood", 805, "Q-learning (flexible)", "gain captured (responder)")] is False
    assert got[("mood", 805, "policy tree (interpretable)", "gain captured (responder)")]
    assert got[("mood", 400, "Q-learning (flexible)", "gain captured (responder)")] is None
    assert got[("mood", 805, "Q-learning (flexible)", "claim rate")] is None
    named = misses(table)
    assert len(named) == 2 and any("strict-null" in m and "claim rate" in m for m in named)
    page = render_html(table, command="python benchmarks/bench_validation.py", replicates=200,
                       load="1.0")
    assert page.count("<h2>") == len(set(table["metric"])) + 1
    assert "class='miss'" in page and "bench_validation.py" in page


def test_wilson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    from tailor.design.validation import wilson

    for k, n in ((3, 4), (0, 4), (190, 200), (4, 4)):
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert wilson(k / n, n) == pytest.approx((lo, hi), abs=1e-3)


def test_generated_worlds_are_pooled_over_worlds_with_their_spread():
    from tailor.design.validation import pool_generated

    rows = [("mood", 805, "gain_captured", 0.05, 0.02, 200)]
    gains = [0.2, 0.4, 0.9]
    rows += [(f"world-000{i}", 805, "gain_captured", g, 0.05, 20) for i, g in enumerate(gains)]
    rows += [(f"world-000{i}", 805, "learned_covered", 0.80, 0.09, 20) for i in range(3)]
    table = validation_table(_summary(rows))
    # generated worlds carry only the every-world targets (coverage), not the >= 0.6 gain
    gen = table[table["world"].str.startswith("world-")]
    assert gen.loc[gen["metric"] == "gain captured (responder)", "met"].isna().all()
    pooled = pool_generated(table)
    assert not pooled["world"].str.startswith("world-").any()
    row = pooled[(pooled["world"] == "generated (3 worlds)")
                 & (pooled["metric"] == "gain captured (responder)")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(gains))
    assert row["mc_se"] == pytest.approx(np.std(gains, ddof=1) / np.sqrt(3))
    assert row["n_ok"] == 60 and row["met"] is None
    cov = pooled[(pooled["world"] == "generated (3 worlds)")
                 & (pooled["metric"] == "value coverage")].iloc[0]
    assert cov["met"] is False  # 0.80 over 60 replicates: Wilson upper bound < 0.93
    assert (pooled["world"] == "mood").sum() == len(table[table["world"] == "mood"])
    page = render_html(table, command="c", replicates=20, load="1.0")
    assert "generated (3 worlds)" in page and "world-0002" in page  # pooled map, full table
