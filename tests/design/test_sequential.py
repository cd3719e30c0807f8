"""O'Brien-Fleming boundaries and inflation factors against Jennison & Turnbull (2000).

Provenance: Jennison C, Turnbull BW (2000), Group Sequential Methods, Table 2.3 (O'Brien-Fleming
constant C_B(K, alpha) for two-sided alpha = 0.05: K = 2: 1.977, 3: 2.004, 4: 2.024) and
Table 2.4 (maximum sample size over fixed, alpha 0.05, power 0.8: K = 2: 1.008, 3: 1.017).
"""

from __future__ import annotations

import numpy as np
import pytest

from tailor.design.sequential import inflation_factor, obrien_fleming
from tailor.exceptions import ScenarioError


@pytest.mark.parametrize("looks, c", [(2, 1.977), (3, 2.004), (4, 2.024)])
def test_obrien_fleming_constants(looks: int, c: float) -> None:
    b = obrien_fleming(looks, 0.05)
    assert b[-1] == pytest.approx(c, abs=0.002)
    assert np.allclose(b, c * np.sqrt(looks / np.arange(1, looks + 1)), atol=0.005)


@pytest.mark.parametrize("looks, r", [(2, 1.008), (3, 1.017)])
def test_inflation_factor(looks: int, r: float) -> None:
    assert inflation_factor(looks, 0.05, 0.80) == pytest.approx(r, abs=0.002)


def test_one_look_is_the_fixed_design_and_bad_input() -> None:
    assert obrien_fleming(1)[0] == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ScenarioError, match="looks"):
        obrien_fleming(0)
