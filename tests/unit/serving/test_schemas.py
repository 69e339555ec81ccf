"""Request bodies: every rule broken gives an error naming the field and the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailor.models.checkout import INCENTIVES, NO_INCENTIVE
from tailor.serving.schemas import (
    OFFERS, AlsoBoughtRequest, CheckoutOfferRequest, HomepageRequest, max_k, set_max_k,
)


def _error(model: type, body: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    first = caught.value.errors()[0]
    return first["loc"], first["msg"]


@pytest.mark.parametrize(("body", "loc", "message"), [
    ({"customer_id": ""}, ("customer_id",), "at least 1 character"),
    ({"customer_id": "   "}, ("customer_id",), "at least 1 character"),
    ({"customer_id": "c" * 129}, ("customer_id",), "at most 128"),
    ({"customer_id": 42}, ("customer_id",), "valid string"),
    ({"customer_id": "c1", "k": 0}, ("k",), "greater than or equal to 1"),
    ({"customer_id": "c1", "k": 101}, ("k",), "at most 100 (serving.max_k)"),
    ({"customer_id": "c1", "k": "ten"}, ("k",), "valid integer"),
    ({"customer_id": "c1", "customerid": "c1"}, ("customerid",), "Extra inputs"),
    ({"customer_id": "c1", "context": {f"key{n}": n for n in range(51)}}, ("context",),
     "at most 50 keys"),
    ({"customer_id": "c1", "context": {"categories": "books"}}, ("context",), "categories"),
    ({"customer_id": "c1", "context": {"categories": ["books", ""]}}, ("context",),
     "categories"),
    ({"customer_id": "c1", "context": {"session_id": 7}}, ("context",), "session_id"),
])
def test_homepage_request_errors_name_the_field(body: dict, loc: tuple, message: str) -> None:
    found_loc, found_message = _error(HomepageRequest, body)
    assert found_loc == loc and message in found_message


def test_homepage_request_defaults_and_unknown_context_keys() -> None:
    request = HomepageRequest.model_validate(
        {"customer_id": " c1 ", "context": {"categories": ["Books"], "utm_source": "mail"}})
    assert (request.customer_id, request.k) == ("c1", 10)
    assert request.context["utm_source"] == "mail"


def test_the_largest_k_follows_the_setting() -> None:
    before = max_k()
    try:
        set_max_k(150)
        assert HomepageRequest(customer_id="c1", k=150).k == 150
        assert _error(AlsoBoughtRequest, {"product_id": "p1", "k": 151})[0] == ("k",)
    finally:
        set_max_k(before)
    with pytest.raises(ValueError, match="serving_max_k"):
        set_max_k(0)


@pytest.mark.parametrize(("cart", "loc", "message"), [
    ([], ("cart",), "at least 1 item"),
    ([{"product_id": "p1", "quantity": 0}], ("cart", 0, "quantity"), "greater than or equal"),
    ([{"product_id": "p1", "quantity": 1001}], ("cart", 0, "quantity"), "less than or equal"),
    ([{"product_id": "p1", "price": -1}], ("cart", 0, "price"), "greater than or equal"),
    ([{"product_id": "p1", "price": float("nan")}], ("cart", 0, "price"), "finite"),
    ([{"product_id": "p1"}, {"quantity": 2}], ("cart", 1, "product_id"), "Field required"),
    ([{"product_id": "p1"}] * 201, ("cart",), "at most 200 items"),
])
def test_checkout_request_errors_name_the_line_and_field(cart: list, loc: tuple,
                                                         message: str) -> None:
    found_loc, found_message = _error(CheckoutOfferRequest,
                                      {"customer_id": "c1", "session_id": "s1", "cart": cart})
    assert found_loc == loc and message in found_message


def test_checkout_request_needs_a_session() -> None:
    assert _error(CheckoutOfferRequest, {"customer_id": "c1", "cart": [{"product_id": "p"}]}) \
        == (("session_id",), "Field required")


def test_the_offers_are_the_checkout_models_incentives() -> None:
    assert OFFERS == (NO_INCENTIVE, *INCENTIVES)


@pytest.mark.parametrize("body", [
    {"customer_id": "c\ud800"},
    {"customer_id": "c1", "context": {"categories": ["shoes", "\udfff"]}},
    {"customer_id": "c1", "context": {"\ud800": "x"}},
])
def test_a_lone_surrogate_is_refused_naming_where_it_is(body: dict) -> None:
    with pytest.raises(ValidationError, match="lone UTF-16 surrogate") as error:
        HomepageRequest.model_validate(body)
    assert error.value.errors()[0]["msg"].split("Value error, ")[1].startswith(
        ("customer_id", "context.categories.1", "context.\\ud800"))
    assert HomepageRequest.model_validate({"customer_id": "c\U0001F600"}).customer_id == "c\U0001F600"
