"""The OpenAPI 3.0 document, generated from the same descriptors as the routes.

Paths, parameters and schemas come from the bindings and messages; proto
comments become summaries and descriptions, so the document cannot drift
from what the gateway serves. OpenAPI 3.0.3 rather than 3.1 because the
bundled Swagger UI (4.x) renders 3.0. Prefix-less twins are served but not
listed (the description says so). Schemas describe the JSON the gateway
speaks: proto field names, 64-bit integers as numbers, well-known types in
their proto JSON form.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor

from dtpoc_gateway import catalog, routes, transcode

FD = descriptor.FieldDescriptor
MAX_QUERY_DEPTH = 3
ERROR_REF = {"$ref": "#/components/schemas/Error"}

_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_INT64: {"type": "integer", "format": "int64"},
    FD.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FD.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FD.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "nullable": True},
    "google.protobuf.Int64Value": {"type": "integer", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "integer", "format": "int64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer. `code` is the HTTP status, `status` the gRPC code name.",
    "properties": {
        "code": {"type": "integer", "description": "The HTTP status code."},
        "status": {"type": "string", "description": "The gRPC status code name, e.g. NOT_FOUND."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "details": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "google.rpc detail messages in proto JSON (e.g. BadRequest).",
        },
        "detail": {"type": "string", "description": "Same as `message`, for clients of v0."},
    },
    "required": ["code", "status", "message", "details"],
}

UPLOAD_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file_id": {"type": "string", "description": "Id of the stored file."},
        "filename": {"type": "string", "description": "Name of the stored file."},
        "message": {
            "type": "string",
            "description": "`File already exists` when identical content was stored before.",
        },
    },
    "required": ["file_id", "filename"],
}

DESCRIPTION = """\
REST surface of dtpoc, transcoded to gRPC from the protos' `google.api.http` rules.

* Authentication: `Authorization: Bearer <token>` on every path except health,
  readiness and these docs. A missing or wrong token answers 401.
* JSON uses the proto field names (`active_runs`), prints zero values, and writes
  64-bit integers as numbers (quoted only above 2^53, where a double would round them).
* Errors answer `{"code", "status", "message", "details"}` with the HTTP status mapped
  from the gRPC code (google.rpc mapping; FAILED_PRECONDITION is 400, ABORTED and
  ALREADY_EXISTS 409, RESOURCE_EXHAUSTED 413 for uploads else 429).
* Every path below is also answered without the `{prefix}` prefix, as the original API did.
* Server-streaming methods answer Server-Sent Events (`text/event-stream`), one
  `data:` JSON message per event.
"""


class _Builder:
    def __init__(self, cat: catalog.Catalog) -> None:
        self.catalog = cat
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    # -- schemas -----------------------------------------------------------------

    def message_ref(self, message: descriptor.Descriptor) -> dict[str, Any]:
        known = _WELL_KNOWN.get(message.full_name)
        if known is not None:
            return dict(known)
        name = message.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursion stops here
            self.schemas[name] = self.message_schema(message)
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(self, message: descriptor.Descriptor) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in message.fields:
            properties[field.name] = self.field_schema(field)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        text = self.catalog.comment(message.full_name)
        if text:
            schema["description"] = text
        return schema

    def value_schema(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        if field.type == FD.TYPE_MESSAGE:
            return self.message_ref(transcode.message_type(field))
        if field.type == FD.TYPE_ENUM:
            return {"type": "string", "enum": [v.name for v in transcode.enum_type(field).values]}
        return dict(_SCALARS.get(field.type, {"type": "string"}))

    def field_schema(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        if transcode.is_map(field):
            value_field = transcode.message_type(field).fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.value_schema(value_field),
            }
        elif transcode.is_repeated(field):
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = self.value_schema(field)
            if field.has_presence and "$ref" not in schema:
                schema["nullable"] = True
        text = self.catalog.comment(field.full_name)
        if "$ref" in schema:
            # OpenAPI 3.0 ignores siblings of $ref: wrap to keep the description.
            schema = {"allOf": [schema], "nullable": True}
        if text:
            schema["description"] = text
        return schema

    # -- operations --------------------------------------------------------------

    def query_parameters(
        self,
        transcoder: transcode.Transcoder,
        message: descriptor.Descriptor,
        *,
        of_request: bool = True,
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def walk(msg: descriptor.Descriptor, prefix: str, depth: int) -> None:
            for field in msg.fields:
                name = prefix + field.name
                if transcode.text_settable(field):
                    if of_request and transcoder.query_field(name) is None:
                        continue
                    schema = self.field_schema(field)
                    description = schema.pop("description", "")
                    parameter: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
                    if transcode.is_repeated(field):
                        parameter["style"] = "form"
                        parameter["explode"] = True
                    if description:
                        parameter["description"] = description
                    found.append(parameter)
                elif (
                    field.type == FD.TYPE_MESSAGE
                    and not transcode.is_repeated(field)
                    and not transcode.message_type(field).full_name.startswith("google.protobuf.")
                    and depth < MAX_QUERY_DEPTH
                ):
                    walk(transcode.message_type(field), name + ".", depth + 1)

        walk(message, "", 0)
        return found

    def operation(self, built: routes.BuiltRoute, operation_id: str) -> dict[str, Any]:
        ctx = built.ctx
        method = ctx.method
        transcoder = ctx.transcoder
        text = self.catalog.comment(method.full_name)
        summary = text.split("\n\n", 1)[0].replace("\n", " ").split(". ")[0].rstrip(".")
        op: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [method.service.name],
            "summary": summary or method.descriptor.name,
            "description": f"{text}\n\ngRPC: `{method.grpc_path}`".strip(),
        }
        parameters: list[dict[str, Any]] = []
        for path_field in transcoder.path_fields:
            schema = self.field_schema(path_field.chain[-1])
            description = schema.pop("description", "")
            schema.pop("nullable", None)
            parameter = {
                "name": path_field.name,
                "in": "path",
                "required": True,
                "schema": schema,
            }
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        handler = method.stream_handler
        if handler == "multipart_upload":
            header_message = next(
                transcode.message_type(f)
                for f in method.descriptor.input_type.fields
                if f.type == FD.TYPE_MESSAGE
            )
            parameters += [
                p
                for p in self.query_parameters(transcoder, header_message, of_request=False)
                if p["name"] not in ("filename", "content_type")
            ]
        else:
            parameters += self.query_parameters(transcoder, method.descriptor.input_type)
        if handler == "byte_download":
            parameters.append(
                {
                    "name": "Range",
                    "in": "header",
                    "schema": {"type": "string", "example": "bytes=0-1023"},
                    "description": "One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).",
                }
            )
        if parameters:
            op["parameters"] = parameters
        request_body = self.request_body(ctx)
        if request_body:
            op["requestBody"] = request_body
        op["responses"] = self.responses(ctx)
        return op

    def request_body(self, ctx: Any) -> dict[str, Any] | None:
        method = ctx.method
        if method.stream_handler == "multipart_upload":
            return {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    }
                },
            }
        body = ctx.binding.body
        if not body:
            return None
        if body == "*":
            schema = self.message_ref(method.descriptor.input_type)
        else:
            schema = self.field_schema(method.descriptor.input_type.fields_by_name[body])
        return {"required": body == "*", "content": {"application/json": {"schema": schema}}}

    def text_stream_answer(self, method: Any) -> dict[str, Any]:
        return {
            "description": "`text/plain`: the text of every message; with `follow=true`, "
            "Server-Sent Events whose `data` is one JSON message each.",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": self.message_ref(method.descriptor.output_type)},
            },
        }

    def responses(self, ctx: Any) -> dict[str, Any]:
        method = ctx.method
        success = str(method.success_code)
        errors = {
            "default": {
                "description": "An error (mapped from the gRPC status).",
                "content": {"application/json": {"schema": ERROR_REF}},
            }
        }
        if method.stream_handler == "byte_download":
            binary = {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
            return {
                "200": {"description": "The file's bytes.", "content": binary},
                "206": {"description": "The requested byte range.", "content": binary},
                "416": {
                    "description": "The range starts past the end of the file.",
                    "content": {"application/json": {"schema": ERROR_REF}},
                },
                **errors,
            }
        if method.stream_handler == "text_stream":
            return {success: self.text_stream_answer(method), **errors}
        if method.stream_handler == "multipart_upload":
            return {
                success: {
                    "description": "The stored file.",
                    "content": {"application/json": {"schema": UPLOAD_ANSWER}},
                },
                "413": {
                    "description": "The upload exceeds the size limit.",
                    "content": {"application/json": {"schema": ERROR_REF}},
                },
                **errors,
            }
        transcoder = ctx.transcoder
        if transcoder.response_field is not None:
            schema = self.field_schema(transcoder.response_field)
            schema.pop("nullable", None)
        else:
            schema = self.message_ref(method.descriptor.output_type)
        if method.server_streaming:
            return {
                success: {
                    "description": "Server-Sent Events; each event's `data` is one JSON message "
                    "of the schema below (an `error` event carries an Error).",
                    "content": {"text/event-stream": {"schema": schema}},
                },
                **errors,
            }
        return {
            success: {
                "description": "Success.",
                "content": {"application/json": {"schema": schema}},
            },
            **errors,
        }


def document(
    built: list[routes.BuiltRoute],
    cat: catalog.Catalog,
    *,
    prefix: str,
    open_paths: Any,
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole OpenAPI document."""
    builder = _Builder(cat)
    paths: dict[str, Any] = {}
    for item in built:
        if not item.documented:
            continue
        ctx = item.ctx
        path = ctx.template.openapi_path()
        verb = ctx.binding.verb.lower()
        suffix = f"_{ctx.binding.index}" if ctx.binding.index else ""
        operation_id = f"{ctx.method.service.name}_{ctx.method.descriptor.name}{suffix}"
        op = builder.operation(item, operation_id)
        if ctx.template.source in open_paths:
            op["security"] = []
        paths.setdefault(path, {})[verb] = op
    for path, item_spec in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(item_spec)
    tags = [
        {"name": name.rsplit(".", 1)[-1], "description": cat.comment(name)}
        for name in cat.services()
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dtpoc API",
            "version": "v1alpha1",
            "description": DESCRIPTION.replace("{prefix}", prefix),
        },
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
