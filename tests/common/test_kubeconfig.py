"""One kubeconfig loader for orchestrator and operator: setting, $KUBECONFIG, in-cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dtpoc_common import kubeconfig

_CONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:{port}"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _kubeconfig(folder: Path, port: int) -> Path:
    path = folder / f"config-{port}"
    path.write_text(_CONFIG.replace("{port}", str(port)))
    return path


def _host(explicit: str | Path | None) -> str:
    configuration = asyncio.run(kubeconfig.load_configuration(explicit, setting="DTPOC_X"))
    return str(configuration.host)


def test_the_setting_wins_over_kubeconfig_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, 1111)))
    assert _host(_kubeconfig(tmp_path, 2222)) == "https://127.0.0.1:2222"


def test_without_the_setting_the_first_file_of_kubeconfig_env_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _kubeconfig(tmp_path, 3333), _kubeconfig(tmp_path, 4444)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert _host("") == "https://127.0.0.1:3333"
    assert _host(None) == "https://127.0.0.1:3333"


def test_a_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(
        kubeconfig.ConfigurationError, match=f"the kubeconfig {tmp_path}/absent does"
    ):
        _host(None)


def test_outside_a_cluster_without_any_file_the_message_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(kubeconfig.ConfigurationError) as raised:
        asyncio.run(kubeconfig.load_configuration(None, setting="DTPOC_X", hint="use Y"))
    message = str(raised.value)
    assert "in-cluster service account" in message
    assert "DTPOC_X or $KUBECONFIG, or use Y" in message
