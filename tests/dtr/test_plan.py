"""The analysis plan as data: the built-in plan, hashes, YAML-path errors, missing domains."""

from __future__ import annotations

import pytest
import yaml

from tailor.dtr.plan import builtin_plans, load_plan, parse_plan, resolve_plan
from tailor.exceptions import PlanError, ProtocolError
from tests.dtr.best_like import best_like


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(builtin_plans()["best"].read_text())


def test_the_builtin_plan_loads_and_is_hash_identified(raw):
    spec = load_plan("best")
    assert spec.name == "best" and "mood" in spec.candidates
    assert spec.candidates["pain_spread_nociplastic"].required
    assert len(spec.content_hash) == 64
    assert parse_plan(dict(raw)).content_hash == spec.content_hash  # layout does not count
    changed = dict(raw, seed=2)
    assert parse_plan(changed).content_hash != spec.content_hash


def test_bad_plans_name_the_yaml_path(raw):
    bad = dict(raw, methods={**raw["methods"], "tree": {"depth": 7, "min_nod_size": 3}})
    with pytest.raises(PlanError) as info:
        parse_plan(bad, source="my-plan.yaml")
    text = str(info.value)
    assert "invalid analysis plan my-plan.yaml" in text
    assert "methods.tree.depth" in text and "(got 7)" in text
    assert "methods.tree.min_nod_size" in text and "Extra inputs" in text
    assert isinstance(info.value, ProtocolError | ValueError)
    with pytest.raises(PlanError, match=r"candidates\.mood\.variables"):
        parse_plan(dict(raw, candidates={**raw["candidates"], "mood": {"variables": []}}))
    with pytest.raises(PlanError, match="not valid YAML"):
        parse_plan("name: [unclosed")
    with pytest.raises(PlanError, match="no plan file or built-in plan named 'nope'"):
        load_plan("nope")


def test_missing_domains_and_terms_give_clear_errors_or_notes(raw):
    data = best_like(120, seed=1)
    plan, notes = resolve_plan(load_plan("best"), data, bootstrap=60)
    assert plan.tree_features[0] == "amplifier_index" and plan.bootstrap == 60
    assert dict(plan.domains)["pain_spread_nociplastic"] == ("amplifier_index",)
    assert any("domain 'mood' not examined" in n for n in notes)
    assert any("phenotype-category regime is not fitted" in n for n in notes)
    assert plan.cluster is None and plan.plan_file_hash == load_plan("best").content_hash
    with pytest.raises(PlanError) as info:
        resolve_plan(load_plan("best"), data.drop(columns=["amplifier_index"]))
    text = str(info.value)
    assert "candidates.pain_spread_nociplastic.variables" in text and "required" in text
    assert "working_model.stage1.tailoring[0]: 'amplifier_index' is not a varying column" \
        in text


def test_a_plan_file_is_read_again_when_it_changes(raw, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    first = load_plan(path)
    assert load_plan(path) is first  # parsed once while the file is unchanged
    path.write_text(yaml.safe_dump(dict(raw, seed=12345)))
    changed = load_plan(path)
    assert changed.seed == 12345 and changed.content_hash != first.content_hash
