"""The simulator's output tables in the analysis data contract (``docs/data-contract.md``).

* wide: one row per randomized participant;
* long: one row per observed value (``participant_id, site, visit, week, field, value``), item
  responses and derived scores, shaped like the service's export;
* truth: the potential-outcome paths, the participants' latent factors and oracle choices, and
  the exact values of the standard regimes.

:func:`long_to_wide` pivots the long table's derived fields back into the wide table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tailor.stats.generative import (
    CATEGORIES,
    PEG_WEEKS,
    InstrumentScoring,
    fm2016_items,
    item_responses,
    peg_items,
)
from tailor.stats.truth import (
    TrueRegime,
    Truth,
    evaluate_regime,
    fixed_regime,
    oracle_regime,
    random_regime,
    true_modifiers,
)
from tailor.stats.variables import OPTIONAL_BLOCK

if TYPE_CHECKING:
    from tailor.protocol import Protocol

__all__ = ["BASELINE", "baseline_frame", "build_long", "build_truth", "build_wide",
           "long_to_wide", "standard_regimes", "wide_schema"]

ACTION_NAMES = ("continue", "augment", "switch")
# baseline features: wide column -> cohort column
BASELINE = {
    "peg_baseline": "peg_visit0", "peg_screening": "peg_screening",
    "body_regions": "body_regions", "wpi": "wpi", "sss": "sss",
    "fibromyalgianess": "fibromyalgianess", "fm2016_met": "fm2016_met",
    "promis_sleep_t": "promis_sleep_t", "promis_fatigue_t": "promis_fatigue_t",
    "promis_depression_t": "promis_depression_t", "promis_anxiety_t": "promis_anxiety_t",
    "pcs_total": "pcs_total", "amplifier_index": "amplifier_index", "modic": "modic",
    "pfirrmann_max": "pfirrmann_max", "lumbar_rom": "lumbar_rom",
    "pain_duration_months": "pain_duration_months", "ppt": "ppt",
    "phq9": "phq9", "gad7": "gad7", "csi": "csi", "tsk11": "tsk11", "bmi": "bmi",
    "sit_to_stand_s": "sit_to_stand_s",
}
INT_BASELINE = {"body_regions", "wpi", "sss", "fibromyalgianess", "fm2016_met", "pcs_total",
                "phq9", "gad7", "csi", "tsk11"}
# the optional phenotyping block (imaging, QST, biomechanics): NaN where skipped by design
OPTIONAL = set(OPTIONAL_BLOCK)


def wide_schema(protocol: Protocol) -> dict[str, str]:
    """Wide column -> kind (``str``, ``float``, ``int``, ``Int64``) in contract order."""
    arms = protocol.arm_codes
    schema: dict[str, str] = {"participant_id": "str", "site": "str", "age": "int", "sex": "str"}
    for col in BASELINE:
        schema[col] = "int" if col in INT_BASELINE else "float"
    schema["optional_phenotyping"] = "int"
    schema["phenotype_label"] = "str"
    for f in protocol.stage(1).randomization.factors:
        schema[f.name] = "int"
    for a in arms:
        schema[f"eligible_{a}"] = "int"
    schema["A1"] = "str"
    schema["p_A1"] = "float"
    for a in arms:
        schema[f"p1_{a}"] = "float"
    for w in PEG_WEEKS:
        schema[f"peg_w{w}"] = "float"
    for w in PEG_WEEKS:
        schema[f"pgic_w{w}"] = "Int64"
    schema.update({"intolerance_s1": "int", "response_category": "str", "options2": "str",
                   "A2": "str", "action2": "str", "p_A2": "float", "dropout_week": "Int64"})
    return schema


def _typed(df: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    """``df``'s columns in ``schema`` order and types (absent ones missing); one frame is
    built from the typed columns at the end."""
    out: dict[str, pd.Series] = {}
    for col, kind in schema.items():
        s = df[col] if col in df.columns else pd.Series(np.nan, index=df.index)
        numpy_kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else ""
        if kind == "str" and (numpy_kind == "O" or isinstance(s.dtype, pd.StringDtype)):
            # the pandas chain below, on the column's cells directly: text, None where
            # missing or empty
            cells = s.to_numpy(dtype=object, copy=True)
            cells[pd.isna(cells) | (cells == "")] = None
            out[col] = pd.Series(cells, index=s.index, dtype=object)
        elif kind == "str":
            out[col] = s.astype(object).where(s.notna() & (s.astype(str) != ""), None)
        elif kind == "float" and numpy_kind in ("b", "i", "u", "f"):
            out[col] = s.astype(float)  # to_numeric leaves NumPy numbers as they are
        elif kind == "int" and numpy_kind in ("b", "i", "u"):
            out[col] = s.astype(np.int64)
        elif kind == "float":
            out[col] = pd.to_numeric(s, errors="raise").astype(float)
        elif kind == "int":
            out[col] = pd.to_numeric(s, errors="raise").astype(np.int64)
        else:
            out[col] = pd.to_numeric(s, errors="raise").astype("Int64")
    return pd.DataFrame(out, index=df.index).reset_index(drop=True)


LOG_COLUMNS = ("participant_id", "stage", "sequence", "u1", "u2", "u3", "assigned",
               "probability", "probabilities")
"""The allocation log's columns: one row per allocation, in allocation order per stage."""


def build_wide(st: Any, run: dict[str, Any], ids: np.ndarray, *, log: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The wide analysis table and the allocation log of a single-trial run (``log=False``:
    an empty log with its columns)."""
    protocol = st.protocol
    arms = protocol.arm_codes
    options = st.model.options
    cohort = run["cohort"]
    b = {k: v[0] for k, v in cohort.base.items()}
    n = len(ids)
    alive = run["alive"][0]
    obs = run["obs"]
    arm1 = run["arm1"][0]
    prob1 = run["prob1"][0]
    opt = run["opt"][0]
    prob2 = run["prob2"][0]
    cat = run["cat"][0]
    contra = cohort.contra[0]
    d: dict[str, Any] = dict(baseline_frame(protocol, b, cohort.levels[0], contra, ids))
    d["A1"] = np.array(arms)[arm1]
    d["p_A1"] = prob1[np.arange(n), arm1]
    for j, a in enumerate(arms):
        d[f"p1_{a}"] = prob1[:, j]
    for k, w in enumerate(PEG_WEEKS):
        d[f"peg_w{w}"] = np.where(alive[:, k], obs[f"peg_w{w}"], np.nan)
    for k, w in enumerate(PEG_WEEKS):
        d[f"pgic_w{w}"] = pd.array(np.where(alive[:, k], obs[f"pgic_w{w}"], 0), dtype="Int64")
        d[f"pgic_w{w}"][~alive[:, k]] = pd.NA
    intol = run["intol"][0] & (alive[:, 0] | alive[:, 1])
    d["intolerance_s1"] = intol.astype(int)
    d["response_category"] = np.where(cat >= 0, np.array(CATEGORIES)[np.maximum(cat, 0)], None)
    # stage 2 (None / NaN where no option was allocated)
    two = opt >= 0
    i2, o2 = np.flatnonzero(two), opt[two]
    opts2, a2, act2 = (np.full(n, None, dtype=object) for _ in range(3))
    opts2[i2] = _joined(st.model.eligible[arm1[i2], cat[i2], contra[i2]], np.array(options))
    a2[i2] = np.array(options, dtype=object)[o2]
    act2[i2] = np.array(ACTION_NAMES, dtype=object)[st.model.action[arm1[i2], o2]]
    p2 = np.full(n, np.nan)
    p2[i2] = prob2[i2, o2]
    d.update({"options2": opts2, "A2": a2, "action2": act2, "p_A2": p2})
    observed = alive.sum(axis=1)
    last = np.array((0, *PEG_WEEKS))[observed]
    d["dropout_week"] = pd.array(np.where(observed < len(PEG_WEEKS), last, 0), dtype="Int64")
    d["dropout_week"][observed == len(PEG_WEEKS)] = pd.NA
    wide = _typed(pd.DataFrame(d), wide_schema(protocol))
    if not log:
        return wide, pd.DataFrame(columns=list(LOG_COLUMNS))
    rows = []
    for stage, order, u, assigned, prob, codes in (
            (1, range(n), run["u1"][0], arm1, prob1, arms),
            (2, run["order2"][0], run["u2"][0], opt, prob2, options)):
        seq = 0
        for i in order:
            if assigned[i] < 0:
                continue
            seq += 1
            probs = ";".join(f"{c}={prob[i, j]:.6g}" for j, c in enumerate(codes)
                             if prob[i, j] > 0)
            rows.append({"participant_id": ids[i], "stage": stage, "sequence": seq,
                         "u1": u[i, 0], "u2": u[i, 1], "u3": u[i, 2],
                         "assigned": codes[assigned[i]],
                         "probability": prob[i, assigned[i]], "probabilities": probs})
    return wide, pd.DataFrame(rows, columns=list(LOG_COLUMNS))


def _text(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "1" if v else "0"
    if isinstance(v, float | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(v)


def build_long(st: Any, run: dict[str, Any], wide: pd.DataFrame, *, items: bool = True,
               scoring: InstrumentScoring | None = None) -> pd.DataFrame:
    """The long table: record fields, item responses and derived scores per visit."""
    protocol = st.protocol
    cohort = run["cohort"]
    b = {k: v[0] for k, v in cohort.base.items()}
    rng = run["items_rng"]
    rows: list[tuple[str, str, str, int | None, str, str]] = []
    visit_of = {v.week: v.code for v in protocol.visits}
    base_fields = [c for c in wide.columns if c not in _weekly_columns()
                   and c not in ("participant_id", "site", "response_category", "options2", "A2",
                                 "action2", "p_A2", "dropout_week", "intolerance_s1",
                                 "peg_baseline")]
    record_fields = [f for f in protocol.fields if f not in base_fields]
    records = run["records"]
    alive = run["alive"][0]
    for i, r in enumerate(wide.itertuples(index=False)):
        pid, site = str(r.participant_id), str(r.site)
        row = wide.iloc[i]
        v0 = visit_of.get(0, "week0")

        def put(visit: str, week: int | None, name: str, value: Any,
                pid: str = pid, site: str = site) -> None:
            if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
                return
            rows.append((pid, site, visit, week, name, _text(value)))

        for f in record_fields:
            put(v0, 0, f, records[i][f] if records else b[f][i])
        for f in base_fields:
            put(v0, 0, f, row[f])
        put(v0, 0, "peg", row["peg_baseline"])
        if items:
            for code, val in zip(("PEG1", "PEG2", "PEG3"), peg_items(row["peg_baseline"], rng),
                                 strict=True):
                put(v0, 0, code, val)
            if scoring is None:
                responses = {"fm2016": fm2016_items(b["_areas"][i], b["_sss_items"][i],
                                                    int(b["_fmdur"][i]))}
            else:
                responses = item_responses(b, i, scoring)
            for form in responses.values():
                for code, val in form.items():
                    put(v0, 0, code, val)
        for k, w in enumerate(PEG_WEEKS):
            if not alive[i, k]:
                break
            vis = visit_of.get(w, f"week{w}")
            peg = row[f"peg_w{w}"]
            put(vis, w, "peg", peg)
            put(vis, w, "pgic", int(row[f"pgic_w{w}"]))
            if items:
                for code, val in zip(("PEG1", "PEG2", "PEG3"), peg_items(peg, rng),
                                     strict=True):
                    put(vis, w, code, val)
                put(vis, w, "PGIC1", int(row[f"pgic_w{w}"]))
            if w == 6 or (w == 12 and not alive[i, 0]):
                put(vis, w, "intolerance_s1", row["intolerance_s1"])
            if w == 12:
                for f in ("response_category", "options2", "A2", "action2", "p_A2"):
                    put(vis, w, f, row[f])
        if not pd.isna(row["dropout_week"]):
            week = int(row["dropout_week"])
            put("disposition", week, "dropout_week", week)
            if not (alive[i, 0] or alive[i, 1]):  # the safety checks never happened
                put("disposition", week, "intolerance_s1", row["intolerance_s1"])
    long = pd.DataFrame(rows, columns=["participant_id", "site", "visit", "week", "field",
                                       "value"])
    long["week"] = long["week"].astype("Int64")
    return long


def _weekly_columns() -> set[str]:
    return {f"{m}_w{w}" for m in ("peg", "pgic") for w in PEG_WEEKS}


def long_to_wide(long: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """Pivot the long table's derived fields back into the wide table (contract types)."""
    schema = wide_schema(protocol)
    df = long.copy()
    weekly = df["field"].isin(["peg", "pgic"])
    name = df["field"].where(~weekly, df["field"] + "_w" + df["week"].astype(str))
    name = name.where(~(weekly & (df["week"] == 0) & (df["field"] == "peg")), "peg_baseline")
    df["column"] = name
    df = df[df["column"].isin(schema)]
    ids = list(dict.fromkeys(long["participant_id"]))
    wide = df.pivot(index="participant_id", columns="column", values="value").reindex(ids)
    sites = long.drop_duplicates("participant_id").set_index("participant_id")["site"]
    wide["participant_id"] = wide.index
    wide["site"] = sites.reindex(ids).to_numpy()
    return _typed(wide.reset_index(drop=True), schema)


# --------------------------------------------------------------------------- truth
def baseline_frame(protocol: Protocol, base: dict[str, np.ndarray], levels: np.ndarray,
                   contra: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """Baseline columns of the wide table (one trial's flat arrays)."""
    arms = protocol.arm_codes
    d: dict[str, Any] = {"participant_id": ids,
                         "site": np.char.add("S", np.char.zfill(
                             (base["site"].astype(int) + 1).astype(str), 2)),
                         "age": np.minimum(base["age"], 90).astype(int), "sex": base["sex"]}
    skipped = base.get("_optional_missing", np.zeros(len(ids), dtype=bool))
    for col, src in BASELINE.items():
        d[col] = np.where(skipped, np.nan, base[src]) if col in OPTIONAL else (
            base[src].astype(float))
    d["optional_phenotyping"] = (~skipped).astype(int)
    d["phenotype_label"] = base["phenotype_label"]
    for j, f in enumerate(protocol.stage(1).randomization.factors):
        d[f.name] = levels[:, j]
    for j, a in enumerate(arms):
        d[f"eligible_{a}"] = (contra != j + 1).astype(int)
    return pd.DataFrame(d)


def build_truth(st: Any, base: dict[str, np.ndarray], levels: np.ndarray, noise: dict[str, Any],
                s_eff: np.ndarray, contra: np.ndarray, ids: np.ndarray,
                po: dict[str, np.ndarray], orc: dict[str, np.ndarray], *,
                paths: bool = True) -> Truth:
    """The truth of a cohort (flat arrays); see :class:`~tailor.stats.truth.Truth`."""
    protocol = st.protocol
    arms = np.array(protocol.arm_codes)
    options = np.array(st.model.options)
    n, k = po["peg_w12"].shape
    peg0 = base["peg_visit0"]
    cats = np.array(CATEGORIES)
    paths_df = pd.DataFrame()
    if paths:
        i, a, o = np.nonzero(po["permissible"] & po["eligible1"][:, :, None])
        peg24 = po["peg_w24"][i, a, o]
        paths_df = pd.DataFrame({
            "participant_id": ids[i], "A1": arms[a], "A2": options[o],
            "action2": np.array(ACTION_NAMES)[st.model.action[a, o]],
            "intolerance_s1": po["intol"][i, a].astype(int), "peg_w12": po["peg_w12"][i, a],
            "pgic_w12": po["pgic_w12"][i, a].astype(int),
            "response_category": cats[po["cat"][i, a]],
            "responder_w12": peg0[i] - po["peg_w12"][i, a] >= 0.3 * peg0[i] - 1e-9,
            "peg_w24": peg24, "pgic_w24": po["pgic_w24"][i, a, o].astype(int),
            "responder_w24": peg0[i] - peg24 >= 0.3 * peg0[i] - 1e-9,
            "peg_w36": po["peg_w36"][i, a, o],
            "oracle_path": (a == orc["a1"][i]) & (o == orc["a2"][i, a])})
    part: dict[str, Any] = {"participant_id": ids, "amplifier_latent": base["_C"],
                            "peripheral_latent": base["_P"], "mood_latent": base["_mood"],
                            "responsiveness": noise["b"],
                            "site_effect": s_eff}
    for j, arm in enumerate(arms):
        part[f"effect_{arm}"] = po["tau"][:, j]
    for j, arm in enumerate(arms):
        part[f"p12_{arm}"] = np.where(po["eligible1"][:, j], orc["p12"][:, j], np.nan)
    for j, arm in enumerate(arms):
        part[f"v24_{arm}"] = np.where(po["eligible1"][:, j], orc["v24"][:, j], np.nan)
    part["oracle_A1_w12"] = arms[orc["a1_w12"]]
    part["oracle_A1"] = arms[orc["a1"]]
    part["oracle_A2"] = options[orc["a2"][np.arange(n), orc["a1"]]]
    participants = pd.DataFrame(part)
    baseline = baseline_frame(protocol, base, levels, contra, ids)
    elig = po["eligible1"]
    baseline["eligible_arms"] = _joined(elig, arms)
    baseline["oracle_A1"] = participants["oracle_A1"].to_numpy()
    baseline["oracle_A1_w12"] = participants["oracle_A1_w12"].to_numpy()
    i, a = np.nonzero(elig)
    history = baseline.iloc[i].reset_index(drop=True)
    history["_row"] = i * k + a
    history["A1"] = arms[a]
    history["peg_w12"] = po["peg_w12"][i, a]
    history["pgic_w12"] = po["pgic_w12"][i, a].astype(int)
    history["intolerance_s1"] = po["intol"][i, a].astype(int)
    history["response_category"] = cats[po["cat"][i, a]]
    history["options2"] = _joined(po["permissible"][i, a], options)
    history["oracle_A2"] = options[orc["a2"][i, a]]
    arrays = {"peg0": peg0, "peg_w12": po["peg_w12"], "peg_w24": po["peg_w24"],
              "peg_w36": po["peg_w36"], "cat": po["cat"], "eligible1": po["eligible1"],
              "permissible": po["permissible"]}
    truth = Truth(paths=paths_df, participants=participants, values=pd.DataFrame(),
                  baseline=baseline, history=history, arrays=arrays,
                  arms=tuple(arms.tolist()), options=tuple(options.tolist()))
    values = pd.DataFrame([evaluate_regime(truth, r) for r in standard_regimes(protocol)])
    return Truth(paths=paths_df, participants=participants, values=values, baseline=baseline,
                 history=history, arrays=arrays, arms=truth.arms, options=truth.options,
                 modifiers=true_modifiers(st.model, base))


def standard_regimes(protocol: Protocol) -> list[TrueRegime]:
    """Randomized, oracle first treatment, oracle (two-stage), and each arm first."""
    regimes = [random_regime(), oracle_regime("stage1"), oracle_regime("two-stage")]
    return regimes + [fixed_regime(a, stage2="random") for a in protocol.arm_codes]


def _joined(mask: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row-wise ';'-join of the codes where ``mask`` (rows, codes) is True."""
    # rows share few patterns: join each distinct pattern once
    patterns, inverse = np.unique(np.asarray(mask, dtype=bool), axis=0, return_inverse=True)
    joined = np.array([";".join(str(c) for c, m in zip(codes, row, strict=True) if m)
                       for row in patterns] + [""], dtype=object)
    return joined[inverse.reshape(-1)] if mask.shape[0] else joined[:0]
