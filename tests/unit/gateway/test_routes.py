"""Routes come from the descriptors: every annotated method, nothing by hand.

The expected routes are read here straight from ``descriptors.binpb``
(independently of the gateway's own reader), and a service that exists only
in the tests (``tests/gateway/synthetic.py``) gets working routes — path
templates with multi-segment variables and custom verbs, ``body`` naming a
field, additional bindings, a custom success code, query parameters of
every kind — with no gateway change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from dtpoc_gateway import app, pathtemplate, settings
from tests.gateway import synthetic
from tests.gateway.helpers import PREFIX, declared_bindings, project_bindings


def concrete(path: str) -> str:
    """A request path for a template: every variable filled with a harmless value."""
    return re.sub(r"\{[^}=]+(=[^}]*)?\}", lambda m: "shelves/x" if m.group(1) else "0", path)


def test_the_project_declares_the_contract_paths() -> None:
    bindings = project_bindings()
    assert ("POST", f"{PREFIX}/service/launch") in bindings
    assert ("GET", f"{PREFIX}/service/") in bindings and ("GET", f"{PREFIX}/service") in bindings
    assert len(bindings) >= 15


def test_every_binding_is_routed_with_and_without_the_prefix(api: httpx.Client) -> None:
    for verb, path in sorted(project_bindings()):
        for variant in (path, path.removeprefix(PREFIX)):
            answer = api.request(verb, concrete(variant))
            problem = f"{verb} {variant} -> {answer.status_code} {answer.text[:200]}"
            assert answer.status_code not in (404, 405) or answer.json()["message"] not in (
                "no route matches this path",
                "method not allowed on this path",
            ), problem


def test_unknown_paths_and_verbs_answer_in_the_error_shape(api: httpx.Client) -> None:
    missing = api.get(f"{PREFIX}/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["status"] == "NOT_FOUND"
    wrong_verb = api.put(f"{PREFIX}/service/launch")
    assert wrong_verb.status_code == 405
    assert "POST" in wrong_verb.headers["allow"]
    assert wrong_verb.json()["code"] == 405


def test_literal_segments_win_over_variables(api: httpx.Client) -> None:
    # POST /files/upload must not be taken by a {file_id} route, whatever the order.
    answer = api.post(f"{PREFIX}/files/upload", files={"file": ("a.txt", b"x")})
    assert answer.status_code == 503  # the upload route, whose backend this gateway lacks
    assert "FilesService" in answer.json()["message"]


# -- a service the gateway has never heard of ----------------------------------------


@pytest.fixture(scope="module")
def shelves(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[synthetic.ShelfDouble, TestClient]]:
    """The gateway in-process on a descriptor set holding a service of the tests only."""
    double = synthetic.ShelfDouble()
    folder = tmp_path_factory.mktemp("shelves")
    config = settings.GatewaySettings(
        backends={synthetic.SERVICE: double.address},
        descriptor_set=synthetic.write_descriptor_set(folder),
        auth_disabled=True,
        grpc_token_file=None,
    )
    try:
        with TestClient(app.build(config)) as client:
            yield double, client
    finally:
        double.stop()


def test_a_new_annotated_rpc_gets_its_routes(
    shelves: tuple[synthetic.ShelfDouble, TestClient],
) -> None:
    _double, client = shelves
    bindings = declared_bindings(synthetic.descriptor_set()) - project_bindings()
    assert len(bindings) == 3
    for verb, path in bindings:
        answer = client.request(verb, concrete(path), json={})
        assert answer.status_code in (200, 201), f"{verb} {path}: {answer.text}"


def test_query_parameters_of_every_kind(shelves: tuple[synthetic.ShelfDouble, TestClient]) -> None:
    double, client = shelves
    query = [
        ("tags", "a"),
        ("tags", "b"),
        ("filter.min", "3"),
        ("filter.label", "x y"),
        ("big", "5000000000"),
        ("flag", "true"),
        ("kind", "KIND_BOOK"),
        ("since", "2024-01-02T03:04:05Z"),
        ("limit", "0"),
        ("ratio", "0.5"),
    ]
    answer = client.get(f"{PREFIX}/testonly/shelves/s1:search", params=query)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "shelves/s1",
        "tags": ["a", "b"],
        "filter": {"min": 3, "label": "x y"},
        "big": 5000000000,
        "flag": True,
        "kind": "KIND_BOOK",
        "since": "2024-01-02T03:04:05Z",
        "limit": 0,
        "ratio": 0.5,
        "books": [{"title": "Small", "pages": 12}, {"title": "Huge", "pages": 5000000000}],
    }
    request = double.received[-1]
    assert request.HasField("limit") and request.limit == 0  # optional: presence kept


def test_zero_values_are_printed_and_optional_unset_is_not(
    shelves: tuple[synthetic.ShelfDouble, TestClient],
) -> None:
    _double, client = shelves
    answer = client.get("/testonly/shelves/empty:search")
    assert answer.status_code == 200
    body = answer.json()
    assert body["tags"] == [] and body["big"] == 0 and body["flag"] is False
    assert body["kind"] == "KIND_UNSPECIFIED" and body["ratio"] == 0
    assert "limit" not in body  # proto3 optional, unset: no presence, not printed


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"filter.min": "three"}, "filter.min"),
        ({"flag": "maybe"}, "flag"),
        ({"kind": "KIND_CAR"}, "kind"),
        ({"big": "1.5"}, "big"),
        ({"nope": "1"}, "nope"),
        ({"filter.nope": "1"}, "filter.nope"),
        ({"name": "shelves/other"}, "name"),  # bound by the path: not a query parameter
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_query_parameters_name_the_field(
    shelves: tuple[synthetic.ShelfDouble, TestClient], query: dict[str, str], field: str
) -> None:
    _double, client = shelves
    answer = client.get(f"{PREFIX}/testonly/shelves/s1:search", params=query)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert field in body["message"]
    assert body["status"] == "INVALID_ARGUMENT"


def test_body_field_nested_path_variable_and_success_code(
    shelves: tuple[synthetic.ShelfDouble, TestClient],
) -> None:
    double, client = shelves
    created = client.post(
        f"{PREFIX}/testonly/shelves/s2/books", json={"title": "Dune", "pages": "412"}
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"title": "shelves/s2/Dune", "pages": 412}

    # Additional binding: another verb, and {book.title} set from the path over the body.
    replaced = client.put(
        f"{PREFIX}/testonly/shelves/s2/books/Emma", json={"title": "ignored", "pages": 3}
    )
    assert replaced.status_code == 201, replaced.text
    assert replaced.json() == {"title": "shelves/s2/Emma", "pages": 3}
    assert double.received[-1].book.title == "Emma"

    # body: "book" means the body is the Book itself; a CreateBookRequest field is unknown.
    wrong = client.post(f"{PREFIX}/testonly/shelves/s2/books", json={"book": {}})
    assert wrong.status_code == 400
    assert "book" in wrong.json()["message"]


def test_multi_segment_variables_do_not_match_other_shapes(
    shelves: tuple[synthetic.ShelfDouble, TestClient],
) -> None:
    _double, client = shelves
    assert client.get(f"{PREFIX}/testonly/racks/s1:search").status_code == 404
    assert client.get(f"{PREFIX}/testonly/shelves/a/b:search").status_code == 404


# -- path templates ------------------------------------------------------------------


def test_path_template_parsing() -> None:
    template = pathtemplate.parse("/v1/{name=shelves/*/books/*}:publish")
    assert template.verb == "publish"
    assert template.regex.match("/v1/shelves/a/books/b:publish")
    assert not template.regex.match("/v1/shelves/a:publish")
    match = template.regex.match("/v1/shelves/a/books/b:publish")
    assert match is not None and match.group("p0") == "shelves/a/books/b"

    trailing = pathtemplate.parse("/service/")
    assert trailing.regex.match("/service/") and not trailing.regex.match("/service")

    rest = pathtemplate.parse("/files/{path=**}")
    assert rest.regex.match("/files/a/b/c")

    nested = pathtemplate.parse("/b/{book.title}")
    assert nested.variables[0].field_path == "book.title"


@pytest.mark.parametrize(
    "bad", ["no-slash", "/a/{x", "/a/{x}}", "/a/{1x}", "/a//b", "/a/{x}/{x}", "/a/{x={y}}"]
)
def test_malformed_templates_are_refused(bad: str) -> None:
    with pytest.raises(pathtemplate.TemplateError):
        pathtemplate.parse(bad)


def test_specificity_puts_literals_first() -> None:
    paths = ["/files/{file_id}", "/files/upload", "/files/{file_id}/info", "/files"]
    ordered = sorted(paths, key=lambda p: pathtemplate.parse(p).specificity())
    assert ordered.index("/files/upload") < ordered.index("/files/{file_id}")
