"""Request and response bodies of the JSON API: bounded, strict, no control characters."""

from __future__ import annotations

import dataclasses
import typing
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    create_model,
)

from tailor.protocol import MAX_STAGES
from tailor.services.accounts import UserState, UserView
from tailor.services.admin import ProtocolView, SiteView
from tailor.services.audit import AuditRow
from tailor.services.trial import ParticipantView, VisitView
from tailor.web.inputs import clean_name, clean_text

__all__ = [
    "AllocationOut",
    "ClinicalDate",
    "EnrolIn",
    "IntoleranceIn",
    "LoginIn",
    "Name",
    "ParticipantIn",
    "ParticipantOut",
    "PasswordIn",
    "ProtocolIn",
    "RandomizeIn",
    "RunInIn",
    "ScreeningIn",
    "SiteIn",
    "Text",
    "UserIn",
    "UserOut",
    "UserStateOut",
    "VisitIn",
    "WithdrawalIn",
]


def _clean(value: str) -> str:
    # InvalidFieldError is a ValueError: pydantic reports it as a 422 at the field's location
    return clean_text(value)


def _name(value: str) -> str:
    return clean_name(value)


def _clinical(value: date) -> date:
    if not date(1990, 1, 1) <= value <= date(2100, 12, 31):
        raise ValueError("date must lie between 1990-01-01 and 2100-12-31")
    return value


def Text(n: int, min_length: int = 0) -> Any:
    return Annotated[str, Field(min_length=min_length, max_length=n), AfterValidator(_clean)]


def Name(n: int, min_length: int = 0) -> Any:
    """Text shown to other people as a name: no bidirectional control characters either."""
    return Annotated[str, Field(min_length=min_length, max_length=n), AfterValidator(_name)]


ClinicalDate = Annotated[date, AfterValidator(_clinical)]
Scalar = StrictBool | Annotated[int, Field(ge=-10**9, le=10**9)] | float | Text(255)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LoginIn(_In):
    username: Text(64, 1)  # type: ignore[valid-type]
    password: Text(1024, 1)  # type: ignore[valid-type]


class TokenOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: str
    role: str
    site: str


class SiteIn(_In):
    code: Annotated[str, Field(pattern=r"^S[0-9]{2,3}$")]
    name: Name(200, 1)  # type: ignore[valid-type]
    timezone: Text(64, 1)  # type: ignore[valid-type]


class UserIn(_In):
    username: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{2,63}$")]
    password: Text(128, 1)  # type: ignore[valid-type]
    role: Literal["admin", "coordinator", "data_manager", "statistician", "clinician"]
    site: Annotated[str, Field(pattern=r"^S[0-9]{2,3}$")] | None = None
    full_name: Name(200) = ""  # type: ignore[valid-type]
    email: Annotated[str, Field(max_length=254,
                                pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")] | None = None


class PasswordIn(_In):
    password: Text(128, 1)  # type: ignore[valid-type]
    # required when users change their own password (admin resets of others do not need it)
    current_password: Text(1024, 1) | None = None  # type: ignore[valid-type]
    # an admin reset the user must replace at first use
    temporary: StrictBool = False


def _out(name: str, result: type, *, renamed: dict[str, str] | None = None,
         doc: str | None = None) -> type[BaseModel]:
    """The response model of a service's frozen result: its fields, defined once (there).
    ``renamed`` maps a result field to its JSON name (read from either name); ``doc`` is the
    model's description."""
    hints = typing.get_type_hints(result)
    renamed = renamed or {}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        json_name = renamed.get(f.name, f.name)
        fields[json_name] = (hints[f.name], Field(
            validation_alias=AliasChoices(json_name, f.name)) if json_name != f.name else ...)
    config = ConfigDict(from_attributes=True) if renamed else None
    model: type[BaseModel] = create_model(name, __config__=config, __doc__=doc, **fields)
    return model


UserOut = _out("UserOut", UserView)
UserStateOut = _out("UserStateOut", UserState)


class ProtocolIn(_In):
    yaml: Text(200_000, 1)  # type: ignore[valid-type]


class ParticipantIn(_In):
    consent_date: ClinicalDate | None = None
    birth_year: Annotated[int, Field(ge=1900, le=2100)] | None = None
    sex: Literal["F", "M"] | None = None


ParticipantOut = _out(
    "ParticipantOut", ParticipantView, renamed={"study_code": "id"},
    doc="A participant (:class:`tailor.services.trial.ParticipantView`); ``id`` is the study\n"
        "    code.")


class ScreeningIn(_In):
    record: dict[Text(64, 1), Scalar] = Field(max_length=200)  # type: ignore[valid-type]
    assessed_on: ClinicalDate | None = None


class EnrolIn(_In):
    enrolled_on: ClinicalDate | None = None


class RunInIn(_In):
    modules_completed: Annotated[int, Field(ge=0, le=1000, strict=True)]
    # omitted: counted from the recorded run-in messages (issue 20b); given: stored as manual
    messages_answered: Annotated[int, Field(ge=0, le=1000, strict=True)] | None = None
    completed_on: ClinicalDate | None = None


ItemValue = StrictBool | Annotated[int, Field(ge=-10**9, le=10**9)] | float | Text(255) | None


class InstrumentBlock(_In):
    version: Text(32, 1) = "1"  # type: ignore[valid-type]
    items: dict[Text(64, 1), ItemValue] = Field(max_length=500)  # type: ignore[valid-type]


class VisitIn(_In):
    visit_date: ClinicalDate | None = None
    instruments: dict[Text(64, 1), InstrumentBlock] = Field(  # type: ignore[valid-type]
        default_factory=dict, max_length=50)
    fields: dict[Text(64, 1), Scalar] = Field(  # type: ignore[valid-type]
        default_factory=dict, max_length=200)
    safety: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,48}$")], StrictBool] = Field(
        default_factory=dict, max_length=20)


class RandomizeIn(_In):
    stage: Annotated[int, Field(ge=1, le=MAX_STAGES, strict=True)]  # {"stage": true} is not stage 1


class AllocationOut(BaseModel):
    stage: int
    option: str
    action: str
    allocated_at: str
    replayed: bool = False
    model_config = ConfigDict(extra="allow")


class AllocationView(BaseModel):
    """An allocation as the caller's role may see it (details for statistician and admin;
    the neutral marker for blinded roles)."""

    stage: int
    option: str
    action: str
    allocated_at: str
    model_config = ConfigDict(extra="allow")


class MeOut(BaseModel):
    username: str
    role: str
    site: str | None


SiteOut = _out("SiteOut", SiteView)
ProtocolOut = _out("ProtocolOut", ProtocolView)


VisitOut = _out("VisitOut", VisitView)


AuditRowOut = _out("AuditRowOut", AuditRow)


class IntoleranceIn(_In):
    arm: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")] | None = None
    onset_date: ClinicalDate
    serious: bool = False
    kind: Literal["intolerance", "adverse_event"] = "intolerance"
    description: Text(1000) | None = None  # type: ignore[valid-type]
    severity: Literal["mild", "moderate", "severe"] | None = None
    relatedness: Literal["not_related", "unlikely", "possible", "probable",
                         "definite"] | None = None
    outcome: Literal["recovered", "recovering", "not_recovered", "recovered_with_sequelae",
                     "fatal", "unknown"] | None = None


class WithdrawalIn(_In):
    withdrawn_on: ClinicalDate
    reason_code: Literal["participant_decision", "lost_to_follow_up", "adverse_event",
                         "investigator_decision", "death", "other"]
    kind: Literal["withdrew_consent", "off_treatment_followed"] = "withdrew_consent"
    reason_text: Text(1000) | None = None  # type: ignore[valid-type]


# issue 15: data queries
class QueryIn(_In):
    field: Text(64, 1)  # type: ignore[valid-type]
    message: Text(1000, 1)  # type: ignore[valid-type]
    visit: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")] | None = None


class QueryAnswerIn(_In):
    answer: Text(1000, 1)  # type: ignore[valid-type]


class QueryReopenIn(_In):
    message: Text(1000, 1)  # type: ignore[valid-type]
