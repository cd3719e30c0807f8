"""Text a person typed, checked the same way wherever it enters (API, pages, CLI, services).

:func:`clean_text`: valid UTF-8, no control characters (NUL included, which PostgreSQL cannot
store), bounded length. :func:`clean_name`: a display name, which also refuses Unicode
bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) that let a name
display as something else. Both raise :class:`~tailor.exceptions.InvalidFieldError` naming the
field, the rule and (for non-secret fields) the value. :mod:`tailor.web.inputs` applies them to
every request; the admin services apply them again so the CLI gets the same rule.
"""

from __future__ import annotations

from tailor.exceptions import InvalidFieldError

__all__ = ["BIDI", "SECRET_FIELDS", "clean_name", "clean_text"]

BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
SECRET_FIELDS = frozenset({"password", "current_password", "new_password", "csrf_token"})


def _shown(field: str, value: str) -> str:
    return "(hidden)" if field in SECRET_FIELDS else repr(value[:40])


def clean_text(value: str, *, field: str = "text", max_length: int | None = None) -> str:
    """``value`` if it is valid UTF-8 without control characters (tab, CR, LF allowed);
    InvalidFieldError naming ``field`` and the rule otherwise."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFieldError(f"{field}: text must be valid UTF-8", field=field,
                                rule="utf8") from None
    bad = next((c for c in value if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127
                or 0x80 <= ord(c) <= 0x9f), None)
    if bad is not None:
        raise InvalidFieldError(f"{field}: text must not contain control characters (found "
                                f"U+{ord(bad):04X} in {_shown(field, value)})", field=field,
                                rule="control")
    if max_length is not None and len(value) > max_length:
        raise InvalidFieldError(f"{field}: at most {max_length} characters; got {len(value)}",
                                field=field, rule="max_length")
    return value


def clean_name(value: str, *, field: str = "name", max_length: int | None = None) -> str:
    """A display name: :func:`clean_text` and no bidirectional control characters."""
    clean_text(value, field=field, max_length=max_length)
    bad = next((c for c in value if c in BIDI), None)
    if bad is not None:
        raise InvalidFieldError(f"{field}: must not contain bidirectional control characters "
                                f"(found U+{ord(bad):04X})", field=field, rule="bidi")
    return value
