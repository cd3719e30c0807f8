"""Truth populations computed once per study by the client and read, verified, by every worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailor.design import shared
from tailor.design.execution import DaskBackend, LocalBackend, SerialBackend, run_study
from tailor.design.grid import Cell, expand_grid
from tailor.design.pipeline import (
    _compute_population,
    _population,
    _population_args,
    _population_key,
    _prepare,
)
from tests.design.helpers import best_counted

CELL = {"truth_n": 600, "oracle_inner": 8, "scenario": "amplifier-guitar", "n": 160}


def test_store_round_trip_and_refusals(tmp_path: Path) -> None:
    key = shared.key_of({"what": "test", "n": 1})
    assert key != shared.key_of({"what": "test", "n": 2})
    path = shared.write(tmp_path / "a.pkl", key, {"x": [1.5, 2.5]})
    assert shared.read(str(path), key) == {"x": [1.5, 2.5]}
    assert shared.read(path.read_bytes(), key) == {"x": [1.5, 2.5]}
    with pytest.raises(shared.SharedDataError, match="holds key"):
        shared.read(str(path), shared.key_of({"what": "other"}))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the payload
    path.write_bytes(bytes(data))
    with pytest.raises(shared.SharedDataError, match="checksum"):
        shared.read(str(path), key)
    path.write_bytes(b"garbage")
    with pytest.raises(shared.SharedDataError, match="not a tailor shared file"):
        shared.read(str(path), key)


def test_prepare_recomputes_a_corrupt_or_foreign_file(tmp_path: Path, capsys) -> None:
    key = shared.key_of({"what": "test", "n": 3})
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 42

    path = Path(shared.prepare(tmp_path, key, compute))
    assert shared.prepare(tmp_path, key, compute) == str(path) and len(calls) == 1  # reused
    path.write_bytes(path.read_bytes()[:-2])  # truncated
    shared.prepare(tmp_path, key, compute)
    assert len(calls) == 2 and "checksum mismatch" in capsys.readouterr().err
    assert shared.read(str(path), key) == 42


def test_load_falls_back_to_computing_and_counts_it(tmp_path: Path, capsys) -> None:
    key = shared.key_of({"what": "test", "n": 4})
    before = shared.computed()
    shared.install({key: str(tmp_path / "missing.pkl")})
    assert shared.load(key, lambda: 7) == 7
    assert shared.computed() == before + 1 and "cannot be read" in capsys.readouterr().err


def test_shared_population_equals_computed(tmp_path: Path) -> None:
    args = _population_args(CELL)
    key = _population_key(*args)
    files = _prepare([Cell.of(CELL)], tmp_path)
    assert list(files) == [key] and Path(files[key]).parent == tmp_path
    stored = shared.read(files[key], key)
    here = _compute_population(*args)  # what every process computed before the store
    for name in ("participants", "values", "baseline", "history", "modifiers"):
        pd.testing.assert_frame_equal(getattr(stored.truth, name), getattr(here.truth, name))
    assert stored.truth.arrays.keys() == here.truth.arrays.keys()
    for name, arr in here.truth.arrays.items():
        np.testing.assert_array_equal(stored.truth.arrays[name], arr)
    assert (stored.static, stored.oracle, stored.randomized) == (here.static, here.oracle,
                                                                   here.randomized)
    assert _population(*args).static == here.static  # the replicate's route: read the file
    # another scenario, size or effect is another key; truth_n 0 needs no file
    assert _population_key(*_population_args({**CELL, "truth_n": 601})) != key
    assert _population_key(*_population_args({**CELL, "effect": 0.5})) != key
    assert _prepare([Cell.of({**CELL, "truth_n": 0})], tmp_path / "none") == {}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    cells = [Cell.of(CELL)]
    ref = run_study(best_counted, cells, replicates=2, seed=19, backend=SerialBackend()).results
    return ref.drop(columns="computed")


def test_pool_reads_the_shared_truth_and_never_recomputes(reference, tmp_path: Path) -> None:
    backend = LocalBackend(2)
    try:
        study = run_study(best_counted, [Cell.of(CELL)], replicates=2, seed=19, batch_size=1,
                          backend=backend, checkpoint=tmp_path / "ck.jsonl")
    finally:
        backend.close()
    assert (study.results["computed"] == 0).all()
    pd.testing.assert_frame_equal(study.results.drop(columns="computed"), reference)
    assert len(list((tmp_path / "shared").glob("*.pkl"))) == 1


def test_dask_receives_the_shared_truth_and_never_recomputes(reference) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        backend = DaskBackend(cluster.scheduler_address)
        try:
            study = run_study(best_counted, [Cell.of(CELL)], replicates=2, seed=19,
                              batch_size=1, backend=backend)
        finally:
            backend.close()
    assert (study.results["computed"] == 0).all()
    pd.testing.assert_frame_equal(study.results.drop(columns="computed"), reference)


def test_grid_of_cells_shares_one_population_per_scenario(tmp_path: Path) -> None:
    fixed = {k: v for k, v in CELL.items() if k != "n"}
    cells = expand_grid(fixed, n=[160, 200])  # two N, one population
    assert len(_prepare(cells, tmp_path)) == 1


def test_invalid_cells_are_left_to_their_replicates(tmp_path: Path) -> None:
    """A cell the pipeline rejects gets no population; its replicates record the error."""
    bad = [Cell.of({**CELL, "effect": 99.0}), Cell.of({**CELL, "scenario": "no-such-world"})]
    assert _prepare(bad, tmp_path) == {}
    study = run_study(best_counted, bad[:1], replicates=1, seed=1, backend=SerialBackend())
    assert study.failed == 1 and "effect" in study.results["error"][0]
