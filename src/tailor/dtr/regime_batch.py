"""Batch scoring: the deployed regime's decision for every row of a patient table.

A thin, vectorized layer over :meth:`tailor.dtr.regime_model.RegimeModel.predict`: the
model's feature columns (blank = missing, widened intervals), and optionally ``eligible_<ARM>``
(1/0) columns or a ``contraindicated`` column of arm codes separated by ``|``. One output row
per patient: the recommendation, the equally reasonable set, and per treatment the expected
week-24 PEG and the chance of response with 95% intervals, plus the missing inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.dtr.regime_model import RegimeModel, Z
from tailor.exceptions import InputFileError

__all__ = ["score_patients"]


def _eligible(model: RegimeModel, frame: pd.DataFrame) -> np.ndarray:
    options = model.stages[0].options
    n = len(frame)
    elig = np.ones((n, len(options)), dtype=bool)
    for k, arm in enumerate(options):
        col = f"eligible_{arm}"
        if col in frame.columns:
            v = pd.to_numeric(frame[col], errors="coerce")
            if v.isna().any() or not v.isin([0, 1]).all():
                row = int(np.flatnonzero(v.isna() | ~v.isin([0, 1]))[0])
                raise InputFileError(f"{col} must be 1 or 0; row {row + 1} has "
                                     f"{frame[col].iloc[row]!r}", column=col)
            elig[:, k] = v.to_numpy() == 1
    if "contraindicated" in frame.columns:
        for i, cell in enumerate(frame["contraindicated"].fillna("").astype(str)):
            for arm in filter(None, (a.strip() for a in cell.split("|"))):
                if arm not in options:
                    raise InputFileError(f"contraindicated: unknown arm {arm!r} in row {i + 1} "
                                         f"(arms are {', '.join(options)})",
                                         column="contraindicated")
                elig[i, options.index(arm)] = False
    if not elig.any(axis=1).all():
        row = int(np.flatnonzero(~elig.any(axis=1))[0])
        raise InputFileError(f"row {row + 1}: every treatment is contraindicated",
                             column="contraindicated")
    return elig


def score_patients(model: RegimeModel, frame: pd.DataFrame) -> pd.DataFrame:
    """One decision per row of ``frame`` (see the module docstring)."""
    if model.baseline not in frame.columns:
        raise InputFileError(f"the table lacks column {model.baseline!r}, which the model "
                             "needs for every patient", column=model.baseline)
    cols = {}
    for f in model.features:
        if f in frame.columns:
            v = pd.to_numeric(frame[f], errors="coerce")
            bad = v.isna() & frame[f].notna() & (frame[f].astype(str).str.strip() != "")
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputFileError(f"{f} must be a number; row {row + 1} has "
                                     f"{frame[f].iloc[row]!r}", column=f)
            cols[f] = v.to_numpy(dtype=float)
    pr = model.predict(cols, _eligible(model, frame))
    options = np.array(pr.options, dtype=object)
    out: dict[str, object] = {}
    if "patient_id" in frame.columns:
        out["patient_id"] = frame["patient_id"].to_numpy()
    out["recommended"] = options[pr.best]
    # equally reasonable set, best first (by expected PEG)
    order = np.argsort(np.where(pr.reasonable, pr.mean, np.inf), axis=1)
    ranked = options[order]
    keep = np.take_along_axis(pr.reasonable, order, axis=1)
    out["equally_reasonable"] = ["|".join(r[m]) for r, m in zip(ranked, keep, strict=True)]
    out["n_equally_reasonable"] = keep.sum(axis=1)
    for k, arm in enumerate(pr.options):
        out[f"peg_{arm}"] = pr.mean[:, k]
        out[f"peg_{arm}_lower"] = pr.mean[:, k] - Z * pr.se[:, k]
        out[f"peg_{arm}_upper"] = pr.mean[:, k] + Z * pr.se[:, k]
        nan = np.isnan(pr.mean[:, k])
        out[f"response_{arm}"] = np.where(nan, np.nan, pr.p_response[:, k])
        out[f"response_{arm}_lower"] = np.where(nan, np.nan, pr.p_lower[:, k])
        out[f"response_{arm}_upper"] = np.where(nan, np.nan, pr.p_upper[:, k])
    missing = np.stack([~np.isfinite(cols[f]) if f in cols else np.ones(len(frame), bool)
                        for f in model.features], axis=1)
    names = np.array(model.features, dtype=object)
    out["missing"] = ["|".join(names[m]) for m in missing]
    return pd.DataFrame(out)
