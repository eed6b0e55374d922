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
from collections.abc import Sequence
from pathlib import Path

import pytest

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


#: The hand-written production trees and tools: none of them may reach into tests/.
PRODUCTION_TREES = ("libs", "services", "gateway", "clients", "tools")


def _reaches_into_tests(source: str) -> list[str]:
    """What in ``source`` depends on the test suite: an import of ``tests`` (or a
    conftest), a ``sys.path`` change (the way a module imports what is not a package
    it depends on), or a path literal into ``tests/`` (a script or data file there)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [
            f"imports {name}"
            for name in names
            if name.split(".")[0] in ("tests", "conftest") or name.endswith(".conftest")
        ]
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"uses sys.path (line {node.lineno})")
        if isinstance(node, ast.Constant) and str(node.value).split("/")[0] == "tests":
            found.append(f"names {node.value!r} (line {node.lineno})")
    return found


def _test_imports(roots: Sequence[str]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}: {what}"
        for root in roots
        for path in sorted((REPO / root).rglob("*.py"))
        if not {"node_modules", ".venv"} & set(path.parts)
        for what in _reaches_into_tests(path.read_text())
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import tests.gateway.helpers",
        "from tests.realdeps import waiting",
        "import conftest",
        "import sys\nsys.path.insert(0, 'x')",
        "from pathlib import Path\nSCRIPT = Path('.') / 'tests' / 'chart' / 'build'",
        "SCRIPT = 'tests/chart/build'",
    ],
)
def test_the_check_sees_each_way_of_reaching_into_the_tests(source: str) -> None:
    """The rule below can fail: each way a module could lean on tests/ is caught."""
    assert _reaches_into_tests(source) != []


def test_no_production_module_or_tool_imports_the_tests() -> None:
    roots = [root for root in PRODUCTION_TREES if (REPO / root).is_dir()]
    assert roots == list(PRODUCTION_TREES), "a production tree moved: update the list"
    assert _test_imports(roots) == []


def test_the_benches_start_servers_with_the_harness_not_the_tests() -> None:
    """A bench that needs a server starter finds it in dtpoc_local (move it there)."""
    assert _test_imports(["bench"]) == []
