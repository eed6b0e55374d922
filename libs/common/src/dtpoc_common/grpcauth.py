"""Who is calling: caller tokens and scoped fetch tokens on every gRPC call.

Every dtpoc process that calls a gRPC service sends its own token in the
``authorization`` metadata (``Bearer <token>``). A server knows its callers
by name (:data:`GATEWAY`, :data:`ORCHESTRATOR`, :data:`OPERATOR`,
:data:`FILES`) from a directory holding one token file per caller, named by
the caller (a Kubernetes Secret volume has exactly that shape), and its
:class:`Policy` says which caller may call which method. Anything else is
refused before the servicer runs: no or unknown token UNAUTHENTICATED, a
known caller outside its methods PERMISSION_DENIED.

The input fetcher (``dtpoc-fetch-inputs``) is not a component: it runs
inside a replica's pod. It gets a *fetch token* minted by the operator: an
HMAC-SHA256 over the service id, the file ids the service mounts and an
expiry, with a key only the operator and Files hold. Files accepts it for
``GetFile`` of exactly those ids; expired or forged: UNAUTHENTICATED; another
id or method: PERMISSION_DENIED. Replica containers get no credential at all.

Health checking and reflection stay open: kubelet probes and tooling need
them and they reveal nothing the published API does not.

A servicer that decides by caller (Files stores output metadata only from
the operator) reads :func:`current_caller`; the interceptor sets it for the
call it admits, the one place a principal is known.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from dtpoc_common import logging as dlog

log = dlog.get_logger(__name__)

#: Metadata key the token travels in (lower case, as gRPC requires).
METADATA_KEY = "authorization"
#: Scheme before the token in that metadata value.
SCHEME = "Bearer"

GATEWAY = "gateway"
ORCHESTRATOR = "orchestrator"
OPERATOR = "operator"
FILES = "files"
#: The components that call gRPC services, each with a token of its own.
COMPONENTS = frozenset({GATEWAY, ORCHESTRATOR, OPERATOR, FILES})
#: Name of the principal a fetch token authenticates (never a token file name).
FETCHER = "fetcher"

#: First part of a fetch token; the version of its format.
FETCH_TOKEN_PREFIX = "dtf1"  # noqa: S105 - a format tag, not a secret
#: Smallest HMAC key accepted for fetch tokens, in bytes.
MIN_KEY_BYTES = 32
#: Smallest caller token accepted, in characters: guessing must stay hopeless.
MIN_TOKEN_CHARS = 24

#: Method prefixes every caller may use without a token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class AuthError(Exception):
    """A call refused: ``code`` is UNAUTHENTICATED or PERMISSION_DENIED."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _unauthenticated(message: str) -> AuthError:
    return AuthError(grpc.StatusCode.UNAUTHENTICATED, message)


def _denied(message: str) -> AuthError:
    return AuthError(grpc.StatusCode.PERMISSION_DENIED, message)


# --- secrets on disk ----------------------------------------------------------------------------


def read_secret(path: Path) -> str:
    """The content of a token or key file, without surrounding white space.

    Raises ``ValueError`` naming the file (never its content) when it cannot
    be read or is empty: a process must not start with a half-set secret."""
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"cannot read secret file {path}: {error.strerror}") from None
    if not text:
        raise ValueError(f"secret file {path} is empty")
    return text


def read_token(path: Path) -> str:
    """A caller token from ``path`` (see :func:`read_secret`), long enough to be one."""
    token = read_secret(path)
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(
            f"token in {path} must be at least {MIN_TOKEN_CHARS} characters without spaces"
        )
    return token


def own_token(path: Path | None) -> str | None:
    """The token a process presents when it calls (``None`` when no file is set)."""
    return read_token(path) if path is not None else None


def read_key(path: Path) -> bytes:
    """An HMAC key from ``path``: at least :data:`MIN_KEY_BYTES` bytes of text."""
    key = read_secret(path).encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key in {path} must be at least {MIN_KEY_BYTES} bytes")
    return key


def load_caller_tokens(directory: Path) -> dict[str, str]:
    """``{token: caller}`` from a folder of files named by caller component.

    Names starting with ``.`` are skipped (a Secret volume's ``..data``
    links); names that are not components are refused, so a typo does not
    silently lock a caller out."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as error:
        raise ValueError(f"cannot list caller tokens in {directory}: {error.strerror}") from None
    tokens: dict[str, str] = {}
    for entry in entries:
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if entry.name not in COMPONENTS:
            raise ValueError(
                f"caller token file {entry} is not named by a component "
                f"({', '.join(sorted(COMPONENTS))})"
            )
        token = read_token(entry)
        if token in tokens:
            raise ValueError(f"callers {tokens[token]} and {entry.name} share a token")
        tokens[token] = entry.name
    if not tokens:
        raise ValueError(f"no caller tokens in {directory}")
    return tokens


# --- fetch tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchGrant:
    """What a fetch token allows: reading ``file_ids`` for ``service_id`` until ``expires_at``."""

    service_id: str
    file_ids: frozenset[str]
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def mint_fetch_token(
    key: bytes, *, service_id: str, file_ids: Iterable[str], expires_at: float
) -> str:
    """A fetch token for reading ``file_ids`` of ``service_id`` until ``expires_at`` (Unix s).

    Deterministic for the same arguments, so a manifest that carries one
    does not change between two reconciles."""
    payload = {"svc": service_id, "ids": sorted(set(file_ids)), "exp": int(expires_at)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{FETCH_TOKEN_PREFIX}.{body}"
    return f"{signed}.{_signature(key, signed)}"


def is_fetch_token(token: str) -> bool:
    return token.startswith(FETCH_TOKEN_PREFIX + ".")


def verify_fetch_token(key: bytes, token: str, *, now: float | None = None) -> FetchGrant:
    """The grant of a genuine, unexpired fetch token; else :class:`AuthError` UNAUTHENTICATED."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != FETCH_TOKEN_PREFIX:
        raise _unauthenticated("malformed fetch token")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(key, signed), parts[2]):
        raise _unauthenticated("fetch token signature does not verify")
    try:
        payload = json.loads(_unb64(parts[1]))
        grant = FetchGrant(
            service_id=str(payload["svc"]),
            file_ids=frozenset(str(i) for i in payload["ids"]),
            expires_at=int(payload["exp"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _unauthenticated("malformed fetch token") from None
    if (time.time() if now is None else now) >= grant.expires_at:
        raise _unauthenticated(f"fetch token of service {grant.service_id} has expired")
    return grant


# --- who is calling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a component, or the fetcher with its grant."""

    name: str
    grant: FetchGrant | None = None


#: The principal of the call being served; each gRPC call runs in a task of its own.
_CALLER: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "dtpoc_grpc_caller", default=None
)


def current_caller() -> Principal | None:
    """Who made the call being served, as :class:`AuthInterceptor` admitted it.

    None outside a call and on a server without authentication (explicitly
    insecure): a servicer that refuses by caller must know which it is."""
    return _CALLER.get()


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the ``authorization`` metadata, if there is exactly one."""
    values = [v for k, v in (metadata or ()) if k == METADATA_KEY]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != SCHEME.lower() or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Authenticator:
    """Turns a call's metadata into a :class:`Principal` (or refuses it)."""

    caller_tokens: Mapping[str, str]
    fetch_key: bytes | None = None

    def authenticate(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal:
        token = bearer(metadata)
        if token is None:
            raise _unauthenticated(
                f"this service needs a caller token ('{METADATA_KEY}: {SCHEME} ...' metadata)"
            )
        if is_fetch_token(token):
            if self.fetch_key is None:
                raise _unauthenticated("this service accepts no fetch tokens")
            return Principal(FETCHER, verify_fetch_token(self.fetch_key, token))
        for known, caller in self.caller_tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return Principal(caller)
        raise _unauthenticated("unknown caller token")


#: Which file id a request of a fetcher-callable method asks for.
FileIdOf = Callable[[Any], str]


@dataclass(frozen=True)
class Policy:
    """Which caller may call which method (full gRPC path, ``/pkg.Service/Method``).

    ``fetcher`` lists the methods a fetch token may call, each with how to
    read the requested file id, which must be one of the token's. A method
    in neither table is refused to everyone."""

    callers: Mapping[str, frozenset[str]]
    fetcher: Mapping[str, FileIdOf] = field(default_factory=dict)

    def check(self, method: str, principal: Principal) -> None:
        """Refuse (PERMISSION_DENIED) a component calling outside its methods."""
        if principal.grant is not None:
            if method not in self.fetcher:
                raise _denied(f"a fetch token may not call {method}")
            return
        if principal.name not in self.callers.get(method, frozenset()):
            raise _denied(f"caller {principal.name} may not call {method}")

    def check_request(self, method: str, principal: Principal, request: Any) -> None:
        """Refuse a fetch token asking for a file outside its grant."""
        if principal.grant is None:
            return
        file_id = self.fetcher[method](request)
        if file_id not in principal.grant.file_ids:
            raise _denied(
                f"the fetch token of service {principal.grant.service_id} does not cover "
                f"file {file_id}"
            )


# --- the server side ----------------------------------------------------------------------------

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Any]]


def _refusing(handler: Any, error: AuthError) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as ``handler`` that only aborts with ``error``."""

    async def unary(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(error.code, error.message)

    async def streaming(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(error.code, error.message)
        yield  # pragma: no cover - makes this an async generator

    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, unary),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, streaming),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, unary),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, streaming),
    )
    for present, factory, behaviour in kinds:
        if present:
            return factory(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise TypeError("handler of no known kind")


def _scoped(
    handler: Any, *, policy: Policy, method: str, principal: Principal
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` (unary request) with the fetch grant checked against the request first."""
    if handler.unary_stream:
        inner = handler.unary_stream

        async def stream_response(request: Any, context: Any) -> Any:
            try:
                policy.check_request(method, principal, request)
            except AuthError as error:
                _log_refusal(method, principal.name, error)
                await context.abort(error.code, error.message)
            async for item in inner(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            stream_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def unary_response(request: Any, context: Any) -> Any:
            try:
                policy.check_request(method, principal, request)
            except AuthError as error:
                _log_refusal(method, principal.name, error)
                await context.abort(error.code, error.message)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return _refusing(handler, _denied(f"a fetch token may not call {method}"))


def _as_caller(handler: Any, principal: Principal) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with :func:`current_caller` answering ``principal`` while it runs.

    Set inside the behaviour, not in the interceptor, so that it holds in the
    context the servicer really runs in (each call is a task of its own, so
    the value never reaches another call)."""

    def unary(inner: Any) -> Any:
        async def behaviour(request: Any, context: Any) -> Any:
            _CALLER.set(principal)
            return await inner(request, context)

        return behaviour

    def streaming(inner: Any) -> Any:
        async def behaviour(request: Any, context: Any) -> Any:
            _CALLER.set(principal)
            async for item in inner(request, context):
                yield item

        return behaviour

    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, unary),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, streaming),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, unary),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, streaming),
    )
    for present, factory, wrap in kinds:
        if present:
            return factory(
                wrap(present),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise TypeError("handler of no known kind")


def _log_refusal(method: str, caller: str, error: AuthError) -> None:
    log.warning(
        "grpc call refused",
        method=method,
        caller=caller,
        code=error.code.name,
        reason=error.message,
    )


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call and applies the :class:`Policy` before the servicer runs."""

    def __init__(self, authenticator: Authenticator, policy: Policy) -> None:
        self._authenticator = authenticator
        self._policy = policy

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler: Any = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler  # type: ignore[no-any-return]
        caller = "unknown"
        try:
            principal = self._authenticator.authenticate(handler_call_details.invocation_metadata)
            caller = principal.name
            self._policy.check(method, principal)
        except AuthError as error:
            _log_refusal(method, caller, error)
            return _refusing(handler, error)
        if principal.grant is not None:
            handler = _scoped(handler, policy=self._policy, method=method, principal=principal)
        return _as_caller(handler, principal)


def configured_interceptor(
    *,
    env_prefix: str,
    caller_tokens_dir: Path | None,
    insecure_no_auth: bool,
    fetch_key_file: Path | None,
    policy: Policy,
) -> AuthInterceptor | None:
    """A server's interceptor from its settings; None only when explicitly insecure.

    Secure by default: a server with no caller tokens refuses to start
    (``ValueError`` naming the two settings) unless ``<prefix>_INSECURE_NO_AUTH``
    says to serve everyone."""
    if caller_tokens_dir is not None:
        return server_interceptor(
            caller_tokens_dir=caller_tokens_dir, fetch_key_file=fetch_key_file, policy=policy
        )
    if not insecure_no_auth:
        raise ValueError(
            f"{env_prefix}_CALLER_TOKENS_DIR is not set, and this server does not serve "
            f"unauthenticated callers; set it to the folder of the callers' tokens, or "
            f"{env_prefix}_INSECURE_NO_AUTH=true on a trusted machine"
        )
    log.warning(
        "serving WITHOUT caller authentication: every call is accepted",
        setting=f"{env_prefix}_INSECURE_NO_AUTH",
    )
    return None


def server_interceptor(
    *, caller_tokens_dir: Path, fetch_key_file: Path | None, policy: Policy
) -> AuthInterceptor:
    """The interceptor of a server whose settings name its callers' tokens (and fetch key)."""
    authenticator = Authenticator(
        caller_tokens=load_caller_tokens(caller_tokens_dir),
        fetch_key=read_key(fetch_key_file) if fetch_key_file else None,
    )
    log.info(
        "grpc callers authenticated",
        callers=sorted(set(authenticator.caller_tokens.values())),
        fetch_tokens=authenticator.fetch_key is not None,
    )
    return AuthInterceptor(authenticator, policy)


# --- the client side ----------------------------------------------------------------------------


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata that presents ``token``."""
    return ((METADATA_KEY, f"{SCHEME} {token}"),)


def _with_token(metadata: Any, token: str) -> grpc.aio.Metadata:
    pairs = [(k, v) for k, v in (metadata or ()) if k != METADATA_KEY]
    return grpc.aio.Metadata(*pairs, *call_metadata(token))


class _AioToken:
    """Replaces the call's ``authorization`` metadata with the caller's token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=_with_token(details.metadata, self._token),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _AioUnaryUnary(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioUnaryStream(_AioToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioStreamUnary(_AioToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _AioStreamStream(_AioToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def aio_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding ``token`` to every call of an asyncio channel.

    One per call shape: grpc.aio files an interceptor under the first shape
    it implements only, so a single class for all four would leave streaming
    calls without the token."""
    return [
        _AioUnaryUnary(token),
        _AioUnaryStream(token),
        _AioStreamUnary(token),
        _AioStreamStream(token),
    ]


class _SyncDetails(grpc.ClientCallDetails):
    def __init__(self, details: Any, token: str) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = (
            *[(k, v) for k, v in (details.metadata or ()) if k != METADATA_KEY],
            *call_metadata(token),
        )
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class SyncTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds a token to every call of a blocking channel (tools and tests)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(_SyncDetails(client_call_details, self._token), request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(_SyncDetails(client_call_details, self._token), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(_SyncDetails(client_call_details, self._token), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(_SyncDetails(client_call_details, self._token), request_iterator)


def sync_channel(target: str, token: str | None, **kwargs: Any) -> grpc.Channel:
    """A blocking channel to ``target`` presenting ``token`` (none: plain)."""
    channel = grpc.insecure_channel(target, **kwargs)
    return grpc.intercept_channel(channel, SyncTokenInterceptor(token)) if token else channel
