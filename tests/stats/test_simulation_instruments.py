"""Simulated item responses are scored by tailor.instruments: the tables carry its scores."""

from __future__ import annotations

import pandas as pd
import pytest

from tailor import instruments
from tailor.instruments.phenotype import derive_phenotype
from tailor.stats.generative import INSTRUMENT_FORMS, InstrumentScoring
from tailor.stats.simulation import simulate_trial


@pytest.fixture(scope="module")
def scored():
    scoring = InstrumentScoring(instruments.score, instruments.get, derive_phenotype)
    return simulate_trial(participants=60, seed=4, scoring=scoring, oracle_inner=8)


def _items(long, pid, week, codes):
    rows = long[(long["participant_id"] == pid) & (long["week"] == week)
                & long["field"].isin(codes)]
    return {r.field: int(r.value) for r in rows.itertuples()}


def test_baseline_scores_are_the_instruments(scored):
    for row in scored.wide.head(25).itertuples():
        results = []
        for column, form in INSTRUMENT_FORMS.items():
            res = instruments.score(form, _items(scored.long, row.participant_id, 0,
                                                 [it.code for it in instruments.get(form).items]))
            assert res.t_score == pytest.approx(getattr(row, column))
            results.append(res)
        for name in ("fm2016", "pcs13"):
            codes = [it.code for it in instruments.get(name).items]
            results.append(instruments.score(name, _items(scored.long, row.participant_id, 0,
                                                          codes)))
        ph = derive_phenotype(results)
        assert ph.label == row.phenotype_label
        assert ph.wpi == row.wpi and ph.sss == row.sss
        assert ph.amplifier_index == pytest.approx(row.amplifier_index)
        assert ph.pcs == row.pcs_total


def test_peg_and_pgic_items_score_to_the_tables(scored):
    for row in scored.wide.head(25).itertuples():
        for week, column in ((0, "peg_baseline"), (12, "peg_w12"), (24, "peg_w24")):
            value = getattr(row, column)
            if value != value:  # missing after dropout
                continue
            items = _items(scored.long, row.participant_id, week, ["PEG1", "PEG2", "PEG3"])
            assert instruments.score("peg", items).score == pytest.approx(value)
        if not pd.isna(row.pgic_w12):
            items = _items(scored.long, row.participant_id, 12, ["PGIC1"])
            assert instruments.score("pgic", items).score == row.pgic_w12
