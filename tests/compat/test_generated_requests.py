"""Property-based requests from the generated OpenAPI document, against the real platform.

schemathesis turns ``/api/orchestrator/v1alpha1/openapi.json`` into request
strategies; hypothesis draws over 1,000 of them (derandomized: the same
requests on every run) across every operation and sends them through the
gateway to the real Orchestrator and Files services. No answer may be a
server error. 501 is not one here: it is the documented answer to a launch
of a ``sim`` service, which has no implementation.
"""

from __future__ import annotations

from collections import Counter

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.conftest import PREFIX

REQUESTS = 1000
SERVER_ERRORS = {500, 502, 503, 504}


def test_a_thousand_generated_requests_get_no_server_error(platform: httpx.Client) -> None:
    document = platform.get(f"{PREFIX}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Streams that last until a final phase are not for a request loop.
    operations = [op for op in operations if not op.path.endswith("/watch")]
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=REQUESTS + 100,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        kwargs = case.as_transport_kwargs(base_url=str(platform.base_url))
        headers = {
            key: value
            for key, value in (kwargs.get("headers") or {}).items()
            if key.lower() != "authorization" and value.isascii() and value.isprintable()
        }
        body = kwargs.get("data")
        request = platform.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            json=kwargs.get("json"),
            content=body if isinstance(body, bytes | str) else None,
        )
        answer = platform.send(request)
        statuses[answer.status_code] += 1
        if answer.status_code in SERVER_ERRORS or "Traceback" in answer.text:
            failures.append(
                f"{case.method} {case.formatted_path}: {answer.status_code} {answer.text}"
            )

    send()
    print(
        f"status codes of {sum(statuses.values())} generated requests: {sorted(statuses.items())}"
    )
    assert sum(statuses.values()) >= REQUESTS
    assert not failures, "\n".join(failures[:10])
    assert any(status < 400 for status in statuses), statuses
