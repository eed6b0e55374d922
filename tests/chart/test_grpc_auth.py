"""The chart's gRPC credentials: each component presents its own token, each server
mounts only the tokens of the callers it accepts, and only Files and the operator
hold the fetch-token key."""

from __future__ import annotations

from typing import Any

from tests.chart import chart

MOUNT_ROOT = "/var/run/dtpoc/"

#: component -> (callers whose tokens it mounts, whether it holds the fetch key)
EXPECTED = {
    "files": ({"gateway", "orchestrator", "operator"}, True),
    "orchestrator": ({"gateway", "files"}, False),
    "gateway": (set(), False),
    "operator": (set(), True),
}


def _grpc_volumes(rendered: chart.Rendered, component: str) -> dict[str, list[dict[str, Any]]]:
    pod = chart.pod_spec(rendered.named("Deployment", f"dtpoc-{component}"))
    return {
        v["name"]: [s["secret"] for s in v["projected"]["sources"]]
        for v in pod["volumes"]
        if v["name"].startswith("grpc-")
    }


def _env(rendered: chart.Rendered, component: str) -> dict[str, str]:
    (container,) = chart.containers(rendered.named("Deployment", f"dtpoc-{component}"))
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_each_component_gets_its_own_token_and_only_its_callers_tokens() -> None:
    rendered = chart.render()
    for component, (callers, fetch_key) in EXPECTED.items():
        volumes = _grpc_volumes(rendered, component)
        assert volumes["grpc-token"] == [
            {"name": f"dtpoc-grpc-{component}", "items": [{"key": "token", "path": "token"}]}
        ], component
        mounted = {item["path"] for s in volumes.get("grpc-callers", []) for item in s["items"]}
        assert mounted == callers, component
        assert ("grpc-fetch-key" in volumes) == fetch_key, component
        env = _env(rendered, component)
        prefix = f"DTPOC_{component.upper()}"
        assert env[f"{prefix}_GRPC_TOKEN_FILE"] == f"{MOUNT_ROOT}grpc-token/token"
        assert (f"{prefix}_CALLER_TOKENS_DIR" in env) == bool(callers), component
        assert (f"{prefix}_FETCH_KEY_FILE" in env) == fetch_key, component
        # Paths only: no token value ever sits in the environment.
        generated = {v for v in rendered.secret_values().values() if len(v) >= 24}
        assert not set(env.values()) & generated, component


def test_analytics_workloads_and_data_stack_mount_no_grpc_credential() -> None:
    rendered = chart.render()
    holders = {
        w["metadata"]["name"]
        for w in rendered.workloads()
        for v in chart.pod_spec(w).get("volumes") or []
        for s in (v.get("projected") or {}).get("sources") or []
        if "grpc" in (s.get("secret") or {}).get("name", "")
    }
    assert holders == {f"dtpoc-{c}" for c in EXPECTED}


def test_generated_tokens_are_random_distinct_and_new_per_install() -> None:
    first, second = chart.render().secret_values(), chart.render().secret_values()
    tokens = {k: v for k, v in first.items() if k[0].startswith("dtpoc-grpc-")}
    assert set(tokens) == {
        *((f"dtpoc-grpc-{c}", "token") for c in EXPECTED),
        ("dtpoc-grpc-fetch-key", "key"),
    }
    assert len(set(tokens.values())) == len(tokens)
    for key, value in tokens.items():
        assert len(value) >= 48 and value.isalnum(), key
        assert second[key] != value, key


def test_an_existing_secret_replaces_the_generated_ones() -> None:
    rendered = chart.render(sets=["secrets.grpcExistingSecret=platform-grpc"])
    assert not [s for s in rendered.of_kind("Secret") if "grpc" in s["metadata"]["name"]]
    volumes = _grpc_volumes(rendered, "files")
    assert volumes["grpc-token"] == [
        {"name": "platform-grpc", "items": [{"key": "files", "path": "token"}]}
    ]
    assert {(s["name"], s["items"][0]["key"]) for s in volumes["grpc-callers"]} == {
        ("platform-grpc", "gateway"),
        ("platform-grpc", "orchestrator"),
        ("platform-grpc", "operator"),
    }
    assert volumes["grpc-fetch-key"] == [
        {"name": "platform-grpc", "items": [{"key": "fetch-key", "path": "key"}]}
    ]
