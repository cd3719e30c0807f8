"""Test-only pauses are injected into the Database (issue 12), not built into the unit of work:
without a hook a checkpoint does nothing; with :class:`PauseHook` it sleeps and leaves the
crash harness's marker files."""

from __future__ import annotations

import json
import os
import threading
import time

from tailor.db import Database
from tailor.services.pauses import PauseHook
from tailor.services.uow import in_transaction
from tailor.settings import Settings
from tailor.web import create_app

from .factories import SYSTEM


def test_no_hook_no_pause_and_the_unit_of_work_calls_the_hook(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    assert db.hook is None
    db.checkpoint("commit")  # a no-op
    seen: list[str] = []
    db.hook = seen.append
    in_transaction(db, SYSTEM, lambda s: None)
    in_transaction(db, SYSTEM, lambda s: None, write=False)
    assert seen == ["commit"]  # the write transaction's commit point only


def test_pause_hook_sleeps_and_marks_for_the_harness(tmp_path):
    hook = PauseHook({"commit": 60})
    start = time.perf_counter()
    hook("commit")
    hook("elsewhere")
    assert time.perf_counter() - start >= 0.06
    folder = tmp_path / "pauses"
    folder.mkdir()
    (folder / "pause.json").write_text(json.dumps({"after_audit": 300}))
    harness = PauseHook({"after_audit": 0}, str(folder))  # pause.json wins
    thread = threading.Thread(target=harness, args=("after_audit",))
    thread.start()
    marker = folder / f"{os.getpid()}.{thread.ident}.after_audit"
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert marker.exists() and (folder / f"alive.{os.getpid()}").exists()
    thread.join()
    assert not marker.exists()


def test_the_server_injects_the_hook_only_when_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    plain = create_app(Settings(database_url=url))
    paused = create_app(Settings(database_url=url, test_pause_ms={"commit": 1}))
    assert plain.state.db.hook is None
    assert isinstance(paused.state.db.hook, PauseHook)
    assert paused.state.db.hook.pause_ms == {"commit": 1}
