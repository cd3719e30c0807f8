"""Questionnaire problems in a coordinator's words: the one place that turns a submitted form's
items into messages such as "PEG: question 1 (average pain, past week) is missing".

The instrument layer knows every item's position and label, so the wording lives here and both
the API and the pages use it (:class:`tailor.exceptions.FormProblemsError`); the item code is
kept only as a secondary hint (``(instrument, item code, message)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tailor.exceptions import FormProblemsError, InstrumentError
from tailor.instruments.declaration import Instrument
from tailor.instruments.derived import BLOCK_NAMES, derived_scores
from tailor.instruments.registry import get

__all__ = ["check_forms", "form_name", "form_problems", "invalid_answer", "item_codes", "missing_items", "question"]

_REGISTRY_NAMES = {block: name for name, block in BLOCK_NAMES.items()}


def _declaration(block: str) -> Instrument:
    return get(_REGISTRY_NAMES.get(block, block))


def form_name(block: str) -> str:
    """The short display name of a form block ("PEG", "PROMIS Depression 4a")."""
    return _declaration(block).title.split(" (")[0]


def question(inst: Instrument, code: str) -> str:
    """"question 3 (worry all the time ...)" for item ``code`` of ``inst``."""
    for n, item in enumerate(inst.items, 1):
        if item.code == code:
            return f"question {n} ({item.label})" if item.label else f"question {n}"
    return f"question {code}"


def invalid_answer(block: str, code: str, value: Any) -> str:
    """"PEG: question 2 (...) must be one of 0-10; the answer given was 12"."""
    inst = _declaration(block)
    return (f"{form_name(block)}: {question(inst, code)} must be one of "
            f"{inst.item(code).scale.allowed_text()}; the answer given was {value!r}")


def _by_code(inst: Instrument, items: Mapping[str, Any]) -> dict[str, Any]:
    codes = {c.upper(): c for c in inst.codes}
    return {codes.get(str(k).upper(), str(k)): v for k, v in items.items()}


def item_codes(block: str) -> tuple[str, ...]:
    """The item codes of form block ``block``, in form order."""
    return _declaration(block).codes


def missing_items(block: str, items: Mapping[str, Any]) -> list[str]:
    """Item codes of ``block`` left blank (or absent) in ``items``, in form order."""
    inst = _declaration(block)
    given = _by_code(inst, items)
    return [c for c in inst.codes if given.get(c) is None]


def form_problems(block: str, items: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    """Every problem of one questionnaire at once: unknown questions, answers outside the
    scale, then (if the instrument cannot be scored for missing answers) each missing one."""
    inst = _declaration(block)
    name = form_name(block)
    given = _by_code(inst, items)
    out: list[tuple[str, str | None, str]] = []
    for code in given:
        if code not in inst.codes:
            out.append((block, code, f"{name}: '{code}' is not a question of this form"))
    for item in inst.items:
        v = given.get(item.code)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v not in item.allowed:
            out.append((block, item.code, invalid_answer(block, item.code, v)))
    if out:
        return out
    try:
        derived_scores(block, given)
    except InstrumentError as exc:
        blank = [c for c in inst.codes if given.get(c) is None]
        if not blank:
            return [(block, exc.item, f"{name}: {exc}")]
        rule = inst.missing
        if rule.max_missing and len(blank) > rule.max_missing:
            out.append((block, None, f"{name}: {len(blank)} of {len(inst.codes)} questions "
                        f"are unanswered; at most {rule.max_missing} may be left blank"))
        out += [(block, c, f"{name}: {question(inst, c)} is missing") for c in blank]
    return out


def check_forms(blocks: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`FormProblemsError` listing the problems of every block at once."""
    problems = [p for block, items in blocks.items() for p in form_problems(block, items)]
    if problems:
        raise FormProblemsError(problems)
