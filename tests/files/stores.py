"""Store-level helpers the Files tests share: what an upload through a ``FileStore`` takes.

The gRPC servicer computes the digest while the bytes arrive; a test that talks to the
store directly states it, and writes the content in pieces of its choosing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dtpoc_files import domain, ports


def digest_of(content: bytes) -> domain.Digest:
    return domain.Digest(
        sha256=hashlib.sha256(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
        length=len(content),
    )


async def store_bytes(
    store: ports.FileStore,
    content: bytes,
    *,
    filename: str = "data.bin",
    metadata: Mapping[str, Any] | None = None,
    piece_bytes: int = 64 * 1024,
) -> domain.UploadOutcome:
    """Upload ``content`` in pieces of ``piece_bytes`` and commit it as ``filename``."""
    pending = await store.begin_upload(filename=filename)
    for start in range(0, len(content), piece_bytes):
        await pending.write(content[start : start + piece_bytes])
    return await pending.commit(
        domain.VerifiedUpload(
            filename=filename, metadata=dict(metadata or {}), digest=digest_of(content)
        )
    )
