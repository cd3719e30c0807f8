"""The one input-normalization path for the JSON API and the HTML pages.

Every text a client sends, as a JSON string or as a form value, passes :func:`clean_text`:
valid UTF-8, no control characters (NUL included, which PostgreSQL cannot store and which made
``POST /login`` a 500), bounded length; names also refuse Unicode bidirectional controls
(U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), which let a name display as something
else. The API's pydantic types (:mod:`tailor.web.schemas`) and the pages' forms
(:func:`check_form`) call the same function, so both answer bad input with the same rule: a 422
naming the field, the rule and (for non-secret fields) the value.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile

from tailor.exceptions import InvalidFieldError, NotFoundError
from tailor.text_input import BIDI, SECRET_FIELDS, clean_name, clean_text

__all__ = ["BIDI", "FORM_MAX", "SECRET_FIELDS", "check_form", "clean_name", "clean_text",
           "path_number"]

FORM_MAX = 200_000  # characters per form value: a protocol YAML, as the API allows


def check_form(form: FormData) -> dict[str, str]:
    """Every value of a posted page form through :func:`clean_text` (files are refused);
    the form as plain strings."""
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        clean_text(key, field="form field name", max_length=200)
        if isinstance(value, UploadFile) or not isinstance(value, str):
            raise InvalidFieldError(f"{key}: a file upload is not accepted here", field=key,
                                    rule="text")
        out[key] = clean_text(value, field=key, max_length=FORM_MAX)
    return out


def path_number(raw: Any, *, low: int, high: int, what: str) -> int:
    """A number taken from a URL path: anything outside ``low..high`` (negative, huge, not a
    number) is the same 404 as a page that does not exist."""
    try:
        number = int(str(raw))
    except ValueError:
        raise NotFoundError(f"no such {what}") from None
    if not low <= number <= high:
        raise NotFoundError(f"no such {what}")
    return number
