"""The world generator: reproducible from the seed, valid scenario files, declared ranges."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tailor.cli import app
from tailor.exceptions import ScenarioError
from tailor.stats.scenarios import load_scenario
from tailor.stats.worlds import generate_worlds, load_ranges


def test_same_seed_same_worlds_other_seed_other_worlds():
    ranges = load_ranges()
    a, ma = generate_worlds(ranges, count=15, seed=3)
    b, mb = generate_worlds(ranges, count=15, seed=3)
    c, _ = generate_worlds(ranges, count=15, seed=4)
    assert a == b
    pd.testing.assert_frame_equal(ma, mb)
    assert a != c


def test_worlds_stay_within_the_declared_ranges():
    ranges = load_ranges()
    _, manifest = generate_worlds(ranges, count=40, seed=11)
    terms = manifest[~manifest["stage"].isin(["none"]) & (manifest["form"] != "random")]
    assert set(terms["variable"]) <= set(ranges.variables)
    # slopes are drawn in [0.04, 0.12] and only ever halved to fit the effect range
    assert (terms["slope"].abs() <= ranges.slope.max + 1e-9).all()
    assert (terms["slope"] < 0).any() and (terms["slope"] > 0).any()
    per_world = terms[terms["stage"] == "stage1"].groupby("world")["variable"].nunique()
    assert per_world.max() <= ranges.modifiers[1]
    assert set(terms["form"]) <= {"linear", "threshold", "interaction"}
    assert (manifest["stage"] == "none").any()  # some null worlds among 40 (10% each)


def test_cli_writes_loadable_scenarios(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "worlds", "--count", "6", "--seed", "2",
                                      "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "w").glob("world-*.yaml"))
    assert len(files) == 6
    manifest = pd.read_csv(tmp_path / "w" / "manifest.csv")
    for f in files:
        scen = load_scenario(f)
        mine = manifest[manifest["world"] == scen.name]
        declared = {(r.target, r.variable) for r in mine.itertuples() if r.stage == "stage1"
                    and r.form != "random"}
        got = {(arm, t.variable) for arm, eff in scen.effects.stage1.items()
               for t in eff.terms}
        assert got == declared
        assert all(e.amplifier == 0 and e.peripheral == 0 for e in scen.effects.stage1.values())


def test_bad_ranges_name_the_path(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"variables": ["phq9", "moood"]}), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"variables: unknown variable\(s\) \['moood'\]"):
        load_ranges(path)
    path.write_text(yaml.safe_dump({"variables": ["phq9"], "slope": {"min": 0.1}}),
                    encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"slope\.max: required key is missing|slope\.max"):
        load_ranges(path)
