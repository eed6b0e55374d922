"""The platform's gRPC credentials for a test run: one token per component and a fetch key.

Every server and client the fixtures start gets them (the services refuse
calls without a known caller token), and tests that call a service directly
say as whom: ``credentials().channel(address, as_=grpcauth.OPERATOR)``. The
files live in a private temporary folder made once per test process, laid
out as the chart mounts them: ``callers/<component>`` (one token each; a
server reads the whole folder) and ``fetch.key``.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from dtpoc_common import grpcauth, grpcclient


@dataclass(frozen=True)
class Credentials:
    """Where one set of tokens and key is (this test run's, or a local platform's:
    :func:`dtpoc_local.platform.ensure_credentials`), and channels that present them."""

    root: Path

    @property
    def callers_dir(self) -> Path:
        return self.root / "callers"

    @property
    def fetch_key_file(self) -> Path:
        return self.root / "fetch.key"

    def token_file(self, component: str) -> Path:
        return self.callers_dir / component

    def token(self, component: str) -> str:
        return grpcauth.read_token(self.token_file(component))

    def fetch_key(self) -> bytes:
        return grpcauth.read_key(self.fetch_key_file)

    def metadata(self, component: str = grpcauth.GATEWAY) -> tuple[tuple[str, str], ...]:
        return grpcauth.call_metadata(self.token(component))

    def server_env(self, prefix: str, component: str) -> dict[str, str]:
        """``<prefix>_CALLER_TOKENS_DIR`` and ``<prefix>_GRPC_TOKEN_FILE`` of a server."""
        return {
            f"{prefix}_CALLER_TOKENS_DIR": str(self.callers_dir),
            f"{prefix}_GRPC_TOKEN_FILE": str(self.token_file(component)),
        }

    def channel(
        self, address: str, *, as_: str | None = grpcauth.GATEWAY, **kwargs: Any
    ) -> grpc.Channel:
        """A blocking channel presenting ``as_``'s token (None: no token at all)."""
        return grpcauth.sync_channel(address, self.token(as_) if as_ else None, **kwargs)

    def aio_channel(self, address: str, *, as_: str | None = grpcauth.GATEWAY) -> grpc.aio.Channel:
        """An asyncio channel presenting ``as_``'s token (None: no token at all)."""
        return grpcclient.open_channel(address, token=self.token(as_) if as_ else None)


#: Environment variable naming the folder, so that helper processes a test
#: starts (e.g. a client to kill mid-call) use the same credentials.
ENV_ROOT = "DTPOC_TEST_CREDENTIALS_DIR"


@functools.cache
def credentials() -> Credentials:
    """This test run's credentials (made on first use, removed at exit)."""
    inherited = os.environ.get(ENV_ROOT)
    if inherited:
        return Credentials(Path(inherited))
    root = Path(tempfile.mkdtemp(prefix="dtpoc-credentials-"))
    os.environ[ENV_ROOT] = str(root)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    made = Credentials(root)
    made.callers_dir.mkdir(mode=0o700)
    for component in sorted(grpcauth.COMPONENTS):
        made.token_file(component).write_text(secrets.token_urlsafe(32) + "\n")
    made.fetch_key_file.write_text(secrets.token_urlsafe(48) + "\n")
    return made
