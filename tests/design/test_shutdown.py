"""SIGTERM to a running study terminates its pool workers: no orphan process is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys
    from tailor.cli.design_cmd import _sigterm_interrupts
    from tailor.design.execution import LocalBackend, run_study
    from tailor.design.grid import expand_grid
    from tests.design.helpers import slow

    backend = LocalBackend(2)
    try:
        with _sigterm_interrupts():
            run_study(slow, expand_grid({"sleep": 0.2}, n=[5], mu=[0.0, 1.0]), replicates=200,
                      seed=1, backend=backend, batch_size=1, checkpoint=sys.argv[1])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        backend.close()
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by a dead parent's reaper) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_sigterm_leaves_no_orphan_workers(tmp_path: Path) -> None:
    ck = tmp_path / "ck.jsonl"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(ck)], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        if ck.exists():
            pids = {json.loads(x)["pid"] for x in ck.read_text().splitlines()[1:] if x.strip()}
    assert len(pids) == 2, "the pool never got going"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert "interrupted" in out, err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert not [p for p in pids if _alive(p)]
