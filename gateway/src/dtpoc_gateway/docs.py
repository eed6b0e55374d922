"""Interactive API docs that work in an offline hospital network.

Swagger UI's JS and CSS come from the ``swagger-ui-bundle`` PyPI package
(Swagger UI 4.x, installed with the gateway) and are served by the gateway
itself under ``<prefix>/docs/static/``: no CDN is contacted at run time.
The page and its small initializer script are served as files (no inline
script), with a Content-Security-Policy that allows only this origin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from dtpoc_gateway import httperrors

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dtpoc API</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script src="{docs}/init.js"></script>
</body>
</html>
"""

_INIT = """window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: {spec},
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}};
"""


def routes(document: dict[str, Any], *, prefix: str, also_at_root: bool) -> list[BaseRoute]:
    """``<prefix>/openapi.json``, ``<prefix>/docs`` and the Swagger UI assets.

    With ``also_at_root`` the same answer at ``/openapi.json`` and ``/docs``
    too, where the original (FastAPI) served them.
    """
    docs = f"{prefix}/docs"
    static = f"{docs}/static"
    spec_url = f"{prefix}/openapi.json"
    spec = httperrors.json_response(document).body
    page = _PAGE.format(static=static, docs=docs)
    init = _INIT.format(spec=json.dumps(spec_url))

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    async def init_js(request: Request) -> Response:
        return Response(init, media_type="text/javascript")

    assets = StaticFiles(directory=Path(str(swagger_ui_path)))
    found: list[BaseRoute] = []
    for base in [prefix, *([""] if also_at_root and prefix else [])]:
        found += [
            Route(f"{base}/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
            Route(f"{base}/docs", docs_page, methods=["GET"], include_in_schema=False),
            Route(f"{base}/docs/init.js", init_js, methods=["GET"], include_in_schema=False),
            Mount(f"{base}/docs/static", app=assets),
        ]
    return found
