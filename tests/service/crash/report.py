"""Append one G3 run's figures to ``TAILOR_G3_REPORT`` (JSON lines), when it is set."""

from __future__ import annotations

import json
import os
from typing import Any


def record(kind: str, **figures: Any) -> None:
    path = os.environ.get("TAILOR_G3_REPORT", "")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, **figures}, sort_keys=True, default=str) + "\n")
