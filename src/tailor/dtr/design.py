"""Deprecated alias of :mod:`tailor.dtr.formula` (renamed so that it is not confused with the
trial-design package :mod:`tailor.design`); removed in the next release."""

from __future__ import annotations

import warnings

from tailor.dtr.formula import (
    Formula,
    StageSpec,
    TermBlock,
    TreatmentCoding,
    column_labels,
    option_label,
    parse_formula,
    parse_options,
)

__all__ = ["Formula", "StageSpec", "TermBlock", "TreatmentCoding", "column_labels",
           "option_label", "parse_formula", "parse_options"]

warnings.warn("tailor.dtr.design is renamed tailor.dtr.formula; the alias goes in the next "
              "release", DeprecationWarning, stacklevel=2)
