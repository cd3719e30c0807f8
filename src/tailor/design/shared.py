"""Warm-up data a study's workers share: computed once by the client, read (verified) by workers.

Some replicate functions need an expensive, deterministic input that is the same for every
replicate of a cell, e.g. the BEST pipeline's truth population of a scenario (~4 s CPU at
``truth_n`` = 20,000). Computed per worker process, it is paid again by every fresh worker; at
100 machines that is most of the work. Instead the client computes each one once per study
(:func:`prepare`) and writes it to a file in the study's output folder, named by a *key*: the
SHA-256 of everything that defines it (the caller's parts, e.g. protocol and scenario content
hashes, sizes and seed, plus the tailor code hash and this format's version). Workers are given
the sources (:func:`install`: a file path for pool workers, which share the client's disk; the
file's bytes for Dask workers, scattered once to each worker because a worker on another
machine cannot see the client's folder) and :func:`load` reads them.

A file is a header line ``tailor-shared <format> <key> <sha256 of the payload>`` and a pickle
of the value. :func:`read` checks the key and the checksum before unpickling: a file of another
study, a stale one (code changed: the key differs) or a corrupt one is never used. The client
recomputes and rewrites such a file; a worker given a bad source says so on stderr (one line)
and computes the value itself, which :func:`computed` counts (tests check it stays 0 in workers).
The files are the study's own (written by its client into its ``--out`` folder); do not point a
study at files from an untrusted source, as unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["FORMAT", "SharedDataError", "computed", "install", "key_of", "load", "prepare",
           "read", "write"]

FORMAT = 1
"""Version of the file layout; part of every key."""
_MAGIC = b"tailor-shared"
T = TypeVar("T")
Source = str | bytes
"""A file path (same disk) or the file's bytes (scattered to a Dask worker)."""

_SOURCES: dict[str, Source] = {}
_computed = 0


class SharedDataError(ValueError):
    """A shared file that cannot be used: unreadable, another key, or corrupt."""


def key_of(parts: Mapping[str, Any]) -> str:
    """The key (32 hex digits) of a value defined by ``parts`` (JSON-able), this code and format."""
    from tailor.design.provenance import code_hash

    text = json.dumps({"format": FORMAT, "code_hash": code_hash(), **parts}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write(path: Path, key: str, value: Any) -> Path:
    """Write ``value`` under ``key`` to ``path`` atomically (a partial file is never seen)."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    head = b"%s %d %s %s\n" % (_MAGIC, FORMAT, key.encode(),
                               hashlib.sha256(payload).hexdigest().encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(head)
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read(source: Source, key: str) -> Any:
    """The value stored under ``key`` in ``source`` (a path or a file's bytes), verified.

    Raises :class:`SharedDataError` naming the source and what is wrong."""
    name = source if isinstance(source, str) else f"<{len(source)} bytes>"
    try:
        data = Path(source).read_bytes() if isinstance(source, str) else source
    except OSError as exc:
        raise SharedDataError(f"shared file {name}: cannot be read ({exc})") from None
    head, _, payload = data.partition(b"\n")
    fields = head.split(b" ")
    if len(fields) != 4 or fields[0] != _MAGIC or fields[1] != str(FORMAT).encode():
        raise SharedDataError(f"shared file {name}: not a tailor shared file of format {FORMAT}")
    if fields[2].decode() != key:
        raise SharedDataError(f"shared file {name}: holds key {fields[2].decode()}, not {key}")
    if hashlib.sha256(payload).hexdigest().encode() != fields[3]:
        raise SharedDataError(f"shared file {name}: checksum mismatch (corrupt or truncated)")
    return pickle.loads(payload)  # the study's own file, its checksum verified


def prepare(directory: Path, key: str, compute: Callable[[], Any]) -> str:
    """The path of the file holding ``key`` in ``directory``: an existing valid one (a resumed
    study), else ``compute()`` written there (a bad file is replaced, with a line on stderr)."""
    path = directory / f"{key}.pkl"
    if path.exists():
        try:
            read(str(path), key)
            return str(path)
        except SharedDataError as exc:
            print(f"tailor: {exc}; recomputing it", file=sys.stderr, flush=True)
    write(path, key, compute())
    return str(path)


def install(sources: Mapping[str, Source]) -> None:
    """Make ``{key: source}`` available to :func:`load` in this process."""
    _SOURCES.update(sources)


def load(key: str, compute: Callable[[], T]) -> T:
    """The value of ``key`` from its installed source, else ``compute()`` (counted)."""
    global _computed
    source = _SOURCES.get(key)
    if source is not None:
        try:
            value: T = read(source, key)
            return value
        except SharedDataError as exc:
            _SOURCES.pop(key, None)
            print(f"tailor (pid {os.getpid()}): {exc}; computing it here", file=sys.stderr,
                  flush=True)
    _computed += 1
    return compute()


def computed() -> int:
    """How many values this process computed itself (not read from a shared source)."""
    return _computed
