"""Human labels of the analysis report (tailor.dtr.labels): headers, tree rules, domains."""

from __future__ import annotations

import pandas as pd

from tailor.dtr.analysis_report import regime_in_words
from tailor.dtr.labels import (
    column_label,
    domain_label,
    readable_columns,
    term_label,
    text_labelled,
    variable_label,
    variables_label,
)


def test_a_tree_rule_reads_as_words():
    tree = {"leaf": False, "n": 100, "feature": "promis_fatigue_t", "kind": "continuous",
            "threshold": 60.7123,
            "left": {"leaf": True, "n": 60, "action": "EBEM"},
            "right": {"leaf": False, "n": 40, "feature": "sex", "kind": "categorical",
                      "level": "F",
                      "left": {"leaf": True, "n": 25, "action": "DUL"},
                      "right": {"leaf": True, "n": 15, "action": "ACT"}}}
    rules = regime_in_words(tree)
    assert rules[0].startswith("If PROMIS fatigue T-score <= 60.7: start EBEM (n = 60)")
    assert rules[1].startswith("If PROMIS fatigue T-score > 60.7 and Sex = F: start DUL")
    assert rules[2].startswith("If PROMIS fatigue T-score > 60.7 and Sex != F: start ACT")
    assert not any("promis_fatigue_t" in r for r in rules)


def test_variables_domains_and_terms_are_labelled():
    assert variable_label("promis_sleep_t") == "PROMIS sleep disturbance T-score"
    assert variable_label("pcs_total") == "Pain Catastrophizing Scale"
    assert variable_label("peg_baseline") == "Baseline PEG"
    assert variable_label("a_new_score") == "A new score"  # unknown: its words, no underscore
    assert variables_label("promis_sleep_t, promis_fatigue_t") == (
        "PROMIS sleep disturbance T-score, PROMIS fatigue T-score")
    assert domain_label("pain_spread_nociplastic") == "Pain spread / nociplastic"
    assert domain_label("physical_function") == "Physical function"
    assert term_label("A1[DUL]:amplifier_index__rcs1") == (
        "A1[DUL] x Amplifier (nociplastic) index (spline 1)")
    assert text_labelled("week 12: peg_w6 + intolerance_s1") == (
        "week 12: Week-6 PEG + Intolerance before week 12")
    assert text_labelled("96 of 600 participants have no peg_w24; week 12: peg_baseline + "
                         "age") == ("96 of 600 participants have no Week-24 PEG; week 12: "
                                    "Baseline PEG + age")


def test_table_headers_are_human_and_the_values_unchanged():
    pm = pd.DataFrame({"option": ["ACT", "EBEM"], "n": [3, 4],
                       "mean_amplifier_index": [0.75, -0.8], "mean_sex": ["M (60%)", "F (53%)"],
                       "benefit_lower": [0.25, 0.32], "benefit_upper": [1.0, 0.97]})
    out = readable_columns(pm)
    assert list(out.columns) == ["First treatment", "Participants",
                                 "Mean amplifier (nociplastic) index",
                                 "Sex: most common (share)", "Benefit: lower 95%",
                                 "Benefit: upper 95%"]
    assert out.to_numpy().tolist() == pm.to_numpy().tolist() and "mean_sex" in pm
    stage2 = ["week24_observed", "week24_responders", "mean_peg_w24"]
    assert [column_label(c) for c in stage2] == ["Week-24 PEG observed",
                                                 "Share responding, week 24",
                                                 "Mean week-24 PEG"]
    assert column_label("mean_promis_sleep_t") == "Mean PROMIS sleep disturbance T-score"
    assert column_label("mean_pcs_total") == "Mean Pain Catastrophizing Scale"
    assert column_label("mean_peg_baseline") == "Mean baseline PEG"
