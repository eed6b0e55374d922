"""Free TCP ports on the loopback interface for test servers."""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"
"""Every test server listens here and nowhere else."""


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports that were free on 127.0.0.1 a moment ago.

    The sockets are held open until all ports are chosen, so one call never
    returns the same port twice. Another process may still take a port before
    the server binds it; servers started here fail fast (and show their log)
    if that happens.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """One free loopback port (see :func:`free_ports`)."""
    return free_ports(1)[0]
