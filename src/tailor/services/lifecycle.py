"""The participant lifecycle: one enum of the statuses a participant row can hold, the legal
transitions between them and the one function, :func:`advance`, through which every service
changes a status. The stored strings are the enum's values (no migration: the column holds the
same text as before), so a status read from the database compares equal to its member.

::

    screening -> eligible | screen_failed            (screening; re-screening repeats it)
    eligible  -> run_in                              (enrolment)
    run_in    -> run_in_passed | run_in_failed       (run-in)
    run_in_passed -> ready | visit0_failed           (Visit 0)
    ready     -> randomized                          (stage-1 randomization)
    randomized | stage2 -> stage2                    (stage-2 and later randomizations)
    any but withdrawn -> withdrawn                   (withdrawal of consent)

An illegal transition raises :class:`~tailor.exceptions.ConflictError` (HTTP 409).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol as _Protocol

from tailor.exceptions import ConflictError

__all__ = ["ACTIVE", "CLOSED", "SCREENABLE", "STATUS_LABELS", "STATUS_ORDER", "TRANSITIONS",
           "ParticipantStatus", "advance", "can_advance"]


class ParticipantStatus(StrEnum):
    """A participant's place in the trial (the value is the stored text)."""

    SCREENING = "screening"
    SCREEN_FAILED = "screen_failed"
    ELIGIBLE = "eligible"
    RUN_IN = "run_in"
    RUN_IN_FAILED = "run_in_failed"
    RUN_IN_PASSED = "run_in_passed"
    VISIT0_FAILED = "visit0_failed"
    READY = "ready"
    RANDOMIZED = "randomized"
    STAGE2 = "stage2"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        """The words the pages show for this status (issue 15: no raw codes)."""
        return STATUS_LABELS[self]


S = ParticipantStatus

#: every status in the order the pages list them (the enum's order)
STATUS_ORDER: tuple[str, ...] = tuple(s.value for s in S)

#: the words the pages show for each status, keyed by the stored text
STATUS_LABELS: dict[str, str] = {
    S.SCREENING: "awaiting screening", S.SCREEN_FAILED: "screen failure",
    S.ELIGIBLE: "eligible, not yet enrolled", S.RUN_IN: "in the run-in",
    S.RUN_IN_FAILED: "run-in not passed", S.RUN_IN_PASSED: "due for Visit 0",
    S.VISIT0_FAILED: "not eligible at Visit 0", S.READY: "ready to randomize",
    S.RANDOMIZED: "on the first treatment", S.STAGE2: "on the second treatment",
    S.WITHDRAWN: "withdrawn"}

#: statuses in which screening may be (re)done
SCREENABLE = frozenset({S.SCREENING, S.SCREEN_FAILED, S.ELIGIBLE})
#: statuses on a randomized treatment (follow-up visits, ePRO links)
ACTIVE = frozenset({S.RANDOMIZED, S.STAGE2})
#: statuses that end the participant's course (no visit is due any more)
CLOSED = frozenset({S.WITHDRAWN, S.SCREEN_FAILED, S.RUN_IN_FAILED, S.VISIT0_FAILED})

_SCREENED = frozenset({S.ELIGIBLE, S.SCREEN_FAILED})

#: the legal transitions: from a status to the statuses a service may move it to
TRANSITIONS: dict[ParticipantStatus, frozenset[ParticipantStatus]] = {
    S.SCREENING: _SCREENED,
    S.SCREEN_FAILED: _SCREENED,
    S.ELIGIBLE: _SCREENED | {S.RUN_IN},
    S.RUN_IN: frozenset({S.RUN_IN_PASSED, S.RUN_IN_FAILED}),
    S.RUN_IN_FAILED: frozenset(),
    S.RUN_IN_PASSED: frozenset({S.READY, S.VISIT0_FAILED}),
    S.VISIT0_FAILED: frozenset(),
    S.READY: frozenset({S.RANDOMIZED}),
    S.RANDOMIZED: frozenset({S.STAGE2}),
    S.STAGE2: frozenset({S.STAGE2}),
    S.WITHDRAWN: frozenset(),
}
for _s in S:  # withdrawal of consent is possible from every status but withdrawn
    if _s is not S.WITHDRAWN:
        TRANSITIONS[_s] = TRANSITIONS[_s] | {S.WITHDRAWN}


class _HasStatus(_Protocol):
    status: str


def can_advance(current: str, to: ParticipantStatus) -> bool:
    """Whether a participant in ``current`` may move to ``to``."""
    try:
        here = S(current)
    except ValueError:
        return False
    return to in TRANSITIONS[here]


def advance(participant: _HasStatus, to: ParticipantStatus, *, action: str = "") -> None:
    """Move ``participant`` to ``to``; an illegal transition is a :class:`ConflictError`
    naming the current status, the target and the action (``action``: what was attempted)."""
    current = participant.status
    if not can_advance(current, to):
        what = f" ({action})" if action else ""
        raise ConflictError(f"a participant in status {current!r} cannot move to {to.value!r}"
                            f"{what}")
    participant.status = to.value
