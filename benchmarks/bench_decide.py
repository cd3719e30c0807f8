"""The decision tool's speed: one decision through ``POST /api/v1/decide`` (p50/p95 over
repeated requests, in-process ASGI client, SQLite) and 10,000 patients batch-scored
(``tailor decide``'s vectorized path) vs the one-patient path in a loop (same run).

Run from the repository root::

    python benchmarks/bench_decide.py [--requests 300] [--patients 10000] [--write]

Targets (issue 16): one decision p95 <= 50 ms through the API; 10,000 patients <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "benchmarks")]

from _common import machine, write_result  # noqa: E402


def fit_model(tmp: Path) -> Path:
    from tests.web.conftest import simulated_regime_model

    return simulated_regime_model(tmp / "regime-model.json")


def api_latency(model: Path, tmp: Path, requests: int) -> tuple[list[float], list[float]]:
    from fastapi.testclient import TestClient
    from tests.service.factories import PASSWORD, setup_trial

    from tailor.db import Database, upgrade
    from tailor.settings import Settings
    from tailor.web import create_app

    db = Database(f"sqlite:///{tmp / 'tailor.db'}", pool_size=4)
    upgrade(db.engine)
    trial = setup_trial(db)
    app = create_app(Settings(database_url=trial.db.url, argon2_time_cost=1,
                              argon2_memory_kib=8, regime_model=str(model)), db=trial.db)
    client = TestClient(app, base_url="https://testserver")
    token = client.post("/api/v1/auth/login", json={"username": "clin", "password": PASSWORD}
                        ).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(1)
    wall, inside = [], []
    for i in range(requests + 20):
        body = {"scores": {"peg_baseline": float(rng.uniform(4, 10)),
                           "amplifier_index": float(rng.uniform(0, 100)),
                           "opioid": int(rng.integers(2)), "depression": int(rng.integers(2))}}
        t0 = time.perf_counter()
        r = client.post("/api/v1/decide", json=body, headers=h)
        dt = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        if i >= 20:  # warm-up
            wall.append(dt * 1000)
            st = r.headers.get("server-timing", "")
            if "dur=" in st:
                inside.append(float(st.split("dur=")[1].split(",")[0].split(";")[0]))
    db.dispose()
    return wall, inside


def batch(model_path: Path, patients: int) -> tuple[float, float, int]:
    from tailor.dtr.regime_batch import score_patients
    from tailor.dtr.regime_model import RegimeModel
    from tailor.protocol import load_protocol

    model = RegimeModel.load(model_path)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"peg_baseline": rng.uniform(4, 10, patients),
                          "amplifier_index": rng.uniform(0, 100, patients),
                          "opioid": rng.integers(0, 2, patients),
                          "depression": rng.integers(0, 2, patients)})
    frame.loc[::10, "amplifier_index"] = np.nan  # 10% with a missing input
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        score_patients(model, frame)
        times.append(time.perf_counter() - t0)
    best = load_protocol("best")
    loop_n = 200
    t0 = time.perf_counter()
    for i in range(loop_n):
        row = frame.iloc[i].to_dict()
        model.decide({k: (None if pd.isna(v) else v) for k, v in row.items()},
                     list(best.arm_codes), best)
    per = (time.perf_counter() - t0) / loop_n
    return min(times), per * patients, loop_n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        model = fit_model(tmp)
        fit_s = time.perf_counter() - t0
        wall, inside = api_latency(model, tmp, args.requests)
        vec, loop, loop_n = batch(model, args.patients)

    def q(xs: list[float], p: float) -> float:
        return float(np.quantile(xs, p)) if xs else float("nan")

    lines = [
        "# Decision tool speed (issue 16)", "", f"Machine: {machine()}", "",
        f"Model: simulated BEST trial, 400 participants, bootstrap 50 (fitted in {fit_s:.0f} s,"
        " not timed below).", "",
        "| measure | figure | target |", "|---|---|---|",
        f"| `POST /api/v1/decide`, {len(wall)} sequential requests (in-process ASGI client, "
        f"SQLite; wall per request) | p50 {q(wall, .5):.1f} ms, p95 {q(wall, .95):.1f} ms, "
        f"max {max(wall):.1f} ms | p95 <= 50 ms |",
        f"| same, time inside the app (Server-Timing) | p50 {q(inside, .5):.1f} ms, p95 "
        f"{q(inside, .95):.1f} ms | |",
        f"| {args.patients:,} patients batch-scored (vectorized, 10% with a missing input; "
        f"best of 3) | {vec * 1000:.0f} ms | <= 1 s |",
        f"| baseline: one-patient path in a loop ({loop_n} patients, extrapolated to "
        f"{args.patients:,}) | {loop:.1f} s (ratio {loop / vec:.0f}x) | |", "",
        "Command: `python benchmarks/bench_decide.py --write`", ""]
    text = "\n".join(lines)
    print(text)
    if statistics.fmean(wall) and args.write:
        print(write_result("decide", text))


if __name__ == "__main__":
    main()
