"""The one place tailor's errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailor.exceptions import (
    AllocationError,
    AuthenticationError,
    ConflictError,
    EditCheckError,
    FormProblemsError,
    InstrumentError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RecordError,
    TailorError,
)
from tailor.services.auth import RateLimitedError
from tailor.services.blinding import is_blinded, redact, tokens_for

__all__ = ["install_error_handlers", "status_for"]

log = logging.getLogger("tailor.web")


def status_for(exc: TailorError) -> int:
    if isinstance(exc, RateLimitedError):
        return 429
    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError | AllocationError):
        return 409
    return 422


def _body(exc: TailorError, status: int) -> dict[str, object]:
    if isinstance(exc, EditCheckError):
        return {"detail": [{"loc": ["body", f], "msg": msg, "type": f"edit_check:{rule}"}
                           for f, msg, rule in exc.violations]}
    if isinstance(exc, RecordError) and status == 422:
        return {"detail": [{"loc": ["body", exc.field], "msg": str(exc),
                            "type": exc.rule or "invalid"}]}
    if isinstance(exc, FormProblemsError):  # every problem at once, the item code a hint
        return {"detail": [{"loc": ["body", "instruments", block, item or ""], "msg": msg,
                            "type": "instrument", "hint": item or block}
                           for block, item, msg in exc.problems]}
    if isinstance(exc, InstrumentError):
        return {"detail": [{"loc": ["body", "instruments", exc.instrument or "",
                                    exc.item or ""], "msg": str(exc), "type": "instrument"}]}
    if isinstance(exc, ProtocolError):
        return {"detail": [{"loc": ["body", "yaml", path], "msg": msg, "type": "protocol"}
                           for path, msg in exc.errors]}
    return {"detail": str(exc)}


def _blinded(request: Request, body: dict[str, object]) -> dict[str, object]:
    """The error body as the caller may see it (no arm tokens for blinded roles)."""
    actor = getattr(request.state, "actor", None)
    if actor is None or not is_blinded(actor):
        return body
    redacted: dict[str, object] = redact(body, actor, tokens_for(request.app.state.db))
    return redacted


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TailorError)
    async def _tailor(request: Request, exc: TailorError) -> JSONResponse:
        status = status_for(exc)
        if status == 404:
            # logged as an access-control event; the body is identical for hidden and missing
            log.info("not found or out of scope: %s %s", request.method, request.url.path)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 429:
            headers = {"Retry-After": str(getattr(exc, "retry_after", 1))}
        return JSONResponse(_blinded(request, _body(exc, status)), status_code=status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default 422 echoes the offending input, which may be a password or a
        # token sent in the wrong field: keep where, what and why, never the value itself
        errors = [{k: v for k, v in e.items() if k not in ("input", "url")}
                  for e in exc.errors()]
        return JSONResponse(_blinded(request, {"detail": jsonable_encoder(errors)}),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # a body that is not JSON at all is bad input like any other: 422 naming the body
        # (Starlette's 400 is not part of the API's documented statuses)
        if exc.status_code == 400:
            return JSONResponse({"detail": [{"loc": ["body"], "msg": str(exc.detail),
                                             "type": "json_invalid"}]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return JSONResponse({"detail": "database busy; retry"}, status_code=503,
                            headers={"Retry-After": "1"})
