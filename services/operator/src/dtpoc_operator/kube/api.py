"""A small JSON client for the Kubernetes API, built on kubernetes_asyncio's config.

The operator works on plain dicts (the API's own JSON), not on generated
model classes: the manifests and observations are easier to read and test
that way, and custom resources have no models anyway. Authentication and TLS
come from kubernetes_asyncio's kubeconfig / in-cluster loaders, so token
refresh of a projected service-account token keeps working; the same
credentials are handed to kopf (:func:`connection_info`).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import kopf
from kubernetes_asyncio import client as k8s_client

from dtpoc_common import kubeconfig as kubeconfig_loader
from dtpoc_operator import ports

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0

Obj = dict[str, Any]


class KubeError(ports.AdapterError):
    """The apiserver refused a request; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


async def load_configuration(kubeconfig: str) -> k8s_client.Configuration:
    """Credentials from ``kubeconfig``, else ``$KUBECONFIG``, else the pod's service account."""
    return await kubeconfig_loader.load_configuration(
        kubeconfig, setting="DTPOC_OPERATOR_KUBECONFIG"
    )


async def _auth_headers(configuration: k8s_client.Configuration) -> dict[str, str]:
    headers: dict[str, str] = {}
    settings: dict[str, Any] = await configuration.auth_settings()
    for setting in settings.values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[str(setting["key"])] = str(setting["value"])
    return headers


async def connection_info(configuration: k8s_client.Configuration) -> kopf.ConnectionInfo:
    """The same credentials, in the form kopf's login handlers return."""
    authorization = (await _auth_headers(configuration)).get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme or None,
        token=token or None,
    )


class KubeApi:
    """GET/LIST/CREATE/PATCH/DELETE on API paths, JSON in and out.

    One aiohttp session of its own, on the configuration's TLS settings. Not
    kubernetes_asyncio's REST client: that session trusts the environment, so
    aiohttp looks up proxy variables and reads ``~/.netrc`` in a thread for
    every request (a thread hop and a file read per round trip, a tenth of
    the operator's CPU in a burst). The proxy, if the environment names one
    for the apiserver, is looked up once here.
    """

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration
        self._host = str(configuration.host).rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=int(configuration.connection_pool_maxsize or 100),
                ssl=_ssl_context(configuration),
            ),
            trust_env=False,
        )
        self._proxy = configuration.proxy or _env_proxy(self._host)
        self._server_hostname = configuration.tls_server_name or None

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        data = await self._send(
            method,
            path,
            headers={"Accept": "application/json", "Content-Type": content_type},
            query=query,
            data=json.dumps(body) if body is not None else None,
        )
        return json.loads(data) if data else {}

    async def text(self, path: str, *, query: Mapping[str, str]) -> bytes:
        """A plain answer's bytes (a pod's log), KubeError as for JSON calls."""
        return await self._send("GET", path, headers={"Accept": "*/*"}, query=query)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None,
        data: str | None = None,
    ) -> bytes:
        """One round trip on the session: the answer's bytes, or KubeError."""
        try:
            async with self._session.request(
                method,
                f"{self._host}{path}",
                params=dict(query or {}),
                headers={**headers, **(await _auth_headers(self._configuration))},
                data=data,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                proxy=self._proxy,
                server_hostname=self._server_hostname,
            ) as response:
                answer = await response.read()
                if not 200 <= response.status <= 299:
                    raise _as_kube_error(response.status, response.reason or "", answer)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(0, "Unreachable", f"{type(error).__name__}: {error}") from None
        return answer

    async def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", path)
        except KubeError as error:
            if error.not_found:
                return None
            raise

    async def list(self, path: str, *, label_selector: str = "") -> list[Obj]:
        query = {"labelSelector": label_selector} if label_selector else {}
        answer = await self._request("GET", path, query=query)
        items: list[Obj] = answer.get("items") or []
        return items

    async def create(self, path: str, body: Obj) -> Obj:
        return await self._request("POST", path, body=body)

    async def patch(self, path: str, body: Any, *, content_type: str = MERGE_PATCH) -> Obj:
        return await self._request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, *, propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self._request(
                "DELETE",
                path,
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
            )
        except KubeError as error:
            if error.not_found:
                return False
            raise
        return True


def _ssl_context(configuration: k8s_client.Configuration) -> ssl.SSLContext:
    """The TLS settings kubernetes_asyncio's REST client would use."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _env_proxy(host: str) -> str | None:
    """The proxy the environment names for ``host`` (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    url = urlsplit(host)
    if not url.hostname or urllib.request.proxy_bypass(url.hostname):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _as_kube_error(status: int, reason: str, body: Any) -> KubeError:
    message = ""
    if body:
        try:
            payload = json.loads(body)
            message = str(payload.get("message", ""))
            reason = str(payload.get("reason", reason))
        except (ValueError, AttributeError):
            message = str(body)[:500]
    return KubeError(status, reason, message)


def ns_path(group: str, version: str, namespace: str, plural: str, name: str = "") -> str:
    """The path of a namespaced collection or object (``group`` empty: the core API)."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path
