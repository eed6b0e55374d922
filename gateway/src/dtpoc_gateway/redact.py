"""Keep the platform's inside out of the messages REST clients read.

A backend's error text may name what only the platform should know: a
peer's ``host:port`` or IP address, a unix socket, a URL, the Kubernetes API
server's answer that the orchestrator quotes after its own words, or a
library's text. The gateway logs the original text with the request id and
gives the client the message with addresses replaced by :data:`HIDDEN` and
quoted API-server answers cut off; a message that is nothing but a library's
text becomes the plain description of its status.
"""

from __future__ import annotations

import re

HIDDEN = "[internal]"

_PATTERNS = [
    # URLs of any scheme: http://10.0.0.1:6443/api, unix:///run/x.sock, dns:///files:50051
    re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*:///?[^\s'\"),;]*"),
    # gRPC's own address forms: ipv4:1.2.3.4:50051, ipv6:[::1]:50051, unix:/path, unix-abstract:x
    re.compile(r"\b(?:ipv4|ipv6|unix|unix-abstract|vsock):[^\s'\"),;]+"),
    # socket paths
    re.compile(r"(?:/[\w.@-]+)+\.sock\b"),
    # IPv6 literals with or without a port
    re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?"),
    # IPv4 addresses with or without a port
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"),
    # host:port: localhost, dotted names, and the lower-case names of cluster Services
    re.compile(r"\blocalhost:\d{1,5}\b"),
    re.compile(r"\b(?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*:\d{1,5}\b"),
    re.compile(r"(?<![\w.-])[a-z][a-z0-9-]*:\d{1,5}\b"),
]

#: Texts of gRPC core and the libraries under the services; never a domain message.
_LIBRARY_TEXTS = re.compile(
    r"failed to connect to all addresses|Socket closed|Connection reset|connection refused|"
    r"DNS resolution failed|Received message larger than max|Sent message larger than max|"
    r"Deadline Exceeded|Traceback \(most recent call last\)|HTTP response body|"
    r"HTTPHeaderDict|Exception (?:calling|iterating|serializing|deserializing)",
    re.IGNORECASE,
)


#: The orchestrator's messages about Kubernetes calls: its own words, then ``: `` and
#: what the API server answered (object names, namespaces, admission texts).
_APISERVER_QUOTES = [
    re.compile(r"^(the Kubernetes API server [^:]*?)(?: \(HTTP \d+\))?: .*$", re.DOTALL),
    re.compile(
        r"^(cannot (?:create|read|list|delete|watch) Analytics[^:]*): .*?"
        r"( \(does the namespace exist and is the Analytics CRD installed\?\))?$",
        re.DOTALL,
    ),
]
_APISERVER_NOTE = " (the API server's answer is in the orchestrator's log)"


def scrub(message: str) -> str:
    """``message`` without addresses (replaced by :data:`HIDDEN`) or API-server answers."""
    for quote in _APISERVER_QUOTES:
        found = quote.match(message)
        if found:
            message = "".join(part or "" for part in found.groups()) + _APISERVER_NOTE
            break
    for pattern in _PATTERNS:
        message = pattern.sub(HIDDEN, message)
    return message


def is_library_text(message: str) -> bool:
    """Whether ``message`` is gRPC's or a library's text rather than a service's own."""
    return bool(_LIBRARY_TEXTS.search(message))
