"""Shared code of tests/gateway: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx

from dtpoc_common.vocabulary import API_PREFIX

PREFIX = API_PREFIX


def abort_id(code: grpc.StatusCode) -> str:
    """A service id the double answers with ``code`` (see doubles)."""
    return f"abort-{code.name}"


def assert_error_shape(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) == {"code", "status", "message", "details", "detail"}
    assert body["code"] == status and body["detail"] == body["message"]
    assert isinstance(body["details"], list)
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    return body
