"""The OpenAPI document and the offline docs page, both made from the descriptors, read
from the gateway in-process. Requests generated from the document against the gateway
process (schemathesis) are in ``tests/gateway/test_openapi.py``."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.gateway.helpers import DOC_URL, PREFIX, openapi_document, project_bindings


@pytest.fixture(scope="module")
def document(api: httpx.Client) -> dict[str, Any]:
    return openapi_document(api)


def test_every_binding_is_documented(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.0.3"
    for verb, path in project_bindings():
        assert verb.lower() in document["paths"][path], f"{verb} {path}"
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_comments_become_descriptions(document: dict[str, Any]) -> None:
    launch = document["paths"][f"{PREFIX}/service/launch"]["post"]
    assert launch["summary"].startswith("Validates a launch")
    assert "202 Accepted" in launch["description"]
    assert "/dtpoc.orchestrator.v1alpha1.OrchestratorService/LaunchService" in launch["description"]
    schemas = document["components"]["schemas"]
    service = schemas["dtpoc.orchestrator.v1alpha1.Service"]
    assert service["description"] == "A service record with its current status."
    assert service["properties"]["active_runs"]["description"] == "Replicas running now."
    assert service["properties"]["mount_files"]["type"] == "object"
    tags = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert tags["FilesService"].startswith("FilesService stores every input")


def test_operations_describe_paths_bodies_and_answers(document: dict[str, Any]) -> None:
    paths = document["paths"]
    launch = paths[f"{PREFIX}/service/launch"]["post"]
    assert "202" in launch["responses"]
    body = launch["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/dtpoc.orchestrator.v1alpha1.LaunchServiceRequest"}

    listing = paths[f"{PREFIX}/service/"]["get"]
    answer = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["type"] == "array"
    assert {p["name"] for p in listing["parameters"]} == {"skip", "limit", "status"}

    output = paths[f"{PREFIX}/service/{{id}}/output/{{idx}}"]["get"]
    idx = next(p for p in output["parameters"] if p["name"] == "idx")
    assert idx["in"] == "path" and idx["schema"]["type"] == "integer"

    length = document["components"]["schemas"]["dtpoc.files.v1alpha1.FileInfo"]["properties"]
    assert length["length"]["type"] == "integer" and length["length"]["format"] == "int64"
    assert length["uploadDate"]["type"] == "string"

    upload = paths[f"{PREFIX}/files/upload"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert "expected_sha256" in {p["name"] for p in upload.get("parameters", [])}
    download = paths[f"{PREFIX}/files/{{file_id}}"]["get"]
    assert {"200", "206", "416"} <= set(download["responses"])
    assert any(p["name"] == "Range" and p["in"] == "header" for p in download["parameters"])
    watch = paths[f"{PREFIX}/service/{{id}}/watch"]["get"]
    assert "text/event-stream" in watch["responses"]["200"]["content"]


def test_security_is_declared_and_health_is_open(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    assert document["paths"][f"{PREFIX}/healthz"]["get"]["security"] == []
    assert "security" not in document["paths"][f"{PREFIX}/service/launch"]["post"]


def test_docs_page_uses_only_local_assets(api: httpx.Client) -> None:
    page = api.get(f"{PREFIX}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(f"{PREFIX}/docs/") for s in sources), sources
    for source in sources:
        assert api.get(source).status_code == 200, source
    init = api.get(f"{PREFIX}/docs/init.js").text
    assert DOC_URL in init and "http" not in init
    # Where the original (FastAPI) served them, too.
    assert api.get("/docs").text == page.text
    assert api.get("/openapi.json").json() == api.get(DOC_URL).json()
