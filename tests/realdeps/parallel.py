"""The order in which ``make test TEST_WORKERS=N`` hands files to pytest-xdist workers.

Part of the suite waits on schedule ticks, containers and servers rather than
on the CPU, so it can overlap those waits in several worker processes (``-n N --dist
loadfile --no-loadscope-reorder``, see the Makefile). Each worker has its own
session fixtures (FerretDB, the control plane), its own ``tmp_path`` tree and
free ports, so tests need nothing special to run in parallel. ``loadfile``
gives a whole file to one worker: a module fixture (a stack of servers shared
by a file's tests) starts once, and a file's tests keep their order.

Files are handed out in collection order, so in a worker this plugin collects
the tiers that wait longest (:data:`SLOW_FIRST`) first: the many quick files
then fill the gaps at the end instead of a long file starting last. The sort
is stable and the same in every worker (xdist requires identical collections).

Not ``--dist loadgroup``: with pytest 9.2 and pytest-xdist 3.8 an
``xdist_group`` mark has no effect (xdist renames ``item._nodeid``, which
pytest 9 no longer reads), so grouping by mark silently schedules per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SLOW_FIRST = ("cli", "compat", "e2e", "operator", "images", "sensors", "console", "client", "chart")
"""Folders of ``tests/`` handed out first, in this order (the rest keep theirs, after them).

The first two hold the longest single files (tests/cli/test_dtpoc.py, tests/compat/
test_generated_requests.py: minutes each), which bound the whole run when they start late.
"""

_TESTS = Path(__file__).resolve().parents[1]


def _tier(item: pytest.Item) -> int:
    """Position of the item's top folder in :data:`SLOW_FIRST` (the rest after it)."""
    try:
        folder = Path(str(item.path)).resolve().relative_to(_TESTS).parts[0]
    except (ValueError, IndexError):
        return len(SLOW_FIRST)
    return SLOW_FIRST.index(folder) if folder in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, collect the slow tiers first (a stable sort)."""
    if hasattr(config, "workerinput"):
        items.sort(key=_tier)
