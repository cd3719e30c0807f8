"""A small generator of BEST-shaped wide tables (docs/data-contract.md) for tests and benchmarks.

Not the project's simulator: just enough structure (eligibility, four arms, response
categories, stage-2 option lists, logged probabilities, PEG outcomes) to exercise tailor.dtr.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("ESC", "ACT", "EBEM", "DUL")
CATEGORIES = ("excellent", "good", "medium", "bad")


def pair(a: str, b: str) -> str:
    """Pair code in protocol arm order (ESC, ACT, EBEM, DUL)."""
    first, second = sorted((a, b), key=ARMS.index)
    return f"{first}+{second}"


def stage2_options(a1: str, category: str, eligible: tuple[str, ...] = ARMS) -> list[str]:
    """Permissible stage-2 options given the stage-1 arm and the week-12 category."""
    others = [x for x in ARMS if x != a1 and x in eligible]
    augment = [pair(a1, x) for x in others]
    switch = [x for x in others if x != "ESC"]
    if category == "excellent":
        return [a1]
    if category == "good":
        return augment
    if category == "medium":
        return augment if a1 == "ESC" else augment + switch
    return augment if a1 == "ESC" else switch


def best_like(n: int = 400, *, n_noise: int = 3, seed: int = 0, effect: float = 1.0,
              dropout: float = 0.0) -> pd.DataFrame:
    """Wide table with ``amplifier`` as the true effect modifier; PEG lower is better."""
    rng = np.random.default_rng(seed)
    amp = rng.normal(size=n)
    age = rng.normal(50, 12, size=n).round()
    peg0 = np.clip(rng.normal(6.0, 1.2, size=n), 4, 10)
    noise = rng.normal(size=(n, n_noise))
    sex = rng.choice(["F", "M"], size=n)
    elig = np.ones((n, 4), dtype=int)
    elig[:, 3] = rng.random(n) > 0.45
    other = rng.random(n) < 0.04
    elig[other & (elig[:, 3] == 1), rng.integers(0, 3)] = 0
    a1, p1 = [], []
    for i in range(n):
        arms = [a for j, a in enumerate(ARMS) if elig[i, j]]
        a1.append(arms[rng.integers(len(arms))])
        p1.append(1 / len(arms))
    # arm effect on PEG change (negative = improvement): amplifier favours ACT/DUL, guitar EBEM
    benefit = {"ESC": 0.3, "ACT": 0.8 + 0.6 * effect * amp, "EBEM": 0.9 - 0.6 * effect * amp,
               "DUL": 0.7 + 0.7 * effect * amp}
    b1 = np.array([benefit[a][i] if np.ndim(benefit[a]) else benefit[a]
                   for i, a in enumerate(a1)])
    latent = b1 + rng.normal(0, 1, size=n)
    cat = np.select([latent > 1.6, latent > 0.9, latent > 0.2], CATEGORIES[:3], "bad")
    opts, a2, p2, action = [], [], [], []
    for i in range(n):
        eligible = tuple(a for j, a in enumerate(ARMS) if elig[i, j])
        o = stage2_options(a1[i], cat[i], eligible)
        opts.append(";".join(o))
        pick = o[rng.integers(len(o))]
        a2.append(pick)
        p2.append(1.0 if len(o) == 1 else 1 / len(o))
        action.append("continue" if cat[i] == "excellent" else ("augment" if "+" in pick
                                                                 else "switch"))

    def b2(i: int, opt: str) -> float:
        parts = opt.split("+")
        vals = [benefit[a][i] if np.ndim(benefit[a]) else benefit[a] for a in parts]
        return max(vals) + (0.3 * min(vals) if len(vals) == 2 else 0.0)

    y = peg0 - 1.0 * b1 - np.array([b2(i, a2[i]) for i in range(n)]) + rng.normal(0, 1, n)
    peg12 = peg0 - b1 + rng.normal(0, 0.7, n)
    df = pd.DataFrame({
        "participant_id": [f"P{i:04d}" for i in range(n)], "age": age, "sex": sex,
        "peg_baseline": peg0, "amplifier_index": amp,
        **{f"x{j + 1}": noise[:, j] for j in range(n_noise)},
        **{f"eligible_{a}": elig[:, j] for j, a in enumerate(ARMS)},
        "A1": a1, "p_A1": p1, "peg_w12": peg12, "response_category": cat, "options2": opts,
        "A2": a2, "action2": action, "p_A2": p2, "peg_w24": y})
    df["options1"] = [";".join(a for j, a in enumerate(ARMS) if elig[i, j]) for i in range(n)]
    df["responder"] = ((df.peg_baseline - df.peg_w24) / df.peg_baseline >= 0.3).astype(float)
    if dropout > 0:
        drop = rng.random(n) < dropout * (1 + (amp > 0))
        df.loc[drop, ["peg_w24", "responder"]] = np.nan
        df["dropout_week"] = np.where(drop, 12.0, np.nan)
    return df


STAGES = [
    dict(treatment="A1", main="peg_baseline + amplifier_index + x1", tailoring="amplifier_index",
         feasible={a: f"eligible_{a}" for a in ARMS}, options=list(ARMS)),
    dict(treatment="A2", main="peg_baseline + amplifier_index + A1 + response_category",
         tailoring="amplifier_index", feasible="options2"),
]
