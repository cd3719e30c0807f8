"""The analysis table from the de-identified export, and the trial sections of the report.

The export's wide table (docs/data-contract.md) carries the protocol's Visit-0 fields but not
the continuous phenotype; :func:`analysis_table` re-scores the exported Visit-0 item responses
with ``tailor.instruments`` and adds the phenotype fields (amplifier index and its components,
body regions, PROMIS T-scores, PCS) so that ``tailor analyze`` can tailor on them. Only exported
(de-identified) data are read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tailor import instruments
from tailor.dtr.labels import readable_columns
from tailor.instruments.phenotype import derive_phenotype
from tailor.report import HtmlReport
from tailor.services.baseline import BASELINE_INSTRUMENTS, item_instrument
from tailor.trialflow import TrialFlow

__all__ = ["analysis_table", "trial_sections"]


def analysis_table(wide: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """``wide`` plus the baseline phenotype fields re-scored from ``long``'s Visit-0 items."""
    of = item_instrument(BASELINE_INSTRUMENTS)
    base = long[(pd.to_numeric(long["week"], errors="coerce") == 0) & long["field"].isin(of)]
    rows: dict[str, dict[str, Any]] = {}
    for pid, g in base.groupby("participant_id", sort=False):
        blocks: dict[str, dict[str, Any]] = {n: {} for n in BASELINE_INSTRUMENTS}
        for item, value in zip(g["field"], g["value"], strict=True):
            blocks[of[item]][item] = None if pd.isna(value) or value in ("", "None") else int(
                float(value))
        try:
            ph = derive_phenotype([instruments.score(n, b) for n, b in blocks.items()])
        except (ValueError, KeyError):
            continue
        rows[str(pid)] = {k: v for k, v in ph.as_fields().items()
                          if k not in ("promis_depression_t", "phenotype_label", "csi_total")}
    extra = pd.DataFrame.from_dict(rows, orient="index")
    out = wide.merge(extra, left_on="participant_id", right_index=True, how="left")
    if "fm2016_met" in out:
        out["fm2016_met"] = out["fm2016_met"].astype("float")
    return out


def _response_by_stage(table: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame,
                                                                       pd.DataFrame]:
    t = table.copy()
    base = pd.to_numeric(t["peg_baseline"], errors="coerce")
    for w in (12, 24):
        peg = pd.to_numeric(t[f"peg_w{w}"], errors="coerce")
        t[f"responder_w{w}"] = np.where(peg.isna(), np.nan,
                                        (base - peg >= threshold * base - 1e-9).astype(float))
    s1 = t.groupby("A1").agg(n=("participant_id", "size"),
                             week12_observed=("peg_w12", "count"),
                             week12_responders=("responder_w12", "mean"),
                             excellent=("response_category", lambda s: (s == "excellent").sum()),
                             good=("response_category", lambda s: (s == "good").sum()),
                             medium=("response_category", lambda s: (s == "medium").sum()),
                             bad=("response_category", lambda s: (s == "bad").sum()),
                             ).reset_index().rename(columns={"A1": "first treatment"})
    s2 = t[t["A2"].notna()].groupby(["A1", "action2"]).agg(
        n=("participant_id", "size"), week24_observed=("peg_w24", "count"),
        week24_responders=("responder_w24", "mean"),
        mean_peg_w24=("peg_w24", "mean")).reset_index().rename(
        columns={"A1": "first treatment", "action2": "stage-2 action"})
    return s1, s2


def trial_sections(flow: TrialFlow, balance: dict[str, pd.DataFrame], table: pd.DataFrame,
                   *, threshold: float = 0.30, note: str = "") -> Callable[[HtmlReport], None]:
    """The report's trial sections: flow diagram, balance, response by arm and stage."""
    def add(report: HtmlReport) -> None:
        report.heading("Trial flow")
        if note:
            report.paragraph(note, note=True)
        report.raw(f'<figure>{flow.to_svg(title="Participant flow (CONSORT-style SMART)")}'
                   "<figcaption>Screened, enrolled, randomized per first treatment, week-12 "
                   "response categories, stage-2 options and the week-24 outcome observed."
                   "</figcaption></figure>")
        report.table(flow.table(), caption="The flow as a table.")
        report.heading("Balance")
        report.table(balance["stage1"], caption="Stage 1: participants per first treatment by "
                                                "minimization factor level; range = max - min "
                                                "over arms.")
        report.table(balance["stage2"], caption="Stage 2: options by stratum (first treatment "
                                                "x week-12 category).")
        report.heading("Response by arm and stage")
        s1, s2 = _response_by_stage(table, threshold)
        report.table(readable_columns(s1),
                     caption=f"Stage 1: week-12 responders (PEG reduced by >= "
                             f"{threshold:.0%}) and week-12 categories by first treatment.")
        report.table(readable_columns(s2),
                     caption="Stage 2: week-24 responders and mean PEG by first treatment "
                             "and second-stage action.")

    return add
