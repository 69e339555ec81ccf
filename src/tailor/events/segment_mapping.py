"""Segment's (and RudderStack's) calls and e-commerce spec as Tailor events: the one table.

Reads and writes nothing. `SPEC_EVENTS` says which contract event type each spec event
becomes and which of its properties become columns; file import reads the same table
(`tailor.events.ingest.event_types`), the collector's Segment API applies it
(`tailor.events.segment_messages`), and `mapping_table_markdown` renders it for
`docs/collector.md` (a test keeps the page current).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailor.events.schema import PII_COLUMNS

# Compared in lower case: `firstName` is `firstname`.
PERSONAL_KEYS = frozenset(PII_COLUMNS) | {"ip", "email_address", "phone_number", "firstname",
                                          "lastname", "username"}
PRODUCT_ID_KEYS = ("product_id", "productId", "sku", "id")  # spec events (v2, then v1 names)
CUSTOM_PRODUCT_ID_KEYS = ("product_id", "productId")  # any other event: an `id` is not a product
ORDER_ID_KEYS = ("order_id", "orderId", "checkout_id")
TRAIT_COLUMNS = {"email": "email", "name": "name", "first_name": "first_name",
                 "firstName": "first_name", "last_name": "last_name", "lastName": "last_name",
                 "phone": "phone", "address": "address"}
_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class SpecEvent:
    """One row of the table: a spec event (or call) and what Tailor stores for it.

    Attributes:
        name: the spec's name (`Order Completed`), or a call type in brackets (`[page]`).
        event_type: the contract type it becomes; "" when no event row is stored.
        columns: the properties read into columns, as the docs show them.
        note: anything else done (one row per product, PII store).
    """

    name: str
    event_type: str
    columns: tuple[str, ...] = ()
    note: str = ""


_PRODUCT = ("product_id", "price", "quantity")
CUSTOM_COLUMNS = ("product_id", "price", "quantity", "order_id", "query")
SPEC_EVENTS: tuple[SpecEvent, ...] = (
    SpecEvent("Product Viewed", "product_view", _PRODUCT),
    SpecEvent("Product Clicked", "click", _PRODUCT),
    SpecEvent("Product Added", "add_to_cart", _PRODUCT),
    SpecEvent("Product Removed", "remove_from_cart", _PRODUCT),
    SpecEvent("Cart Viewed", "page_view", (), "`cart_id`, `products` kept in properties"),
    SpecEvent("Checkout Started", "checkout_start", ("order_id",),
              "`value`, `revenue`, `products` kept in properties"),
    SpecEvent("Order Completed", "purchase", ("order_id", *_PRODUCT),
              "one purchase row per entry of `products` (event id `<messageId>:<n>`, "
              "the order's other properties on each); without `products`, one row"),
    SpecEvent("Products Searched", "search", ("query",)),
    SpecEvent("Product List Viewed", "page_view", (), "`list_id`, `products` in properties"),
    SpecEvent("Product List Filtered", "page_view", (), ""),
    SpecEvent("Promotion Clicked", "click", (), ""),
    SpecEvent("Page Viewed", "page_view", (), ""),
    SpecEvent("Loaded a Page", "page_view", (), ""),
    SpecEvent("Email Opened", "email_open", (), ""),
    SpecEvent("Email Link Clicked", "email_click", (), ""),
)
CALLS: tuple[SpecEvent, ...] = (
    SpecEvent("[page]", "page_view", (), "`path` as `page` (as tailor.js), `name` as "
              "`page_name`; `url`, `title`, `referrer` in properties"),
    SpecEvent("[screen]", "page_view", (), "`name` as `screen`"),
    SpecEvent("[track] any other event", "click", CUSTOM_COLUMNS,
              "custom event: `properties.event` holds its name, `custom_event: true` "
              "(a track without `event` is rejected)"),
    SpecEvent("[identify]", "click", (),
              "traits `email`, `name`, `firstName`, `lastName`, `phone`, `address` to the "
              "PII store only, other traits dropped; a `click` with `action: identify` "
              "only when it names both `userId` and `anonymousId` (the join)"),
    SpecEvent("[alias]", "click", (), "`action: alias`: `previousId` is joined to `userId`"),
    SpecEvent("[group]", "", (), "not stored (accounts are not modelled); counted as skipped"),
)
SEGMENT_EVENT_TYPES: dict[str, str] = {
    **{spec.name: spec.event_type for spec in SPEC_EVENTS},
    "page": "page_view",  # a page call (`type: page`) in an export
    "screen": "page_view",  # a mobile app's page call
}
SPEC_BY_NAME = {spec.name: spec for spec in SPEC_EVENTS}
# Names kept in properties.event: those whose type other names share (the type alone does
# not tell `Cart Viewed` from `Product List Viewed`).
NAMED_SPECS = frozenset(spec.name for spec in SPEC_EVENTS
                        if sum(other.event_type == spec.event_type for other in SPEC_EVENTS) > 1)
_BY_KEY = {_SEPARATORS.sub(" ", spec.name.lower()): spec for spec in SPEC_EVENTS}


def spec_for(name: str) -> SpecEvent | None:
    """The table's row for a track event's name (any case, any separators), or None."""
    return SPEC_BY_NAME.get(name) or _BY_KEY.get(_SEPARATORS.sub(" ", name.strip().lower()))


def mapping_table_markdown() -> str:
    """The table as the Markdown `docs/collector.md` shows (a test compares the two)."""
    lines = ["| Segment / RudderStack | Tailor event type | columns from properties | also |",
             "|---|---|---|---|"]
    for spec in (*SPEC_EVENTS, *CALLS):
        columns = ", ".join(f"`{name}`" for name in spec.columns) or "-"
        lines.append(f"| {spec.name} | {spec.event_type or '(none)'} | {columns} | "
                     f"{spec.note or '-'} |")
    return "\n".join(lines) + "\n"


def _sources(columns: tuple[str, ...], product_keys: tuple[str, ...]
             ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each column with the property names it is read from, first present wins."""
    return tuple((column, product_keys if column == "product_id" else (
        ORDER_ID_KEYS if column == "order_id" else (column,))) for column in columns)


# Per spec event (and for custom events): each column and the properties it is read from.
SPEC_SOURCES = {spec.name: _sources(spec.columns, PRODUCT_ID_KEYS) for spec in SPEC_EVENTS}
CUSTOM_SOURCES = _sources(CUSTOM_COLUMNS, CUSTOM_PRODUCT_ID_KEYS)
