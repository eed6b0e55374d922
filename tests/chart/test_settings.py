"""The chart speaks the services' configuration language.

Every ``DTPOC_*`` variable the chart sets must be one the process's settings
class reads (a typo or a renamed setting would otherwise be ignored
silently: the classes use ``extra="ignore"``), and the values must pass its
validation. The settings classes are imported from the service packages
themselves, so a rename there fails here.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from tests.chart import chart

PLACEHOLDER_SECRET = "mongodb://placeholder-user:placeholder@mongodb.invalid:27017/"


def _settings_classes() -> dict[str, type[BaseSettings]]:
    from dtpoc_files.settings import FilesSettings
    from dtpoc_gateway.settings import GatewaySettings
    from dtpoc_operator.settings import OperatorSettings
    from dtpoc_orchestrator.settings import OrchestratorSettings

    return {
        "files": FilesSettings,
        "orchestrator": OrchestratorSettings,
        "gateway": GatewaySettings,
        "operator": OperatorSettings,
    }


def accepted_names(cls: type[BaseSettings]) -> set[str]:
    """Environment variable names a settings class reads."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def _chart_env(rendered: chart.Rendered, component: str) -> dict[str, str]:
    (container,) = chart.containers(rendered.named("Deployment", f"dtpoc-{component}"))
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        env[item["name"]] = item.get("value", PLACEHOLDER_SECRET)
    return env


@pytest.mark.parametrize("shape", list(chart.SHAPES))
@pytest.mark.parametrize("component", ["files", "orchestrator", "gateway", "operator"])
def test_every_dtpoc_variable_is_read_and_valid(
    shape: str, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = _settings_classes()[component]
    env = {k: v for k, v in _chart_env(chart.render(chart.SHAPES[shape]), component).items()
           if k.startswith("DTPOC_")}  # fmt: skip
    unknown = sorted(set(env) - accepted_names(cls))
    assert unknown == [], f"{cls.__name__} reads none of {unknown}"

    for name in list(os.environ):
        if name.startswith("DTPOC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings: Any = cls()
    if component != "operator":
        # Every gRPC server and the gateway listen on all interfaces of their pod.
        assert str(settings.listen).startswith("0.0.0.0:")
    else:
        assert str(settings.health_listen).startswith("0.0.0.0:")
