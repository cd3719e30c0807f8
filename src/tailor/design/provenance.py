"""Provenance of a design study: what ran, on what code and scenarios, from which command.

:func:`code_hash` is the SHA-256 of the ``tailor`` package's Python sources (file paths and
contents, in path order): a study resumed after any change to the code that simulates or
analyses is refused. :func:`scenario_hashes` hashes each scenario's validated content (its
``model_dump`` as canonical JSON), so a scenario file edited between runs is caught too.
:func:`study_provenance` is the checkpoint header's part of it; :func:`run_provenance` adds
what varies from run to run (command line, host load, wall time) for reports and CSVs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["code_hash", "provenance_lines", "run_provenance", "scenario_hashes",
           "study_provenance"]


@lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 (first 16 hex digits) of every ``*.py`` file of the installed package."""
    import tailor

    root = Path(tailor.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def scenario_hashes(names: Iterable[str]) -> dict[str, str]:
    """``{scenario: first 16 hex digits of the SHA-256 of its validated content}``."""
    from tailor.stats.scenarios import load_scenario

    out: dict[str, str] = {}
    for name in sorted(set(names)):
        data = load_scenario(name).model_dump(mode="json", by_alias=True)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        out[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def study_provenance(scenarios: Iterable[str] = ()) -> dict[str, Any]:
    """The part of provenance a resume must match: tailor version, code and scenario hashes."""
    from tailor import __version__

    return {"tailor_version": __version__, "code_hash": code_hash(),
            "scenarios": scenario_hashes(scenarios)}


def run_provenance(study: Mapping[str, Any], *, seed: int, seconds: float,
                   argv: list[str] | None = None) -> dict[str, Any]:
    """``study`` plus the command line, study seed, host load averages and wall time."""
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - platforms without getloadavg
        load = "n/a"
    return {**study, "command": shlex.join(argv if argv is not None else sys.argv),
            "seed": seed, "cores": os.cpu_count(), "load_1_5_15": load,
            "wall_seconds": round(seconds, 1)}


def provenance_lines(prov: Mapping[str, Any]) -> list[str]:
    """``# key: value`` comment lines (for the head of a CSV; pandas reads it with
    ``comment='#'``)."""
    return [f"# {k}: {json.dumps(v) if isinstance(v, dict | list) else v}"
            for k, v in prov.items()]
