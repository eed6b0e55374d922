"""Per-replica seeds: replicas differ, and a run can be repeated exactly.

Replica ``i`` of a launch gets a seed derived from ``(SEED, i)`` by hashing,
not ``SEED + i``: neighbouring bases then never share streams (base 1
replica 1 and base 2 replica 0 would otherwise be the same run).
"""

from __future__ import annotations

import hashlib

SEED_BITS = 52
"""Seeds stay below 2**52: exact as JSON numbers (doubles) wherever the KPIs travel."""


def replica_seed(*, base: int, replica_index: int) -> int:
    """The seed of replica ``replica_index`` under base seed ``base`` (0 <= seed < 2**52)."""
    digest = hashlib.sha256(f"histolab:{base}:{replica_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)
