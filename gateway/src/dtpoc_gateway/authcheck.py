"""``GET /auth/check``: the API's bearer-token check, for an ingress controller.

Exposed analytics services (see docs/architecture.md, "Exposed analytics
services") are published through an Ingress whose external authentication
(ingress-nginx ``auth-url``) sends each request's headers here first. The
answer is the API's own verdict, given by :class:`dtpoc_gateway.auth.BearerAuth`
before this endpoint runs: 401 for a missing or wrong token, 204 otherwise.
The 204 carries no ``Authorization`` header on purpose: the Ingress copies
that header from this answer into the request it forwards
(``auth-response-headers``), so the token never reaches the service.

With authentication disabled there is no verdict to give, and the check
answers 403: an exposed service is never open because the API is.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dtpoc_gateway import httperrors

PATH = "/auth/check"

OPENAPI: dict[str, Any] = {
    PATH: {
        "get": {
            "operationId": "Gateway_AuthCheck",
            "tags": ["Gateway"],
            "summary": "Whether the bearer token is accepted (the ingress's external auth)",
            "description": (
                "204 when the request's bearer token is one the API accepts; 401 when it "
                "is missing or wrong; 403 when the gateway runs without authentication. "
                "Ingresses of exposed analytics services ask this before each request."
            ),
            "responses": {
                "204": {"description": "The token is accepted."},
                "401": {"description": "Missing or wrong bearer token."},
                "403": {"description": "Authentication is disabled: nothing is accepted."},
            },
        }
    }
}


def route(*, auth_enabled: bool) -> Route:
    """The check's route; with ``auth_enabled`` false it refuses every request."""

    async def check(request: Request) -> Response:
        if not auth_enabled:
            raise httperrors.ApiError(
                403, "authentication is disabled on this gateway: no token can be checked"
            )
        return Response(status_code=204)

    return Route(PATH, check, methods=["GET"], include_in_schema=False)
