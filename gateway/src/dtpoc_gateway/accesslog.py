"""One structured JSON log line per HTTP request, and the request id.

The outermost middleware, so that every answer is logged, including 401s
and CORS preflights. The request id comes from ``X-Request-Id`` when the
caller sends a sane one, else it is made here; it is echoed in the answer
and forwarded to the backends as gRPC metadata, so one id follows a request
through every log. The query string is not logged (it may carry names
people typed); the path and the status are.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtpoc_common import logging as dlog

log = dlog.get_logger("dtpoc_gateway.access")

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class AccessLog:
    """ASGI middleware writing ``http request`` events."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = b""
        user_agent = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id" and _SANE_ID.match(value):
                rid = value
            elif key == b"user-agent":
                user_agent = value
        request_id = rid.decode() if rid else uuid.uuid4().hex
        scope["dtpoc.request_id"] = request_id
        state: dict[str, Any] = {"status": 0, "bytes": 0}

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            client = scope.get("client")
            log.info(
                "http request",
                method=scope["method"],
                path=scope["path"],
                status=state["status"] or 500,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                bytes_out=state["bytes"],
                client=client[0] if client else None,
                request_id=request_id,
                user_agent=user_agent.decode("latin-1")[:200],
            )
