"""Request and response bodies of the serving endpoints (pydantic v2).

Reads and writes nothing. A request that breaks a rule fails validation with an error
naming the field (`k`, `cart.0.quantity`, `context.categories`) and the problem; the
service turns that into a 400. The only limit set at run time is the largest `k`
(`serving.max_k`, applied by `set_max_k` when a pipeline starts).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_K = 10
DEFAULT_MAX_K = 100
MAX_ID_CHARS = 128
MAX_CONTEXT_KEYS = 50
MAX_CONTEXT_LIST = 200
MAX_CART_LINES = 200
MAX_QUANTITY = 1000
# "none" and the incentives of tailor.models.checkout (a test keeps them in step; importing
# the model module here would load XGBoost for every schema import).
OFFERS: tuple[str, ...] = ("none", "10_off", "free_shipping")
Offer = Literal["none", "10_off", "free_shipping"]

_limits = {"max_k": DEFAULT_MAX_K}


def set_max_k(max_k: int) -> None:
    """The largest `k` requests may ask for from now on (the `serving.max_k` setting)."""
    if max_k < 1:
        raise ValueError(f"serving_max_k: must be at least 1, got {max_k}")
    _limits["max_k"] = max_k


def max_k() -> int:
    """The largest `k` a request may ask for."""
    return _limits["max_k"]


# Keys of `context` the pipeline reads, and the shape each must have.
_CONTEXT_TEXT = {"session_id": MAX_ID_CHARS, "device": 32, "page": 512,
                 "anonymous_id": MAX_ID_CHARS}
LAYOUTS: tuple[str, ...] = ("grid", "carousel", "hero_grid")  # as tailor.experiments.definition
Layout = Literal["grid", "carousel", "hero_grid"]
_ANONYMOUS_ID = ("anonymous_id (the browser's first anonymous id, tailor.anonymousId(): "
                 "experiments assign by it, so a visitor keeps its variant after logging in)")
_CONTEXT_LISTS = ("categories", "cart")


def _check_context(context: dict[str, Any]) -> dict[str, Any]:
    """Validate the known keys of a request context; other keys pass untouched."""
    if len(context) > MAX_CONTEXT_KEYS:
        raise ValueError(f"at most {MAX_CONTEXT_KEYS} keys, got {len(context)}")
    for key, limit in _CONTEXT_TEXT.items():
        value = context.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise ValueError(f"{key}: must be a string of at most {limit} characters")
    for key in _CONTEXT_LISTS:
        value = context.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) > MAX_CONTEXT_LIST or not all(
                isinstance(item, str) and 0 < len(item) <= MAX_ID_CHARS for item in value):
            raise ValueError(f"{key}: must be a list of at most {MAX_CONTEXT_LIST} non-empty "
                             f"strings of at most {MAX_ID_CHARS} characters")
    return context


def lone_surrogate_at(value: Any, where: str = "") -> str | None:
    """The dotted path of the first string in `value` holding a lone surrogate (JSON lets
    `"\\ud800"` through; no store, log or encoder can write it), else None."""
    if isinstance(value, str):
        return where if any("\ud800" <= character <= "\udfff" for character in value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
        label = f"{where}.{shown}" if where else shown
        found = lone_surrogate_at(key, label) if isinstance(key, str) else None
        found = found or lone_surrogate_at(item, label)
        if found is not None:
            return found
    return None


class _Request(BaseModel):
    """Requests refuse unknown fields, so a misspelt field is an error, not silently ignored;
    and text that is not valid Unicode (a lone surrogate), so it never reaches a store."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = lone_surrogate_at(data)
        if where is not None:
            raise ValueError(f"{where or 'body'}: holds a lone UTF-16 surrogate (such as "
                             "\\ud800), which is not valid Unicode text; send the text as "
                             "UTF-8 or as a surrogate pair")
        return data


class _WithK(_Request):
    k: int = Field(DEFAULT_K, ge=1, description="Products to return: 1 to serving.max_k "
                                                f"(default {DEFAULT_MAX_K}).")

    @field_validator("k")
    @classmethod
    def _k_within_limit(cls, k: int) -> int:
        if k > _limits["max_k"]:
            raise ValueError(f"must be at most {_limits['max_k']} (serving.max_k), got {k}")
        return k


class CartLine(_Request):
    """One line of a cart."""

    product_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    quantity: int = Field(1, ge=1, le=MAX_QUANTITY)
    price: float | None = Field(None, ge=0, allow_inf_nan=False,
                                description="Unit price; when absent, the catalogue's price.")


class HomepageRequest(_WithK):
    """`POST /homepage`: the products to show one visitor."""

    customer_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=f"At most {MAX_CONTEXT_KEYS} keys. Read: session_id, device, page, "
                    f"{_ANONYMOUS_ID} (strings) and categories (category names the visitor "
                    "is browsing, boosted like the session's viewed categories).")

    _check = field_validator("context")(_check_context)


class AlsoBoughtRequest(_WithK):
    """`POST /also_bought`: companions of the product being viewed."""

    product_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    customer_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=f"At most {MAX_CONTEXT_KEYS} keys. Read: cart (product ids already in "
                    f"the cart, left out of the answer) and {_ANONYMOUS_ID}.")

    _check = field_validator("context")(_check_context)


class CheckoutOfferRequest(_Request):
    """`POST /checkout_offer`: whether to offer an incentive on this cart."""

    customer_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    session_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    cart: list[CartLine] = Field(min_length=1, max_length=MAX_CART_LINES)
    context: dict[str, Any] = Field(
        default_factory=dict,
        description=f"At most {MAX_CONTEXT_KEYS} keys. Read: {_ANONYMOUS_ID}.")

    _check = field_validator("context")(_check_context)


class RecommendedItem(BaseModel):
    """One product of an answer, with why it is there."""

    product_id: str
    score: float
    reason: str
    confidence: float | None = None
    lift: float | None = None


class _Answer(BaseModel):
    model_version: str | None = Field(description="Registry version of the model that "
                                                  "answered; None for a fallback answer.")
    variant: str = Field(description="The registry alias (or version) the model came from.")
    fallback: bool = Field(description="True when the answer is the fallback, not the model's.")
    fallback_reason: str | None = None
    stale: bool = Field(False, description="True when the customer's history in the online "
                                           "store is older than its TTL (stale): the answer "
                                           "was built on default features in its place.")
    request_id: str
    experiment: str | None = Field(None, description="The A/B experiment the visitor is in on "
                                                     "this endpoint; None outside one.")
    experiment_variant: str | None = Field(None, description="The visitor's variant of "
                                                             "`experiment`.")


class HomepageResponse(_Answer):
    items: list[RecommendedItem]
    personalised: bool = Field(description="False for customers who opted out or were "
                                           "deleted, for those below an experiment's "
                                           "personalization threshold, and for fallback "
                                           "answers.")
    layout: Layout | None = Field(None, description="How the page should show the items "
                                                    "(an experiment's variant: grid, carousel "
                                                    "or hero_grid); None: the shop's own "
                                                    "layout.")


class AlsoBoughtResponse(_Answer):
    items: list[RecommendedItem]


class CheckoutOfferResponse(_Answer):
    p_abandon: float | None = Field(description="P(the cart is abandoned); None in a fallback.")
    offer: Offer
    reason: str
