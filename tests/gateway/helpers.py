"""Shared code of tests/gateway: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

import grpc

from dtpoc_common.vocabulary import API_PREFIX

PREFIX = API_PREFIX


def abort_id(code: grpc.StatusCode) -> str:
    """A service id the double answers with ``code`` (see doubles)."""
    return f"abort-{code.name}"
