"""HTTP request -> request message, response message -> JSON, for one binding.

Where each request field comes from follows ``google.api.http``:

* path variables fill the fields they name (``{idx}`` -> ``idx``, typed by
  the field: ``"abc"`` for an int32 answers 400 naming ``idx``);
* ``body: "*"`` fills the whole message from the JSON body (no query
  parameters then), ``body: "field"`` that one field, no ``body`` nothing;
* every remaining field may come from the query string: scalars and enums
  (``?limit=5``), repeated scalars (``?tag=a&tag=b``), fields of nested
  messages by dotted names (``?ana.reps=2``), and well-known types whose
  JSON is a string or number (Timestamp, Duration, FieldMask, wrappers).

JSON is proto JSON through ``google.protobuf.json_format``: unknown fields
and wrong types are refused with its message (which names the field), and
answers keep the proto field names (``active_runs``) with zero values
printed; whole doubles print as integers (``"replica": 1``) as the C++ and
Go printers do, so a JSON document carried in a ``Struct`` keeps its ints.
64-bit integers are JSON numbers whenever a double holds them
exactly (every value below 2^53, so every size and count this API carries);
a larger value stays a quoted string as proto JSON prescribes, so no client
ever reads a silently rounded number.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, json_format, message

from dtpoc_gateway import catalog, httperrors, pathtemplate

FD = descriptor.FieldDescriptor
NO_BODY: Any = object()

_INT_TYPES = frozenset(
    {
        FD.TYPE_INT32,
        FD.TYPE_SINT32,
        FD.TYPE_SFIXED32,
        FD.TYPE_UINT32,
        FD.TYPE_FIXED32,
        FD.TYPE_INT64,
        FD.TYPE_SINT64,
        FD.TYPE_SFIXED64,
        FD.TYPE_UINT64,
        FD.TYPE_FIXED64,
    }
)
_UNSIGNED = frozenset({FD.TYPE_UINT32, FD.TYPE_FIXED32, FD.TYPE_UINT64, FD.TYPE_FIXED64})
_FLOAT_TYPES = frozenset({FD.TYPE_DOUBLE, FD.TYPE_FLOAT})
#: Well-known types whose JSON form is a string: accepted from path and query as is.
STRING_WKT = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
#: Wrapper types: JSON form is their ``value`` field's.
WRAPPER_WKT = frozenset(
    {
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)


def message_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """The message type of a message field (which always has one)."""
    found = field.message_type
    assert found is not None, field.full_name
    return found


def enum_type(field: descriptor.FieldDescriptor) -> descriptor.EnumDescriptor:
    found = field.enum_type
    assert found is not None, field.full_name
    return found


def is_map(field: descriptor.FieldDescriptor) -> bool:
    return bool(
        field.type == FD.TYPE_MESSAGE
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def text_settable(field: descriptor.FieldDescriptor) -> bool:
    """Whether a value for ``field`` can be written as one piece of URL text."""
    if is_map(field):
        return False
    if field.type != FD.TYPE_MESSAGE:
        return True
    name = message_type(field).full_name
    return name in STRING_WKT or name in WRAPPER_WKT


def resolve(
    message_descriptor: descriptor.Descriptor, dotted: str
) -> list[descriptor.FieldDescriptor] | None:
    """Fields along a dotted path (proto or JSON names), or None when it names none.

    Every step but the last must be a singular message field.
    """
    chain: list[descriptor.FieldDescriptor] = []
    current = message_descriptor
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        field = current.fields_by_name.get(part) or _by_json_name(current, part)
        if field is None:
            return None
        chain.append(field)
        if i < len(parts) - 1:
            if field.type != FD.TYPE_MESSAGE or is_repeated(field):
                return None
            name = message_type(field).full_name
            if name in STRING_WKT or name in WRAPPER_WKT or name.startswith("google.protobuf."):
                return None
            current = message_type(field)
    return chain


def _by_json_name(
    message_descriptor: descriptor.Descriptor, name: str
) -> descriptor.FieldDescriptor | None:
    for field in message_descriptor.fields:
        if field.json_name == name:
            return field
    return None


def dotted_name(chain: Iterable[descriptor.FieldDescriptor]) -> str:
    return ".".join(field.name for field in chain)


def value_from_text(field: descriptor.FieldDescriptor, text: str, name: str) -> Any:
    """Turn URL text into the JSON value ``json_format`` expects for ``field``."""
    kind = field.type
    if kind == FD.TYPE_MESSAGE:
        full = message_type(field).full_name
        if full in WRAPPER_WKT:
            return value_from_text(message_type(field).fields_by_name["value"], text, name)
        return text
    if kind in _INT_TYPES:
        try:
            number = int(text.strip(), 10)
        except ValueError:
            raise httperrors.bad_request(f"must be an integer, not {text!r}", field=name) from None
        if kind in _UNSIGNED and number < 0:
            raise httperrors.bad_request(f"must not be negative, not {text!r}", field=name)
        return number
    if kind in _FLOAT_TYPES:
        try:
            return float(text)
        except ValueError:
            raise httperrors.bad_request(f"must be a number, not {text!r}", field=name) from None
    if kind == FD.TYPE_BOOL:
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise httperrors.bad_request(f"must be true or false, not {text!r}", field=name)
    if kind == FD.TYPE_ENUM:
        if text.lstrip("-").isdigit():
            return int(text)
        if text not in enum_type(field).values_by_name:
            allowed = ", ".join(v.name for v in enum_type(field).values)
            raise httperrors.bad_request(f"must be one of {allowed}, not {text!r}", field=name)
        return text
    if kind == FD.TYPE_BYTES:
        try:
            base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            raise httperrors.bad_request("must be base64", field=name) from None
        return text
    return text


def _place(target: dict[str, Any], chain: list[descriptor.FieldDescriptor], value: Any) -> None:
    node = target
    for field in chain[:-1]:
        node = node.setdefault(field.name, {})
    leaf = chain[-1]
    if is_repeated(leaf):
        node.setdefault(leaf.name, []).append(value)
    elif leaf.name in node:
        raise httperrors.bad_request("given more than once", field=dotted_name(chain))
    else:
        node[leaf.name] = value


_NO_FIELD = re.compile(r'has no field named "([^"]+)" at "([^"]+)"')
_AT_PATH = re.compile(r' at "?([A-Za-z_][\w.]*\.\w+)"?')
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field")


def _parse_error(exc: Exception, *, where: str) -> httperrors.ApiError:
    """A 400 from a json_format error, naming the offending field (dotted)."""
    text = str(exc).strip()
    unknown = _NO_FIELD.search(text)
    if unknown:
        name, at = unknown.groups()
        field = ".".join([*at.split(".")[1:], name])
        return httperrors.bad_request(
            f"unknown field {name!r} in the {where} ({at} has no such field)", field=field
        )
    at_path = _AT_PATH.search(text)
    if at_path and "." in at_path.group(1):
        field = at_path.group(1).split(".", 1)[1]
    else:
        field = ".".join(_FAILED_FIELD.findall(text))
    return httperrors.bad_request(f"invalid {where}: {_reason(text)}", field=field or None)


_JSON_KINDS = {
    "dict": "an object",
    "list": "an array",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
    "str": "a string",
}
#: json_format's texts (often Python's own exception texts) -> what a client reads.
_REASONS: list[tuple[re.Pattern[str], Any]] = [
    (
        re.compile(r"expected string or bytes-like object, got '(\w+)'"),
        lambda m: f"must be a string, not {_JSON_KINDS.get(m[1], 'this')}",
    ),
    (
        re.compile(r"int\(\) argument must be .*?, not '(\w+)'"),
        lambda m: f"must be an integer, not {_JSON_KINDS.get(m[1], 'this')}",
    ),
    (
        re.compile(r"invalid literal for int\(\) with base 10: '(.{0,40}?)'"),
        lambda m: f"must be an integer, not {m[1]!r}",
    ),
    (
        re.compile(r"Couldn't parse integer: (\S{0,40})"),
        lambda m: f"must be an integer, not {m[1]}",
    ),
    (
        re.compile(r"Value out of range: (\S{0,40})"),
        lambda m: f"{m[1].rstrip('.')} is out of the field's range",
    ),
    (re.compile(r"Map field \w+ must be in a dict"), lambda m: "must be a JSON object"),
    (re.compile(r"repeated field \w+ must be in \[\]"), lambda m: "must be a JSON array"),
    (re.compile(r"null is not allowed"), lambda m: "null is not allowed in this array"),
    (re.compile(r"Invalid enum value (\S{0,40})"), lambda m: f"{m[1]} is not one of the values"),
]


def _reason(text: str) -> str:
    """A client's sentence for a json_format error, never Python's wording."""
    for pattern, render in _REASONS:
        found = pattern.search(text)
        if found:
            return str(render(found))
    if re.search(r"Timestamp|Duration|FieldMask", text):
        return text.rsplit(": ", 1)[-1][:200]
    return "has a value of the wrong type for this field"


def _parse_into(data: Any, target: message.Message, *, where: str) -> None:
    try:
        json_format.ParseDict(data, target)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
        # json_format lets a few wrong shapes through as plain Python errors.
        raise _parse_error(exc, where=where) from None


@dataclass(frozen=True)
class PathField:
    group: str
    name: str
    chain: list[descriptor.FieldDescriptor]


class Transcoder:
    """Builds request messages and renders answers for one method and binding."""

    def __init__(
        self,
        *,
        method: catalog.Method,
        binding: catalog.Binding,
        template: pathtemplate.PathTemplate,
        reject_unknown_query: bool = True,
    ) -> None:
        self.method = method
        self.binding = binding
        self.template = template
        self.reject_unknown_query = reject_unknown_query
        request = method.descriptor.input_type
        self.path_fields: list[PathField] = []
        for variable in template.variables:
            chain = resolve(request, variable.field_path)
            where = f"{method.full_name} {binding.verb} {binding.path}"
            if chain is None:
                raise catalog.CatalogError(
                    f"{where}: {{{variable.field_path}}} names no field of {request.full_name}"
                )
            leaf = chain[-1]
            if is_repeated(leaf) or not text_settable(leaf):
                raise catalog.CatalogError(
                    f"{where}: {{{variable.field_path}}} must be a singular scalar field"
                )
            self.path_fields.append(
                PathField(group=variable.group, name=variable.field_path, chain=chain)
            )
        self._path_names = {dotted_name(p.chain) for p in self.path_fields}
        self.body_field: descriptor.FieldDescriptor | None = (
            request.fields_by_name[binding.body] if binding.body not in ("", "*") else None
        )
        self.response_field: descriptor.FieldDescriptor | None = (
            method.descriptor.output_type.fields_by_name[binding.response_body]
            if binding.response_body
            else None
        )

    # -- request ---------------------------------------------------------------

    def query_field(self, name: str) -> list[descriptor.FieldDescriptor] | None:
        """The field a query parameter sets, None when it may set none."""
        if self.binding.body == "*":
            return None
        chain = resolve(self.method.descriptor.input_type, name)
        if chain is None:
            return None
        if self.body_field is not None and chain[0] is self.body_field:
            return None
        if dotted_name(chain) in self._path_names:
            return None
        if not text_settable(chain[-1]):
            return None
        return chain

    def query_into(
        self,
        target: message.Message,
        query: Iterable[tuple[str, str]],
        *,
        describe_target: str = "query",
    ) -> None:
        """Set ``target``'s fields from query parameters (target's own descriptor)."""
        data: dict[str, Any] = {}
        for name, text in query:
            chain = resolve(target.DESCRIPTOR, name)  # type: ignore[arg-type]
            if chain is None or not text_settable(chain[-1]):
                if self.reject_unknown_query:
                    raise httperrors.bad_request(f"unknown query parameter {name!r}", field=name)
                continue
            _place(data, chain, value_from_text(chain[-1], text, name))
        if data:
            _parse_into(data, target, where=describe_target)

    def build(
        self,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        body: Any = NO_BODY,
    ) -> message.Message:
        """The request message for one HTTP request; ApiError(400) on bad input."""
        request = self.method.request_class()
        query_data: dict[str, Any] = {}
        for name, text in query:
            chain = self.query_field(name)
            if chain is None:
                if self.reject_unknown_query:
                    hint = " (this route reads its fields from the body)"
                    raise httperrors.bad_request(
                        f"unknown query parameter {name!r}"
                        + (hint if self.binding.body == "*" else ""),
                        field=name,
                    )
                continue
            _place(query_data, chain, value_from_text(chain[-1], text, name))
        if query_data:
            _parse_into(query_data, request, where="query")
        if body is not NO_BODY and body is not None:
            if self.binding.body == "*":
                if not isinstance(body, dict):
                    raise httperrors.bad_request("the request body must be a JSON object")
                _parse_into(body, request, where="body")
            elif self.body_field is not None:
                _parse_into({self.body_field.name: body}, request, where="body")
        self.apply_path(request, path_params)
        return request

    def apply_path(self, request: message.Message, path_params: Mapping[str, str]) -> None:
        if not self.path_fields:
            return
        path_data: dict[str, Any] = {}
        for path_field in self.path_fields:
            text = path_params[path_field.group]
            leaf = path_field.chain[-1]
            _place(path_data, path_field.chain, value_from_text(leaf, text, path_field.name))
        _parse_into(path_data, request, where="path")

    # -- response --------------------------------------------------------------

    def render(self, response: message.Message) -> Any:
        """The JSON value of an answer: the whole message or its ``response_body``."""
        field = self.response_field
        if field is None:
            return to_json(response)
        if field.type == FD.TYPE_MESSAGE and not is_repeated(field):
            return to_json(getattr(response, field.name))
        return to_json(response).get(field.name)


def to_json(msg: message.Message) -> Any:
    """Proto JSON with proto field names, zero values printed, safe int64 as numbers."""
    result: Any = json_format.MessageToDict(
        msg,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    if type(result) is float:
        return _whole(result)
    if isinstance(result, dict | list):
        _tidy(result)
    return result


_EXACT = float(2**53)


def _whole(value: float) -> float | int:
    return int(value) if value.is_integer() and -_EXACT <= value <= _EXACT else value


def _tidy(node: dict[str, Any] | list[Any]) -> None:
    """Print whole doubles as integers (``1``, not ``1.0``), in place.

    The C++ and Go proto JSON printers do the same; it keeps the integers of
    a JSON document that travelled through ``google.protobuf.Struct`` (whose
    numbers are doubles) integers for the client.
    """
    pairs: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in pairs:
        kind = type(value)
        if kind is float:
            if value.is_integer() and -_EXACT <= value <= _EXACT:
                node[key] = int(value)
        elif kind is dict or kind is list:
            _tidy(value)
