"""The one way a dtpoc process finds its Kubernetes credentials.

In order: the kubeconfig file a setting names, else the first file of
``$KUBECONFIG`` (as kubectl reads it), else the pod's service account. A
process that finds none of them stops at start with a message naming what
it tried, rather than failing on its first call to the cluster.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kubernetes_asyncio import client, config


class ConfigurationError(RuntimeError):
    """No usable Kubernetes configuration: the process cannot start."""


def kubeconfig_path(explicit: str | Path | None) -> Path | None:
    """The kubeconfig file to read: ``explicit``, else ``$KUBECONFIG``'s first, else none."""
    chosen = str(explicit) if explicit else os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(chosen).expanduser() if chosen else None


async def load_configuration(
    explicit: str | Path | None, *, setting: str, hint: str = ""
) -> client.Configuration:
    """Client configuration from the first source that exists (see module docs).

    ``setting`` names the environment variable that chooses the file and
    ``hint`` adds another way out, for the message when nothing works.
    """
    configuration = client.Configuration()
    path = kubeconfig_path(explicit)
    if path is not None and not await asyncio.to_thread(path.is_file):
        raise ConfigurationError(f"the kubeconfig {path} does not exist")
    try:
        if path is not None:
            await config.load_kube_config(config_file=str(path), client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, ValueError) as exc:
        where = (
            f"the kubeconfig {path}"
            if path is not None
            else "the in-cluster service account (outside a cluster set "
            f"{setting} or $KUBECONFIG{', or ' + hint if hint else ''})"
        )
        raise ConfigurationError(
            f"cannot load a Kubernetes configuration from {where}: {exc}"
        ) from exc
    return configuration
