"""The instrument registry: every declaration, looked up by name.

Adding an instrument means declaring it in its family module and listing that module's
``INSTRUMENTS`` here; nothing in the service or web layers changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tailor.exceptions import InstrumentError
from tailor.instruments import (
    back,
    bacpac,
    fibromyalgia,
    mood,
    pain,
    promis,
    psychological,
    sensitization,
    substance,
)
from tailor.instruments.declaration import ConversionTable, Instrument
from tailor.instruments.result import ScoreResult
from tailor.instruments.scoring import score_instrument

__all__ = ["available", "get", "instruments", "score"]

_ALL: tuple[Instrument, ...] = (*pain.INSTRUMENTS, *promis.INSTRUMENTS, *mood.INSTRUMENTS,
                                *psychological.INSTRUMENTS, *fibromyalgia.INSTRUMENTS,
                                *sensitization.INSTRUMENTS, *back.INSTRUMENTS,
                                *substance.INSTRUMENTS, *bacpac.INSTRUMENTS)
_BY_NAME: dict[str, Instrument] = {inst.name: inst for inst in _ALL}
assert len(_BY_NAME) == len(_ALL), "duplicate instrument name"


def available() -> list[str]:
    """Names of every declared instrument, in registry order."""
    return list(_BY_NAME)


def instruments() -> tuple[Instrument, ...]:
    """Every declaration, in registry order."""
    return _ALL


def get(name: str) -> Instrument:
    """The declaration of instrument ``name`` (e.g. ``"promis_depression_4a"``)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise InstrumentError(
            f"unknown instrument '{name}' (available: {', '.join(_BY_NAME)})", instrument=name,
            item=None, value=name, allowed=tuple(_BY_NAME)) from None


def score(name: str, responses: Mapping[str, Any] | Sequence[Any], *, coding: str | None = None,
          table: ConversionTable | None = None) -> ScoreResult:
    """Validate and score one administration of instrument ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    responses : mapping or sequence
        Item code -> value (codes case-insensitive; blank = missing), or values in item order.
    coding : str, optional
        An alternative coding declared by the instrument (PGIC: ``"bacpac"`` for codes 0-6).
    table : ConversionTable, optional
        Raw -> T table for PROMIS forms; overrides the bundled one (required for T-scores of
        PF 6b and Sleep 6a, which ship without a table).

    Returns
    -------
    ScoreResult
        Or a subclass: PromisResult (``t_score``, ``se``), FM2016Result, PGICResult,
        ProfileResult.

    Raises
    ------
    InstrumentError
        Naming the instrument, the item, the value and what is allowed.
    """
    return score_instrument(get(name), responses, coding=coding, table=table)
