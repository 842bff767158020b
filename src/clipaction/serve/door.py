"""The login door in front of the whole server (an ASGI middleware, Starlette only).

Gradio's login guards its config, upload, file and API routes, but not all of its routes
(heartbeats, stream control, cancel, reset, the run history, monitoring keys). With a login
configured, this door answers 401 to every request without a valid session cookie except the
login page itself and the static files it is drawn with, so nothing but the login answers a
stranger whatever routes a Gradio version adds.

It also refuses, login or not, `/gradio_api/file=http(s)://...`: Gradio fetches such a URL
for the caller (a proxy to the internet); this page serves files, never URLs.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

#: Paths a visitor without a session reaches: the page (which shows only the login form until
#: the visitor logs in), the login form's own requests, and static assets (Gradio's JS, CSS,
#: fonts and icons, the same for every app).
OPEN_PATHS = frozenset(
    {
        "/",
        "/login",
        "/login/",
        "/logout",
        "/favicon.ico",
        "/theme.css",
        "/robots.txt",
        "/manifest.json",
        "/gradio_api/login_check",
        "/gradio_api/login_check/",
        # launch() itself calls it (without a session) to start the queue; it runs once and
        # returns nothing
        "/gradio_api/startup-events",
    }
)
OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")


def is_open(path: str) -> bool:
    """Whether `path` answers without a login."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def fetches_a_url(path: str) -> bool:
    """Whether `path` asks Gradio's file route to fetch a URL for the caller."""
    _, found, target = path.partition("/file=")
    return bool(found) and target.lower().startswith(("http:", "https:"))


def logged_in_user(scope: dict[str, Any], app: Any) -> str | None:
    """The user whose Gradio session cookie the request carries, or None (the same cookies and
    token table Gradio's own login check reads)."""
    cookies = HTTPConnection(scope).cookies
    for name in (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}"):
        token = cookies.get(name)
        if token and token in app.tokens:
            return app.tokens[token]
    return None


class LoginDoor:
    """ASGI middleware: passes everything through when the app has no login; otherwise only
    `is_open` paths and requests with a valid session reach the app, the rest get 401. URL
    fetches (`fetches_a_url`) get 403 either way."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and fetches_a_url(scope.get("path", "")):
            await JSONResponse({"detail": "this server serves files, not URLs"}, status_code=403)(scope, receive, send)
            return
        if scope["type"] in ("http", "websocket"):
            gradio_app = scope.get("app")  # Starlette sets it before the middleware stack runs
            auth = getattr(gradio_app, "auth", None)
            if auth is not None and not is_open(scope.get("path", "")) and logged_in_user(scope, gradio_app) is None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = JSONResponse({"detail": "Not authenticated"}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
