"""Formulas, treatment coding and design matrices for the regime learners.

A tiny formula language, parsed here (nothing is ever ``eval``-ed):

- terms are separated by ``+``; ``a:b`` is the product (interaction) of ``a`` and ``b``;
  ``a*b`` expands to ``a + b + a:b``;
- ``1`` keeps the intercept (the default), ``0`` or ``-1`` drops it;
- a name is a column of the data; string, categorical and boolean-free object columns are
  *categorical* and expand to one indicator per non-reference level (the first level in sorted
  order is the reference), named ``col[level]``; numeric columns enter as they are.

Treatment terms of a stage with treatment column ``A2`` are named

- effect coding (two options only): ``A2`` (= -1 for the reference option, +1 for the other) and
  ``A2:x`` for each tailoring column ``x``;
- dummy coding (any number of options): ``A2[opt]`` (= 1 when option ``opt`` is given) and
  ``A2[opt]:x``, for every option but the reference.

The treatment always comes first in an interaction name (``A2:x3``, as R prints
``A2*(x3)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tailor.exceptions import EstimationError, InputFileError, RecordError

__all__ = [
    "Formula",
    "StageSpec",
    "TermBlock",
    "TreatmentCoding",
    "column_labels",
    "is_categorical",
    "is_missing",
    "option_label",
    "options_column",
    "parse_formula",
    "parse_options",
    "truthy",
    "truthy_column",
]

TRUE_TOKENS = ("1", "true", "yes", "y", "t")


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, ``pd.NA`` and ``pd.NaT`` (a blank string is a value)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating) and math.isnan(value):
        return True
    return value is pd.NA or value is pd.NaT


def truthy(value: Any) -> bool:
    """A 0/1-like cell as a bool (missing: False; strings "1"/"true"/"yes"/"y"/"t": True)."""
    if is_missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in TRUE_TOKENS
    return bool(value)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Formula:
    """A parsed right-hand-side formula: an intercept flag and a tuple of terms.

    Each term is a tuple of column names whose product forms the term.
    """

    intercept: bool
    terms: tuple[tuple[str, ...], ...]

    @property
    def variables(self) -> tuple[str, ...]:
        """Column names used, in order of first appearance."""
        seen: dict[str, None] = {}
        for term in self.terms:
            for name in term:
                seen.setdefault(name, None)
        return tuple(seen)


def parse_formula(text: str | None, *, where: str = "formula") -> Formula:
    """Parse ``"x1 + x2 + x1:x2"`` style text (see the module docstring).

    Parameters
    ----------
    text : str or None
        The formula; ``None`` or ``""`` means intercept only.
    where : str
        Where the formula came from, for error messages.
    """
    if text is None:
        return Formula(True, ())
    body = str(text).strip()
    if "~" in body:
        body = body.split("~", 1)[1]
    intercept = True
    terms: list[tuple[str, ...]] = []
    # "-1" drops the intercept; turn "a - 1" into "a + -1"
    body = re.sub(r"-\s*1\b", "+ -1", body)
    for raw in body.split("+"):
        piece = raw.strip()
        if not piece:
            continue
        if piece in ("0", "-1"):
            intercept = False
            continue
        if piece == "1":
            intercept = True
            continue
        if "*" in piece:
            names = [n.strip() for n in piece.split("*")]
            _check_names(names, text, where)
            expanded: list[tuple[str, ...]] = []
            for size in range(1, len(names) + 1):
                expanded.extend(_combinations(names, size))
            for term in expanded:
                _add_term(terms, term)
            continue
        names = [n.strip() for n in piece.split(":")]
        _check_names(names, text, where)
        _add_term(terms, tuple(names))
    return Formula(intercept, tuple(terms))


def _combinations(names: list[str], size: int) -> list[tuple[str, ...]]:
    from itertools import combinations

    return [tuple(c) for c in combinations(names, size)]


def _add_term(terms: list[tuple[str, ...]], term: tuple[str, ...]) -> None:
    key = frozenset(term)
    if all(frozenset(t) != key for t in terms):
        terms.append(term)


def _check_names(names: Sequence[str], text: str | None, where: str) -> None:
    for name in names:
        if not _NAME.match(name):
            raise EstimationError(
                f"{where}: cannot read term {name!r} in formula {text!r}; use column names joined "
                "by '+', ':' or '*' (no functions, no arithmetic)"
            )


def option_label(value: Any) -> str:
    """Canonical text label of a treatment option (``1.0`` -> ``"1"``, ``"EBEM"`` stays)."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value).strip()


def column_labels(series: pd.Series) -> list[str | None]:
    """``option_label`` of every value of a column (None where missing), labelling each distinct
    value once: the per-fit cost no longer grows with a Python call per cell."""
    try:
        codes, uniques = pd.factorize(series)
    except TypeError:  # unhashable cells
        return [None if is_missing(v) else option_label(v) for v in series]
    ulabels = [None if is_missing(u) else option_label(u) for u in uniques]
    table = np.array([*ulabels, None], dtype=object)  # code -1 (missing) -> the last entry
    return table[codes].tolist()


def parse_options(value: Any) -> tuple[str, ...]:
    """Read one cell of a feasible-options column: a list/tuple/set or a ``;``-separated string.

    Missing or empty cells give an empty tuple (no decision at that stage).
    """
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return tuple(option_label(v) for v in value if not is_missing(v))
    if is_missing(value):
        return ()
    text = str(value).strip()
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(";") if part.strip())


def is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


@dataclass(frozen=True)
class _Variable:
    name: str
    levels: tuple[str, ...] | None  # None: numeric

    def columns(self, data: pd.DataFrame, strict: bool = True) -> tuple[list[str], np.ndarray]:
        if self.name not in data.columns:
            raise InputFileError(f"the model needs column '{self.name}', which is absent",
                                 column=self.name)
        series = data[self.name]
        if self.levels is None:
            try:
                values = (series.to_numpy(dtype=float, na_value=np.nan)
                          if pd.api.types.is_numeric_dtype(series.dtype)
                          and not pd.api.types.is_bool_dtype(series.dtype)
                          else pd.to_numeric(series, errors="raise").to_numpy(dtype=float))
            except (TypeError, ValueError) as exc:
                raise RecordError(f"column '{self.name}' must be numeric", field=self.name) from exc
            return [self.name], values[:, None]
        # label and code each distinct value once (missing values factorize to -1, the last
        # row of the table); a missing value or (strict=False) an unseen level gives NaN
        codes, uniques = pd.factorize(series)
        ulabels = [option_label(u) for u in uniques]
        position = {lv: j for j, lv in enumerate(self.levels)}
        unknown = {lab for lab in ulabels if lab not in position}
        if unknown and strict:
            raise RecordError(
                f"column '{self.name}' has level(s) {sorted(unknown)} not seen when the model was "
                f"fitted (known: {list(self.levels)})", field=self.name, value=sorted(unknown))
        table = np.zeros((len(ulabels) + 1, len(self.levels) - 1))
        table[-1] = np.nan
        for u, lab in enumerate(ulabels):
            j = position.get(lab)
            if j is None:
                table[u] = np.nan
            elif j > 0:
                table[u, j - 1] = 1.0
        return self.names(), table[codes]

    def names(self) -> list[str]:
        """Column names of the variable's block (its indicators when categorical)."""
        if self.levels is None:
            return [self.name]
        return [f"{self.name}[{lv}]" for lv in self.levels[1:]]


def _variable_from(data: pd.DataFrame, name: str, rows: np.ndarray | None = None) -> _Variable:
    """The variable's kind from its column's dtype; a categorical one's levels among ``rows``
    (all rows when None)."""
    if name not in data.columns:
        raise InputFileError(f"the model needs column '{name}', which is absent", column=name)
    series = data[name]
    if is_categorical(series):
        if rows is not None:
            series = series.iloc[rows]
        labels = sorted({lab for lab in column_labels(series) if lab is not None})
        return _Variable(name, tuple(labels))
    return _Variable(name, None)


@dataclass(frozen=True)
class TermBlock:
    """Builds the columns of a formula (without intercept) from data."""

    formula: Formula
    variables: Mapping[str, _Variable]

    @classmethod
    def from_data(cls, formula: Formula, data: pd.DataFrame,
                  rows: np.ndarray | None = None) -> TermBlock:
        """Resolve the formula's variables on ``data`` (levels among ``rows`` when given)."""
        return cls(formula, {v: _variable_from(data, v, rows) for v in formula.variables})

    def names(self) -> list[str]:
        """Column names of ``build``'s matrix (the same order), without data."""
        names: list[str] = []
        for term in self.formula.terms:
            cols_names: list[str] = [""]
            for var in term:
                vn = self.variables[var].names()
                cols_names = [f"{a}:{b}" if a else b for a in cols_names for b in vn]
            names.extend(cols_names)
        return names

    def build(self, data: pd.DataFrame, strict: bool = True,
              cache: dict[str, tuple[list[str], np.ndarray]] | None = None
              ) -> tuple[list[str], np.ndarray]:
        """The block's matrix on ``data``; ``cache`` shares variable columns between blocks
        resolved on the same training rows (a stage's main and tailoring blocks)."""
        names: list[str] = []
        blocks: list[np.ndarray] = []
        cache = {} if cache is None else cache
        for term in self.formula.terms:
            cols_names: list[str] = [""]
            cols = np.ones((len(data), 1))
            for var in term:
                if var not in cache:
                    cache[var] = self.variables[var].columns(data, strict)
                vn, vx = cache[var]
                cols = (cols[:, :, None] * vx[:, None, :]).reshape(len(data), -1)
                cols_names = [f"{a}:{b}" if a else b for a in cols_names for b in vn]
            names.extend(cols_names)
            blocks.append(cols)
        if not blocks:
            return [], np.zeros((len(data), 0))
        return names, np.hstack(blocks)


class TreatmentCoding:
    """How a stage's treatment options enter the Q-function: ``"effect"`` or ``"dummy"``."""

    EFFECT = "effect"
    DUMMY = "dummy"


@dataclass(frozen=True)
class StageSpec:
    """A stage's working model, resolved against training data.

    Built by :meth:`from_data`; holds the option list (reference first), the coding, and the
    main-effect and tailoring blocks. ``design(data, option)`` gives the design matrix with every
    row's treatment set to ``option``; ``design(data)`` uses the observed treatment.
    """

    stage: int
    treatment: str
    options: tuple[str, ...]
    coding: str
    main: TermBlock
    tailoring: TermBlock
    feasible: str | Mapping[str, str] | None
    main_names: tuple[str, ...] = field(default=())
    tailoring_names: tuple[str, ...] = field(default=())

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_data(cls, stage: int, spec: Mapping[str, Any], data: pd.DataFrame,
                  coding: str, rows: np.ndarray) -> StageSpec:
        where = f"stages[{stage - 1}]"
        if "treatment" not in spec:
            raise EstimationError(f"{where}: a stage needs a 'treatment' column name")
        treatment = str(spec["treatment"])
        if treatment not in data.columns:
            raise InputFileError(f"{where}: treatment column '{treatment}' is absent",
                                 column=treatment)
        coding = str(spec.get("coding", coding))
        if coding not in (TreatmentCoding.EFFECT, TreatmentCoding.DUMMY):
            raise EstimationError(f"{where}: coding must be 'effect' or 'dummy', got {coding!r}")
        feasible = spec.get("feasible")
        observed = data[treatment].iloc[rows]
        seen = {lab for lab in column_labels(observed) if lab is not None}
        if spec.get("options") is not None:
            options = tuple(option_label(o) for o in spec["options"])
            extra = seen - set(options)
            if extra:
                raise RecordError(f"{where}: treatment column '{treatment}' has option(s) "
                                  f"{sorted(extra)} not in the declared options {list(options)}",
                                  field=treatment, value=sorted(extra))
        else:
            options = _sorted_options(seen)
        reference = spec.get("reference")
        if reference is not None:
            ref = option_label(reference)
            if ref not in options:
                raise EstimationError(f"{where}: reference {ref!r} is not an option {list(options)}")
            options = (ref, *[o for o in options if o != ref])
        elif coding == TreatmentCoding.EFFECT and set(options) == {"-1", "1"}:
            options = ("-1", "1")
        if len(options) < 2:
            raise EstimationError(f"{where}: treatment '{treatment}' takes fewer than two options "
                                  f"among the participants who are re-randomized ({list(options)})")
        if coding == TreatmentCoding.EFFECT and len(options) != 2:
            raise EstimationError(f"{where}: effect (-1/+1) coding needs exactly two options; "
                                  f"'{treatment}' has {len(options)} ({list(options)}); use "
                                  "coding='dummy'")
        main = TermBlock.from_data(parse_formula(spec.get("main"), where=f"{where}.main"), data,
                                    rows)
        tail_formula = parse_formula(spec.get("tailoring"), where=f"{where}.tailoring")
        tail_formula = Formula(True, tail_formula.terms)
        tailoring = TermBlock.from_data(tail_formula, data, rows)
        for block, label in ((main, "main"), (tailoring, "tailoring")):
            if treatment in block.formula.variables:
                raise EstimationError(f"{where}.{label}: do not list the stage's own treatment "
                                      f"'{treatment}'; treatment terms are added from 'tailoring'")
        spec_obj = cls(stage, treatment, options, coding, main, tailoring, feasible)
        object.__setattr__(spec_obj, "main_names", tuple(main.names()))
        object.__setattr__(spec_obj, "tailoring_names", tuple(tailoring.names()))
        return spec_obj

    # -- names ----------------------------------------------------------------------------------
    @property
    def has_intercept(self) -> bool:
        return self.main.formula.intercept

    @property
    def treatment_names(self) -> tuple[str, ...]:
        if self.coding == TreatmentCoding.EFFECT:
            heads = [self.treatment]
        else:
            heads = [f"{self.treatment}[{o}]" for o in self.options[1:]]
        out: list[str] = []
        for head in heads:
            out.append(head)
            out.extend(f"{head}:{t}" for t in self.tailoring_names)
        return tuple(out)

    @property
    def term_names(self) -> tuple[str, ...]:
        lead = ("Intercept",) if self.has_intercept else ()
        return (*lead, *self.main_names, *self.treatment_names)

    @property
    def variables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for v in (*self.main.formula.variables, *self.tailoring.formula.variables):
            seen.setdefault(v, None)
        return tuple(seen)

    # -- matrices ---------------------------------------------------------------------------
    def history(self, data: pd.DataFrame, strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Main-effect block (with intercept) and tailoring block (with leading 1).

        With ``strict=False`` a categorical level unseen in training gives NaN instead of an
        error (used for rows outside a stage's regression).
        """
        cache: dict[str, tuple[list[str], np.ndarray]] = {}
        _, main = self.main.build(data, strict, cache)
        if self.has_intercept:
            main = np.hstack([np.ones((len(data), 1)), main])
        _, tail = self.tailoring.build(data, strict, cache)
        tail = np.hstack([np.ones((len(data), 1)), tail])
        return main, tail

    def treatment_codes(self, labels: Sequence[str | None]) -> np.ndarray:
        """(n, d) code matrix: +-1 (effect, d=1) or indicators of non-reference options."""
        arr = np.empty(len(labels), dtype=object)
        arr[:] = list(labels)
        if self.coding == TreatmentCoding.EFFECT:
            codes = np.where(arr == self.options[1], 1.0, -1.0)
            codes[np.array([lab is None for lab in arr], dtype=bool)] = np.nan
            return codes[:, None]
        out = np.zeros((len(labels), len(self.options) - 1))
        for j, opt in enumerate(self.options[1:]):
            out[:, j] = arr == opt
        return out

    def assemble(self, main: np.ndarray, tail: np.ndarray, codes: np.ndarray) -> np.ndarray:
        inter = (codes[:, :, None] * tail[:, None, :]).reshape(len(main), -1)
        return np.hstack([main, inter])

    def option_designs(self, main: np.ndarray, tail: np.ndarray) -> np.ndarray:
        """(d_options, n, p) design matrices with everyone set to each option in turn."""
        n = len(main)
        return np.stack([self.assemble(main, tail,
                                       np.repeat(self.treatment_codes([opt]), n, axis=0))
                         for opt in self.options])

    def observed_labels(self, data: pd.DataFrame) -> list[str | None]:
        return column_labels(data[self.treatment])

    def feasible_sets(self, data: pd.DataFrame,
                      labels: list[str | None] | None = None) -> list[tuple[str, ...]]:
        """Per-row feasible options (all options where no feasibility is declared and the row
        has a treatment; empty where it has none). ``labels``: ``observed_labels(data)`` when
        the caller already has them."""
        if self.feasible is None:
            if self.treatment in data.columns:
                if labels is None:
                    labels = self.observed_labels(data)
                return [self.options if lab is not None else () for lab in labels]
            return [self.options] * len(data)
        if isinstance(self.feasible, Mapping):
            cols = dict(self.feasible)
            for col in cols.values():
                if col not in data.columns:
                    raise InputFileError(f"feasibility column '{col}' is absent", column=col)
            flags = {option_label(o): truthy_column(data[c]) for o, c in cols.items()}
            known = [o for o in self.options if o in flags]
            if not known:
                return [()] * len(data)
            # rows share few eligibility patterns: build each pattern's tuple once
            table = np.column_stack([flags[o] for o in known])
            patterns, inverse = np.unique(table, axis=0, return_inverse=True)
            sets = [tuple(o for o, ok in zip(known, row, strict=True) if ok) for row in patterns]
            return [sets[int(k)] for k in np.ravel(inverse)]
        col = str(self.feasible)
        if col not in data.columns:
            raise InputFileError(f"feasible-options column '{col}' is absent", column=col)
        return options_column(data[col])

    def feasible_mask(self, sets: Sequence[tuple[str, ...]]) -> np.ndarray:
        """(n, d) boolean mask over ``self.options``; unknown options raise."""
        index = {o: j for j, o in enumerate(self.options)}
        col = self.feasible if isinstance(self.feasible, str) else self.treatment
        # rows share few distinct sets: resolve each distinct set once, then index
        rows_of: dict[tuple[str, ...], int] = {}
        which = np.empty(len(sets), dtype=np.int64)
        for i, s in enumerate(sets):
            k = rows_of.get(s)
            if k is None:
                k = rows_of[s] = len(rows_of)
                for o in s:
                    if o not in index and len(s) >= 2:  # a pass-through row may name an option
                        raise RecordError(                # nobody was randomized to
                            f"row {i + 1}: feasible option {o!r} in column '{col}' is not an "
                            f"option of stage {self.stage} that anyone re-randomized received "
                            f"({list(self.options)}); its Q-value cannot be estimated",
                            field=str(col), value=o)
            which[i] = k
        table = np.zeros((len(rows_of), len(self.options)), dtype=bool)
        for s, k in rows_of.items():
            for o in s:
                if o in index:
                    table[k, index[o]] = True
        return table[which] if len(sets) else np.zeros((0, len(self.options)), dtype=bool)


def options_column(series: pd.Series) -> list[tuple[str, ...]]:
    """:func:`parse_options` of every cell of a feasible-options column, each distinct cell
    parsed once (a column of ``;``-separated strings takes few distinct values)."""
    try:
        codes, uniques = pd.factorize(series)
    except TypeError:  # unhashable cells (lists)
        return [parse_options(v) for v in series]
    parsed = [parse_options(u) for u in uniques]
    return [parsed[c] if c >= 0 else () for c in codes]


def truthy_column(series: pd.Series) -> np.ndarray:
    """:func:`truthy` of every value of a column (vectorized for numeric and boolean
    columns)."""
    kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else ""
    if kind == "b":  # a NumPy bool column has no missing values
        return series.to_numpy()
    if kind in ("i", "u", "f"):
        values = series.to_numpy(dtype=float)
        return ~np.isnan(values) & (values != 0)
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return ~np.isnan(values) & (values != 0)
    return np.array([truthy(v) for v in series], dtype=bool)


def _sorted_options(labels: set[str]) -> tuple[str, ...]:
    try:
        return tuple(sorted(labels, key=float))
    except ValueError:
        return tuple(sorted(labels))
