"""``tailor warmup``: compile (or load from the cache) every numba kernel once, ahead of use.

numba compiles a kernel the first time it runs and caches the machine code next to the package
(``cache=True``), so only the first use on an installation pays the 30-60 s per kernel family.
``make setup`` runs this command right after installing; the commands that run kernels print a
one-line notice if a compile happens anyway (a fresh cache, a changed numba or CPU).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

_NOTICE = ("tailor: compiling numba kernels for their first use on this installation (once, "
           "~30-60 s per family); `tailor warmup` does it ahead of time")
_notice_installed = False


def install_compile_notice(write: Callable[[str], object] | None = None) -> None:
    """Print one line (stderr) when the first numba compile of this process starts.

    Loading a kernel from numba's cache raises no event, so a warmed-up installation prints
    nothing.
    """
    global _notice_installed
    if _notice_installed:
        return
    from tailor.stats.compile_notice import notify_first_compile

    notify_first_compile(write or (lambda text: print(text, file=sys.stderr, flush=True)),
                         _NOTICE)
    _notice_installed = True


def _families() -> list[tuple[str, Callable[[], object]]]:
    """Tiny problems that run every kernel signature the commands use."""
    import warnings

    import numpy as np

    def policy_trees() -> None:
        from tailor.dtr.policytree import PolicyTree

        rng = np.random.default_rng(0)
        X = np.column_stack([rng.integers(0, 3, 24), rng.uniform(size=24)]).astype(float)
        G = rng.normal(size=(24, 3))
        F = np.ones((24, 3), dtype=bool)
        F[::5, 0] = False
        for depth in (1, 2, 3):
            for kwargs in ({}, {"algorithm": "scan"}, {"algorithm": "histogram"},
                           {"algorithm": "prefix-max"}, {"min_node_size": 3},
                           {"split_step": 2}):
                PolicyTree(depth=depth, **kwargs).fit(X, G)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                PolicyTree(depth=depth).fit(X, G, feasible=F)

    def trial_simulation() -> None:
        from tailor.stats.simulation import simulate_trial, simulate_trials

        simulate_trial("best", participants=40, seed=1)
        simulate_trials("best", trials=2, participants=40, seed=1)

    def allocation_diagnostics() -> None:
        from tailor.protocol import load_protocol
        from tailor.stats.allocation_diagnostics import simulate_allocations

        simulate_allocations(load_protocol("best"), participants=40, trials=2)

    return [("policy trees", policy_trees), ("trial simulation", trial_simulation),
            ("allocation diagnostics", allocation_diagnostics)]


def warmup() -> None:
    """Compile every numba kernel once (cached next to the package); a no-op when cached."""
    from numba.core import event

    compiled: list[float] = []

    class _Timer(event.Listener):  # type: ignore[misc]
        def on_start(self, ev: event.Event) -> None:
            self.t0 = time.perf_counter()

        def on_end(self, ev: event.Event) -> None:
            if ev.data["dispatcher"] is not None:
                compiled.append(time.perf_counter() - self.t0)

    timer = _Timer()
    total = time.perf_counter()
    for name, run in _families():
        n0 = len(compiled)
        t0 = time.perf_counter()
        with event.install_listener("numba:compile", timer):
            run()
        n = len(compiled) - n0
        state = f"compiled {n} kernel signature(s)" if n else "loaded from the cache"
        typer.echo(f"{name}: {state} in {time.perf_counter() - t0:.1f} s")
    typer.echo(f"kernels ready in {time.perf_counter() - total:.1f} s")
