"""Starlette routes built from the catalog: one per HTTP binding (and its prefix-less twin).

Which endpoint serves a binding is decided by the method's shape alone:

* ``http_stream_handler`` set -> that hand-written handler (the only three:
  ``multipart_upload``, ``byte_download`` and ``text_stream``); an unknown name stops the
  gateway at start with a message naming the method;
* unary -> the generic JSON endpoint;
* server streaming -> Server-Sent Events;
* client or bidirectional streaming without a handler -> 501 (HTTP/1.1 has
  no generic mapping for it), with a warning at start.

Routes are ordered most specific first (literal segments before variables)
so that the first match is the right one, as in Envoy's transcoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dtpoc_common import logging as dlog
from dtpoc_gateway import (
    backends,
    catalog,
    context,
    download,
    httperrors,
    pathtemplate,
    settings,
    sse,
    textstream,
    transcode,
    unary,
    upload,
)

log = dlog.get_logger(__name__)

STREAM_HANDLERS: dict[str, Callable[[context.RouteContext], context.Endpoint]] = {
    "multipart_upload": upload.endpoint,
    "byte_download": download.endpoint,
    "text_stream": textstream.endpoint,
}


class TemplateRoute(Route):
    """A Starlette route whose matching is the ``google.api.http`` template's regex.

    Starlette's own path syntax cannot say ``{name=shelves/*}``; the route is
    built from a stand-in path and its regex replaced, so dispatch, 405
    handling and ``request.path_params`` stay Starlette's.
    """

    def __init__(
        self,
        template: pathtemplate.PathTemplate,
        endpoint: context.Endpoint,
        *,
        path: str,
        methods: list[str],
        name: str,
    ) -> None:
        stand_in = pathtemplate.parse(path) if path != template.source else template
        super().__init__(
            stand_in.starlette_path(),
            endpoint,
            methods=methods,
            name=name,
            include_in_schema=False,
        )
        self.template = stand_in
        self.path_regex = stand_in.regex
        self.param_convertors = {v.group: StringConvertor() for v in stand_in.variables}


@dataclass(frozen=True)
class BuiltRoute:
    """A route plus what the OpenAPI document needs to describe it."""

    route: TemplateRoute
    ctx: context.RouteContext
    documented: bool


def _not_implemented(ctx: context.RouteContext) -> context.Endpoint:
    async def handle(request: Request) -> Response:
        raise httperrors.ApiError(
            501, f"{ctx.method.full_name} streams requests and has no HTTP stream handler"
        )

    return handle


def endpoint_for(ctx: context.RouteContext) -> context.Endpoint:
    method = ctx.method
    if method.stream_handler:
        factory = STREAM_HANDLERS.get(method.stream_handler)
        if factory is None:
            raise catalog.CatalogError(
                f"{method.full_name}: unknown http_stream_handler {method.stream_handler!r} "
                f"(known: {', '.join(sorted(STREAM_HANDLERS))})"
            )
        return factory(ctx)
    if not method.client_streaming and not method.server_streaming:
        return unary.endpoint(ctx)
    if method.server_streaming and not method.client_streaming:
        return sse.endpoint(ctx)
    log.warning("streaming request without a handler answers 501", method=method.full_name)
    return _not_implemented(ctx)


def build(
    methods: list[catalog.Method],
    *,
    config: settings.GatewaySettings,
    backend_set: backends.Backends,
) -> list[BuiltRoute]:
    """Every route of every binding, most specific first."""
    built: list[BuiltRoute] = []
    for method in methods:
        for binding in method.bindings:
            try:
                template = pathtemplate.parse(binding.path)
            except pathtemplate.TemplateError as exc:
                raise catalog.CatalogError(f"{method.full_name}: {exc}") from None
            ctx = context.RouteContext(
                method=method,
                binding=binding,
                template=template,
                transcoder=transcode.Transcoder(
                    method=method,
                    binding=binding,
                    template=template,
                    reject_unknown_query=config.reject_unknown_query_parameters,
                ),
                backends=backend_set,
                settings=config,
            )
            handler = endpoint_for(ctx)
            verbs = [binding.verb]
            name = f"{method.full_name}#{binding.index}"
            built.append(
                BuiltRoute(
                    route=TemplateRoute(
                        template, handler, path=binding.path, methods=verbs, name=name
                    ),
                    ctx=ctx,
                    documented=True,
                )
            )
            prefix = config.api_prefix
            if config.serve_without_prefix and prefix and binding.path.startswith(prefix + "/"):
                bare = binding.path.removeprefix(prefix)
                built.append(
                    BuiltRoute(
                        route=TemplateRoute(
                            template, handler, path=bare, methods=verbs, name=f"{name}:bare"
                        ),
                        ctx=ctx,
                        documented=False,
                    )
                )
    built.sort(key=lambda b: b.route.template.specificity())
    _check_duplicates(built)
    return built


def _check_duplicates(built: list[BuiltRoute]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for item in built:
        verb = item.ctx.binding.verb
        key = (verb, item.route.template.regex.pattern)
        other = seen.get(key)
        if other is not None and other != item.ctx.method.full_name:
            raise catalog.CatalogError(
                f"{verb} {item.route.path} is bound by both {other} and {item.ctx.method.full_name}"
            )
        seen[key] = item.ctx.method.full_name
