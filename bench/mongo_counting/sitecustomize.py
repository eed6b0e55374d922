"""Count the MongoDB commands a process sends, for ``bench.local_scale``.

``bench.local_scale`` puts this folder first on ``PYTHONPATH`` of the stack
it starts, with ``DTPOC_BENCH_MONGO_COUNTS_DIR`` set. In each Python process
that then imports pymongo, a global command listener (pymongo's own command
monitoring, applied to every client created afterwards) counts commands by
name and ``database.collection`` and writes them to
``<dir>/<pid>.json`` every second and at exit. The services' code is not
changed, so the same count is taken of any version of them (the baseline
too). Processes without the variable (replicas: the operator strips
``DTPOC_*``) only pay for one environment lookup.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import types
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SETTING = "DTPOC_BENCH_MONGO_COUNTS_DIR"


class _Counts:
    def __init__(self, folder: Path) -> None:
        self.path = folder / f"{os.getpid()}.json"
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def flush(self) -> None:
        with self.lock:
            body = {"argv": sys.argv, "counts": dict(self.counts)}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.path)


def _register(counts: _Counts) -> None:
    from pymongo import monitoring

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            name = event.command_name
            target = event.command.get(name)
            collection = f".{target}" if isinstance(target, str) else ""
            counts.add(f"{name} {event.database_name}{collection}")

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            return None

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            return None

    monitoring.register(Listener())

    def flusher() -> None:
        import time

        while True:
            time.sleep(1.0)
            counts.flush()

    threading.Thread(target=flusher, name="bench-mongo-counts", daemon=True).start()
    atexit.register(counts.flush)


class _AfterPymongo(importlib.abc.MetaPathFinder):
    """Registers the listener right after ``pymongo`` itself is imported."""

    def __init__(self, counts: _Counts) -> None:
        self._counts = counts

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "pymongo":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        original = loader.exec_module
        counts = self._counts

        def exec_module(module: types.ModuleType) -> None:
            original(module)
            _register(counts)

        loader.exec_module = exec_module
        return spec


def _install() -> None:
    folder = os.environ.get(SETTING)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    sys.meta_path.insert(0, _AfterPymongo(_Counts(Path(folder))))


_install()
