"""The web console at ``/``: the built single page and its hashed assets.

The console (``console/`` in the repository, built by ``make console``) is a
client of the public REST API like any other; the gateway only serves its
files, so the page and the API share one origin and the page needs no CORS.
Its routes are hash routes (``/#/services/<id>``): the gateway answers
exactly ``/`` and ``/assets/...``, and every API path keeps its meaning.

- ``/`` (the page) is ``no-cache``: revalidated on every load (ETag), so a
  new build shows at once; ``/assets/*`` carry a content hash in their names
  and are cached for a year as ``immutable``.
- Every answer carries a Content-Security-Policy that allows this origin
  only (no inline script, no other host): the console makes no external
  request, and an injected one would be refused by the browser.
- Both stay open without a token (the page must load to ask for one); the
  data it shows comes from the API, which asks for the token.
- When the build is absent the gateway still starts (a warning is logged)
  and ``/`` answers 503 with a page saying how to build it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtpoc_common import logging as dlog
from dtpoc_gateway import httperrors
from dtpoc_gateway.settings import GatewaySettings

log = dlog.get_logger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
OPEN_PATHS = ("/", "/assets/*")
"""Answered without a token (the page and its assets; never data)."""
LINKS_PATH = "/console/links.json"
"""The other tools of the deployment the console links to (behind the token, like the API)."""

PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=31536000, immutable"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_NOT_BUILT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dtpoc console not built</title></head>
<body><main>
<h1>The dtpoc console is not built</h1>
<p>This gateway found no console in <code>{folder}</code>. Build it from the repository
with <code>make console</code> (npm ci and vite build in <code>console/</code>), or point
<code>DTPOC_GATEWAY_CONSOLE_DIR</code> at a built console, and reload.</p>
<p>The REST API works without it: see <a href="/docs">the API documentation</a>.</p>
</main></body></html>
"""


def default_dir() -> Path:
    """``console/dist`` of the source tree this module runs from (the image sets the setting)."""
    return Path(__file__).resolve().parents[3] / "console" / "dist"


class _Assets:
    """StaticFiles that answers 404 (not an error) while the folder does not exist."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = StaticFiles(directory=folder, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.folder.is_dir():
            missing = httperrors.ApiError(404, "the web console is not built (make console)")
            await missing.response()(scope, receive, send)
            return
        await self.files(scope, receive, send)


class _WithHeaders:
    """ASGI wrapper adding fixed headers to every answer of ``app`` (the static assets)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, sending)


def routes(folder: Path | None) -> list[BaseRoute]:
    """``GET /`` (the page) and ``/assets/*`` served from the built console in ``folder``."""
    root = folder if folder is not None else default_dir()
    index = root / "index.html"
    if not index.is_file():
        log.warning("web console not built; / explains how to build it", folder=str(root))

    async def page(request: Request) -> Response:
        try:
            body = index.read_bytes()
        except OSError:
            return HTMLResponse(
                _NOT_BUILT.format(folder=root),
                status_code=503,
                headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
            )
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE, "ETag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return HTMLResponse(body, headers=headers)

    assets = _Assets(root / "assets")
    return [
        Route("/", page, methods=["GET", "HEAD"], include_in_schema=False),
        Mount(
            "/assets",
            app=_WithHeaders(assets, {**SECURITY_HEADERS, "Cache-Control": ASSET_CACHE}),
        ),
    ]


def links(config: GatewaySettings) -> list[dict[str, str]]:
    """The console's links to the deployment's other tools, in the order it shows them."""
    known = (
        ("grafana", "Grafana", config.links_grafana),
        ("node-red", "Node-RED", config.links_node_red),
    )
    return [{"id": key, "title": title, "url": url} for key, title, url in known if url]


def links_route(config: GatewaySettings) -> Route:
    """``GET /console/links.json``: ``{"links": [{id, title, url}]}``, from the settings.

    The chart knows where Grafana and Node-RED answer (their ingress path or
    their port-forward address) and tells the gateway through
    ``DTPOC_GATEWAY_LINKS_*``; the console reads this to show them.
    """
    body = {"links": links(config)}

    async def answer(request: Request) -> Response:
        return JSONResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    return Route(LINKS_PATH, answer, methods=["GET"], include_in_schema=False)
