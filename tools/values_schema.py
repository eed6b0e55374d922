"""Write infra/values.schema.json from the annotated infra/values.yaml.

One source of truth for the chart's values: a value's default, its comment
and its constraints sit together in values.yaml, and the JSON schema Helm
checks values against is derived from them, so the two cannot drift
(`make check` fails when the checked-in schema is not what this writes).

How a value's schema is made:

- from its default: a string is `{type: string}`, a boolean, an integer, a
  number likewise; a mapping with keys is an object of exactly those keys
  (`additionalProperties: false`), an empty mapping any object; a list is an
  array whose items are typed like its first scalar item;
- the comment block right above the key becomes its `description`;
- `# @schema {...}` lines right above the key (a YAML flow mapping, may run
  over several lines) are laid over that: any JSON-schema keyword, `$ref:
  NAME` to start from a shape of infra/schema-shapes.yaml instead of
  the default, and `required: true` to list the key in its parent's
  `required`;
- `# @schema-root {...}` anywhere is laid over the top-level schema.

Inside lists nothing is annotated: a list's items are described by the
list's own annotation (usually a shape).

Usage: `python tools/values_schema.py` writes the file; `--check` exits 1
with a diff when the checked-in file differs.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VALUES = REPO / "infra" / "values.yaml"
SHAPES = REPO / "infra" / "schema-shapes.yaml"
SCHEMA = REPO / "infra" / "values.schema.json"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-/]*):(?: |$)")
_ITEM = re.compile(r"^(?P<indent> *)- ")
_ANNOTATION = "# @schema "
_ROOT_ANNOTATION = "# @schema-root "

Schema = dict[str, Any]
Path_ = tuple[str, ...]


class AnnotationError(ValueError):
    """An annotation that cannot be read or sits where it has no key to describe."""


def _flow(text: str, *, where: str) -> Schema:
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AnnotationError(f"{where}: not a YAML flow mapping: {exc}") from exc
    if not isinstance(parsed, dict):
        raise AnnotationError(f"{where}: an annotation is a mapping, got {text!r}")
    return parsed


class Comments:
    """What the comment lines of values.yaml say about each key path."""

    def __init__(self) -> None:
        self.annotations: dict[Path_, Schema] = {}
        self.descriptions: dict[Path_, str] = {}
        self.root: Schema = {}

    @classmethod
    def read(cls, text: str) -> Comments:
        found = cls()
        stack: list[tuple[int, str]] = []
        annotation: list[str] = []
        prose: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith(_ROOT_ANNOTATION.strip() + " "):
                found.root.update(
                    _flow(stripped[len(_ROOT_ANNOTATION) :], where=f"values.yaml:{number}")
                )
            elif stripped.startswith(_ANNOTATION):
                annotation.append(stripped[len(_ANNOTATION) :])
            elif stripped.startswith("#"):
                body = stripped.lstrip("#").strip()
                if not body.startswith("---"):
                    prose.append(body)
            elif not stripped:
                prose = []
                if annotation:
                    raise AnnotationError(f"values.yaml:{number}: @schema not followed by a key")
            else:
                found._key_line(
                    line, number=number, stack=stack, annotation=annotation, prose=prose
                )
                annotation, prose = [], []
        return found

    def _key_line(
        self,
        line: str,
        *,
        number: int,
        stack: list[tuple[int, str]],
        annotation: list[str],
        prose: list[str],
    ) -> None:
        item = _ITEM.match(line)
        key = _KEY.match(line)
        match = item or key
        indent = len(match.group("indent")) if match else len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if item:
            stack.append((indent, "[]"))
        elif key:
            stack.append((indent, key.group("key")))
        path = tuple(name for _, name in stack)
        if annotation or prose:
            if not key or item or "[]" in path:
                if annotation:
                    raise AnnotationError(f"values.yaml:{number}: @schema inside a list item")
                return
            if annotation:
                self.annotations[path] = _flow(" ".join(annotation), where=f"values.yaml:{number}")
            if prose:
                self.descriptions[path] = " ".join(prose)


class Generator:
    """Builds the schema of each value from its default, comments and shapes."""

    def __init__(self, *, comments: Comments, shapes: dict[str, Schema]) -> None:
        self._comments = comments
        self._shapes = shapes

    def root(self, values: dict[str, Any]) -> Schema:
        schema: Schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "dtpoc chart values",
        }
        schema.update(self._object(values, path=()))
        resolved: Schema = self._resolve(_merge(schema, self._comments.root))
        return resolved

    def _value(self, value: Any, *, path: Path_) -> tuple[Schema, bool]:
        annotation = dict(self._comments.annotations.get(path, {}))
        required = annotation.pop("required", None)
        lift = required is True
        if isinstance(required, list):
            annotation["required"] = required
        if "$ref" in annotation:
            schema: Schema = {}
        else:
            schema = self._inferred(value, path=path)
        description = self._comments.descriptions.get(path)
        if description and "description" not in annotation:
            annotation["description"] = description
        return _merge(schema, annotation), lift

    def _inferred(self, value: Any, *, path: Path_) -> Schema:
        if isinstance(value, dict):
            return self._object(value, path=path) if value else {"type": "object"}
        if isinstance(value, list):
            schema: Schema = {"type": "array"}
            scalars = [v for v in value if not isinstance(v, dict | list)]
            if scalars:
                schema["items"] = _scalar(scalars[0])
            return schema
        return _scalar(value)

    def _object(self, value: dict[str, Any], *, path: Path_) -> Schema:
        properties: Schema = {}
        required: list[str] = []
        for key, child in value.items():
            properties[key], lift = self._value(child, path=(*path, key))
            if lift:
                required.append(key)
        schema: Schema = {"type": "object", "properties": properties}
        schema["additionalProperties"] = False
        if required:
            schema["required"] = required
        return schema

    def _resolve(self, node: Any, *, seen: tuple[str, ...] = ()) -> Any:
        """Expand every `$ref: NAME` into its shape, the node's other keys on top."""
        if isinstance(node, list):
            return [self._resolve(item, seen=seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"]
            if name not in self._shapes:
                raise AnnotationError(f"$ref {name!r}: no such shape in {SHAPES.name}")
            if name in seen:
                raise AnnotationError(f"$ref {name!r} refers to itself")
            rest = {k: v for k, v in node.items() if k != "$ref"}
            base = self._resolve(copy.deepcopy(self._shapes[name]), seen=(*seen, name))
            return self._resolve(_merge(base, rest), seen=seen)
        return {key: self._resolve(child, seen=seen) for key, child in node.items()}


def _scalar(value: Any) -> Schema:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    return {}


def _merge(base: Schema, over: Schema) -> Schema:
    """`over` laid on `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "$ref" not in value:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render() -> str:
    """The schema values.yaml and the shapes describe, as the checked-in file's text."""
    text = VALUES.read_text()
    shapes = yaml.safe_load(SHAPES.read_text())
    generator = Generator(comments=Comments.read(text), shapes=shapes)
    schema = generator.root(yaml.safe_load(text))
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    args = parser.parse_args(argv)
    wanted = render()
    if not args.check:
        SCHEMA.write_text(wanted)
        return 0
    current = SCHEMA.read_text() if SCHEMA.exists() else ""
    if current == wanted:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        wanted.splitlines(keepends=True),
        fromfile="infra/values.schema.json (checked in)",
        tofile="infra/values.schema.json (from values.yaml)",
    )
    sys.stderr.writelines(diff)
    print("values.schema.json is not what values.yaml says: run make schema", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
