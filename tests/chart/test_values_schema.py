"""values.schema.json is generated from values.yaml and still refuses what it refused by hand.

The schema used to be written by hand; tools/values_schema.py now derives it
from the defaults and `# @schema` lines of values.yaml. These tests hold the
checked-in file to the generator and show, through `helm template`, that a
values file breaking each kind of former constraint (a shared shape, a list
item's shape, an enum, a key the parent requires, a key no one declared, a
pattern on a map's names) is still refused with the value's path named.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.chart import chart
from tools import values_schema


def test_the_checked_in_schema_is_what_values_yaml_says() -> None:
    result = subprocess.run(
        [sys.executable, "tools/values_schema.py", "--check"],
        cwd=chart.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_defaults_satisfy_the_constraints_on_them() -> None:
    schema = json.loads((chart.CHART_DIR / "values.schema.json").read_text())
    assert schema["properties"]["image"]["properties"]["pullPolicy"]["enum"] == [
        "Always",
        "IfNotPresent",
        "Never",
    ]
    files = schema["properties"]["files"]
    assert files["additionalProperties"] is False
    assert files["required"] == ["replicas", "resources"]
    assert files["properties"]["resources"]["properties"]["limits"]["required"] == ["memory"]
    assert "ferretdb" in schema["properties"]["mongodb"]["properties"]["server"]["enum"]
    deployments = {m["metadata"]["name"] for m in chart.render().of_kind("Deployment")}
    platform = {f"dtpoc-{room}" for room in ("files", "orchestrator", "gateway", "operator")}
    assert platform <= deployments, f"helm template of the defaults rendered {sorted(deployments)}"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"files": {"resources": {"requests": {"cpu": "lots"}}}}, "/files/resources/requests/cpu"),
        ({"telegraf": {"sensors": [{"name": "a", "mqtt": {"topics": ["t"]}, "measurement": "m",
                                    "fields": [{"path": "v", "type": "double"}]}]}},
         "/telegraf/sensors/0/fields/0/type"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"telegraf": {"agent": {"interval": None}}}, "interval"),
        ({"files": {"replica": 2}}, "replica"),
        ({"gateway": {"env": {"BAD-NAME": "x"}}}, "'BAD-NAME' does not match pattern"),
        ({"mongodb": {"image": {"digest": "sha1:abc"}}}, "/mongodb/image/digest"),
        ({"commonLabels": {"team": 5}}, "/commonLabels/team"),
    ],
    ids=["shape", "list-item-shape", "enum", "required", "undeclared-key", "map-names",
         "pattern", "map-values"],
)  # fmt: skip
def test_a_values_file_breaking_a_former_constraint_is_refused(
    values: dict[str, object], named: str, tmp_path: Path
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    assert named in chart.render_error([path])


def test_an_annotation_inside_a_list_item_is_refused() -> None:
    text = "sensors:\n  - name: a\n    # @schema {minLength: 1}\n    measurement: m\n"
    with pytest.raises(values_schema.AnnotationError, match="inside a list item"):
        values_schema.Comments.read(text)


def test_a_reference_to_no_shape_is_refused() -> None:
    comments = values_schema.Comments.read("# @schema {$ref: nothing}\nport: 1\n")
    generator = values_schema.Generator(comments=comments, shapes={})
    with pytest.raises(values_schema.AnnotationError, match="no such shape"):
        generator.root({"port": 1})


def test_a_key_is_typed_by_its_default_described_by_its_comment_and_required_by_its_flag() -> None:
    text = "# How many.\n# @schema {minimum: 1, required: true}\ncount: 2\nname: x\nmap: {}\n"
    comments = values_schema.Comments.read(text)
    schema = values_schema.Generator(comments=comments, shapes={}).root(yaml.safe_load(text))
    assert schema["properties"] == {
        "count": {"type": "integer", "minimum": 1, "description": "How many."},
        "name": {"type": "string"},
        "map": {"type": "object"},
    }
    assert schema["required"] == ["count"]
    assert schema["additionalProperties"] is False
