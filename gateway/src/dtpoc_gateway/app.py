"""The gateway application: routes from the descriptors, middleware, error handlers.

:func:`build` does everything that can fail at start (settings, token
hashes, descriptor set, route building), so a misconfigured gateway stops
with one clear message instead of answering errors later. gRPC channels are
opened by the application's lifespan, on the server's event loop.

Middleware, outermost first: access log (every answer logged, request id) ->
CORS (only when origins are configured) -> bearer auth -> routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dtpoc_common import grpcauth
from dtpoc_common import logging as dlog
from dtpoc_gateway import (
    accesslog,
    auth,
    authcheck,
    backends,
    catalog,
    console,
    docs,
    httperrors,
    openapi,
    routes,
    settings,
)

log = dlog.get_logger(__name__)

CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Range", "X-Request-Id"]
CORS_EXPOSED = [
    "Content-Disposition",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "X-Request-Id",
    "WWW-Authenticate",
]

_OWN_PATHS: dict[str, Any] = {
    "/readyz": {
        "get": {
            "operationId": "Gateway_Readyz",
            "tags": ["Gateway"],
            "summary": "Whether this gateway is ready to serve (backends not checked)",
            "security": [],
            "responses": {"200": {"description": "Ready."}},
        }
    },
    "/livez": {
        "get": {
            "operationId": "Gateway_Livez",
            "tags": ["Gateway"],
            "summary": "Whether this gateway process is alive",
            "security": [],
            "responses": {"200": {"description": "Alive."}},
        }
    },
}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, httperrors.ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "no route matches this path", 405: "method not allowed on this path"}
    message = messages.get(exc.status_code, str(exc.detail))
    return httperrors.ApiError(exc.status_code, message, headers=exc.headers).response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    violations = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        violations.append({"field": location, "description": str(error.get("msg", ""))})
    message = "; ".join(f"{v['field']}: {v['description']}" for v in violations) or "bad request"
    details = [
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": violations}
    ]
    return httperrors.ApiError(400, message, details=details).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception(
        "unhandled error",
        path=request.url.path,
        error_type=type(exc).__name__,
        request_id=str(request.scope.get("dtpoc.request_id", "")),
    )
    return httperrors.ApiError(500, httperrors.INTERNAL_MESSAGE).response()


async def _ok(request: Request) -> Response:
    return httperrors.json_response({"status": "ok"})


def build(config: settings.GatewaySettings) -> FastAPI:
    """The ASGI application; raises SettingsError or CatalogError when it cannot be safe."""
    config.check_cors()
    hashes = auth.load_hashes(config)
    cat = catalog.load(config.descriptor_set)
    backend_set = _backends(config)
    built = routes.build(cat.methods, config=config, backend_set=backend_set)
    open_paths = auth.OpenPaths([*config.open_paths, *console.OPEN_PATHS], prefix=config.api_prefix)
    document = openapi.document(
        built,
        cat,
        prefix=config.api_prefix,
        open_paths=open_paths,
        extra_paths={**_OWN_PATHS, **authcheck.OPENAPI},
    )
    for service in cat.services():
        if service not in backend_set.addresses:
            log.warning("no backend address; its routes answer 503", service=service)
    app = FastAPI(
        title="dtpoc gateway",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(config, backend_set=backend_set, cat=cat, built=built, hashes=hashes),
    )
    app.router.routes.extend(
        [
            Route("/readyz", _ok, methods=["GET"], include_in_schema=False),
            Route("/livez", _ok, methods=["GET"], include_in_schema=False),
            authcheck.route(auth_enabled=bool(hashes)),
            *docs.routes(
                document, prefix=config.api_prefix, also_at_root=config.serve_without_prefix
            ),
            *(item.route for item in built),
            *console.routes(config.console_dir),
            console.links_route(config),
        ]
    )
    _add_error_handlers(app)
    _add_middleware(app, config, hashes=hashes, open_paths=open_paths)
    app.state.catalog = cat
    app.state.routes = built
    app.state.openapi = document
    return app


def _backends(config: settings.GatewaySettings) -> backends.Backends:
    """The backend channels' settings, with the gateway's own token for calling them."""
    try:
        token = grpcauth.own_token(config.grpc_token_file)
    except ValueError as exc:
        raise settings.SettingsError(str(exc)) from None
    return backends.Backends(
        config.backend_map(), max_message_bytes=config.max_message_bytes, token=token
    )


def _lifespan(
    config: settings.GatewaySettings,
    *,
    backend_set: backends.Backends,
    cat: catalog.Catalog,
    built: list[routes.BuiltRoute],
    hashes: list[bytes],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the gRPC channels on the server's event loop; close them at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend_set.open(cat.methods)
        log.info(
            "gateway ready",
            routes=len(built),
            auth="disabled" if config.auth_disabled and not hashes else "bearer",
            accepted_tokens=len(hashes),
        )
        try:
            yield
        finally:
            await backend_set.close(grace=config.shutdown_grace_seconds)

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers the one error body (:mod:`dtpoc_gateway.httperrors`)."""
    app.add_exception_handler(httperrors.ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)


def _add_middleware(
    app: FastAPI,
    config: settings.GatewaySettings,
    *,
    hashes: list[bytes],
    open_paths: auth.OpenPaths,
) -> None:
    """Added innermost first: bearer auth, CORS, then the access log outermost."""
    if hashes:
        app.add_middleware(auth.BearerAuth, hashes=hashes, open_paths=open_paths)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_credentials=config.cors_allow_credentials,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(accesslog.AccessLog)
