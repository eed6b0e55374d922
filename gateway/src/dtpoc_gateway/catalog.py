"""What the protos declare for REST, read from the compiled descriptor set.

The gateway learns every route from ``descriptors.binpb`` (a
FileDescriptorSet with imports and source comments) so that adding an RPC
with a ``google.api.http`` rule adds its REST route without a gateway
change. Message classes are the generated ones: each file of the set is
looked up in the default descriptor pool after importing its generated
module by protoc's naming rule (``a/b/c.proto`` -> ``a.b.c_pb2``); a file
without a generated module is added to the pool from the set itself, so the
gateway still serves it (through ``message_factory`` classes).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

from dtpoc.api.v1alpha1 import options_pb2

HTTP_VERBS = ("get", "put", "post", "delete", "patch")


class CatalogError(ValueError):
    """The descriptor set declares something the gateway cannot serve."""


@dataclass(frozen=True)
class Binding:
    """One HTTP binding (the rule itself or one of its ``additional_bindings``)."""

    verb: str
    path: str
    body: str
    response_body: str
    index: int


@dataclass(frozen=True)
class Method:
    """One RPC with everything the gateway needs to serve it over HTTP."""

    service: descriptor.ServiceDescriptor
    descriptor: descriptor.MethodDescriptor
    request_class: type[message.Message]
    response_class: type[message.Message]
    bindings: tuple[Binding, ...]
    success_code: int
    stream_handler: str

    @property
    def grpc_path(self) -> str:
        """``/package.Service/Method``, the path of the gRPC call."""
        return f"/{self.service.full_name}/{self.descriptor.name}"

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name

    @property
    def client_streaming(self) -> bool:
        return bool(self.descriptor.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.descriptor.server_streaming)


@dataclass
class Catalog:
    """Every HTTP-annotated method of the descriptor set, and its comments."""

    methods: list[Method]
    comments: dict[str, str] = field(default_factory=dict)

    def comment(self, full_name: str) -> str:
        """The leading comment of a message, field, enum, service or method."""
        return self.comments.get(full_name, "")

    def services(self) -> list[str]:
        """Full names of the services that have at least one route."""
        return sorted({m.service.full_name for m in self.methods})


def load(path: Path) -> Catalog:
    """Read a FileDescriptorSet file and collect every annotated method."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read the descriptor set {path}: {exc.strerror}") from exc
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    return from_file_set(files)


def from_file_set(files: descriptor_pb2.FileDescriptorSet) -> Catalog:
    """Collect the annotated methods of an already parsed FileDescriptorSet."""
    pool = descriptor_pool.Default()
    comments: dict[str, str] = {}
    methods: list[Method] = []
    for file_proto in files.file:
        file_descriptor = _file_in_pool(pool, file_proto)
        comments.update(_comments(file_proto))
        for service in file_descriptor.services_by_name.values():
            methods.extend(_methods(service))
    return Catalog(methods=methods, comments=comments)


def _file_in_pool(
    pool: descriptor_pool.DescriptorPool, file_proto: descriptor_pb2.FileDescriptorProto
) -> descriptor.FileDescriptor:
    try:
        return pool.FindFileByName(file_proto.name)
    except KeyError:
        pass
    module = file_proto.name.removesuffix(".proto").replace("/", ".").replace("-", "_") + "_pb2"
    try:
        importlib.import_module(module)
        return pool.FindFileByName(file_proto.name)
    except (ImportError, KeyError):
        pass
    # No generated module: serve the file from the descriptor set alone.
    stripped = descriptor_pb2.FileDescriptorProto()
    stripped.CopyFrom(file_proto)
    stripped.ClearField("source_code_info")
    pool.Add(stripped)
    return pool.FindFileByName(file_proto.name)


def _methods(service: descriptor.ServiceDescriptor) -> Iterator[Method]:
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
        bindings = tuple(
            _binding(method, one, index)
            for index, one in enumerate([rule, *rule.additional_bindings])
        )
        success_code = int(options.Extensions[options_pb2.http_success_code]) or 200
        if not 200 <= success_code <= 299:
            raise CatalogError(
                f"{method.full_name}: http_success_code must be 2xx, not {success_code}"
            )
        yield Method(
            service=service,
            descriptor=method,
            request_class=message_factory.GetMessageClass(method.input_type),
            response_class=message_factory.GetMessageClass(method.output_type),
            bindings=bindings,
            success_code=success_code,
            stream_handler=str(options.Extensions[options_pb2.http_stream_handler]),
        )


def _binding(method: descriptor.MethodDescriptor, rule: http_pb2.HttpRule, index: int) -> Binding:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise CatalogError(f"{method.full_name}: google.api.http rule without a path")
    if kind == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, path = kind.upper(), str(getattr(rule, kind))
    request = method.input_type
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise CatalogError(
            f"{method.full_name}: body {rule.body!r} is not a field of {request.full_name}"
        )
    response = method.output_type
    if rule.response_body and rule.response_body not in response.fields_by_name:
        raise CatalogError(
            f"{method.full_name}: response_body {rule.response_body!r} is not a field of "
            f"{response.full_name}"
        )
    return Binding(
        verb=verb, path=path, body=rule.body, response_body=rule.response_body, index=index
    )


def _comments(file_proto: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Leading comments by full name, from the file's source code info."""
    by_path = {
        tuple(location.path): _clean(location.leading_comments)
        for location in file_proto.source_code_info.location
        if location.leading_comments
    }
    found: dict[str, str] = {}
    prefix = f"{file_proto.package}." if file_proto.package else ""

    def add(name: str, path: tuple[int, ...]) -> None:
        text = by_path.get(path)
        if text:
            found[name] = text

    def walk_enum(
        enum: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]
    ) -> None:
        add(name, path)
        for i, value in enumerate(enum.value):
            add(f"{name}.{value.name}", (*path, 2, i))

    def walk_message(msg: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> None:
        add(name, path)
        for i, one in enumerate(msg.field):
            add(f"{name}.{one.name}", (*path, 2, i))
        for i, nested in enumerate(msg.nested_type):
            walk_message(nested, f"{name}.{nested.name}", (*path, 3, i))
        for i, enum in enumerate(msg.enum_type):
            walk_enum(enum, f"{name}.{enum.name}", (*path, 4, i))

    for i, msg in enumerate(file_proto.message_type):
        walk_message(msg, prefix + msg.name, (4, i))
    for i, enum in enumerate(file_proto.enum_type):
        walk_enum(enum, prefix + enum.name, (5, i))
    for i, service in enumerate(file_proto.service):
        add(prefix + service.name, (6, i))
        for j, method in enumerate(service.method):
            add(f"{prefix}{service.name}.{method.name}", (6, i, 2, j))
    return found


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip()
