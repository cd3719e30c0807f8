"""A synthetic BACPAC-style extract: a simulated BEST trial written in the SDTM-like layout with
the messiness real extracts have.

:func:`example_extract` simulates a trial (``tailor.stats.simulation``, items scored through
``tailor.instruments``), writes it with :func:`tailor.interop.sdtm.to_sdtm`, then, from one
seeded generator, makes it look like a real extract:

* ISO-8601 durations: every QS row carries ``QSEVLINT`` (``P12W`` or ``P84D``) and a share of
  rows lose ``VISITNUM`` (the importer matches them by the duration); pain duration is in SC as
  ``LBPDUR`` = ``P2Y3M``;
* unit strings: some item values come only as ``QSORRES`` = ``"6 points"``; some ages as
  ``"54 YEARS"`` with ``AGEU`` blank;
* partial dates: ``QSDTC`` ``2024-03`` and ``RFSTDTC`` ``2024``;
* unscheduled visits (``VISITNUM`` ``12.1``), exact duplicate records, rounded supplied scores
  (``PEGSCORE`` ``4.33``), one deliberately wrong supplied score, and rows of an item code no
  declared instrument has (``SDOH01``).

None of these stop the import; each is in the conformance report. The simulated wide table is
returned too: the import must give it back (columns of the export's data contract).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.interop.sdtm import Extract, item_codes, to_sdtm
from tailor.protocol import Protocol, load_protocol

__all__ = ["example_extract"]

DERIVED = {"peg": "PEGSCORE", "pgic": "PGIC", "response_category": "response_category"}


def _export_like_long(long: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The simulator's long table in the export's shape: items, PEGSCORE/PGIC, study days."""
    items = item_codes()
    keep = long["field"].isin(items) | long["field"].isin(DERIVED)
    out = long[keep & long["week"].notna()].copy()
    out["field"] = out["field"].map(lambda f: DERIVED.get(f, f))
    visits = out.drop_duplicates(["participant_id", "week"])[
        ["participant_id", "site", "visit", "week"]].copy()
    jitter = rng.integers(-3, 4, len(visits))
    visits["field"] = "study_day"
    visits["value"] = (visits["week"].astype(int) * 7 + np.where(visits["week"] == 0, 0, jitter)
                       ).astype(str)
    return pd.concat([out, visits], ignore_index=True)


def _messy(ex: Extract, rng: np.random.Generator, protocol: Protocol) -> Extract:
    d = {k: v.copy() for k, v in ex.domains.items()}
    qs = d["QS"]
    n = len(qs)
    week = pd.to_numeric(qs["VISITNUM"], errors="coerce")
    days = pd.to_numeric(qs["QSDY"], errors="coerce")
    as_days = rng.random(n) < 0.5
    qs["QSEVLINT"] = np.where(as_days, "P" + (week * 7).astype("Int64").astype(str) + "D",
                              "P" + week.astype("Int64").astype(str) + "W")
    lose = rng.random(n) < 0.03
    qs.loc[lose, ["VISITNUM", "VISIT"]] = None
    start = pd.Timestamp("2024-01-08")
    dates = (start + pd.to_timedelta(days.fillna(0), unit="D")).dt.strftime("%Y-%m-%d")
    partial = rng.random(n) < 0.05
    qs["QSDTC"] = np.where(partial, dates.str[:7], dates)
    is_item = qs["QSDRVFL"].isna()
    units = is_item & (rng.random(n) < 0.02)
    qs.loc[units, "QSORRES"] = qs.loc[units, "QSSTRESN"].astype(str) + " points"
    qs.loc[units, "QSSTRESN"] = None
    peg = qs["QSTESTCD"].eq("PEGSCORE")
    qs.loc[peg, "QSSTRESN"] = pd.to_numeric(qs.loc[peg, "QSSTRESN"]).round(2).map("{:.2f}".format)
    qs.loc[peg, "QSORRES"] = qs.loc[peg, "QSSTRESN"]
    wrong = np.flatnonzero(peg.to_numpy())[:1]
    qs.loc[qs.index[wrong], ["QSSTRESN", "QSORRES"]] = "9.99"
    # unscheduled PEG visits and exact duplicates
    pegs = qs[qs["QSTESTCD"].isin(["PEG1", "PEG2", "PEG3"]) & (week == 12)]
    ids = pegs["USUBJID"].drop_duplicates()
    chosen = ids[rng.random(len(ids)) < 0.05]
    extra = pegs[pegs["USUBJID"].isin(chosen)].copy()
    extra["VISITNUM"], extra["VISIT"], extra["QSEVLINT"] = "12.1", "UNSCHEDULED 12.1", None
    dup = qs[is_item & (rng.random(n) < 0.01)]
    sdoh = qs[qs["VISITNUM"].eq("0") & qs["QSTESTCD"].eq("PEG1")].head(5).copy()
    sdoh["QSTESTCD"], sdoh["QSORRES"], sdoh["QSSTRESN"] = "SDOH01", "2", "2"
    qs = pd.concat([qs, extra, dup, sdoh], ignore_index=True)
    qs = qs.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    qs["QSSEQ"] = np.arange(1, len(qs) + 1).astype(str)
    d["QS"] = qs.astype(object).where(qs.notna(), None)
    dm = d["DM"]
    unit_age = dm["AGE"].notna() & (rng.random(len(dm)) < 0.1)
    dm.loc[unit_age, "AGE"] = dm.loc[unit_age, "AGE"] + " YEARS"
    dm.loc[unit_age, "AGEU"] = None
    dm["RFSTDTC"] = np.where(rng.random(len(dm)) < 0.2, "2024", "2024-01-08")
    return Extract(d, source="tailor import example")


def example_extract(participants: int = 200, *, seed: int = 1,
                    scenario: str = "amplifier-guitar",
                    protocol: Protocol | str = "best") -> tuple[Extract, pd.DataFrame]:
    """A messy BACPAC-style extract of a simulated trial, and the wide table it must give back.

    The wide table holds the data contract's export columns (no latent or truth columns).
    """
    from tailor import instruments
    from tailor.instruments.phenotype import derive_phenotype
    from tailor.stats.generative import InstrumentScoring
    from tailor.stats.simulation import simulate_trial

    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    sim = simulate_trial(proto, scenario, participants=participants, seed=seed,
                         scoring=InstrumentScoring(instruments.score, instruments.get,
                                                   derive_phenotype))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 21]))
    long = _export_like_long(sim.long, rng)
    ex = to_sdtm(sim.wide, long, proto, studyid="BEST-SIM")
    sc = ex.domains["SC"]
    dur = sim.wide[["participant_id", "pain_duration_months"]].dropna()
    lbp = pd.DataFrame({"STUDYID": "BEST-SIM", "DOMAIN": "SC",
                        "USUBJID": dur["participant_id"].astype(str),
                        "SCTESTCD": "LBPDUR",
                        "SCORRES": [f"P{int(m) // 12}Y{int(m) % 12}M"
                                    for m in dur["pain_duration_months"]],
                        "SCSTRESN": None})
    ex.domains["SC"] = pd.concat([sc, lbp], ignore_index=True).astype(object)
    return _messy(ex, rng, proto), sim.wide
