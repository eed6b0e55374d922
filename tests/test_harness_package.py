"""The local platform's package stays importable by production code: no pytest, no tests/.

``dtpoc up`` (the CLI) and ``make run`` import :mod:`dtpoc_local`; if it
pulled in pytest or the test suite, the command would need the dev tools and
the tests' checkout. The benches and ``tools/`` may use the harness, never the
tests either.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import dtpoc_local

REPO = Path(__file__).resolve().parents[1]


def test_every_harness_module_imports_without_pytest_or_the_tests() -> None:
    modules = sorted(
        m.name for m in pkgutil.walk_packages(dtpoc_local.__path__, prefix="dtpoc_local.")
    )
    assert "dtpoc_local.up" in modules and "dtpoc_local.servers.operator" in modules
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'pytest' or m.split('.')[0] == 'tests')\n"
        "print(','.join(bad))\n"
    )
    # A fresh interpreter outside the checkout: only what the package itself imports.
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    assert result.stdout.strip() == "", f"dtpoc_local imports {result.stdout.strip()}"


def _imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _test_imports(roots: list[str]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}: {name}"
        for root in roots
        for path in sorted((REPO / root).rglob("*.py"))
        if "node_modules" not in path.parts
        for name in sorted(_imports_of(path))
        if name == "tests" or name.startswith("tests.")
    ]


def test_no_production_module_or_tool_imports_the_tests() -> None:
    assert _test_imports(["libs", "services", "gateway", "clients", "tools"]) == []


def test_the_benches_start_servers_with_the_harness_not_the_tests() -> None:
    """A bench that needs a server starter finds it in dtpoc_local (move it there)."""
    assert _test_imports(["bench"]) == []
