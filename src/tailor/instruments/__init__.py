"""Phenotyping and outcome instruments: declarations, scoring, validation, data formats and the
nociplastic ("amplifier") vs nociceptive ("guitar") phenotype. Pure: no db, web or settings.

>>> from tailor import instruments
>>> instruments.score("peg", {"PEG1": 6, "PEG2": 5, "PEG3": 4}).score
5.0
"""

from tailor.instruments.declaration import (
    Alert,
    Band,
    ConversionTable,
    Instrument,
    Item,
    MissingRule,
    Scale,
)
from tailor.instruments.registry import available, get, instruments, score
from tailor.instruments.result import (
    FM2016Result,
    PGICResult,
    ProfileResult,
    PromisResult,
    ScoreResult,
)

__all__ = [
    "Alert",
    "Band",
    "ConversionTable",
    "FM2016Result",
    "Instrument",
    "Item",
    "MissingRule",
    "PGICResult",
    "ProfileResult",
    "PromisResult",
    "Scale",
    "ScoreResult",
    "available",
    "get",
    "instruments",
    "score",
]
