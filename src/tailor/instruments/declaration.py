"""Instrument declarations: items, response scales, scoring rule, bands, licence and source as data.

An :class:`Instrument` says everything the web forms, the database and the scorer need to know
about a questionnaire: its item codes (BACPAC Minimum Dataset ``QSTESTCD`` where one exists), the
codes each item accepts, which items are reverse-scored, how the score is formed, the valid score
range, the interpretation bands, the missing-data rule, the version, the licence and the source.
Only genuinely special rules (the 2016 fibromyalgia criteria, STarT Back, PGIC) carry code, as a
``special`` callable; everything else is scored by :mod:`tailor.instruments.scoring` from the
declaration alone.

References
----------
BACPAC Minimum Dataset, "BACPAC Modified SDTM Standard 3.1.2" (``STDSPECS_MinimumDataset.xlsx``,
GitHub ``Vincent-Toups/bacpac_val``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from tailor.exceptions import InstrumentError

if TYPE_CHECKING:
    from tailor.instruments.result import ScoreResult

__all__ = [
    "Alert",
    "Band",
    "ConversionTable",
    "Instrument",
    "Item",
    "MissingRule",
    "Scale",
    "Value",
]

Value = int | None
"""A validated item value: the scored code, or ``None`` when the item was not answered."""

Rule = Literal["sum", "mean", "percent", "lookup", "special"]


@dataclass(frozen=True)
class Scale:
    """A response scale: the codes an item accepts and what each means.

    ``name`` is the BACPAC codelist name where one exists (e.g. ``LIKRTN5A``).
    """

    name: str
    choices: tuple[tuple[int, str], ...]

    @cached_property
    def codes(self) -> tuple[int, ...]:
        """The allowed codes, in display order."""
        return tuple(code for code, _ in self.choices)

    @property
    def low(self) -> int:
        return min(self.codes)

    @property
    def high(self) -> int:
        return max(self.codes)

    def label(self, code: int) -> str:
        """The response label of ``code``."""
        return dict(self.choices)[code]

    def allowed_text(self) -> str:
        """The allowed codes as text for error messages, e.g. ``'1-5'`` or ``'0, 1, 99'``."""
        codes = sorted(self.codes)
        if codes == list(range(codes[0], codes[-1] + 1)) and len(codes) > 2:
            return f"{codes[0]}-{codes[-1]}"
        return ", ".join(str(c) for c in codes)


def numeric_scale(name: str, low: int, high: int, *, low_label: str = "",
                  high_label: str = "") -> Scale:
    """An 11-point (or other) numeric rating scale with labelled ends."""
    choices = tuple((k, low_label if k == low else high_label if k == high else str(k))
                    for k in range(low, high + 1))
    return Scale(name, choices)


@dataclass(frozen=True)
class Item:
    """One questionnaire item.

    Parameters
    ----------
    code : str
        Canonical item code (BACPAC ``QSTESTCD`` where one exists), upper case.
    label : str
        A short paraphrase of the item (item wording is copyrighted for several instruments).
    scale : Scale
        The response codes the item accepts.
    reverse : bool
        True when the scored value is ``scale.low + scale.high - code``.
    """

    code: str
    label: str
    scale: Scale
    reverse: bool = False

    @property
    def allowed(self) -> tuple[int, ...]:
        return self.scale.codes

    def scored(self, code: int) -> int:
        """The value this item contributes to the score for response ``code``."""
        return self.scale.low + self.scale.high - code if self.reverse else code


@dataclass(frozen=True)
class Band:
    """An interpretation band ``low <= score <= high`` labelled ``label``."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class Alert:
    """Raise ``message`` as a result flag when item ``item`` has a scored value >= ``at_least``."""

    item: str
    at_least: int
    message: str


@dataclass(frozen=True)
class MissingRule:
    """What to do when items are unanswered.

    Parameters
    ----------
    max_missing : int
        How many items may be missing (0: every item is required).
    method : {"none", "prorate_ceil", "prorate_round", "rescale"}
        ``prorate_ceil``: raw x n_items / n_answered, rounded up (HealthMeasures PROMIS rule);
        ``prorate_round``: the same, rounded half up (PHQ/GAD convention); ``rescale``: the score
        is a percentage of the maximum over answered items (ODI).
    required : tuple of str
        Items that may never be missing even when others may (e.g. PHQ-9 item 9, safety).
    source : str
        Where the rule comes from.
    """

    max_missing: int = 0
    method: Literal["none", "prorate_ceil", "prorate_round", "rescale"] = "none"
    required: tuple[str, ...] = ()
    source: str = "no official proration rule; every item required"

    def describe(self, n_items: int) -> str:
        if self.max_missing == 0:
            return "every item required"
        text = {
            "prorate_ceil": "raw x items / answered, rounded up",
            "prorate_round": "mean of answered x items, rounded half up",
            "rescale": "percentage of the maximum over answered items",
            "none": "",
        }[self.method]
        req = f"; never missing: {', '.join(self.required)}" if self.required else ""
        return f"up to {self.max_missing} of {n_items} items may be missing ({text}){req}"


@dataclass(frozen=True)
class ConversionTable:
    """A raw-score -> T-score (and SE) lookup table.

    ``rows`` maps each raw score to ``(t_score, se)``. ``version`` names the table (bank
    calibration and provenance), and is stored with every T-score computed from it.
    """

    version: str
    rows: Mapping[int, tuple[float, float]]
    source: str = ""

    def lookup(self, raw: int, *, instrument: str) -> tuple[float, float]:
        try:
            return self.rows[raw]
        except KeyError:
            lo, hi = min(self.rows), max(self.rows)
            raise InstrumentError(
                f"{instrument}: raw score {raw} is not in conversion table '{self.version}' "
                f"(allowed {lo}-{hi})", instrument=instrument, item=None, value=raw,
                allowed=(lo, hi)) from None

    @classmethod
    def from_csv(cls, path: str, *, version: str, form: str | None = None,
                 form_column: str | None = None) -> ConversionTable:
        """Read a table from a CSV with columns ``raw``, ``t_score``, ``se`` (and optionally a
        form/domain column, filtered to ``form``)."""
        import pandas as pd

        df = pd.read_csv(path)
        missing = {"raw", "t_score", "se"} - set(df.columns)
        if missing:
            raise InstrumentError(f"conversion table {path}: missing columns {sorted(missing)}",
                                  instrument=None, value=sorted(df.columns),
                                  allowed=["raw", "t_score", "se"])
        if form is not None:
            col = form_column or df.columns[0]
            df = df[df[col] == form]
            if df.empty:
                raise InstrumentError(f"conversion table {path}: no rows for form '{form}'",
                                      value=form)
        rows = {int(raw): (float(t), float(se))
                for raw, t, se in zip(df["raw"].tolist(), df["t_score"].tolist(),
                                      df["se"].tolist(), strict=True)}
        return cls(version=version, rows=rows, source=str(path))


Special = Callable[["Instrument", Mapping[str, Value], Mapping[str, Any]], "ScoreResult"]


@dataclass(frozen=True)
class Instrument:
    """The declaration of one instrument (see the module docstring).

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"promis_depression_4a"``.
    title, version, licence, source : str
        Display title, instrument version, licence note, and the citation of the scoring source.
    items : tuple of Item
        The items in form order.
    rule : {"sum", "mean", "percent", "lookup", "special"}
        How the headline score is formed: sum of scored values; their mean; percentage of the
        maximum over answered items; PROMIS sum -> T lookup in ``table``; or ``special(...)``.
    score_range : tuple of float
        The only values the headline score can take (``(low, high)``).
    bands : tuple of Band
        Interpretation bands of the headline score (may be empty).
    subscales : mapping of str to tuple of str
        Subscale name -> item codes summed (scored values).
    missing : MissingRule
        The missing-item rule.
    codings : mapping of str to mapping of int to int
        Alternative codings accepted when declared by the caller, mapping each alternative code
        to the canonical code (e.g. PGIC ``{"bacpac": {0: 1, ..., 6: 7}}``).
    derived_codes : mapping of str to str
        BACPAC ``QSTESTCD`` of derived scores, e.g. ``{"raw": "PRDEP4AR", "t_score": "PRDEP4AT"}``.
    table : ConversionTable or None
        For ``rule="lookup"``: the bundled raw -> T table, or None when no table may be bundled
        (the caller then supplies one, see :func:`tailor.instruments.score`).
    higher_is : {"worse", "better"}
        The meaning of a higher headline score.
    alerts : tuple of Alert
        Item values that must raise a flag on the result (e.g. PHQ-9 item 9).
    notes : tuple of str
        Caveats shown by ``tailor instruments show``.
    """

    name: str
    title: str
    version: str
    items: tuple[Item, ...]
    rule: Rule
    score_range: tuple[float, float]
    licence: str
    source: str
    family: str = ""
    bands: tuple[Band, ...] = ()
    subscales: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    missing: MissingRule = MissingRule()
    codings: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    derived_codes: Mapping[str, str] = field(default_factory=dict)
    table: ConversionTable | None = None
    higher_is: Literal["worse", "better"] = "worse"
    special: Special | None = None
    alerts: tuple[Alert, ...] = ()
    notes: tuple[str, ...] = ()

    @cached_property
    def codes(self) -> tuple[str, ...]:
        """Item codes in form order (computed once: scoring asks for them per item)."""
        return tuple(it.code for it in self.items)

    @cached_property
    def _code_set(self) -> frozenset[str]:
        return frozenset(self.codes)

    @cached_property
    def _by_code(self) -> dict[str, Item]:
        return {it.code: it for it in self.items}

    def item(self, code: str) -> Item:
        """The item with this code (case-insensitive)."""
        found = self._by_code.get(code) or self._by_code.get(code.upper())
        if found is not None:
            return found
        raise InstrumentError(
            f"{self.name}: unknown item code '{code}' (allowed: {', '.join(self.codes)})",
            instrument=self.name, item=code, value=None, allowed=self.codes)

    def band(self, score: float | None) -> str | None:
        """The label of the first band with ``low <= score <= high`` (None when there are no
        bands or no score); bands are listed in order, so a shared boundary belongs to the
        earlier band."""
        if score is None:
            return None
        for b in self.bands:
            if b.low <= score <= b.high:
                return b.label
        return None

    def validate(self, responses: Mapping[str, Any] | Sequence[Any], *,
                 coding: str | None = None) -> dict[str, Value]:
        """Check responses against the declaration and return ``{code: scored code or None}``.

        ``responses`` maps item codes (case-insensitive) to values, or lists the values in item
        order. Blank values (None, NaN, empty string) are missing. Raises
        :class:`~tailor.exceptions.InstrumentError` naming the instrument, the item, the value and
        what is allowed for an unknown item code, a wrong number of values, a non-numeric or
        non-integer value, an out-of-range code, or a coding mismatch. Missing-item rules are
        applied by the scorer, not here.
        """
        recode: Mapping[int, int] | None = None
        if coding is not None:
            if coding not in self.codings:
                known = ["default", *self.codings]
                raise InstrumentError(
                    f"{self.name}: unknown coding '{coding}' (allowed: {', '.join(known)})",
                    instrument=self.name, item=None, value=coding, allowed=known)
            recode = self.codings[coding]
        if isinstance(responses, dict) and responses.keys() == self._code_set:
            by_code: dict[str, Any] = responses  # already the item codes (an importer's case)
        elif isinstance(responses, Mapping):
            by_code = {}
            for key, val in responses.items():
                code = str(key).strip().upper()
                if code not in self.codes:
                    raise InstrumentError(
                        f"{self.name}: unknown item code '{key}' (allowed: "
                        f"{', '.join(self.codes)})", instrument=self.name, item=str(key),
                        value=val, allowed=self.codes)
                by_code[code] = val
        elif isinstance(responses, Sequence) and not isinstance(responses, str | bytes):
            if len(responses) != len(self.items):
                raise InstrumentError(
                    f"{self.name}: got {len(responses)} values, expected {len(self.items)} "
                    f"(items {', '.join(self.codes)})", instrument=self.name, item=None,
                    value=len(responses), allowed=len(self.items))
            by_code = dict(zip(self.codes, responses, strict=True))
        else:
            raise InstrumentError(
                f"{self.name}: responses must map item codes to values, got "
                f"{type(responses).__name__}", instrument=self.name, value=responses,
                allowed="mapping of item code to value")
        out: dict[str, Value] = {}
        for it in self.items:
            out[it.code] = self._check_value(it, by_code.get(it.code), recode, coding)
        return out

    def _check_value(self, it: Item, raw: Any, recode: Mapping[int, int] | None,
                     coding: str | None) -> Value:
        if _is_blank(raw):
            return None
        if type(raw) is int and recode is None and raw in it.scale.codes:
            return raw  # the common case, already a valid code: no message texts to build
        allowed_codes = sorted(recode) if recode is not None else sorted(it.allowed)
        allowed_text = (", ".join(str(c) for c in allowed_codes) if recode is not None
                        else it.scale.allowed_text())
        scheme = f" in coding '{coding}'" if coding else ""
        try:
            num = float(raw.strip()) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise InstrumentError(
                f"{self.name}: item {it.code} has non-numeric value {raw!r} "
                f"(allowed{scheme}: {allowed_text})", instrument=self.name, item=it.code,
                value=raw, allowed=tuple(allowed_codes)) from None
        if isinstance(raw, bool) or not math.isfinite(num) or num != int(num):
            raise InstrumentError(
                f"{self.name}: item {it.code} has value {raw!r}, which is not a whole-number "
                f"code (allowed{scheme}: {allowed_text})", instrument=self.name, item=it.code,
                value=raw, allowed=tuple(allowed_codes))
        code = int(num)
        if code not in allowed_codes:
            hint = ""
            if self.codings:
                other = [name for name, m in self.codings.items() if code in m and name != coding]
                if coding is None and other:
                    hint = f"; if these data use the {other[0]} coding, declare coding='{other[0]}'"
                elif coding is not None and code in it.allowed:
                    hint = "; this code is valid in the default coding - check the declared coding"
            raise InstrumentError(
                f"{self.name}: item {it.code} has value {code}, outside the allowed codes"
                f"{scheme} ({allowed_text}){hint}", instrument=self.name, item=it.code,
                value=raw, allowed=tuple(allowed_codes))
        return recode[code] if recode is not None else code


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is int:
        return False
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, list | tuple | dict) else False
    except (TypeError, ValueError):
        return False
