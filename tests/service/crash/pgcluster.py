"""A private, throwaway PostgreSQL cluster (initdb in a temporary directory, own port) whose
postmaster the G3 tests may SIGKILL; the shared server on port 5432 is never touched."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .. import server
from . import harness as h


def binaries() -> tuple[Path | None, str]:
    """The newest PostgreSQL bin directory with initdb and pg_ctl, or None and why not."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                    reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK):
            break
    else:
        return None, "no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return None, "running as root and runuser is missing"
    return Path(d), ""


def _become_subreaper() -> None:
    """Orphans of this process tree (the postmaster once ``pg_ctl`` exits, its backends once
    it dies) are re-parented to this process, which reaps them: a zombie postmaster would
    still count as running (PID 1 of a container need not reap)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Cluster:
    def __init__(self, bindir: Path) -> None:
        _become_subreaper()
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tailor-g3-pg-"))
        self.data = self.root / "data"
        self.port = server.free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as postgres
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180)
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): "
                               f"{done.stderr.decode()[-1000:]}\n{tail}")

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", "120", "-o", opts, "start")

    def postmaster_pid(self) -> int:
        lines = (self.data / "postmaster.pid").read_text().splitlines()
        if Path(lines[1]).resolve() != self.data.resolve():  # our cluster, nobody else's
            raise AssertionError(f"postmaster.pid names {lines[1]}, not {self.data}")
        return int(lines[0])

    def kill_postmaster(self) -> int:
        """SIGKILL the postmaster; its orphaned backends follow (as after a host crash),
        so that the cluster can start again (crash recovery from the WAL)."""
        pid = self.postmaster_pid()
        kids = h.children(pid)
        h.sigkill(pid)
        _reap(pid)
        deadline = time.monotonic() + 5
        while any(h.alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.02)
        for k in kids:
            if h.alive(k):
                h.sigkill(k)
            _reap(k)
        return pid

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            pid = self.postmaster_pid()
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            _reap(pid)
        shutil.rmtree(self.root, ignore_errors=True)
