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
"""

from importlib import metadata

from dtpoc_client.client import Client
from dtpoc_client.errors import ApiError, DtpocError

try:
    __version__ = metadata.version("dtpoc-client")
except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
    __version__ = "0+unknown"

__all__ = ["ApiError", "Client", "DtpocError", "__version__"]
