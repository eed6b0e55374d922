"""Hostile requests for the generated runs: hypothesis strategies and a tally.

The strategies draw what a careless or hostile client sends: JSON nested
far beyond any message, numbers beyond every field's range, constants that
are not JSON (``NaN``), wrong top-level types, control characters in strings
that end up in a process or a pod, headers with numbers that do not fit,
oversized and numerous headers, multipart bodies whose framing is broken.

:class:`Tally` counts answers by status and counts *dropped* connections (no
complete HTTP answer: reset, closed early, timed out); a generated run
fails when any answer is a server error, any connection was dropped, or an
answer speaks Python's or a library's words (`LIBRARY_WORDING`) to the client.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx
from hypothesis import strategies as st

SERVER_ERROR = 500
#: The one documented 5xx: a launch of a ``sim`` service, which has no
#: implementation (as in the original); any other 501 still fails.
UNIMPLEMENTED = 501
SIM_UNIMPLEMENTED = "simulation services (sim) are not implemented"
#: Python's or a library's wording, which a client must never read in a 4xx.
LIBRARY_WORDING = re.compile(
    r"bytes-like|NoneType|int\(\)|object has no attribute|Traceback|"
    r"Exception|Error:|Failed to parse"
)
#: Seconds a raw connection waits for the whole answer before it counts as dropped.
RAW_TIMEOUT = 20.0


@dataclass
class Tally:
    """Statuses and dropped connections of one generated run."""

    statuses: Counter[int] = field(default_factory=Counter)
    dropped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.dropped

    def record(self, what: str, status: int | None, text: str = "") -> None:
        if status is None:
            self.dropped += 1
            self.failures.append(f"{what}: connection dropped ({text[:200]})")
            return
        self.statuses[status] += 1
        documented = status == UNIMPLEMENTED and SIM_UNIMPLEMENTED in text
        if (status >= SERVER_ERROR and not documented) or LIBRARY_WORDING.search(text):
            self.failures.append(f"{what}: {status} {text[:300]}")

    def send(
        self, client: httpx.Client, request: httpx.Request, what: str
    ) -> httpx.Response | None:
        try:
            answer = client.send(request)
        except httpx.TransportError as exc:
            self.record(what, None, repr(exc))
            return None
        self.record(what, answer.status_code, answer.text)
        return answer

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.requests} requests, statuses {sorted(self.statuses.items())}, "
            f"{self.dropped} dropped"
        )


def raw_exchange(base_url: str, data: bytes) -> tuple[int | None, bytes]:
    """Send raw bytes on a fresh connection; the answer's status (None: dropped) and body."""
    host, _, port = base_url.removeprefix("http://").rstrip("/").rpartition(":")
    conn = h11.Connection(h11.CLIENT)
    status: int | None = None
    body = b""
    try:
        with socket.create_connection((host, int(port)), timeout=RAW_TIMEOUT) as sock:
            sock.sendall(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = sock.recv(65536)
                    conn.receive_data(chunk)
                    if not chunk and status is None:
                        return None, b"closed before an answer"
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    return status, body
    except (OSError, h11.ProtocolError) as exc:
        return None, repr(exc).encode()


# --- JSON ---------------------------------------------------------------------------------

#: C0 control characters and DEL, but tab, line feed and carriage return.
REFUSED_CONTROL = st.sampled_from([chr(c) for c in [*range(32), 127] if chr(c) not in "\t\n\r"])


def with_control(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A string with at least one refused control character somewhere in it."""
    return st.tuples(text, REFUSED_CONTROL, text).map(lambda parts: "".join(parts))


def deep_json(depth: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """Arrays or objects nested ``depth`` levels (as text: no recursion needed to build it)."""

    def build(args: tuple[int, bool]) -> str:
        levels, objects = args
        if objects:
            return '{"a":' * levels + "1" + "}" * levels
        return "[" * levels + "]" * levels

    return st.tuples(depth, st.booleans()).map(build)


#: JSON numbers and constants beyond every field of the API (as text).
extreme_numbers = st.one_of(
    st.integers(min_value=20, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=20, max_value=6000).map(lambda n: "-" + "9" * n),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "1.5", "-0"]),
    st.integers(min_value=2**31, max_value=2**70).map(str),
)

_plain_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

#: Any piece of JSON text a field of a request body could be given.
hostile_value = st.one_of(
    extreme_numbers,
    deep_json(st.integers(min_value=30, max_value=5000)),
    _plain_json.map(json.dumps),
    with_control(st.text(max_size=10)).map(json.dumps),
)

LAUNCH = {
    "image": "ghcr.io/example/analytics",
    "version": "1.0",
    "description": "generated",
    "ana": {"job_type": "ondemand", "reps": 1},
    "env": {"MODE": "test"},
    "labels": {"team": "a"},
}
_LAUNCH_PATHS = [
    ("image",),
    ("version",),
    ("description",),
    ("port",),
    ("ana",),
    ("ana", "reps"),
    ("ana", "job_type"),
    ("ana", "parallelism"),
    ("env",),
    ("env", "MODE"),
    ("labels",),
    ("mount_files",),
    ("command",),
    ("args",),
]


def _replace(document: dict[str, Any], path: tuple[str, ...], marker: str) -> str:
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = marker
    return json.dumps(copy)


def launch_bodies() -> st.SearchStrategy[str]:
    """A launch body with one field given a hostile value, or a hostile whole body."""
    marker = "\u2603MARK\u2603"
    one_field = st.tuples(st.sampled_from(_LAUNCH_PATHS), hostile_value).map(
        lambda args: _replace(LAUNCH, args[0], marker).replace(json.dumps(marker), args[1])
    )
    whole = st.one_of(
        hostile_value,
        deep_json(st.integers(min_value=30, max_value=100_000)),
        st.sampled_from(["", " ", "{", "[]", '"x"', "null", "{}x", "\ufeff{}"]),
    )
    return st.one_of(one_field, one_field, whole)


# --- headers ------------------------------------------------------------------------------

_digits = st.integers(min_value=0, max_value=6000).map(lambda n: "9" * n)
_big = st.integers(0, 2**70)
_printable = st.characters(min_codepoint=32, max_codepoint=126)
range_headers = st.one_of(
    st.tuples(_digits, _digits).map(lambda ab: f"bytes={ab[0]}-{ab[1]}"),
    st.tuples(_big, _big).map(lambda ab: f"bytes={ab[0]}-{ab[1]}"),
    _digits.map(lambda n: f"bytes=-{n}"),
    _digits.map(lambda n: f"bytes={n}-"),
    st.text(_printable, max_size=60).map(lambda t: "bytes=" + t),
    st.sampled_from(["bytes=0-0,1-1", "bytes=-0", "bytes=-", "items=0-1", "bytes=5-1", ""]),
)

_token = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=20)
_header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)


@st.composite
def raw_requests(draw: Callable[..., Any], *, target: str) -> bytes:
    """A GET of ``target`` with a drawn Range and a drawn crowd of extra headers."""
    lines = [f"GET {target} HTTP/1.1", "Host: gateway", "Connection: close"]
    if draw(st.booleans()):
        lines.append("Range: " + draw(range_headers))
    count = draw(st.sampled_from([0, 1, 10, 100, 1000, 5000]))
    size = draw(st.sampled_from([1, 10, 100, 1000, 10_000, 100_000]))
    if count * size > 2_000_000:
        size = max(1, 2_000_000 // count)
    name = draw(_token)
    filler = draw(_header_value) or "v"
    lines += [f"X-{name}-{i}: " + (filler * (size // len(filler) + 1))[:size] for i in range(count)]
    for extra in draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "If-Range",
                        "X-Request-Id",
                        "Accept",
                        "Content-Length",
                        "Authorization",
                        "Range",
                    ]
                ),
                _header_value,
            ),
            max_size=3,
        )
    ):
        if extra[0] == "Content-Length":
            continue  # a body the request does not carry would only keep the server waiting
        lines.append(f"{extra[0]}: {extra[1]}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- multipart ----------------------------------------------------------------------------


@st.composite
def multipart_bodies(draw: Callable[..., Any]) -> tuple[str, bytes]:
    """``(content_type, body)``: a file form whose boundary or framing may be broken."""
    boundary = draw(
        st.one_of(
            st.text(st.sampled_from("abcXYZ0123456789'()+_,-./:=? "), min_size=1, max_size=70),
            st.integers(min_value=71, max_value=5000).map(lambda n: "b" * n),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=100),
        ).filter(lambda text: text == text.strip())  # a client cannot send the others
    )
    content = draw(st.binary(max_size=200))
    name = draw(st.sampled_from(["file", "other", "", "fi\u00e9le"]))
    filename = draw(st.one_of(st.just("data.bin"), st.text(max_size=20)))
    part_type = draw(st.one_of(st.just("application/octet-stream"), _header_value))
    b = boundary.encode("latin-1", "replace")
    head = (
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {part_type}\r\n\r\n"
    ).encode("utf-8", "replace")
    final = b"\r\n--" + b + b"--\r\n"
    body = b"--" + b + b"\r\n" + head + content + final
    cut = draw(st.sampled_from(["whole", "no-final", "truncate", "garbage", "double"]))
    if cut == "no-final":
        body = body[: -len(final)]
    elif cut == "truncate":
        body = body[: draw(st.integers(min_value=0, max_value=len(body)))]
    elif cut == "garbage":
        at = draw(st.integers(min_value=0, max_value=len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=30)) + body[at:]
    elif cut == "double":
        body = body[: -len(final)] + b"\r\n--" + b + b"\r\n" + head + content + final
    quoted = draw(st.booleans())
    content_type = (
        f'multipart/form-data; boundary="{boundary}"'
        if quoted
        else (f"multipart/form-data; boundary={boundary}")
    )
    return content_type, body
