"""The JSON API under /api/v1: one thin route per use case."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tailor.db import Database
from tailor.exceptions import AuthenticationError, PermissionDeniedError
from tailor.services import accounts, admin, audit, exports, forms, randomization, trial
from tailor.services import auth as auth_service
from tailor.services.context import RequestContext
from tailor.web import schemas as s
from tailor.web.inputs import path_number
from tailor.web.limits import heavy

__all__ = ["router"]

def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def no_unknown_query(request: Request) -> None:
    """An undeclared query parameter is a 422 naming it (not silently ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known = _query_names(dependant)
    unknown = [k for k in request.query_params if k not in known]
    if unknown:
        raise RequestValidationError([{"loc": ("query", k), "msg": "unknown query parameter",
                                       "type": "extra_forbidden"} for k in unknown])


ERR = {"description": "error: detail is a message, or a list of {loc, msg, type} per field",
       "content": {"application/json": {"schema": {
           "type": "object", "required": ["detail"], "properties": {"detail": {
               "anyOf": [{"type": "string"}, {"type": "array", "items": {
                   "type": "object", "required": ["loc", "msg", "type"]}}]}}}}}}
router = APIRouter(prefix="/api/v1", dependencies=[Depends(no_unknown_query)], responses={
    401: ERR, 403: ERR, 404: ERR, 409: ERR, 422: ERR, 429: ERR, 503: ERR})
bearer = HTTPBearer(auto_error=False)
Code = Annotated[str, Path(pattern=r"^P-[0-9A-Z]{4}-[0-9A-Z]{4}$")]
VisitCode = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,32}$")]
Reason = Annotated[str | None, Header(alias="X-Reason", max_length=500,
                                      pattern=r"^[^\x00-\x1f\x7f]*$")]
_REQ_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def context(request: Request, db: Annotated[Database, Depends(get_db)],
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
            reason: Reason = None) -> RequestContext:
    """The caller, from the bearer token (never from the request body)."""
    if creds is None or not creds.credentials or len(creds.credentials) > 256:
        raise AuthenticationError("log in first (Authorization: Bearer <token>)")
    actor = auth_service.authenticate(db, creds.credentials)
    request.state.actor = actor  # error bodies are redacted for blinded roles (errors.py)
    if actor.must_change_password and not _password_route(request, actor.username):
        raise PermissionDeniedError("your password is temporary or expired: change it first "
                                    f"(POST /api/v1/users/{actor.username}/password)")
    return RequestContext(actor, request_id=request.state.request_id, reason=reason or "")


def _json(result: Any, *, omit_empty: tuple[str, ...] = (),
          rename: dict[str, str] | None = None) -> dict[str, Any]:
    """A service's frozen result as the API's JSON object, field by field in order; the
    ``omit_empty`` fields are left out when empty (the API has always omitted them then) and
    ``rename`` gives a field its JSON name (the study code is the API's ``id``)."""
    names = rename or {}
    return {names.get(k, k): v for k, v in asdict(result).items() if v or k not in omit_empty}


def _password_route(request: Request, username: str) -> bool:
    path = request.url.path
    return path in ("/api/v1/auth/me", "/api/v1/auth/logout",
                    f"/api/v1/users/{username}/password")


def _links(param: str, pointer: str, *targets: tuple[str, str]) -> dict[int | str, Any]:
    """OpenAPI links from a 201 to the operations that take its ``param`` (for clients and for
    schemathesis' stateful phase)."""
    links = {f"{method}{path.replace('/', '_').replace('{', '').replace('}', '')}": {
        "operationRef": "#/paths/" + ("/api/v1" + path).replace("/", "~1") + "/" + method,
        "parameters": {param: f"$response.body#/{pointer}"}} for method, path in targets}
    return {201: {"description": "created", "links": links}}


PARTICIPANT_LINKS = _links("code", "id", *[
    ("get", "/participants/{code}"), ("get", "/participants/{code}/visits"),
    ("get", "/participants/{code}/allocations"), ("post", "/participants/{code}/screening"),
    ("post", "/participants/{code}/enrol"), ("post", "/participants/{code}/run-in"),
    ("post", "/participants/{code}/intolerance"), ("post", "/participants/{code}/withdrawal")])
USER_LINKS = _links("username", "username", ("post", "/users/{username}/password"),
                    ("post", "/users/{username}/deactivate"),
                    ("post", "/users/{username}/reactivate"))
PROTOCOL_LINKS = _links("content_hash", "content_hash",
                        ("post", "/protocols/{content_hash}/go-live"))
Ctx = Annotated[RequestContext, Depends(context)]
Db = Annotated[Database, Depends(get_db)]


# --------------------------------------------------------------------------- auth
@router.post("/auth/login", response_model=s.TokenOut, tags=["auth"])
async def login(body: s.LoginIn, request: Request, db: Db) -> dict[str, Any]:
    """Exchange username and password for a bearer token."""
    address = request.client.host if request.client else ""
    # a throttled account or address is refused here, from memory, without taking a handler
    # thread: a flood of refused attempts cannot queue in front of other users' requests
    auth_service.login_precheck(db, body.username, address)
    tok = await run_in_threadpool(auth_service.login, db, body.username, body.password,
                                  request_id=request.state.request_id, address=address)
    return {"token": tok.token, "expires_at": tok.expires_at.isoformat(), "role": tok.role,
            "site": tok.site}


@router.post("/auth/logout", status_code=204, tags=["auth"])
def logout(ctx: Ctx, db: Db,
           creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Response:
    """Invalidate the current token."""
    assert creds is not None
    auth_service.logout(db, ctx, creds.credentials)
    return Response(status_code=204)


@router.get("/auth/me", response_model=s.MeOut, tags=["auth"])
def me(ctx: Ctx) -> dict[str, Any]:
    """Who the token belongs to."""
    a = ctx.actor
    return {"username": a.username, "role": a.role, "site": a.site_code or None}


# --------------------------------------------------------------------------- admin
@router.get("/sites", response_model=list[s.SiteOut], tags=["admin"])  # type: ignore[valid-type]
def sites(ctx: Ctx, db: Db) -> list[admin.SiteView]:
    """Sites visible to the caller."""
    return admin.list_sites(db, ctx)


@router.post("/sites", status_code=201, response_model=s.SiteOut, tags=["admin"])
def create_site(body: s.SiteIn, ctx: Ctx, db: Db) -> admin.SiteView:
    """Create a site with its IANA time zone (admin)."""
    return admin.create_site(db, ctx, body.code, body.name, body.timezone)


@router.post("/users", status_code=201, tags=["admin"], responses=USER_LINKS)
def create_user(body: s.UserIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Create a user with a role (admin)."""
    return asdict(admin.create_user(db, ctx, body.username, body.password, body.role,
                                    body.site, full_name=body.full_name, email=body.email))


Username = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")]


@router.get("/users", response_model=list[s.UserOut], tags=["admin"])  # type: ignore[valid-type]
def users(ctx: Ctx, db: Db) -> list[accounts.UserView]:
    """Every user with role, site and state (admin)."""
    return accounts.list_users(db, ctx)


@router.post("/users/{username}/password", status_code=204, tags=["admin"])
def set_password(username: Username, body: s.PasswordIn, ctx: Ctx, db: Db,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                 ) -> Response:
    """Change your own password (with current_password) or reset another's (admin); every
    other session of the user ends."""
    accounts.set_password(db, ctx, username, body.password,
                          current_password=body.current_password,
                          keep_token=creds.credentials if creds else None,
                          temporary=body.temporary)
    return Response(status_code=204)


@router.post("/users/{username}/deactivate", response_model=s.UserStateOut, tags=["admin"])
def deactivate(username: Username, ctx: Ctx, db: Db) -> accounts.UserState:
    """Deactivate a user: every session ends at once (admin)."""
    return accounts.set_active(db, ctx, username, False)


@router.post("/users/{username}/reactivate", response_model=s.UserStateOut, tags=["admin"])
def reactivate(username: Username, ctx: Ctx, db: Db) -> accounts.UserState:
    """Reactivate a deactivated user (admin)."""
    return accounts.set_active(db, ctx, username, True)


@router.get("/protocols", response_model=list[s.ProtocolOut], tags=["admin"])  # type: ignore[valid-type]
def protocols(ctx: Ctx, db: Db) -> list[admin.ProtocolView]:
    """Registered protocol versions."""
    return admin.list_protocols(db, ctx)


@router.post("/protocols", status_code=201, response_model=s.ProtocolOut,
             tags=["admin"], responses=PROTOCOL_LINKS)
def register_protocol(body: s.ProtocolIn, ctx: Ctx, db: Db) -> admin.ProtocolView:
    """Validate and register a protocol version (admin)."""
    return admin.register_protocol(db, ctx, body.yaml)


# go-live and data lock are signed actions: tailor.web.signatures_api


# --------------------------------------------------------------------------- participants
@router.post("/participants", status_code=201, response_model=s.ParticipantOut,
             tags=["participants"], responses=PARTICIPANT_LINKS)
def create_participant(body: s.ParticipantIn, ctx: Ctx, db: Db) -> trial.ParticipantView:
    """Create a participant at the coordinator's site."""
    return trial.create_participant(db, ctx, consent_date=body.consent_date,
                                    birth_year=body.birth_year, sex=body.sex).participant


@router.get("/participants", response_model=list[s.ParticipantOut],  # type: ignore[valid-type]
            tags=["participants"])
def list_participants(ctx: Ctx, db: Db,
                      status: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,24}$")] = None,
                      search: Annotated[str | None, Query(pattern=r"^[0-9A-Z-]{1,16}$")] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      offset: Annotated[int, Query(ge=0, le=10**6)] = 0
                      ) -> list[trial.ParticipantView]:
    """Participants in the caller's scope."""
    return trial.list_participants(db, ctx, status=status, search=search, limit=limit,
                                   offset=offset)


@router.get("/participants/{code}", response_model=s.ParticipantOut, tags=["participants"])
def get_participant(code: Code, ctx: Ctx, db: Db) -> trial.ParticipantView:
    """One participant (404 if missing or at another site)."""
    return trial.participant_view(db, ctx, code)


@router.post("/participants/{code}/screening", tags=["participants"])
def screening(code: Code, body: s.ScreeningIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Pre-screening and screening eligibility, with reasons."""
    return _json(trial.screen(db, ctx, code, dict(body.record), body.assessed_on),
                 omit_empty=("edit_checks",))


@router.post("/participants/{code}/enrol", tags=["participants"])
def enrol(code: Code, body: s.EnrolIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Enrol an eligible participant; the run-in starts."""
    out = trial.enrol(db, ctx, code, body.enrolled_on)
    enrolled = (_json(out.participant, rename={"study_code": "id"})
                | {"visit0_window": list(out.visit0_window)})
    return enrolled | ({"edit_checks": out.edit_checks} if out.edit_checks else {})


@router.post("/participants/{code}/run-in", tags=["participants"])
def run_in(code: Code, body: s.RunInIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Record run-in engagement."""
    return _json(trial.record_run_in(db, ctx, code, modules_completed=body.modules_completed,
                                     messages_answered=body.messages_answered,
                                     completed_on=body.completed_on),
                 omit_empty=("edit_checks",))


@router.post("/participants/{code}/visits/{visit}", tags=["participants"])
def record_visit(code: Code, visit: VisitCode, body: s.VisitIn, ctx: Ctx,
                 db: Db) -> dict[str, Any]:
    """Record a visit (Visit 0 or follow-up) inside its window; corrections need X-Reason."""
    instruments = {k: {"version": v.version, "items": dict(v.items)}
                   for k, v in body.instruments.items()}
    return trial.record_visit(db, ctx, code, visit, visit_date=body.visit_date,
                              instruments=instruments, fields=dict(body.fields),
                              safety=dict(body.safety)).to_json()


@router.get("/participants/{code}/visits", tags=["participants"],
            response_model=list[s.VisitOut])  # type: ignore[valid-type]
def visits(code: Code, ctx: Ctx, db: Db) -> list[dict[str, Any]]:
    """Visit schedule, windows and derived scores."""
    return [asdict(v) for v in trial.visits_view(db, ctx, code)]


FormCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,64}$")]


@router.get("/participants/{code}/forms", tags=["participants"])
def form_grid(code: Code, ctx: Ctx, db: Db) -> list[forms.VisitForms]:
    """Form status grid: one row per visit of the schedule, one cell per expected form
    (not_started / incomplete / complete / verified / open_query)."""
    return forms.form_grid(db, ctx, code)


@router.get("/forms", tags=["participants"])
def site_form_grid(ctx: Ctx, db: Db, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0
                   ) -> forms.SiteFormGrid:
    """Site-level form status grid: participants in scope (newest first) x visits, each cell
    the summary of that visit's forms; ``more`` says whether another page follows."""
    return forms.site_form_grid(db, ctx, limit=limit, offset=offset)


@router.post("/participants/{code}/visits/{visit}/forms/{form}/verify", tags=["participants"])
def verify_form(code: Code, visit: VisitCode, form: FormCode, ctx: Ctx,
                db: Db) -> forms.FormVerified:
    """Data manager: mark a complete form verified (409 unless it is complete now)."""
    return forms.verify_form(db, ctx, code, visit, form)


@router.post("/participants/{code}/randomize", response_model=s.AllocationOut,
             status_code=201, tags=["randomization"])
def randomize(code: Code, body: s.RandomizeIn, ctx: Ctx, db: Db, response: Response,
              idempotency_key: Annotated[str, Header(alias="Idempotency-Key",
                                                     pattern=r"^[A-Za-z0-9_.:-]{8,128}$")]
              ) -> dict[str, Any]:
    """Randomize at a stage; a repeated Idempotency-Key returns the same allocation (200)."""
    view, replayed = randomization.randomize(db, ctx, code, body.stage, idempotency_key)
    if replayed:
        response.status_code = 200
    return view.to_json() | {"replayed": replayed}


@router.get("/participants/{code}/allocations", response_model=list[s.AllocationView],
            tags=["randomization"])
def allocations(code: Code, ctx: Ctx, db: Db) -> list[dict[str, Any]]:
    """The participant's allocations (details only for statistician and admin)."""
    return [a.to_json() for a in randomization.allocations_of(db, ctx, code)]


@router.post("/participants/{code}/intolerance", status_code=201, tags=["participants"])
def intolerance(code: Code, body: s.IntoleranceIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Record an intolerance or adverse event."""
    out = trial.record_adverse_event(db, ctx, code, arm=body.arm, onset_date=body.onset_date,
                                     serious=body.serious, kind=body.kind,
                                     description=body.description, severity=body.severity,
                                     relatedness=body.relatedness, outcome=body.outcome)
    return _json(out, omit_empty=("protocol_deviations",), rename={"event_id": "id"})


@router.post("/participants/{code}/withdrawal", tags=["participants"])
def withdrawal(code: Code, body: s.WithdrawalIn, ctx: Ctx, db: Db) -> dict[str, Any]:
    """Withdraw the participant."""
    out = trial.withdraw(db, ctx, code, withdrawn_on=body.withdrawn_on,
                         reason_code=body.reason_code, kind=body.kind,
                         reason_text=body.reason_text)
    return _json(out, rename={"study_code": "id"})


# --------------------------------------------------------------------------- statistics, audit
@router.get("/randomization/state/{stage}", tags=["randomization"])
def stage_state(stage: Annotated[str, Path(max_length=12)], ctx: Ctx,
                db: Db) -> dict[str, Any]:
    """Minimization counts and their recomputation check (statistician, admin); a stage
    outside 1-9 is a 404 like any missing resource."""
    return _json(randomization.stage_state_view(db, ctx, path_number(stage, low=1, high=9,
                                                                     what="stage")))


@router.get("/audit", response_model=list[s.AuditRowOut], tags=["audit"])  # type: ignore[valid-type]
def audit_trail(ctx: Ctx, db: Db,
                entity: Annotated[str | None, Query(pattern=r"^[A-Za-z]{1,64}$")] = None,
                after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[audit.AuditRow]:
    """Audit rows (admin, data manager)."""
    return audit.audit_trail(db, ctx, entity=entity, after_seq=after_seq, limit=limit)


class CsvResponse(Response):
    media_type = "text/csv"


@router.get("/export/{shape}", tags=["export"], response_class=CsvResponse,
            dependencies=[Depends(heavy)])
def export(shape: Annotated[str, Path(pattern=r"^(wide|long|dictionary)$")], ctx: Ctx,
           db: Db) -> Response:
    """De-identified analysis export as CSV (statistician, admin)."""
    csv_text = exports.export_csv(db, ctx, shape, today=datetime.now().date())
    return CsvResponse(csv_text, headers={
        "Content-Disposition": f'attachment; filename="tailor-{shape}.csv"'})
