"""Derived scores from item-level responses: the service uses the instruments' own
:func:`tailor.instruments.derived.derived_scores` (PEG ``PEGSCORE``, PGIC, every other
instrument through ``tailor.instruments.score``)."""

from __future__ import annotations

from tailor.instruments.derived import derived_scores

__all__ = ["derived_scores"]
