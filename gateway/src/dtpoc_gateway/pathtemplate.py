"""``google.api.http`` path templates: parsing, matching and ordering.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

``{id}`` binds one segment, ``{name=shelves/*/books/*}`` binds several
segments matching the sub-pattern (slashes included). A trailing ``/`` is
kept as an empty last segment because the original API answered
``/service/`` as well as ``/service``. Values are matched as text here;
typing them against the request message's fields (``{idx}`` is an int32)
is the transcoder's job, so a wrong type answers 400 naming the field
instead of a bare 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


@dataclass(frozen=True)
class Variable:
    """A ``{field.path=pattern}`` segment group, captured as ``group``."""

    field_path: str
    pattern: tuple[str, ...]
    group: str

    @property
    def multi_segment(self) -> bool:
        return self.pattern != ("*",)


@dataclass(frozen=True)
class PathTemplate:
    """A parsed template: its pieces, its regex and its variables."""

    source: str
    segments: tuple[str | Variable, ...]
    verb: str
    regex: re.Pattern[str]
    variables: tuple[Variable, ...]

    def openapi_path(self, *, strip_prefix: str = "") -> str:
        """The path as OpenAPI writes it: ``{field_path}`` for each variable."""
        parts = [
            f"{{{seg.field_path}}}" if isinstance(seg, Variable) else seg for seg in self.segments
        ]
        path = "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")
        return path.removeprefix(strip_prefix) if strip_prefix else path

    def starlette_path(self) -> str:
        """A path Starlette accepts for a Route; the regex replaces its own."""
        parts = [f"{{{seg.group}}}" if isinstance(seg, Variable) else seg for seg in self.segments]
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")

    def specificity(self) -> tuple[tuple[int, int], ...]:
        """Sort key: literal segments before variables, longer before shorter.

        Routes are tried in this order, so ``/files/upload`` wins over
        ``/files/{file_id}`` for the same verb, as in Envoy's transcoder.
        """
        key: list[tuple[int, int]] = []
        for seg in self.segments:
            if isinstance(seg, Variable):
                key.append((2 if "**" in seg.pattern else 1, -len(seg.pattern)))
            elif seg == "**":
                key.append((3, 0))
            elif seg == "*":
                key.append((1, -1))
            else:
                key.append((0, 0))
        key.append((4, 0))  # a shorter template sorts after its longer relatives
        return tuple(key)


def parse(template: str) -> PathTemplate:
    """Parse a template; raise :class:`TemplateError` naming the problem."""
    if not template.startswith("/"):
        raise TemplateError(f"path template {template!r} must start with '/'")
    body, verb = _split_verb(template[1:])
    raw_segments = _split_top_level(body, template)
    segments: list[str | Variable] = []
    variables: list[Variable] = []
    regex_parts: list[str] = []
    for index, raw in enumerate(raw_segments):
        if raw.startswith("{"):
            if not raw.endswith("}"):
                raise TemplateError(f"unclosed variable {raw!r} in {template!r}")
            inner = raw[1:-1]
            name, _, pattern_text = inner.partition("=")
            if not _IDENT.match(name):
                raise TemplateError(f"bad field path {name!r} in {template!r}")
            pattern = tuple(pattern_text.split("/")) if pattern_text else ("*",)
            for piece in pattern:
                if not piece or "{" in piece or "}" in piece:
                    raise TemplateError(f"bad variable pattern {pattern_text!r} in {template!r}")
            variable = Variable(field_path=name, pattern=pattern, group=f"p{len(variables)}")
            variables.append(variable)
            segments.append(variable)
            regex_parts.append(f"(?P<{variable.group}>{_pattern_regex(pattern)})")
        else:
            if "{" in raw or "}" in raw:
                raise TemplateError(f"bad segment {raw!r} in {template!r}")
            if raw == "" and index != len(raw_segments) - 1:
                raise TemplateError(f"empty segment in {template!r}")
            segments.append(raw)
            regex_parts.append(_pattern_regex((raw,)))
    names = [v.field_path for v in variables]
    if len(set(names)) != len(names):
        raise TemplateError(f"a field is bound twice in {template!r}")
    regex = "^/" + "/".join(regex_parts) + (re.escape(":" + verb) if verb else "") + "$"
    return PathTemplate(
        source=template,
        segments=tuple(segments),
        verb=verb,
        regex=re.compile(regex),
        variables=tuple(variables),
    )


def _split_verb(body: str) -> tuple[str, str]:
    """Split ``a/b:verb``; a colon inside a variable or before the last '/' is not a verb."""
    depth = 0
    last_colon = -1
    for i, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == ":" and depth == 0:
            last_colon = i
        elif char == "/" and depth == 0:
            last_colon = -1
    if last_colon < 0:
        return body, ""
    return body[:last_colon], body[last_colon + 1 :]


def _split_top_level(body: str, template: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in body:
        if char == "{":
            depth += 1
            if depth > 1:
                raise TemplateError(f"nested variable in {template!r}")
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"unbalanced '}}' in {template!r}")
        if char == "/" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise TemplateError(f"unclosed variable in {template!r}")
    parts.append("".join(current))
    return parts


def _pattern_regex(pattern: tuple[str, ...]) -> str:
    pieces: list[str] = []
    for piece in pattern:
        if piece == "*":
            pieces.append("[^/]+")
        elif piece == "**":
            pieces.append(".+")
        else:
            pieces.append(re.escape(piece))
    return "/".join(pieces)
