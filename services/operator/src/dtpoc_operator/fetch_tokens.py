"""Fetch tokens for replicas' input fetchers (format: :mod:`dtpoc_common.grpcauth`).

The fetcher runs inside a replica's pod, next to an image the platform does
not trust, so it gets no component token: it gets a token that reads exactly
the files its service mounts, signed with a key the operator shares with
Files, valid for a while. A leaked one reads only files the replica is given
anyway.

How long it is valid differs by runtime because of who starts the fetcher:

- local: the supervisor fetches right after the operator starts it, so the
  token is minted per replica start and lives ``ttl`` seconds from then, at
  most :data:`START_TTL_SECONDS`;
- Kubernetes: the token sits in a pod template that controllers instantiate
  later (retries, CronJob runs, a Deployment's new pods). Its expiry is the
  end of the next ``ttl``-long window (between ``ttl`` and ``2 * ttl`` from
  now), so the template is the same between reconciles and changes once per
  window: CronJobs and Deployments are updated with a fresh token (a
  Deployment rolls its pods then), a Job's template is fixed at creation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dtpoc_common import grpcauth

#: Longest life of a local replica's token: its supervisor fetches at once.
START_TTL_SECONDS = 900.0


@dataclass(frozen=True)
class FetchTokens:
    """Mints fetch tokens with the operator's key."""

    key: bytes
    ttl_seconds: float
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_file(cls, path: Path | None, *, ttl_seconds: float) -> FetchTokens | None:
        """The minter of the key in ``path``; None when no key file is set."""
        if path is None:
            return None
        return cls(key=grpcauth.read_key(path), ttl_seconds=ttl_seconds)

    def for_start(self, service_id: str, file_ids: Iterable[str]) -> str:
        """A token for a fetch starting now (local runtime)."""
        return grpcauth.mint_fetch_token(
            self.key,
            service_id=service_id,
            file_ids=file_ids,
            expires_at=self.clock() + min(self.ttl_seconds, START_TTL_SECONDS),
        )

    def for_template(self, service_id: str, file_ids: Iterable[str]) -> str:
        """A token for a pod template: the same all through one window (module docs)."""
        window = int(self.ttl_seconds) or 1
        expires_at = (int(self.clock()) // window + 2) * window
        return grpcauth.mint_fetch_token(
            self.key, service_id=service_id, file_ids=file_ids, expires_at=expires_at
        )
