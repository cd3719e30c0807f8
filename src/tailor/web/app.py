"""The FastAPI app factory: settings in, app out (no import-time state)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import Scope

from tailor.db import Database
from tailor.services.auth import AuthPolicy, configure
from tailor.services.pauses import PauseHook
from tailor.services.unblinding import configure_notifications
from tailor.settings import Settings
from tailor.web import audit_api
from tailor.web.api import router
from tailor.web.errors import install_error_handlers
from tailor.web.limits import install_limits
from tailor.web.pages import install_pages
from tailor.web.queries_api import router as queries_router
from tailor.web.security_headers import (
    HeaderMiddleware,
    install_docs,
    install_security_headers,
)
from tailor.web.signatures_api import router as signatures_router

__all__ = ["create_app"]

_REQ_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_LINK_PATH = re.compile(r"/p/[^/?#\s\"']+")


class _RedactLinks(logging.Filter):
    """Replace participant-link tokens in log records (``/p/<token>`` -> ``/p/[link]``): an
    access log, when a deployment turns one on, never holds a usable link."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "/p/" in record.msg:
            record.msg = _LINK_PATH.sub("/p/[link]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_LINK_PATH.sub("/p/[link]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


_REDACT_LINKS = _RedactLinks()


class _RequestId(HeaderMiddleware):
    """The request id (the client's ``X-Request-ID`` if well formed, else a new one) in
    ``request.state.request_id`` and on the response, the time spent in the app as W3C
    Server-Timing (so a client can tell queueing in front of the app from time inside it)
    and ``Cache-Control: no-store`` on every response."""

    def begin(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQ_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()

        def edit(headers: MutableHeaders) -> None:
            headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1e3:.1f}"
            headers["X-Request-ID"] = request_id
            headers["Cache-Control"] = "no-store"

        return edit


def create_app(settings: Settings, *, db: Database | None = None) -> FastAPI:
    """Build the app for ``settings`` (or around an existing ``db``, as tests do)."""
    for name in ("uvicorn.access", "uvicorn.error", "tailor"):
        logging.getLogger(name).addFilter(_REDACT_LINKS)  # the same filter once per logger
    hook = (PauseHook(settings.test_pause_ms, settings.test_pause_dir)
            if settings.test_pause_ms or settings.test_pause_dir else None)
    database = db or Database(settings.database_url, pool_size=settings.pool_size, hook=hook)
    configure(database, AuthPolicy.from_settings(settings))
    configure_notifications(database, tuple(settings.unblind_notify_roles.split(",")),
                            max_per_day=settings.unblind_max_per_day)
    threads = settings.worker_threads or settings.pool_size

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # as many handler threads as pooled connections: requests beyond that wait in the
        # event loop (no CPU), not in threads contending for the GIL and opening overflow
        # connections (benchmarks/results/service.md)
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(title="tailor trial service", version="1", lifespan=lifespan,
                  description="Multi-site SMART trial service: screening, visits, "
                              "concealed concurrency-safe randomization, audit trail.",
                  docs_url=None, redoc_url=None, openapi_url=None)  # install_docs: login
    app.state.db = database
    app.state.settings = settings

    app.add_middleware(_RequestId)  # request id, Server-Timing, no-store

    install_error_handlers(app)
    app.include_router(router)
    app.include_router(audit_api.router)  # GET /api/v1/audit/asof (tailor.web.audit_api)
    app.include_router(signatures_router)  # signed actions: go-live, data lock, unblinding
    app.include_router(queries_router)  # data queries (tailor.web.queries_api)
    install_pages(app)  # HTML pages, /api/v1/decide, static files (tailor.web.pages)
    install_limits(app, settings.heavy_requests,  # concurrent exports and data checks,
                   per_link=settings.participant_requests_per_link,  # participant pages
                   per_address=settings.participant_requests_per_address)
    install_docs(app, public=settings.api_docs_public)  # /docs, /openapi.json
    install_security_headers(app)  # outermost: every response, errors and static included
    return app


def app_from_env() -> FastAPI:
    """Zero-argument factory for ``uvicorn --factory`` (``tailor serve``): reads settings."""
    from tailor.settings import get_settings

    return create_app(get_settings())
