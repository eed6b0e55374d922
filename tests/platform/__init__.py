"""Fixtures that start dtpoc's own processes (one module per service).

Every module in this folder is loaded as a pytest plugin by
``tests/conftest.py``, so its fixtures are available to every test; modules
whose name starts with ``_`` are helpers, imported by the others, not plugins.
"""

from __future__ import annotations

import pkgutil


def plugin_modules() -> list[str]:
    """Dotted names of the fixture modules in this folder."""
    return sorted(
        f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )
