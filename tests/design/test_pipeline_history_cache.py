"""The pipeline keeps a Q-learning stage's history matrices for the last few frames
(``pipeline._history``, issue 18 item 5: the fixed population's frames are read in every
replicate). A hit must be the same matrices, and a new frame or other fitted levels must not
be served another's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from tailor.design import pipeline
from tailor.dtr.qlearning import QLearning
from tests.dtr.best_like import STAGES, best_like


def _fit(data: pd.DataFrame):
    return QLearning(stages=STAGES, maximize=False).fit(data, outcome="peg_w24")


def test_history_is_kept_per_frame_and_formula_levels():
    data = best_like(200, seed=1)
    spec = _fit(data).stage(2).spec
    pipeline._HISTORY.clear()
    first = pipeline._history(spec, data)
    want = spec.history(data, strict=False)
    for got, ref in zip(first, want, strict=True):
        np.testing.assert_array_equal(got, ref)
        assert not got.flags.writeable  # shared: read-only
    assert pipeline._history(spec, data)[0] is first[0]  # the kept matrices
    other = data.copy()  # another frame object, other values
    other["amplifier_index"] = other["amplifier_index"] + 1.0
    np.testing.assert_array_equal(pipeline._history(spec, other)[0],
                                  spec.history(other, strict=False)[0])
    assert not np.array_equal(pipeline._history(spec, other)[0], first[0])
    # a fit that saw other categorical levels (here: an arm fewer) has its own key
    a1 = spec.main.variables["A1"]
    assert a1.levels is not None and len(a1.levels) >= 3
    fewer = replace(spec, main=replace(spec.main, variables={
        **spec.main.variables, "A1": replace(a1, levels=a1.levels[:-1])}))
    assert repr(fewer.main) != repr(spec.main)
    np.testing.assert_array_equal(pipeline._history(fewer, data)[0],
                                  fewer.history(data, strict=False)[0])
    for _ in range(8):  # at most a few frames are kept
        pipeline._history(spec, data.copy())
    assert len(pipeline._HISTORY) <= 6
