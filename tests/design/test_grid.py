from __future__ import annotations

import numpy as np
import pytest

from tailor.design.grid import Cell, expand_grid, replicate_seed
from tailor.exceptions import ScenarioError


def test_seed_depends_on_parameters_not_position_or_count() -> None:
    a = expand_grid(n=[100, 200], effect=[0.5])
    b = expand_grid(n=[300, 200, 100], effect=[0.5])
    cell = a[1]
    assert cell in b
    s1 = np.random.default_rng(replicate_seed(7, cell, 3)).random(4)
    s2 = np.random.default_rng(replicate_seed(7, b[1], 3)).random(4)
    np.testing.assert_array_equal(s1, s2)
    # replicate r is the r-th child of the cell's SeedSequence whatever the number spawned
    parent = np.random.SeedSequence(entropy=[7, *cell.words])
    child = parent.spawn(10)[3]
    np.testing.assert_array_equal(np.random.default_rng(child).random(4), s1)
    assert not np.array_equal(np.random.default_rng(replicate_seed(8, cell, 3)).random(4), s1)
    assert not np.array_equal(np.random.default_rng(replicate_seed(7, a[0], 3)).random(4), s1)


def test_cell_key_is_canonical() -> None:
    assert Cell.of({"b": 1, "a": 2.5}).key == Cell.of({"a": 2.5, "b": 1}).key == '{"a":2.5,"b":1}'
    assert Cell.of({"n": 400.0}).key == Cell.of({"n": 400}).key


@pytest.mark.parametrize("kwargs", [{"n": []}, {"n": [1, 1]}])
def test_bad_axes(kwargs: dict) -> None:
    with pytest.raises(ScenarioError):
        expand_grid(**kwargs)


def test_bad_values() -> None:
    with pytest.raises(ScenarioError, match="finite"):
        Cell.of({"x": float("nan")})
    with pytest.raises(ScenarioError, match="both"):
        expand_grid({"n": 1}, n=[2])
