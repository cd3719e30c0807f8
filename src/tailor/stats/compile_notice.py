"""A one-line notice when a process compiles a numba kernel (rather than loading it from the cache).

numba compiles a kernel on its first use and caches the machine code next to the package
(``cache=True``); ``tailor warmup`` fills that cache once per installation. A process that still
compiles (a fresh cache, another numba or CPU) pays ~30-60 s per kernel family, so the CLI and
every design worker say so once. Loading a kernel from the cache raises no compile event, so a
warmed-up installation prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["notify_first_compile"]


def notify_first_compile(write: Callable[[str], object], message: str) -> None:
    """Call ``write(message)`` when the first numba compile of this process starts (once)."""
    from numba.core import event

    class _Notice(event.Listener):  # type: ignore[misc]
        shown = False

        def on_start(self, ev: event.Event) -> None:
            if not self.shown:
                self.shown = True
                write(message)

        def on_end(self, ev: event.Event) -> None:
            pass

    event.register("numba:compile", _Notice())
