"""``python -m tests.operator.crashing_operator``: the real operator, SIGKILLed at its worst moment.

A TEST-ONLY fault, injected at the Analytics store port rather than through a
production setting: this module wraps ``write_status`` of both store adapters
(Kubernetes and local MongoDB) so that the first status write recording
output file ids the stored status does not have yet kills the process before
anything is written. That is the moment between "outputs uploaded to Files"
and "their ids recorded": a crash there must lose and double nothing. The
operator itself is unchanged; the ``operator_process`` fixture starts this
module instead of ``dtpoc-operator`` when asked for ``fault_crash_after_upload``.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dtpoc_operator.__main__ import main
from dtpoc_operator.kube.store import KubeAnalyticsStore
from dtpoc_operator.local.store import MongoAnalyticsStore
from dtpoc_operator.model import AnalyticsResource, Status

MARK = "FAULT INJECTION: killing the operator after upload, before the status write"
"""Logged (stderr, so in the process's log) before the kill; the test looks for it."""

WriteStatus = Callable[[Any, AnalyticsResource, Status], Awaitable[None]]
"""An adapter's ``write_status``, unbound (``self`` is either store)."""


def _recorded_ids(status: Status) -> set[str]:
    return {file_id for replica in status.replicas for file_id in replica.output_file_ids}


def crash_before_recording(write_status: WriteStatus) -> WriteStatus:
    """``write_status`` that SIGKILLs the process instead of recording new output ids."""

    @functools.wraps(write_status)
    async def wrapped(self: Any, resource: AnalyticsResource, status: Status) -> None:
        if _recorded_ids(status) - _recorded_ids(resource.status):
            print(f"{MARK} (service {resource.service_id})", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        await write_status(self, resource, status)

    return wrapped


def install() -> None:
    """Wrap both store adapters' ``write_status`` in this process."""
    for store in (KubeAnalyticsStore, MongoAnalyticsStore):
        store.write_status = crash_before_recording(store.write_status)  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    install()
    main()
