"""Python client of the dtpoc API (REST through the gateway, or gRPC).

    from dtpoc_client import Client

    with Client("http://127.0.0.1:8000", token) as client:
        uploaded = client.files.upload("input.xlsx")
        launched = client.services.launch({...})  # the REST launch body's shape
        for status in client.services.watch(launched.id):
            print(status.phase)

Answers are the generated messages of ``dtpoc`` (libs/api); refusals raise
:class:`dtpoc_client.errors.ApiError` subclasses with the server's code and
message.

The names below are imported on first use (PEP 562), so ``dtpoc_client.cli``
can prepare its start-up before the HTTP stack loads, and reading
``__version__`` costs the package metadata lookup only when asked.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dtpoc_client.client import Client
    from dtpoc_client.errors import ApiError, DtpocError

    __version__: str

__all__ = ["ApiError", "Client", "DtpocError", "__version__"]

_LAZY = {
    "Client": "dtpoc_client.client",
    "ApiError": "dtpoc_client.errors",
    "DtpocError": "dtpoc_client.errors",
}


def version() -> str:
    """The installed client's version (its package metadata)."""
    from importlib import metadata

    try:
        return metadata.version("dtpoc-client")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return version()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dtpoc_client' has no attribute {name!r}")
