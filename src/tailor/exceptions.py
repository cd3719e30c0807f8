"""Every error tailor raises on purpose.

Each class also inherits the builtin it refines, so callers that know nothing of tailor can still
catch ``ValueError`` or ``KeyError``. A message says which field, which rule, what value came and
what to do. The CLI maps these to exit codes in one place (``tailor.cli``); the web layer maps them
to HTTP status codes in one handler.

::

    TailorError
    ├── ProtocolError (ValueError)          a protocol file breaks the schema or a rule
    │   └── PlanError                       an analysis plan is invalid or misfits the data
    ├── RecordError (ValueError)            a record's field is missing or invalid
    │   ├── MissingFieldError (KeyError)
    │   ├── InvalidFieldError
    │   └── EditCheckError                  hard edit checks failed (all listed at once)
    ├── InputFileError (ValueError)         a CSV/JSON input is malformed (row and column named)
    ├── InstrumentError (ValueError)        a questionnaire response breaks its instrument's rules
    ├── AllocationError (ValueError)        a randomization request cannot be honoured
    ├── ScenarioError (ValueError)          a simulation scenario is invalid
    ├── EstimationError (ValueError)        an estimator cannot be fitted to these data
    ├── NotFittedError (ValueError, AttributeError)
    ├── NotFoundError (LookupError)         -> HTTP 404
    ├── ConflictError                       a rule forbids this now -> HTTP 409
    ├── PermissionDeniedError               -> HTTP 403 (or 404 where existence is hidden)
    └── AuthenticationError                 -> HTTP 401
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AllocationError",
    "AuthenticationError",
    "ConflictError",
    "EditCheckError",
    "EstimationError",
    "FormProblemsError",
    "InputFileError",
    "InstrumentError",
    "InvalidFieldError",
    "MissingFieldError",
    "NotFittedError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanError",
    "ProtocolError",
    "RecordError",
    "ScenarioError",
    "TailorError",
]


class TailorError(Exception):
    """Base class of every error tailor raises on purpose."""

    def __str__(self) -> str:  # KeyError's str() would add quotes; keep the plain message
        return str(self.args[0]) if self.args else self.__class__.__name__


class ProtocolError(TailorError, ValueError):
    """A protocol file is invalid. ``errors`` lists ``(path, message)`` pairs, e.g.
    ``("stages[1].options.medium", "unknown action 'swap'")``."""

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        head = f"invalid protocol {source}" if source else "invalid protocol"
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.errors]
        super().__init__(head + ":\n  " + "\n  ".join(lines))


class PlanError(ProtocolError):
    """An analysis plan is invalid or does not fit the data; ``errors`` lists ``(path,
    message)`` pairs with YAML paths, e.g. ``("candidates.mood.variables", "...")``."""

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        super().__init__(errors, source)
        head = f"invalid analysis plan {source}" if source else "invalid analysis plan"
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.errors]
        self.args = (head + ":\n  " + "\n  ".join(lines),)


class RecordError(TailorError, ValueError):
    """A record (screening form, allocation request ...) has a bad field."""

    def __init__(self, message: str, *, field: str, value: Any = None, rule: str | None = None):
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(message)


class MissingFieldError(RecordError, KeyError):
    """A required field is absent or empty."""


class InvalidFieldError(RecordError):
    """A field has the wrong type or lies outside its declared range."""


class EditCheckError(RecordError):
    """Hard edit checks failed on a save; ``violations`` lists every ``(field, message,
    check id)`` at once (the first one is also the error's field and rule)."""

    def __init__(self, violations: list[tuple[str, str, str]]) -> None:
        self.violations = list(violations)
        field, _, rule = self.violations[0]
        super().__init__("; ".join(msg for _, msg, _ in self.violations), field=field,
                         rule=rule)


class InputFileError(TailorError, ValueError):
    """An input file is malformed; ``row`` is 1-based over data rows (header excluded)."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = []
        if path:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column '{column}'")
        super().__init__((", ".join(where) + ": " if where else "") + message)


class InstrumentError(TailorError, ValueError):
    """A questionnaire response breaks its instrument's rules (instrument, item, value, allowed)."""

    def __init__(self, message: str, *, instrument: str | None = None, item: str | None = None,
                 value: Any = None, allowed: Any = None) -> None:
        self.instrument = instrument
        self.item = item
        self.value = value
        self.allowed = allowed
        super().__init__(message)


class FormProblemsError(InstrumentError):
    """Every problem of one submitted set of questionnaires at once: ``problems`` lists
    ``(instrument, item code or None, plain-words message)``; the item code is a secondary
    hint, never the message itself (the first problem is also the error's instrument/item)."""

    def __init__(self, problems: list[tuple[str, str | None, str]]) -> None:
        self.problems = list(problems)
        instrument, item, _ = self.problems[0]
        super().__init__("; ".join(msg for _, _, msg in self.problems),
                         instrument=instrument, item=item)


class AllocationError(TailorError, ValueError):
    """A randomization request cannot be honoured (no eligible option, bad draws ...)."""


class ScenarioError(TailorError, ValueError):
    """A simulation scenario file or setting is invalid."""


class EstimationError(TailorError, ValueError):
    """An estimator cannot be fitted to these data (e.g. a singular design)."""


class NotFittedError(TailorError, ValueError, AttributeError):
    """A method that needs a fitted estimator was called before ``fit``."""


class NotFoundError(TailorError, LookupError):
    """The requested object does not exist (or is hidden from the caller)."""


class ConflictError(TailorError):
    """The request is well-formed but a rule forbids it now (HTTP 409)."""


class PermissionDeniedError(TailorError):
    """The caller's role does not allow this action."""


class AuthenticationError(TailorError):
    """Missing, wrong or expired credentials."""
