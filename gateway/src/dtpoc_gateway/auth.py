"""Bearer-token authentication against SHA-256 hashes of the accepted tokens.

The gateway never holds a token, only its SHA-256 (``dtpoc-gateway
hash-token`` prints one), from a file (``DTPOC_GATEWAY_AUTH_TOKENS_FILE``:
one hex digest per line, ``#`` starts a comment) and/or
``DTPOC_GATEWAY_AUTH_TOKEN_HASHES``. A request's token is hashed and
compared with every accepted hash with :func:`hmac.compare_digest`, all of
them each time, so neither the match nor its position shows in the timing.

Health, readiness and the API documentation stay open (``open_paths``;
a pattern ending in ``/*`` opens everything below it). A missing or wrong
token answers 401 with ``WWW-Authenticate: Bearer``. With no hash
configured and no explicit ``DTPOC_GATEWAY_AUTH_DISABLED=true`` the gateway
refuses to start: an unprotected API is a decision, never an accident.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from dtpoc_gateway import httperrors, settings

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
REALM = "dtpoc"


def hash_token(token: str) -> str:
    """The lower-case hex SHA-256 of a token, as configured."""
    return hashlib.sha256(token.encode()).hexdigest()


def _parse_hashes(lines: Iterable[str], *, source: str) -> list[str]:
    found: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip().lower()
        if not text:
            continue
        if not _HEX64.match(text):
            raise settings.SettingsError(
                f"{source} line {number}: expected a 64-digit hex SHA-256 of a token "
                "(print one with `dtpoc-gateway hash-token`)"
            )
        found.append(text)
    return found


def load_hashes(config: settings.GatewaySettings) -> list[bytes]:
    """Accepted token hashes as raw digests; SettingsError when none and not disabled."""
    hashes: list[str] = []
    if config.auth_tokens_file is not None:
        path = Path(config.auth_tokens_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise settings.SettingsError(
                f"DTPOC_GATEWAY_AUTH_TOKENS_FILE {path}: {exc.strerror}"
            ) from None
        hashes += _parse_hashes(text.splitlines(), source=str(path))
    hashes += _parse_hashes(config.auth_token_hashes, source="DTPOC_GATEWAY_AUTH_TOKEN_HASHES")
    if not hashes and not config.auth_disabled:
        raise settings.SettingsError(
            "no bearer token hashes configured: set DTPOC_GATEWAY_AUTH_TOKENS_FILE or "
            "DTPOC_GATEWAY_AUTH_TOKEN_HASHES (hash a token with `dtpoc-gateway hash-token`), "
            "or set DTPOC_GATEWAY_AUTH_DISABLED=true for a local run on a trusted machine"
        )
    return [bytes.fromhex(h) for h in dict.fromkeys(hashes)]


class OpenPaths:
    """Paths answered without a token: exact, or everything under ``.../*``."""

    def __init__(self, patterns: Iterable[str], *, prefix: str) -> None:
        exact: set[str] = set()
        below: list[str] = []
        for pattern in patterns:
            for variant in {pattern, prefix + pattern}:
                if variant.endswith("/*"):
                    below.append(variant[:-1])
                else:
                    exact.add(variant)
        self.exact = frozenset(exact)
        self.below = tuple(below)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and (path in self.exact or path.startswith(self.below))


class BearerAuth:
    """ASGI middleware: 401 unless the path is open or the bearer token is accepted."""

    def __init__(self, app: ASGIApp, *, hashes: list[bytes], open_paths: OpenPaths) -> None:
        self.app = app
        self.hashes = hashes
        self.open_paths = open_paths

    def accepts(self, authorization: bytes | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return False
        digest = hashlib.sha256(token).digest()
        matched = False
        for accepted in self.hashes:
            matched |= hmac.compare_digest(digest, accepted)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
                break
        if self.accepts(authorization):
            await self.app(scope, receive, send)
            return
        challenge = f'Bearer realm="{REALM}"'
        if authorization:
            challenge += ', error="invalid_token"'
        error = httperrors.ApiError(
            401,
            "a valid bearer token is required (Authorization: Bearer <token>)"
            if not authorization
            else "the bearer token is not valid",
            headers={"WWW-Authenticate": challenge},
        )
        await error.response()(scope, receive, send)
