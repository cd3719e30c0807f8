"""Hypothesis properties over every declared sum/mean/percent/lookup instrument: the score stays
in its declared range; it is monotone in each item in the scoring direction; reversing a reversed
item's coding changes the raw score by exactly the reversal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailor import instruments
from tailor.instruments import Instrument

GENERIC = [i for i in instruments.instruments() if i.rule in ("sum", "mean", "percent", "lookup")]
NAMES = [i.name for i in GENERIC]


def complete(inst: Instrument) -> st.SearchStrategy[list[int]]:
    return st.tuples(*(st.sampled_from(sorted(it.allowed)) for it in inst.items)).map(list)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_score_in_range_and_monotone(name: str, data: st.DataObject) -> None:
    inst = instruments.get(name)
    values = data.draw(complete(inst))
    res = instruments.score(name, values)
    lo, hi = inst.score_range
    target = res.raw if inst.rule == "lookup" else res.score
    assert lo <= target <= hi
    if getattr(res, "t_score", None) is not None:
        assert 10 <= res.t_score <= 90  # type: ignore[attr-defined]
    k = data.draw(st.integers(0, len(inst.items) - 1))
    item = inst.items[k]
    codes = sorted(item.allowed)
    pos = codes.index(values[k])
    if pos + 1 < len(codes):
        up = list(values)
        up[k] = codes[pos + 1]
        res_up = instruments.score(name, up)
        step = codes[pos + 1] - codes[pos]
        assert res_up.raw - res.raw == (-step if item.reverse else step)
        if getattr(res, "t_score", None) is not None:
            assert res_up.t_score > res.t_score  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [i.name for i in GENERIC if any(it.reverse for it in i.items)])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_reversing_a_reversed_item(name: str, data: st.DataObject) -> None:
    inst = instruments.get(name)
    values = data.draw(complete(inst))
    k = data.draw(st.sampled_from([i for i, it in enumerate(inst.items) if it.reverse]))
    item = inst.items[k]
    flipped = list(values)
    flipped[k] = item.scale.low + item.scale.high - values[k]
    delta = instruments.score(name, flipped).raw - instruments.score(name, values).raw
    assert delta == 2 * values[k] - item.scale.low - item.scale.high


def test_reversed_instruments_exist() -> None:
    assert {"rtf_iss", "tsk17"} <= {i.name for i in GENERIC if any(it.reverse for it in i.items)}


@pytest.mark.parametrize("name", ["promis_anxiety_4a", "promis_sleep_6a", "phq9", "gad7", "odi"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_prorated_scores_stay_in_range(name: str, data: st.DataObject) -> None:
    inst = instruments.get(name)
    values: list[int | None] = list(data.draw(complete(inst)))
    n_missing = data.draw(st.integers(1, inst.missing.max_missing))
    droppable = [i for i, c in enumerate(inst.codes) if c not in inst.missing.required]
    for i in data.draw(st.permutations(droppable))[:n_missing]:
        values[i] = None
    res = instruments.score(name, values)
    lo, hi = inst.score_range
    assert res.prorated
    assert lo <= (res.raw if inst.rule == "lookup" else res.score) <= hi
