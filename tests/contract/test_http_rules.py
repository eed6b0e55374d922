"""Every REST path of the original contract is declared in the protos.

The table of ``shared/seed/api-contract.md`` is the list clients rely on;
it is copied here so the test runs anywhere, and checked against the
document itself when the document is beside the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

import dtpoc
from dtpoc_common.vocabulary import API_PREFIX as PREFIX

CONTRACT = {
    ("GET", "/healthz"),
    ("GET", "/service/"),
    ("POST", "/service/launch"),
    ("GET", "/service/{id}/status"),
    ("GET", "/service/{id}/output/{idx}"),
    ("DELETE", "/service/{id}/terminate"),
    ("GET", "/files"),
    ("POST", "/files/upload"),
    ("GET", "/files/{file_id}"),
    ("DELETE", "/files/{file_id}"),
}
CONTRACT_DOC = Path(__file__).resolve().parents[3] / "shared" / "seed" / "api-contract.md"


def declared_rules() -> set[tuple[str, str]]:
    data = (Path(dtpoc.__file__).parent / "descriptors.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    found: set[tuple[str, str]] = set()
    for file in files.file:
        if not file.package.startswith("dtpoc."):
            continue
        for service in file.service:
            for method in service.method:
                options = method.options
                # The descriptor set keeps extensions as known fields once
                # annotations_pb2 is imported.
                parsed = descriptor_pb2.MethodOptions.FromString(options.SerializeToString())
                if not parsed.HasExtension(annotations_pb2.http):
                    continue
                rule = parsed.Extensions[annotations_pb2.http]
                for binding in [rule, *rule.additional_bindings]:
                    found.add(_pair(binding))
    return found


def _pair(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    assert kind is not None
    path = getattr(rule, kind)
    assert path.startswith(PREFIX), path
    return kind.upper(), path.removeprefix(PREFIX)


def test_every_contract_path_is_declared() -> None:
    missing = CONTRACT - declared_rules()
    assert not missing, f"REST paths of the contract without a google.api.http rule: {missing}"


def test_list_answers_with_and_without_trailing_slash() -> None:
    assert {("GET", "/service/"), ("GET", "/service")} <= declared_rules()


@pytest.mark.skipif(not CONTRACT_DOC.exists(), reason="shared/seed is not beside this checkout")
def test_copied_table_matches_the_contract_document() -> None:
    rows = re.findall(r"^\| (GET|POST|DELETE|PUT|PATCH) `([^`]+)`", CONTRACT_DOC.read_text(), re.M)
    assert rows, "no rows parsed from the contract table"
    assert {(method, path) for method, path in rows} == CONTRACT
