from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailor.design.execution import LocalBackend, SerialBackend, run_study
from tailor.design.grid import expand_grid
from tailor.exceptions import ConflictError, ScenarioError
from tests.design.helpers import noisy

CELLS = expand_grid(n=[5, 50], mu=[0.0, 0.3])


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return run_study(noisy, CELLS, replicates=12, seed=11, backend=SerialBackend()).results


def test_process_pool_equals_serial(reference: pd.DataFrame, tmp_path: Path) -> None:
    backend = LocalBackend(2)
    try:
        study = run_study(noisy, CELLS, replicates=12, seed=11, backend=backend, batch_size=5,
                          checkpoint=tmp_path / "ck.jsonl")
    finally:
        backend.close()
    pd.testing.assert_frame_equal(study.results, reference)
    assert study.ran == 48 and study.resumed == 0 and study.workers == 2


def test_results_do_not_depend_on_batching_or_grid(reference: pd.DataFrame) -> None:
    one = run_study(noisy, CELLS[::-1], replicates=12, seed=11, backend=SerialBackend(),
                    batch_size=1).results
    pd.testing.assert_frame_equal(
        one.sort_values(["mu", "n", "replicate"]).reset_index(drop=True),
        reference.sort_values(["mu", "n", "replicate"]).reset_index(drop=True))
    fewer = run_study(noisy, CELLS, replicates=5, seed=11, backend=SerialBackend()).results
    pd.testing.assert_frame_equal(fewer, reference[reference["replicate"] < 5]
                                  .reset_index(drop=True))


def test_resume_after_interruption(reference: pd.DataFrame, tmp_path: Path) -> None:
    ck = tmp_path / "checkpoint.jsonl"

    class Stop(Exception):
        pass

    def stop_after(done: int, total: int) -> None:
        if done >= 17:
            raise Stop

    with pytest.raises(Stop):
        run_study(noisy, CELLS, replicates=12, seed=11, backend=SerialBackend(), batch_size=3,
                  checkpoint=ck, progress=stop_after)
    lines = ck.read_text().splitlines()
    assert json.loads(lines[0])["study"]["seed"] == 11
    assert 17 <= len(lines) - 1 < 48
    with ck.open("a") as fh:  # a torn write at the moment of the interruption
        fh.write('{"cell": "{\\"mu\\":0.3')
    study = run_study(noisy, CELLS, replicates=12, seed=11, backend=SerialBackend(),
                      checkpoint=ck)
    assert study.resumed == len(lines) - 1 and study.ran == 48 - study.resumed
    pd.testing.assert_frame_equal(study.results, reference)
    again = run_study(noisy, CELLS, replicates=12, seed=11, backend=SerialBackend(),
                      checkpoint=ck)
    assert again.ran == 0 and again.resumed == 48


def test_checkpoint_of_another_study_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck.jsonl"
    run_study(noisy, CELLS[:1], replicates=2, seed=1, backend=SerialBackend(), checkpoint=ck)
    with pytest.raises(ConflictError, match="seed=1"):
        run_study(noisy, CELLS[:1], replicates=2, seed=2, backend=SerialBackend(), checkpoint=ck)


def test_bad_arguments() -> None:
    with pytest.raises(ScenarioError):
        run_study(noisy, CELLS, replicates=0, seed=1, backend=SerialBackend())
    with pytest.raises(ScenarioError):
        run_study(noisy, [], replicates=1, seed=1, backend=SerialBackend())
    with pytest.raises(ScenarioError):
        run_study(noisy, CELLS + CELLS[:1], replicates=1, seed=1, backend=SerialBackend())
    with pytest.raises(ScenarioError):
        LocalBackend(0)


def test_worker_init_limits_thread_pools_already_started() -> None:
    """A spawned worker imports the parent's main module (and so numba, numpy) before the pool
    initializer runs; the initializer must still leave one thread per worker."""
    import os
    import subprocess
    import sys

    code = ("import numba, numpy\n"
            "from threadpoolctl import threadpool_info\n"
            "from tailor.design.execution import _worker_init\n"
            "_worker_init()\n"
            "print(numba.get_num_threads(), max(d['num_threads'] for d in threadpool_info()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert out.stdout.split() == ["1", "1"]


def test_failing_replicates_are_recorded_counted_and_not_rerun(tmp_path: Path) -> None:
    from tailor.design.summary import summarize
    from tests.design.helpers import flaky

    ck = tmp_path / "ck.jsonl"
    cells = expand_grid(n=[5], mu=[0.0, 0.3])
    study = run_study(flaky, cells, replicates=6, seed=3, backend=SerialBackend(),
                      batch_size=2, checkpoint=ck)
    assert study.failed == 4  # replicates 1 and 4 of both cells
    bad = study.results[study.results["error"].notna()]
    assert set(bad["replicate"]) == {1, 4}
    assert bad["error"].str.startswith("ZeroDivisionError: singular fit").all()
    assert bad["mean"].isna().all()
    s = summarize(study, params=["n", "mu"]).set_index(["mu", "metric"])
    row = s.loc[(0.3, "mean")]
    # 6 replicates = 3 with a value + 2 raised + 1 NaN: nothing silently dropped
    assert (row["n_ok"], row["failed"], row["n_missing"], row["replicates"]) == (3, 2, 1, 6)
    assert row["failure"] == ("ZeroDivisionError: singular fit in replicate 1 (1x) and 1 "
                              "other error(s)")
    # a resume neither re-runs nor re-raises the failures
    again = run_study(flaky, cells, replicates=6, seed=3, backend=SerialBackend(),
                      checkpoint=ck)
    assert again.ran == 0 and again.resumed == 12 and again.failed == 4


def test_killed_pool_worker_is_retried_then_recorded(tmp_path: Path) -> None:
    from tests.design.helpers import suicidal

    cells = expand_grid(n=[5], die=[0, 1])
    backend = LocalBackend(1, retries=0)
    try:
        study = run_study(suicidal, cells, replicates=6, seed=3, backend=backend,
                          batch_size=1, checkpoint=tmp_path / "ck.jsonl")
    finally:
        backend.close()
    ref = run_study(noisy, cells, replicates=6, seed=3, backend=SerialBackend()).results
    err = study.results["error"]
    dead = study.results[err.notna()]
    assert list(zip(dead["die"], dead["replicate"], strict=True)) == [(1, 3)]
    assert dead["error"].iloc[0].startswith("WorkerDied")
    assert backend.restarts >= 2
    ok = err.isna().to_numpy()
    pd.testing.assert_frame_equal(study.results[ok].reset_index(drop=True),
                                  ref[ok].reset_index(drop=True))


def test_checkpoint_with_other_code_or_scenarios_is_refused(tmp_path: Path) -> None:
    ck = tmp_path / "ck.jsonl"
    prov = {"tailor_version": "0.1.0", "code_hash": "abc", "scenarios": {"null": "h1"}}
    run_study(noisy, CELLS[:1], replicates=2, seed=1, backend=SerialBackend(), checkpoint=ck,
              provenance=prov)
    head = json.loads(ck.read_text().splitlines()[0])["study"]
    assert head["code_hash"] == "abc" and head["scenarios"] == {"null": "h1"}
    with pytest.raises(ConflictError, match="code_hash='abc', not 'def'"):
        run_study(noisy, CELLS[:1], replicates=2, seed=1, backend=SerialBackend(),
                  checkpoint=ck, provenance={**prov, "code_hash": "def"})
    with pytest.raises(ConflictError, match="scenarios="):
        run_study(noisy, CELLS[:1], replicates=2, seed=1, backend=SerialBackend(),
                  checkpoint=ck, provenance={**prov, "scenarios": {"null": "h2"}})
    assert run_study(noisy, CELLS[:1], replicates=2, seed=1, backend=SerialBackend(),
                     checkpoint=ck, provenance=prov).resumed == 2


def test_common_random_numbers_share_seeds_across_n() -> None:
    cells = expand_grid(mu=[0.0], n=[5, 8])
    study = run_study(noisy, cells, replicates=3, seed=2, backend=SerialBackend(),
                      common=("n",)).results
    # n=8 draws n=5's participants and three more (the same stream, extended)
    a = study[study["n"] == 5]["max"].to_numpy()
    b = study[study["n"] == 8]["max"].to_numpy()
    assert (b >= a).all()  # the max over an extended stream can only grow
    plain = run_study(noisy, cells, replicates=3, seed=2, backend=SerialBackend()).results
    assert not (plain[plain["n"] == 5]["max"].to_numpy() == a).any()  # other seeds there


def test_worker_compiles_kernels_when_the_parent_imported_numba(tmp_path: Path) -> None:
    """A study whose main module imports numba (as ``benchmarks/bench_validation.py`` does,
    through the pipeline) re-imports it in each spawned worker before the worker limits it to
    one thread; the first kernel compiled there (no warmed cache) used to raise "Cannot set
    NUMBA_NUM_THREADS to a different value once the threads have been launched"."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "study.py"
    script.write_text(
        "import numba  # noqa: F401  (imported before the pool's workers limit threads)\n"
        "from tailor.design.execution import LocalBackend, run_study\n"
        "from tailor.design.grid import Cell\n"
        "from tests.design.helpers import fresh_parallel_kernel\n"
        "if __name__ == '__main__':\n"
        "    st = run_study(fresh_parallel_kernel, [Cell.of({'n': 7})], replicates=2, seed=1,\n"
        "                   backend=LocalBackend(2))\n"
        "    print(list(st.results['error']), list(st.results['total']))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[None, None] [7.0, 7.0]", done.stderr
