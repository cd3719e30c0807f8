"""The protocol file: schema, cross-references, errors with YAML paths, content hash."""

from __future__ import annotations

import copy

import pytest
import yaml

from tailor.exceptions import ProtocolError
from tailor.protocol import builtin_protocols, load_protocol, parse_protocol


@pytest.fixture
def best_dict():
    return yaml.safe_load(builtin_protocols()["best"].read_text())


def test_best_loads_with_its_design(best):
    assert best.arm_codes == ("ESC", "ACT", "EBEM", "DUL")
    assert best.allocation_order == ["ACT", "DUL", "EBEM", "ESC"]
    assert [v.week for v in best.visits] == [0, 6, 12, 18, 24, 36]
    s1 = best.stage(1).randomization
    assert [f.name for f in s1.factors] == ["pain_ge5", "opioid", "depression", "phenotype"]
    assert s1.theta_for("DUL") == pytest.approx(2 / 3)
    assert best.stage(2).options == {"excellent": ["continue"], "good": ["augment"],
                                     "medium": ["augment", "switch"], "bad": ["switch"]}
    assert best.default_responder is not None and best.default_responder.id == "peg_30pct"


def test_content_hash_ignores_formatting_but_not_meaning(best, best_dict):
    reformatted = parse_protocol(yaml.safe_dump(best_dict, sort_keys=True))
    assert reformatted.content_hash == best.content_hash
    changed = copy.deepcopy(best_dict)
    changed["stages"][0]["randomization"]["theta"]["DUL"] = "3/4"
    assert parse_protocol(changed).content_hash != best.content_hash


def _errors(data) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(data)
    return [f"{path}: {msg}" for path, msg in info.value.errors]


def test_unknown_action_names_its_yaml_path(best_dict):
    best_dict["stages"][1]["options"]["medium"] = ["augment", "swap"]
    assert "stages[1].options.medium: unknown action 'swap' (allowed: continue, augment, switch)" \
        in _errors(best_dict)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["arms"][0].update(colour="red"), "arms[0].colour: unknown key"),
    (lambda d: d["stages"][0]["randomization"]["factors"][0]["rule"].update(field="peg"),
     "stages[0].randomization.factors[0].rule: unknown field 'peg'"),
    (lambda d: d["eligibility"]["inclusion"][0]["rule"].update(op="=~"),
     "eligibility.inclusion[0].rule.op: Input should be"),
    (lambda d: d["eligibility"]["contraindications"].update(XYZ=[]),
     "eligibility.contraindications.XYZ: unknown arm 'XYZ'"),
    (lambda d: d["stages"][1]["response"]["categories"].update(bad=[4, 5, 6]),
     "stages[1].response.categories: PGIC codes [7] map to no category"),
    (lambda d: d["stages"][1]["rules"].update(no_switch_to=["ESK"]),
     "stages[1].rules.no_switch_to: unknown arm 'ESK'"),
    (lambda d: d["stages"][0].update(decision_visit="week99"),
     "stages[0].decision_visit: unknown visit 'week99'"),
    (lambda d: d["stages"][0]["randomization"]["theta"].update(ACT="5/3"),
     "stages[0].randomization.theta.ACT: Input should be less than or equal to 1"),
    (lambda d: d.update(allocation_order=["ACT", "DUL", "EBEM"]),
     "allocation_order: must list every arm exactly once"),
    (lambda d: d["eligibility"]["inclusion"][0]["rule"].update(value="eighteen"),
     "eligibility.inclusion[0].rule: field 'age' is numeric; got 'eighteen'"),
    (lambda d: d["stages"][0]["randomization"]["factors"][3]["rule"].update(value="amplifier"),
     "'amplifier' is not a category of field 'phenotype_label'"),
    (lambda d: d["eligibility"]["inclusion"][0].update(
        rule={"all": [{"field": "age", "op": ">=", "value": 18}, {"field": "x", "op": "==",
                                                                  "value": 1}]}),
     "eligibility.inclusion[0].rule: unknown field 'x'"),
    (lambda d: d.pop("arms"), "arms: required key is missing"),
])
def test_bad_protocols_get_clear_errors(best_dict, edit, expected):
    edit(best_dict)
    errors = _errors(best_dict)
    assert any(e.startswith(expected) or expected in e for e in errors), errors


def test_not_yaml_and_missing_file():
    with pytest.raises(ProtocolError, match="not valid YAML"):
        parse_protocol("arms: [unclosed")
    with pytest.raises(ProtocolError, match="top level"):
        parse_protocol("- a list")
    with pytest.raises(ProtocolError, match="no protocol file or built-in protocol named 'nope'"):
        load_protocol("nope")


def test_instrument_roles_default_to_best_and_keep_the_hash(best, best_dict):
    roles = best.instrument_roles
    assert (roles.pain_score, roles.pain_score_derived) == ("PEG", "PEGSCORE")
    assert (roles.global_impression, roles.global_impression_derived) == ("PGIC", "PGIC")
    absent = copy.deepcopy(best_dict)
    absent.pop("instrument_roles", None)
    assert parse_protocol(absent).instrument_roles == roles
    assert parse_protocol(absent).content_hash == best.content_hash  # BEST's defaults
    other = copy.deepcopy(best_dict)
    other["instrument_roles"] = {"pain_score_derived": "PAINSCORE"}
    changed = parse_protocol(other)
    assert changed.instrument_roles.pain_score_derived == "PAINSCORE"
    assert changed.instrument_roles.pain_score == "PEG"
    assert changed.content_hash != best.content_hash


@pytest.mark.parametrize(("roles", "expected"), [
    ({"pain_score": "peg"}, "instrument_roles.pain_score: String should match pattern"),
    ({"pain_score": "PGIC"}, "instrument_roles.global_impression: 'PGIC' is already the "
                             "pain_score"),
    ({"pain_score": "NRS"}, "instrument_roles.pain_score: 'NRS' is not assessed at any visit"),
    ({"global_impression": "PGI"}, "instrument_roles.global_impression: 'PGI' is not assessed"),
    ({"pain": "PEG"}, "instrument_roles.pain: unknown key"),
])
def test_bad_instrument_roles_name_their_yaml_path(best_dict, roles, expected):
    best_dict["instrument_roles"] = roles
    errors = _errors(best_dict)
    assert any(e.startswith(expected) for e in errors), errors
