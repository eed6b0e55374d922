"""List the longest functions of the hand-written Python tree.

The house style asks for functions under 60 lines; this names the ones
over it, longest first, so a reader knows where to cut next. ``--fail``
makes it exit 1 when any function is over the limit: ``make check`` runs it
so, and the tree stays clean. ``--top N`` lists the N longest whether over
the limit or not (the table in docs/architecture.md).

Usage: ``python tools/longest_functions.py [--limit 60] [--top N] [--fail]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The hand-written production trees: every libs/ package but the generated libs/api.
ROOTS = (
    "services",
    "gateway",
    *sorted(f"libs/{p.name}" for p in (REPO / "libs").iterdir() if p.is_dir() and p.name != "api"),
    "clients",
    "tools",
)
SKIP_PARTS = {".venv", "node_modules", "__pycache__", "_pb2.py", "_pb2_grpc.py"}


@dataclass(frozen=True)
class Function:
    path: str
    name: str
    line: int
    length: int


def _python_files() -> Iterator[Path]:
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            if not any(
                part in SKIP_PARTS or part.endswith(("_pb2.py", "_pb2_grpc.py"))
                for part in path.parts
            ):
                yield path


def functions(path: Path) -> Iterator[Function]:
    """Every function and method of ``path`` with its length in lines (decorators excluded)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                yield Function(
                    path=str(path.relative_to(REPO)),
                    name=name,
                    line=child.lineno,
                    length=end - child.lineno + 1,
                )
                stack.append((child, f"{name}."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, f"{prefix}{child.name}."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60, help="longest allowed (lines)")
    parser.add_argument(
        "--top", type=int, default=0, help="print the N longest, over the limit or not"
    )
    parser.add_argument("--fail", action="store_true", help="exit 1 when any is over the limit")
    args = parser.parse_args(argv)
    found = sorted(
        (f for path in _python_files() for f in functions(path)),
        key=lambda f: (-f.length, f.path, f.line),
    )
    over = [f for f in found if f.length > args.limit]
    shown = found[: args.top] if args.top else over
    for f in shown:
        print(f"{f.length:4d}  {f.path}:{f.line}  {f.name}")
    print(f"{len(over)} functions longer than {args.limit} lines", file=sys.stderr)
    return 1 if args.fail and over else 0


if __name__ == "__main__":
    sys.exit(main())
