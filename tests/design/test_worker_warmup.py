"""A design worker that must compile a numba kernel (no warmed cache) says so, once."""

from __future__ import annotations

import os
import subprocess
import sys


def test_worker_prints_one_line_when_it_compiles() -> None:
    code = ("from tailor.design.execution import _worker_init\n"
            "_worker_init()\n"
            "from numba import njit\n"
            "f = njit(lambda x: x + 1)\n"  # not cached: compiles in this process
            "g = njit(lambda x: 2 * x)\n"
            "assert f(1) == 2 and g(2) == 4\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "compiling numba kernels" in ln]
    assert len(lines) == 1 and "tailor warmup" in lines[0] and "tailor worker (pid" in lines[0]


def test_worker_that_loads_nothing_prints_nothing() -> None:
    code = ("from tailor.design.execution import _worker_init\n"
            "_worker_init()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "compiling numba kernels" not in done.stderr
