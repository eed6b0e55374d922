"""A proto service that exists only in the tests, to show routes come from descriptors.

:func:`descriptor_set` returns the project's FileDescriptorSet plus one more
file, ``dtpoc/testonly/v1/shelf.proto``, declaring ``ShelfService`` with
``google.api.http`` rules the real protos do not use: a multi-segment
variable (``{name=shelves/*}``), a custom verb (``:search``), ``body`` naming
one field, a nested path variable (``{book.title}``), ``additional_bindings``
with another verb and ``http_success_code`` 201. Its request carries
repeated scalars, a nested message, an enum, int64, bool, a Timestamp and
a proto3 ``optional`` field for the query-string mapping.

:class:`ShelfDouble` serves it (a test double built from the same
descriptors with ``grpc.method_handlers_generic_handler``): ``Search`` echoes
its request (the response has the same field numbers) plus two books,
``CreateBook`` echoes the book it got, prefixing the title with the shelf.
The gateway has no code for any of it.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import dtpoc
from dtpoc.api.v1alpha1 import options_pb2
from dtpoc_common.vocabulary import API_PREFIX as PREFIX

FD = descriptor_pb2.FieldDescriptorProto
PACKAGE = "dtpoc.testonly.v1"
SERVICE = f"{PACKAGE}.ShelfService"
FILE_NAME = "dtpoc/testonly/v1/shelf.proto"


def _field(
    name: str,
    number: int,
    kind: int,
    *,
    type_name: str = "",
    repeated: bool = False,
    oneof_index: int | None = None,
) -> FD:
    field = FD(
        name=name,
        number=number,
        type=kind,  # type: ignore[arg-type]
        label=FD.LABEL_REPEATED if repeated else FD.LABEL_OPTIONAL,
        json_name="".join(
            part if i == 0 else part.capitalize() for i, part in enumerate(name.split("_"))
        ),
    )
    if type_name:
        field.type_name = type_name
    if oneof_index is not None:
        field.oneof_index = oneof_index
        field.proto3_optional = True
    return field


def _search_fields() -> list[FD]:
    return [
        _field("name", 1, FD.TYPE_STRING),
        _field("tags", 2, FD.TYPE_STRING, repeated=True),
        _field("filter", 3, FD.TYPE_MESSAGE, type_name=f".{PACKAGE}.Filter"),
        _field("big", 4, FD.TYPE_INT64),
        _field("flag", 5, FD.TYPE_BOOL),
        _field("kind", 6, FD.TYPE_ENUM, type_name=f".{PACKAGE}.Kind"),
        _field("since", 7, FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"),
        _field("limit", 8, FD.TYPE_INT32, oneof_index=0),
        _field("ratio", 9, FD.TYPE_DOUBLE),
    ]


def shelf_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME,
        package=PACKAGE,
        syntax="proto3",
        dependency=[
            "dtpoc/api/v1alpha1/options.proto",
            "google/api/annotations.proto",
            "google/protobuf/timestamp.proto",
        ],
    )
    file.enum_type.add(name="Kind").value.extend(
        [
            descriptor_pb2.EnumValueDescriptorProto(name="KIND_UNSPECIFIED", number=0),
            descriptor_pb2.EnumValueDescriptorProto(name="KIND_BOOK", number=1),
        ]
    )
    file.message_type.add(name="Filter").field.extend(
        [_field("min", 1, FD.TYPE_INT32), _field("label", 2, FD.TYPE_STRING)]
    )
    file.message_type.add(name="Book").field.extend(
        [_field("title", 1, FD.TYPE_STRING), _field("pages", 2, FD.TYPE_INT64)]
    )
    search = file.message_type.add(name="SearchRequest")
    search.field.extend(_search_fields())
    search.oneof_decl.add(name="_limit")
    answer = file.message_type.add(name="SearchResponse")
    answer.field.extend(_search_fields())
    answer.field.append(
        _field("books", 10, FD.TYPE_MESSAGE, type_name=f".{PACKAGE}.Book", repeated=True)
    )
    answer.oneof_decl.add(name="_limit")
    file.message_type.add(name="CreateBookRequest").field.extend(
        [
            _field("shelf", 1, FD.TYPE_STRING),
            _field("book", 2, FD.TYPE_MESSAGE, type_name=f".{PACKAGE}.Book"),
        ]
    )
    service = file.service.add(name="ShelfService")

    search_method = service.method.add(
        name="Search",
        input_type=f".{PACKAGE}.SearchRequest",
        output_type=f".{PACKAGE}.SearchResponse",
    )
    search_method.options.Extensions[annotations_pb2.http].CopyFrom(
        http_pb2.HttpRule(get=f"{PREFIX}/testonly/{{name=shelves/*}}:search")
    )
    create = service.method.add(
        name="CreateBook",
        input_type=f".{PACKAGE}.CreateBookRequest",
        output_type=f".{PACKAGE}.Book",
    )
    rule = http_pb2.HttpRule(post=f"{PREFIX}/testonly/{{shelf=shelves/*}}/books", body="book")
    rule.additional_bindings.add(
        put=f"{PREFIX}/testonly/{{shelf=shelves/*}}/books/{{book.title}}", body="book"
    )
    create.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    create.options.Extensions[options_pb2.http_success_code] = 201
    # Leading comments, as protoc keeps them with --include_source_info.
    info = file.source_code_info
    info.location.add(path=[6, 0], leading_comments=" Shelves of books, for tests only.\n")
    info.location.add(path=[6, 0, 2, 0], leading_comments=" Searches a shelf.\n")
    info.location.add(path=[4, 2, 2, 1], leading_comments=" Tags to match, any of them.\n")
    return file


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    data = (Path(dtpoc.__file__).parent / "descriptors.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    files.file.append(shelf_file())
    return files


def write_descriptor_set(folder: Path) -> Path:
    path = folder / "with-shelves.binpb"
    path.write_bytes(descriptor_set().SerializeToString())
    return path


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(FILE_NAME)
    except KeyError:
        stripped = shelf_file()
        stripped.ClearField("source_code_info")
        pool.Add(stripped)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in ("SearchRequest", "SearchResponse", "CreateBookRequest", "Book")
    }


class ShelfDouble:
    """Serves ShelfService on a free loopback port (module docstring)."""

    def __init__(self) -> None:
        self.classes = _classes()
        self.received: list[Any] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "Search": grpc.unary_unary_rpc_method_handler(
                self.search,
                request_deserializer=self.classes["SearchRequest"].FromString,
                response_serializer=self.classes["SearchResponse"].SerializeToString,
            ),
            "CreateBook": grpc.unary_unary_rpc_method_handler(
                self.create_book,
                request_deserializer=self.classes["CreateBookRequest"].FromString,
                response_serializer=self.classes["Book"].SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def search(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.received.append(request)
        answer = self.classes["SearchResponse"].FromString(request.SerializeToString())
        answer.books.add(title="Small", pages=12)
        answer.books.add(title="Huge", pages=5_000_000_000)
        return answer

    def create_book(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.received.append(request)
        return self.classes["Book"](
            title=f"{request.shelf}/{request.book.title}", pages=request.book.pages
        )

    def stop(self) -> None:
        self.server.stop(grace=None)
