"""Schemathesis against the server's own OpenAPI spec (/docs.json), with a secret key:
generated requests, valid (positive) and invalid (negative), across every operation; none
may get a 5xx.

The schema is loaded from the running server and driven through Hypothesis directly
(`as_strategy`): schemathesis' lazy pytest fixture integration does not run on pytest 9.
A second Hypothesis run puts what the schema's strategies never generate (lone surrogates,
integers beyond 64 bits) into each field of the serving requests and the collector's events.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
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


# Hostile values the schema's own strategies never produce: lone surrogates (sent as JSON
# escapes, the only way they travel) and integers far beyond 64 bits, in every field of
# the serving requests and of the mounted collector's events (issue 21.2 and 21.9).
LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
HOSTILE_TEXT = st.builds(lambda head, bad: head + bad, st.text(max_size=4), LONE_SURROGATES)
HUGE_INTEGERS = st.integers(min_value=2 ** 64, max_value=10 ** 300)
HOSTILE = st.one_of(HOSTILE_TEXT, HUGE_INTEGERS, st.integers(min_value=-(10 ** 300),
                                                             max_value=-(2 ** 64)))
REQUESTS = {
    "/homepage": {"customer_id": "c1", "k": 5, "context": {"categories": ["shoes"]}},
    "/also_bought": {"product_id": "p00001", "customer_id": "c1", "k": 5},
    "/checkout_offer": {"customer_id": "c1", "session_id": "s1",
                        "cart": [{"product_id": "p00001", "quantity": 1, "price": 10.0}]},
    "/collect/v1/events": {"events": [{"event_id": "e", "customer_id": "c1",
                                       "event_type": "product_view", "product_id": "p00001",
                                       "timestamp": "2026-01-01T00:00:00Z", "quantity": 1,
                                       "price": 10.0, "properties": {"page": "/"}}]},
}


def _replace(body: Any, path: tuple, value: Any) -> Any:
    """A copy of `body` with the value at `path` (keys and list positions) replaced."""
    if not path:
        return value
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = _replace(body[path[0]], path[1:], value)
    return copy


def _leaf_paths(body: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(body, dict):
        return [path for key, value in body.items() for path in _leaf_paths(value, prefix + (key,))]
    if isinstance(body, list):
        return [path for position, value in enumerate(body)
                for path in _leaf_paths(value, prefix + (position,))]
    return [prefix]


def test_lone_surrogates_and_huge_integers_never_get_a_server_error(serving) -> None:
    cases = [(route, path) for route, body in REQUESTS.items() for path in _leaf_paths(body)]

    @given(case=st.sampled_from(cases), value=HOSTILE)
    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    def call(case: tuple[str, tuple], value: Any) -> None:
        route, path = case
        body = _replace(REQUESTS[route], path, value)
        key = serving.public_key if route.startswith("/collect") else serving.secret_key
        response = httpx.post(serving.url + route, content=json.dumps(body).encode("ascii"),
                              headers={"Content-Type": "application/json",
                                       "Authorization": f"Bearer {key}",
                                       "X-Tailor-Key": key}, timeout=30)
        assert response.status_code < 500, (f"{route} {path}={value!r:.80} -> "
                                             f"{response.status_code}: {response.text[:300]}")
        if route.startswith("/collect") and response.status_code == 200:
            assert "could not be checked" not in response.text, response.text

    call()
