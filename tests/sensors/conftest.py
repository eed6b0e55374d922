"""The sensor tests need Debian's Mosquitto (``tools/hostpkgs/install`` adds it as root).

Without it (a machine where the tests do not run as root and nobody installed
it) they skip and say what to install, as the container tests do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
        return
    skip = pytest.mark.skip(reason="no mosquitto: apt-get install mosquitto (tools/hostpkgs)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)
