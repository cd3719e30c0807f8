"""CDS Hooks endpoints: discovery at ``GET /cds-services``, the ``patient-view`` service, and
the short form as a FHIR Questionnaire. The calling EHR authenticates with a signed JWT
(``tailor.cds.auth``); a bad resource or unknown code is a 422 naming the element."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tailor.cds import SERVICE_ID, EhrVerifier, FhirInputError, cards_of, discovery
from tailor.cds.fhir import inputs_from_prefetch, short_form_questionnaire
from tailor.db import Database
from tailor.exceptions import AuthenticationError, RecordError
from tailor.services.decide import (
    DecisionInputError,
    ModelUnavailableError,
    decide_with,
    model_for_ehr,
    short_form,
)
from tailor.web.api import ERR, get_db, no_unknown_query

__all__ = ["router"]

router = APIRouter(tags=["CDS Hooks"], dependencies=[Depends(no_unknown_query)],
                   responses={401: ERR, 409: ERR, 412: ERR, 422: ERR, 503: ERR})


class HookRequest(BaseModel):
    """A CDS Hooks 1.0 service call (the fields this service reads are checked)."""

    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None
    user: str | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


def _verifier(request: Request) -> EhrVerifier:
    state = request.app.state
    if getattr(state, "cds_verifier", None) is None:
        state.cds_verifier = EhrVerifier(state.settings.cds_issuers or "{}")
    verifier: EhrVerifier = state.cds_verifier
    return verifier


def _base(request: Request) -> str:
    return str(request.app.state.settings.cds_base_url or str(request.base_url)).rstrip("/")


def _unprocessable(loc: str, msg: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc.split("."), "msg": msg,
                                     "type": "invalid"}]}, status_code=422)


@router.get("/cds-services")
def cds_discovery() -> Any:
    """CDS Hooks discovery: the patient-view service and its prefetch templates."""
    return discovery()


@router.post(f"/cds-services/{SERVICE_ID}")
def patient_view(body: HookRequest, request: Request,
                 db: Annotated[Database, Depends(get_db)]) -> Any:
    """Cards for the patient whose chart was opened (the prefetched resources decide)."""
    audience = f"{_base(request)}/cds-services/{SERVICE_ID}"
    try:
        _verifier(request).verify(request.headers.get("authorization"), audience)
    except AuthenticationError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    except RecordError as exc:  # TAILOR_CDS_ISSUERS is malformed: the service is unavailable
        return JSONResponse({"detail": str(exc)}, status_code=503)
    if body.hook != "patient-view":
        return _unprocessable("body.hook", f"this service answers 'patient-view'; got "
                              f"{body.hook!r}")
    if not isinstance(body.context.get("patientId"), str):
        return _unprocessable("body.context.patientId", "the patient-view context needs "
                              "patientId (a string)")
    prefetch = {k: v for k, v in (body.prefetch or {}).items() if v is not None}
    if not {"questionnaireResponses", "observations"} & set(prefetch):
        return JSONResponse({"detail": "no questionnaireResponses or observations were "
                             "prefetched and this service does not query the FHIR server; "
                             "honour its prefetch templates"}, status_code=412)
    try:
        model, protocol = model_for_ehr(db, str(request.app.state.settings.regime_model or ""))
    except ModelUnavailableError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    try:
        kwargs = inputs_from_prefetch(prefetch)
        result = decide_with(model, protocol, **kwargs)
    except FhirInputError as exc:
        return _unprocessable(f"body.{exc.element}", str(exc))
    except DecisionInputError as exc:
        return JSONResponse({"detail": [{"loc": ["body", "prefetch", *k.split(".")], "msg": v,
                                         "type": "invalid"} for k, v in exc.errors.items()]},
                            status_code=422)
    return cards_of(result, f"{_base(request)}/decide")


@router.get("/fhir/Questionnaire/tailor-short-form", responses={200: {
    "description": "the short form as a FHIR R4 Questionnaire",
    "content": {"application/fhir+json": {"schema": {"type": "object"}}}}})
def questionnaire(request: Request, db: Annotated[Database, Depends(get_db)]) -> Any:
    """The short form (only the questions the deployed model uses) as a FHIR Questionnaire."""
    try:
        model, _protocol = model_for_ehr(db, str(request.app.state.settings.regime_model or ""))
    except ModelUnavailableError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return JSONResponse(short_form_questionnaire(short_form(model)),
                        media_type="application/fhir+json")
