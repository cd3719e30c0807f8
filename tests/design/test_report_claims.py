"""The report's own claims in the validation pipeline (issues 13/14): the primary contrast
(deployed regime minus the best single treatment) and the per-domain heterogeneity tests, as
``tailor analyze`` computes and words them, scored against the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailor.design.pipeline import (
    METRICS,
    _named_domains,
    best_trial_pipeline,
    design_scenario,
    primary_outcome,
    report_contrast,
)
from tailor.design.validation import METHOD_METRICS, TARGETS
from tailor.dtr.analysis import analyze, censoring_weights, default_plan
from tailor.dtr.clusters import cluster_multipliers
from tailor.dtr.data import fold_partition
from tailor.protocol import load_protocol
from tailor.stats.simulation import simulate_trial

TINY = {"truth_n": 1500, "oracle_inner": 16}
NEW = ("report_claim", "report_p", "report_contrast", "report_contrast_covered",
       "best_single_covered", "report_discovery_power", "report_false_discovery")


def test_the_report_metrics_exist_and_the_claims_are_zero_or_one():
    assert set(NEW) <= set(METRICS)
    for world in ("strict-null", "mood"):
        out = best_trial_pipeline(TINY | {"scenario": world}, np.random.SeedSequence(5))
        assert not out.failures, out.failures
        for m in ("report_claim", "report_contrast_covered", "best_single_covered",
                  "report_false_discovery"):
            assert out[m] in (0.0, 1.0), (world, m, out[m])
        assert 0.0 <= out["report_p"] <= 1.0
        assert abs(out["report_contrast"]) < 0.5  # a difference of responder rates
        power = out["report_discovery_power"]
        # no true modifier in the strict null: power undefined; mood: a share of one domain
        assert math.isnan(power) if world == "strict-null" else power in (0.0, 1.0)


def test_the_matrix_scores_the_report_as_a_method():
    report = METHOD_METRICS["report (primary contrast, domain tests)"]
    assert report["claim rate"] == "report_claim"
    assert report["false discovery (FWER)"] == "report_false_discovery"
    assert set(report.values()) <= set(METRICS)
    for label in ("value coverage (contrast)", "value coverage (best single)"):
        (t,) = [t for t in TARGETS if t.metric == label]
        assert (t.lo, t.hi, t.worlds) == (0.93, 0.97, "all")


def test_named_domains_map_plan_domains_to_the_catalogue():
    variables = {"imaging_biomechanics_qst": ("lumbar_rom", "modic"),
                 "mood": ("promis_depression_t",), "opioid_use": ("opioid",)}
    # imaging is true: the rejection is explained, biomechanics is not named with it
    assert _named_domains(["imaging_biomechanics_qst"], variables, {"imaging"}) == {"imaging"}
    # nothing true in it: every domain of its variables is named (a false discovery)
    assert _named_domains(["imaging_biomechanics_qst", "opioid_use"], variables, {"mood"}) == {
        "imaging", "biomechanics", "opioid"}
    assert _named_domains([], variables, {"mood"}) == set()


def test_a_strict_null_claim_is_the_one_analyze_reports():
    """``tailor analyze`` on a strict-null trial and :func:`report_contrast` on the same data,
    fold partition and bootstrap multipliers (drawn as analyze draws them from its seed) give
    the same primary contrast, interval, one-sided bound and claim."""
    assert primary_outcome() == "responder"  # plans/best.yaml primary_contrast.outcome
    proto = load_protocol("best")
    res = simulate_trial(proto, design_scenario("strict-null"), participants=400, seed=11,
                         items=False, engine=False, scoring=None, long=False, log=False,
                         paths=False, oracle_inner=4)
    wide = res.wide
    plan = default_plan(wide, proto, folds=3, bootstrap=40)  # the tree cross-fits within
    result = analyze(wide, proto, plan)
    primary = result.primary("responder")
    # analyze's random stream: the Q-learning bootstrap's seed, then the partition, then the
    # cluster multipliers (tailor.dtr.analysis._step_qlearning, _step_crossfit_setup)
    rng = np.random.default_rng(plan.seed)
    rng.integers(2**31)
    fold = fold_partition(len(wide), plan.folds, rng)
    clusters = wide[plan.cluster].astype(str).to_numpy()
    mult = cluster_multipliers(clusters, len(wide), plan.bootstrap, rng)
    w, _ = censoring_weights(wide, plan)
    c, best = report_contrast(wide, proto, plan, w, fold, mult, "responder")
    got = {"estimate": c.estimate, "lower": c.lower, "upper": c.upper,
           "one_sided_bound": c.bound, "p_one_sided": c.p_one_sided}
    for k, v in got.items():
        assert v == pytest.approx(primary[k], rel=1e-9, abs=1e-12), k
    assert c.shows_benefit == primary["shows_benefit"]
    assert best.chosen == primary["chosen_best"]
