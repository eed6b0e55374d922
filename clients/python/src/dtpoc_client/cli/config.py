"""Where the command finds its server and token: flags, environment, named contexts.

Order, first found wins: ``--server``/``--token``, ``DTPOC_SERVER``/
``DTPOC_TOKEN``, the context named by ``--context`` (or ``DTPOC_CONTEXT``, or
the file's ``current-context``), then the local platform's address. The
file is YAML in the user's config directory (``DTPOC_CONFIG`` names
another), kept owner-only because it may hold tokens:

    current-context: hospital
    contexts:
      hospital: {server: https://dtpoc.example.org, token: ...}
      local: {server: http://127.0.0.1:8000}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"
"""Where ``make run`` / ``dtpoc up`` serve the REST API."""
CONFIG_ENV = "DTPOC_CONFIG"
SERVER_ENV = "DTPOC_SERVER"
TOKEN_ENV = "DTPOC_TOKEN"  # noqa: S105 - the variable's name, not a token
CONTEXT_ENV = "DTPOC_CONTEXT"


class ConfigError(Exception):
    """The config file cannot be read or names a context that does not exist."""


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    import platformdirs  # imports here and below: a run that needs none starts faster

    return Path(platformdirs.user_config_dir("dtpoc")) / "config.yaml"


@dataclass
class Context:
    server: str
    token: str = ""


@dataclass
class Config:
    current: str = ""
    contexts: dict[str, Context] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        source = path or config_path()
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc}") from exc
        import yaml

        try:
            data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot read {source}: {exc}") from exc
        if data is None:
            return cls()
        if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
            raise ConfigError(f"{source} is not a dtpoc config (a map with 'contexts')")
        contexts = {}
        for name, entry in (data.get("contexts") or {}).items():
            if not isinstance(entry, dict) or not isinstance(entry.get("server"), str):
                raise ConfigError(f"{source}: context {name!r} needs a 'server'")
            contexts[str(name)] = Context(server=entry["server"], token=str(entry.get("token", "")))
        return cls(current=str(data.get("current-context") or ""), contexts=contexts)

    def save(self, path: Path | None = None) -> Path:
        import yaml

        target = path or config_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "current-context": self.current,
            "contexts": {
                name: {"server": c.server, **({"token": c.token} if c.token else {})}
                for name, c in sorted(self.contexts.items())
            },
        }
        partial = target.with_name(target.name + ".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=False)
        partial.replace(target)
        return target


@dataclass(frozen=True)
class Target:
    """The server and token a command uses, and where they came from."""

    server: str
    token: str
    context: str


def resolve(*, server: str | None, token: str | None, context: str | None) -> Target:
    """Flags, then environment, then the context, then the local default (module docs)."""
    config = Config.load()
    name = context or os.environ.get(CONTEXT_ENV) or config.current
    chosen = config.contexts.get(name) if name else None
    if name and chosen is None and (context or os.environ.get(CONTEXT_ENV)):
        raise ConfigError(f"no context named {name!r} in {config_path()}")
    return Target(
        server=server
        or os.environ.get(SERVER_ENV)
        or (chosen.server if chosen else "")
        or DEFAULT_SERVER,
        token=token or os.environ.get(TOKEN_ENV) or (chosen.token if chosen else ""),
        context=name if chosen else "",
    )
