"""How results are printed: ``-o json|yaml`` (the API's own shapes) or ``-o table`` (people).

JSON and YAML print the REST API's JSON of the answer: proto field names,
zero values printed, 64-bit integers and whole doubles as plain numbers (the
gateway's rules, gateway/README.md), so a script reads the same document
from ``dtpoc`` as from curl. Tables are for people and may change.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from google.protobuf import descriptor, json_format, message

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from dtpoc_client import Client
    from dtpoc_client.cli.main import State

Answer = TypeVar("Answer")

FORMATS = ("table", "json", "yaml")
_INT64 = {
    descriptor.FieldDescriptor.TYPE_INT64,
    descriptor.FieldDescriptor.TYPE_UINT64,
    descriptor.FieldDescriptor.TYPE_SINT64,
    descriptor.FieldDescriptor.TYPE_FIXED64,
    descriptor.FieldDescriptor.TYPE_SFIXED64,
}
_EXACT = 2**53


def output_option(default: str = "table") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table for people; json or yaml: the API's own shape, for scripts.",
    )


def by_id(
    group: click.Group,
    name: str,
    *,
    argument: str,
    summary: str,
    fetch: Callable[[Client, str], Answer],
    view: Callable[[str, Answer], RenderableType],
    example: str = "6b0e...",
) -> click.Command:
    """``dtpoc GROUP NAME ID [-o FORMAT]``: print the answer ``fetch`` gets for the id.

    One shape for the commands that take one id (``argument`` names it in the
    help) and print one answer, so their options, help layout and output stay
    the same. ``view`` (of the id and the answer) is what the table prints; it
    runs only for the table. ``example`` is the arguments of the help's example.
    """

    @click.argument("id_", metavar=argument.upper())
    @output_option()
    @click.pass_obj
    def command(state: State, id_: str, fmt: str) -> None:
        answer = fetch(state.client(), id_)
        emit(answer, fmt, table=lambda console: console.print(view(id_, answer)))

    command.__doc__ = f"{summary}\n\n\b\nExample:\n  dtpoc {group.name} {name} {example}\n"
    return group.command(name=name)(command)


def plain(value: Any) -> Any:
    """Whole doubles as integers, recursively (the gateway prints ``1``, not ``1.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _numbers(msg: message.Message, data: dict[str, Any]) -> None:
    """64-bit integers below 2^53 as numbers, in place, as the gateway prints them."""
    for fd in msg.DESCRIPTOR.fields:
        if fd.name not in data:
            continue
        if fd.type in _INT64:
            value = data[fd.name]
            if isinstance(value, list):
                data[fd.name] = [_int(v) for v in value]
            else:
                data[fd.name] = _int(value)
        elif fd.message_type is not None and fd.message_type.full_name.startswith(
            "google.protobuf."
        ):
            continue
        elif fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            child = getattr(msg, fd.name)
            if isinstance(child, message.Message):
                _numbers(child, data[fd.name])
            else:
                for item, item_data in zip(child, data[fd.name], strict=True):
                    _numbers(item, item_data)


def _int(value: Any) -> Any:
    number = int(value)
    return number if abs(number) < _EXACT else str(number)


def to_json(value: Any) -> Any:
    """The API's JSON of a message, a list of messages, or plain data."""
    if isinstance(value, message.Message):
        data = json_format.MessageToDict(
            value, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        if isinstance(data, dict):
            _numbers(value, data)
        return plain(data)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return plain(value)


def emit(
    value: Any, fmt: str, *, table: Callable[[Console], None], console: Console | None = None
) -> None:
    """Print ``value`` as ``fmt``; ``table`` draws the people's view."""
    if fmt == "json":
        click.echo(json.dumps(to_json(value), indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        import yaml  # only here: a script's JSON run does not load it

        click.echo(yaml.safe_dump(to_json(value), sort_keys=False, allow_unicode=True), nl=False)
    else:
        from rich.console import Console  # only for people: scripts' runs start faster

        table(console or Console())


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def human_bytes(size: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(size)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def is_terminal() -> bool:
    return sys.stderr.isatty()
