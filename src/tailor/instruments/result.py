"""Frozen result objects returned by :func:`tailor.instruments.score`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["FM2016Result", "PGICResult", "ProfileResult", "PromisResult", "ScoreResult"]


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    """The score of one instrument administration.

    Attributes
    ----------
    instrument, version : str
        Registry name and version of the instrument scored.
    raw : float
        Sum of the scored item values; when proration applied, the prorated raw that was used.
    score : float
        The headline score: PEG mean, PROMIS T, ODI percent, FM 2016 fibromyalgianess; the raw
        sum for sum-scored instruments.
    band : str or None
        Interpretation band of the headline score.
    subscales : mapping
        Subscale name -> value (e.g. PCS rumination, STarT Back psychosocial).
    items : mapping
        Item code -> scored code used (None for missing items).
    items_used, items_missing : tuple of str
        Codes of answered and unanswered items.
    prorated : bool
        True when a missing-item rule filled in the score.
    proration : str or None
        What the rule did, e.g. ``"3 of 4 answered: 10 x 4/3 = 13.33 -> 14"``.
    flags : tuple of str
        Alerts (e.g. PHQ-9 item 9 > 0: safety workflow).
    derived_codes : mapping
        BACPAC ``QSTESTCD`` of derived scores (``raw``/``t_score``/``score`` -> code).
    """

    instrument: str
    version: str
    raw: float
    score: float
    band: str | None = None
    subscales: Mapping[str, float] = field(default_factory=dict)
    items: Mapping[str, int | None] = field(default_factory=dict)
    items_used: tuple[str, ...] = ()
    items_missing: tuple[str, ...] = ()
    prorated: bool = False
    proration: str | None = None
    flags: tuple[str, ...] = ()
    derived_codes: Mapping[str, str] = field(default_factory=dict)

    _SKIP = frozenset({"instrument", "version", "items", "items_used", "items_missing",
                       "derived_codes", "proration", "subscales", "flags", "domains"})

    def as_fields(self) -> dict[str, Any]:
        """Flat ``{field: value}`` of the derived scores, prefixed with the instrument name
        (e.g. ``promis_depression_4a_t_score``), for wide tables."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in self._SKIP:
                continue
            out[f"{self.instrument}_{f.name}"] = getattr(self, f.name)
        for name, value in self.subscales.items():
            out[f"{self.instrument}_{name}"] = value
        return out

    def summary(self) -> str:
        """One line of text: instrument, scores, band and proration."""
        parts = [f"{self.instrument} ({self.version}): raw {self.raw:g}"]
        if self.score != self.raw:
            parts.append(f"score {self.score:g}")
        if self.band:
            parts.append(f"band {self.band}")
        if self.proration:
            parts.append(f"prorated: {self.proration}")
        if self.flags:
            parts.append("flags: " + "; ".join(self.flags))
        return ", ".join(parts)


@dataclass(frozen=True, kw_only=True)
class PromisResult(ScoreResult):
    """A PROMIS short-form score: raw sum -> T-score and SE by table lookup.

    ``t_score``/``se`` are None only when no conversion table is available for the form (the
    raw score is still returned); ``table`` names the table used.
    """

    t_score: float | None = None
    se: float | None = None
    table: str | None = None


@dataclass(frozen=True, kw_only=True)
class FM2016Result(ScoreResult):
    """The 2016 fibromyalgia survey criteria (Wolfe et al. 2016).

    ``wpi`` 0-19, ``sss`` 0-12, ``regions_painful`` 0-5 (jaw, chest, abdomen not counted),
    ``generalized_pain`` (>= 4 of 5 regions), ``criteria_met``, ``fibromyalgianess`` = WPI + SSS
    (0-31, also the headline ``score``), ``body_regions`` = number of the 19 areas marked
    painful (equal to ``wpi`` on the 19-area map).
    """

    wpi: int
    sss: int
    regions_painful: int
    generalized_pain: bool
    symptoms_3_months: bool
    criteria_met: bool
    fibromyalgianess: int
    body_regions: int


@dataclass(frozen=True, kw_only=True)
class PGICResult(ScoreResult):
    """PGIC: ``guy_code`` 1-7 (1 = very much improved), ``bacpac_code`` 0-6, ``category``
    label, and ``responder`` (much or very much improved)."""

    guy_code: int
    bacpac_code: int
    category: str
    responder: bool


@dataclass(frozen=True, kw_only=True)
class ProfileResult(ScoreResult):
    """The PROMIS-29 profile: one :class:`PromisResult` per domain and the pain-intensity item."""

    domains: Mapping[str, PromisResult]
    pain_intensity: int | None

    def as_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{self.instrument}_pain_intensity": self.pain_intensity}
        for res in self.domains.values():
            out.update(res.as_fields())
        return out
