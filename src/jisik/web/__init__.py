"""The web UI: static pages served by the API process itself (no build step, no other server).

* ``/ui/`` — chat (``static/index.html``), ``/ui/admin/`` — admin dashboard (``static/admin/index.html``);
  plain JavaScript modules under ``static/js``, CSS under ``static/css``, the chart library vendored
  under ``static/vendor`` (see its README). Every asset comes from this server: the pages carry a
  Content-Security-Policy that allows no other origin, and use system fonts.
* ``GET /`` stays the version JSON for API clients; a browser (``Accept: text/html``) is redirected
  to ``/ui/``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PATH = "/ui"
# nothing but this server: scripts, styles, fetch() and images (data: for Chart.js' canvas exports)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # files are not fingerprinted: browsers revalidate (ETag / Last-Modified) so an upgrade shows at once
    "Cache-Control": "no-cache",
}


class UiFiles(StaticFiles):
    """StaticFiles with the UI's security and caching headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


class BrowserHomeRedirect:
    """``GET /`` from a browser (it asks for ``text/html``) -> 307 to the chat page; API clients that
    accept JSON (or anything, ``*/*``) keep getting the version JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD")
                and wants_html(Headers(scope=scope).get("accept", ""))):
            target = f"{scope.get('root_path', '')}{UI_PATH}/"
            await RedirectResponse(target, status_code=307, headers={"Vary": "Accept"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def wants_html(accept: str) -> bool:
    """True when ``text/html`` is named and JSON is not asked for explicitly."""
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return "text/html" in kinds and "application/json" not in kinds


def install_ui(app: FastAPI) -> None:
    """Mount the pages at ``/ui`` and redirect browsers from ``/``."""
    app.mount(UI_PATH, UiFiles(directory=STATIC_DIR, html=True), name="ui")
    app.add_middleware(BrowserHomeRedirect)


__all__ = ["CSP", "STATIC_DIR", "UI_PATH", "BrowserHomeRedirect", "UiFiles", "install_ui", "wants_html"]
