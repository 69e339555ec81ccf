"""Hostile requests through the serving pipeline in-process, on the trained home: Hypothesis
over every field of the homepage, also-bought and checkout requests (SQL-injection strings,
markup, path tricks, control characters, odd Unicode, huge and nested context values).
A request the schema accepts always gets a well-formed answer (never an exception, only
catalogue products, at most k of them); one it refuses is a validation error naming a
field (a 400 over HTTP). Afterwards a known customer's answer is what it was: nothing the
hostile ids reached (the online store, the models' id maps) was changed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from pydantic import ValidationError

from tailor.serving.schemas import AlsoBoughtRequest, CheckoutOfferRequest, HomepageRequest

SQL = ["'; DROP TABLE events; --", "\" OR 1=1 --", "1); DELETE FROM customers; --",
       "' UNION SELECT * FROM feast_online --", "%' OR '%'='", "NULL", "*", "?", "$1"]
HOSTILE = st.one_of(
    st.sampled_from(SQL + ["<script>alert(1)</script>", "../../etc/passwd", "\x00", "\u202e",
                           "  ", "c" * 300, "tailor:customer:*", "\r\nX-Injected: 1"]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30))
CONTEXT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | HOSTILE, lambda children: st.lists(children, max_size=3)
    | st.dictionaries(HOSTILE, children, max_size=3), max_leaves=8)
CONTEXT = st.dictionaries(st.sampled_from(["session_id", "device", "page", "categories",
                                           "anonymous_id", "cart"]) | HOSTILE,
                          CONTEXT_VALUES, max_size=4)


@pytest.fixture(scope="module")
def quiet_pipeline(served_home, pipeline_factory):
    """A pipeline over the trained home that writes no prediction log (shared home)."""
    return pipeline_factory(served_home.settings, record_predictions=False)


def _request(kind: str, data: dict[str, Any]):
    model = {"homepage": HomepageRequest, "also_bought": AlsoBoughtRequest,
             "checkout": CheckoutOfferRequest}[kind]
    return model.model_validate(data)


@given(kind=st.sampled_from(["homepage", "also_bought", "checkout"]), customer=HOSTILE,
       product=HOSTILE, session=HOSTILE, context=CONTEXT, k=st.integers(-3, 200),
       quantity=st.integers(-2, 10**7))
@hypothesis_settings(max_examples=100, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
def test_hostile_requests_get_an_answer_or_a_named_refusal(
        quiet_pipeline, served_home, kind: str, customer: str, product: str, session: str,
        context: dict, k: int, quantity: int) -> None:
    data: dict[str, Any] = {"homepage": {"customer_id": customer, "context": context, "k": k},
                            "also_bought": {"product_id": product, "customer_id": customer,
                                            "context": context, "k": k},
                            "checkout": {"customer_id": customer, "session_id": session,
                                         "cart": [{"product_id": product,
                                                   "quantity": quantity}],
                                         "context": context}}[kind]
    try:
        request = _request(kind, data)
    except ValidationError as error:
        assert error.errors() and all(problem["loc"] or problem["msg"]
                                      for problem in error.errors())
        return
    catalogue = set(served_home.products()["product_id"].astype(str))
    if kind == "checkout":
        answer = quiet_pipeline.checkout_offer(request)
        assert answer.p_abandon is None or 0.0 <= answer.p_abandon <= 1.0
        return
    answer = (quiet_pipeline.homepage(request) if kind == "homepage"
              else quiet_pipeline.also_bought(request))
    assert len(answer.items) <= request.k
    assert {item.product_id for item in answer.items} <= catalogue


def test_injection_ids_leave_known_customers_answers_alone(quiet_pipeline, served_home) -> None:
    known = str(served_home.events()["customer_id"].iloc[0])
    before = quiet_pipeline.homepage(HomepageRequest(customer_id=known))
    for text in SQL:
        quiet_pipeline.homepage(HomepageRequest(customer_id=text, context={"session_id": text}))
        quiet_pipeline.also_bought(AlsoBoughtRequest(product_id=text, customer_id=text))
    after = quiet_pipeline.homepage(HomepageRequest(customer_id=known))
    assert [item.product_id for item in after.items] == \
        [item.product_id for item in before.items]
    assert after.fallback == before.fallback
