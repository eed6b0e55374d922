"""Limits that one room checks and another room relies on, defined once.

The orchestrator refuses a launch that breaks one of these (a field-named
400), so that nothing downstream (the input fetcher, the local runtime's
``execve``, the pod) ever meets a value it cannot take.
"""

from __future__ import annotations

import re

#: Longest file name most file systems take (Linux ``NAME_MAX``), in bytes.
NAME_MAX_BYTES = 255
#: Largest file the Files service stores by default (its ``max_upload_bytes``);
#: the output collector's default cap, checked before a file is read.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: Hex digits of the random token in an input's temporary name.
FETCH_TOKEN_HEX = 8


def fetch_partial_name(name: str, token: str) -> str:
    """The temporary name an input is written under before its rename into place."""
    return f".{name}.part-{token}"


#: What :func:`fetch_partial_name` adds to a name, in bytes.
FETCH_NAME_OVERHEAD_BYTES = len(fetch_partial_name("", "0" * FETCH_TOKEN_HEX).encode())
#: Longest input (mount) file name: its temporary name must still fit ``NAME_MAX``.
MAX_INPUT_NAME_BYTES = NAME_MAX_BYTES - FETCH_NAME_OVERHEAD_BYTES

#: Longest single argument or ``NAME=value`` environment string Linux passes to a
#: program (``MAX_ARG_STRLEN``, 32 pages, including the terminating NUL).
MAX_PROCESS_STRING_BYTES = 32 * 4096 - 1
#: What a launch's command, args and env may take of the ``execve`` budget
#: together (Linux allows a quarter of the 8 MiB stack, 2 MiB; the rest is
#: left to the platform's own variables and to Kubernetes' object size).
MAX_PROCESS_STRINGS_TOTAL_BYTES = 512 * 1024
#: Most items of ``command`` plus ``args``.
MAX_ARGV_ITEMS = 1024

#: Deepest JSON document ``output/{idx}`` answers inline: a google.protobuf.Value
#: takes two message levels per JSON level and protobuf parsers stop at 100.
MAX_OUTPUT_DEPTH = 32
#: Largest encoded Value ``output/{idx}`` answers inline: half the 8 MiB gRPC
#: message limit, so the answer always fits. A larger output answers its file list.
MAX_OUTPUT_VALUE_BYTES = 4 * 1024 * 1024

#: Control characters: a string that reaches a process or a pod may carry tab,
#: line feed and carriage return; every other C0 character and DEL is refused
#: (NUL cannot pass ``execve`` at all; the rest breaks logs, shells and names).
_REFUSED_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def first_control(text: str, *, allow_whitespace: bool = True) -> str | None:
    """The first refused control character of ``text``, None when there is none.

    With ``allow_whitespace`` tab, line feed and carriage return pass (values
    such as certificates or JSON in an environment variable carry them);
    without it every C0 character and DEL is refused (names, one-line values).
    """
    found = (_REFUSED_CONTROL if allow_whitespace else _ANY_CONTROL).search(text)
    return found.group() if found else None
