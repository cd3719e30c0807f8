"""Blinded-role views: the ONE place arm information is taken out of what a blinded role sees.

The site coordinator sees the assigned arm (they deliver it); the statistician and the admin see
the allocation details. A blinded role (:data:`tailor.services.scope.BLINDED_ROLES`, the data
manager) sees **no** arm code, arm display name, stage-2 option, stage-2 action or allocation
probability anywhere: every view that can carry arm information (allocations, the participant
timeline, visit lists, a Visit 0 correction's re-assessment, audit trails) passes its result
through :func:`redact` before it leaves the service layer, and the web layer passes its error
bodies and, for blinded roles, every page's template context through it too. Redaction is structural where the shape is known and textual everywhere else:

* an allocation (``{"stage", "option", ...}``) keeps its stage and time; ``option`` and
  ``action`` become the neutral marker (``"randomized"`` at stage 1, ``"stage 2 assigned"``
  at stage 2) and every other field (probabilities, draws, sequence ...) is dropped;
* an audit row whose entity carries arms (:data:`ARM_ENTITIES`) or whose old/new value
  mentions an arm token has both values replaced by ``"<concealed>"``;
* any other string (and dict key) has each arm token, matched as a whole word and
  case-insensitively, replaced by ``"[blinded]"``.

The token list comes from the protocol (:func:`arm_tokens`): arm codes and names, every
stage-2 option code, and the stage-2 actions the protocol names (``continue``, ``augment``,
``switch``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from sqlalchemy.orm import Session

from tailor.db import Database
from tailor.exceptions import ConflictError
from tailor.protocol import Protocol, builtin_protocols, load_protocol
from tailor.services.admin import live_protocol
from tailor.services.context import Actor
from tailor.services.scope import BLINDED_ROLES

__all__ = ["ARM_ENTITIES", "BLINDED", "CONCEALED", "NO_TOKENS", "ArmTokens", "arm_tokens", "is_blinded",
           "redact", "stage_marker", "tokens_for", "tokens_in_session"]

BLINDED = "[blinded]"
CONCEALED = "<concealed>"
ARM_ENTITIES = frozenset({"Allocation", "StageState", "AdverseEvent"})
"""Audit entities whose values are arm-bearing as a whole (allocations, the per-arm
minimization counts, adverse events attributed to an arm)."""
_ALLOCATION_KEEP = ("stage", "allocated_at", "replayed")


def is_blinded(actor: Actor) -> bool:
    """True when ``actor``'s role must not see arm information."""
    return actor.role in BLINDED_ROLES


def stage_marker(stage: int) -> str:
    """The neutral word shown in place of an arm: 'randomized' (stage 1), 'stage N assigned'."""
    return "randomized" if stage <= 1 else f"stage {stage} assigned"


@dataclass(frozen=True)
class ArmTokens:
    """The arm tokens of a protocol and the whole-word, case-insensitive pattern over them."""

    tokens: tuple[str, ...]
    pattern: re.Pattern[str]

    def found(self, text: str) -> list[str]:
        """The tokens occurring in ``text`` (as whole words)."""
        return [m_.group(0) for m_ in self.pattern.finditer(text)]

    def scrub(self, text: str) -> str:
        return self.pattern.sub(BLINDED, text)


NO_TOKENS = ArmTokens((), re.compile(r"(?!)"))
"""For views whose redaction is purely structural (allocations)."""


def _pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    # longest first so that 'Enhanced Self-Care' wins over any shorter token inside it;
    # boundaries are 'no letter or digit or underscore on either side' (so ACT+EBEM matches
    # both codes, while 'ACTIVE', 'action' or 'escalate' do not)
    alts = "|".join(re.escape(t) for t in sorted(set(tokens), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{alts})(?![A-Za-z0-9_])", re.IGNORECASE)


_CACHE: dict[str, ArmTokens] = {}


def arm_tokens(protocol: Protocol) -> ArmTokens:
    """Arm codes and names, stage-2 option codes and stage-2 actions of ``protocol``."""
    cached = _CACHE.get(protocol.content_hash)
    if cached is not None:
        return cached
    tokens: list[str] = []
    for arm in protocol.arms:
        tokens += [arm.code, arm.name]
    codes = protocol.arm_codes
    tokens += [protocol.option_code(pair) for pair in combinations(codes, 2)]
    for stage in protocol.stages:
        for actions in (stage.options or {}).values():
            tokens += list(actions)
    found = tuple(dict.fromkeys(t for t in tokens if t.strip()))
    _CACHE[protocol.content_hash] = ArmTokens(found, _pattern(found))
    return _CACHE[protocol.content_hash]


@functools.cache
def _builtin_tokens() -> ArmTokens:
    merged: list[str] = []
    for path in builtin_protocols().values():
        merged += arm_tokens(load_protocol(path)).tokens
    found = tuple(dict.fromkeys(merged))
    return ArmTokens(found, _pattern(found))


def tokens_in_session(db: Database, session: Session) -> ArmTokens:
    """The live protocol's tokens (the built-in protocols' before any protocol is live)."""
    try:
        return arm_tokens(live_protocol(db, session)[1])
    except ConflictError:  # no live protocol yet
        return _builtin_tokens()


def tokens_for(db: Database) -> ArmTokens:
    """:func:`tokens_in_session` in a short read session of its own (for error bodies)."""
    session = db.session(write=False)
    try:
        return tokens_in_session(db, session)
    finally:
        session.close()


def _allocation(view: dict[str, Any]) -> dict[str, Any]:
    marker = stage_marker(int(view.get("stage") or 1))
    kept = {k: view[k] for k in _ALLOCATION_KEEP if k in view}
    return kept | {"option": marker, "action": marker}


def _audit_row(row: dict[str, Any], tokens: ArmTokens) -> dict[str, Any]:
    values = [str(row.get("old_value") or ""), str(row.get("new_value") or "")]
    arm_bearing = row.get("entity") in ARM_ENTITIES or any(tokens.found(v) for v in values)
    out = {k: _walk(v, tokens) for k, v in row.items()
           if k not in ("old_value", "new_value")}
    for k in ("old_value", "new_value"):
        if k in row:
            out[k] = CONCEALED if arm_bearing and row[k] is not None else row[k]
    return out


def _neutral(value: Any) -> Any:
    """An allocation-shaped dataclass as the neutral allocation: option and action become the
    stage marker, the fields of :data:`_ALLOCATION_KEEP` stay and every other field takes its
    declared default (e.g. ``detail=None``), so the type is kept. A class with an arm-bearing
    field without a default cannot be emptied: it becomes the neutral dict of
    :func:`_allocation`."""
    fields = [f for f in dataclasses.fields(value) if f.init]
    names = {f.name for f in fields}
    emptied: dict[str, Any] = {}
    for f in fields:
        if f.name in _ALLOCATION_KEEP or f.name in ("option", "action"):
            continue
        if f.default is not dataclasses.MISSING:
            emptied[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            emptied[f.name] = f.default_factory()
        else:
            return _allocation({k: getattr(value, k) for k in names})
    marker = stage_marker(int(getattr(value, "stage", None) or 1))
    return dataclasses.replace(value, option=marker,
                               **({"action": marker} if "action" in names else {}), **emptied)


def _dataclass(value: Any, tokens: ArmTokens) -> Any:
    """A frozen result (services' typed views): its fields walked like a dict's values; an
    audit row's old/new values concealed as in :func:`_audit_row`; an allocation (fields
    ``stage`` and ``option``) reduced by :func:`_neutral`."""
    names = {f.name for f in dataclasses.fields(value)}
    if {"stage", "option"} <= names:
        return _neutral(value)
    changes = {f.name: _walk(getattr(value, f.name), tokens)
               for f in dataclasses.fields(value) if f.init}
    if "entity" in names and names & {"old_value", "new_value"}:
        row: dict[str, Any] = {k: getattr(value, k) for k in ("entity", "old_value", "new_value")
                               if k in names}
        concealed = _audit_row(row, tokens)
        changes |= {k: concealed[k] for k in ("old_value", "new_value") if k in names}
    return dataclasses.replace(value, **changes)


def _walk(value: Any, tokens: ArmTokens) -> Any:
    if isinstance(value, str):
        return tokens.scrub(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass(value, tokens)
    if isinstance(value, dict):
        if "stage" in value and "option" in value:
            return _allocation(value)
        if "entity" in value and ("old_value" in value or "new_value" in value):
            return _audit_row(value, tokens)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = tokens.scrub(k) if isinstance(k, str) else k
            while key in out:  # two arm keys both became '[blinded]': keep both values
                key = f"{key}'"
            out[key] = _walk(v, tokens)
        return out
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, tokens) for v in value)
    return value


def redact(value: Any, actor: Actor, tokens: ArmTokens) -> Any:
    """``value`` as ``actor`` may see it: unchanged for unblinded roles; for blinded roles
    allocations reduced to their neutral marker, arm-bearing audit values concealed and every
    arm token in strings and keys replaced by ``[blinded]``."""
    if not is_blinded(actor):
        return value
    return _walk(value, tokens)
