"""Schemathesis against the server's own OpenAPI spec (/docs.json), with a secret key:
generated requests, valid (positive) and invalid (negative), across every operation; none
may get a 5xx.

The schema is loaded from the running server and driven through Hypothesis directly
(`as_strategy`): schemathesis' lazy pytest fixture integration does not run on pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.slow

EXAMPLES = 120  # per generation mode, spread over the ~10 operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_no_generated_request_gets_a_server_error(serving, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_url(serving.url + "/docs.json")
    operations = {f"{result.ok().method.upper()} {result.ok().path}"
                  for result in api.get_all_operations()}
    assert {"POST /homepage", "POST /also_bought", "POST /checkout_offer"} <= operations
    headers = {"Authorization": f"Bearer {serving.secret_key}"}
    called: set[str] = set()

    @given(case=api.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def call(case) -> None:
        response = case.call(base_url=serving.url, headers=headers, timeout=30)
        called.add(f"{case.method.upper()} {case.path}")
        assert response.status_code < 500, (f"{case.method} {case.path} {case.body!r:.300} -> "
                                             f"{response.status_code}: {response.text[:300]}")

    call()
    assert "POST /homepage" in called
