"""Security headers on every response (HTML, JSON, CSV, static files, errors) and the API
docs (Swagger UI, OpenAPI document), behind login unless the ``api_docs_public`` setting says
otherwise, with a Content-Security-Policy that lets Swagger UI run and nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailor.exceptions import AuthenticationError
from tailor.services import auth as auth_service

__all__ = ["HTML_CSP", "NONE_CSP", "HeaderMiddleware", "docs_csp", "install_docs",
           "install_security_headers"]

HTML_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# JSON, CSV and other non-HTML bodies: nothing may load or run if a browser renders one
NONE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_CDN = "https://cdn.jsdelivr.net"
_INLINE = re.compile(r"<script>(.*?)</script>", re.S)


def docs_csp(html: str) -> str:
    """The CSP for a Swagger UI page: its bundle and stylesheet from the CDN, its one inline
    script by hash (no 'unsafe-inline' for scripts), and fetches of the spec from this origin."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
                      + "'" for s in _INLINE.findall(html))
    return (f"default-src 'none'; script-src {_CDN} {hashes}; style-src {_CDN} 'unsafe-inline'; "
            f"img-src 'self' data: https://fastapi.tiangolo.com {_CDN}; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class HeaderMiddleware:
    """A plain ASGI middleware that edits the headers of every HTTP response as it starts
    (no ``BaseHTTPMiddleware`` task and streams per request: about 0.2 ms of CPU each, issue
    20). A subclass's ``begin(scope)`` runs when the request arrives and returns the editor."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def begin(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        edit = self.begin(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                edit(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _security_headers(headers: MutableHeaders) -> None:
    html = headers.get("content-type", "").startswith("text/html")
    headers.setdefault("Content-Security-Policy", HTML_CSP if html else NONE_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")


class _SecurityHeaders(HeaderMiddleware):
    """The headers are added unless the route set them."""

    def begin(self, scope: Scope) -> Callable[[MutableHeaders], None]:
        return _security_headers


def install_security_headers(app: FastAPI) -> None:
    """nosniff, referrer policy, frame denial and a CSP on every response type."""
    app.add_middleware(_SecurityHeaders)


def _require_login(request: Request) -> None:
    """A bearer token or a page session cookie of an active user; AuthenticationError (401)
    otherwise."""
    from tailor.web.page_support import SESSION_COOKIE

    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 256:
        raise AuthenticationError("log in first to read the API documentation")
    auth_service.authenticate(request.app.state.db, token)


def install_docs(app: FastAPI, *, public: bool) -> None:
    """``/openapi.json`` and ``/docs``; behind login unless ``public``."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        if not public:
            _require_login(request)
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        if not public:
            _require_login(request)
        page = get_swagger_ui_html(openapi_url="/openapi.json", title=app.title + " - API")
        page.headers["Content-Security-Policy"] = docs_csp(bytes(page.body).decode())
        return page
