"""Segment (and RudderStack) messages as Tailor events, through the table of
`tailor.events.segment_mapping`.

Reads and writes nothing. `map_messages` turns the messages of one Segment request (track,
page, screen, identify, alias, group) into contract events, the identify traits that go to
the PII store, and the count of calls left out (consent, `integrations`, group calls).
Messages of the common shape (a spec track call or a page call with flat properties and no
browser context) take `fast_event`, a few dictionary operations; every other message the
general path. A test pins the two to the same result.

What is kept where:
- `userId` is the customer id; without one, the anonymous id as `anon-<anonymousId>` (the
  prefix that marks an anonymous id everywhere in Tailor). Every event carries that
  anonymous id in `properties.anonymous_id`, the pair the platform joins histories by.
- `messageId` is the event id (an order's item n: `<messageId>:<n>`, as in file import), so
  a retried call is stored once, and a later import of the same export is too; a message
  without one gets `seg-<hash of its content>`, the same for the same call sent again.
- Personal keys (`email`, `name`, `phone`, `address`, `ip`, ... at any depth) never reach
  an event; identify traits keep only the PII columns, for the PII store alone.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from tailor.events.identity import ANONYMOUS_PREFIX, SIGNATURE_PROPERTY
from tailor.events.segment_consent import ConsentRule, for_tailor
from tailor.events.segment_mapping import (
    CUSTOM_SOURCES,
    NAMED_SPECS,
    PERSONAL_KEYS,
    PRODUCT_ID_KEYS,
    SPEC_BY_NAME,
    SPEC_SOURCES,
    TRAIT_COLUMNS,
    spec_for,
)
from tailor.events.segment_values import (
    anonymous_customer_id,
    content_id,
    device_type,
    take,
    text_id,
    without_personal,
)


@dataclass
class Traits:
    """PII from one identify call, for the PII store (never for an event)."""

    customer_id: str
    values: dict[str, str]
    signature: Any = None  # the shop's identity signature, if the call carried one


@dataclass
class MappedBatch:
    """One request's messages as contract events, PII traits and what was left out."""

    events: list[Any] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)  # message index of each event
    sent_at: list[Any] = field(default_factory=list)  # each event's message's own sentAt
    traits: list[Traits] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def map_messages(messages: list[Any], received_at: datetime, consent: ConsentRule,
                 default_type: str | None = None) -> MappedBatch:
    """The events, PII traits and skipped calls of one request's messages.

    Args:
        messages: the request's messages (a batch's `batch` list, or the one call).
        received_at: when the request arrived: the time of events that have none.
        consent: the consent categories Tailor belongs to.
        default_type: the call type of a single-call endpoint (`/v1/track`: `track`), used
            when the message has no `type`.

    Returns:
        A `MappedBatch`. A message that cannot be mapped (not an object, an unknown type)
        is passed on with personal keys removed, for the contract check to reject and the
        dead letter to keep.
    """
    batch = MappedBatch()
    events, origin, sent_at, skipped = batch.events, batch.origin, batch.sent_at, batch.skipped
    check_consent = bool(consent.categories)
    for index, message in enumerate(messages):
        if type(message) is not dict:
            events.append(message)
            origin.append(index)
            sent_at.append(None)
            continue
        context = message.get("context")
        if type(context) is not dict:
            context = {}
        integrations = message.get("integrations")
        if integrations and not for_tailor(integrations):
            skipped["integrations"] += 1
            continue
        if check_consent and ("consent" in context or "consentManagement" in context) \
                and not consent.allows(context):
            skipped["consent"] += 1
            continue
        call = message.get("type") or default_type
        if call == "group":
            skipped["group"] += 1
            continue
        row = fast_event(message, call, context, received_at)
        if row is not None:
            events.append(row)
            origin.append(index)
            sent_at.append(message.get("sentAt"))
            continue
        rows = general_events(message, call, context, received_at, batch)
        own_sent_at = message.get("sentAt")
        for row in rows:
            events.append(row)
            origin.append(index)
            sent_at.append(own_sent_at)
    return batch


_NESTED = (dict, list)
# Per spec event: each property name read into a column, and that column.
_COLUMN_OF = {name: {key: column for column, keys in sources for key in keys}
              for name, sources in SPEC_SOURCES.items()}
_NO_COLUMNS: dict[str, str] = {}
# Property names already found not to be personal (compared in lower case), so the usual
# ones are not lowered again for every event; bounded, as the names come from clients.
_PLAIN_KEYS: set[str] = set()
_MAX_PLAIN_KEYS = 4096


def fast_event(message: dict[str, Any], call: Any, context: Mapping[str, Any],
               received_at: datetime) -> dict[str, Any] | None:
    """The event of a message of the common shape, or None for the general path.

    The common shape: a track call named as in the table (not an order, which may become
    several rows) or a page call; text ids and a `messageId`; flat properties without
    personal keys, at most one of the names each column is read from (`product_id` or
    `sku`, not both); no browser context (`userAgent`, `device`) and no identity
    signature. The properties are read in one pass. The result is the general path's, to
    the key (a test pins the two together).
    """
    if call == "track":
        name = message.get("event")
        spec = SPEC_BY_NAME.get(name) if type(name) is str else None
        if spec is None or spec.event_type == "purchase":
            return None
        columns = _COLUMN_OF[spec.name]
    elif call == "page":
        spec, columns = None, _NO_COLUMNS
    else:
        return None
    if context and ("userAgent" in context or "device" in context
                    or SIGNATURE_PROPERTY in context):
        return None
    message_id, user_id = message.get("messageId"), message.get("userId")
    anonymous = message.get("anonymousId")
    if type(message_id) is not str or not (user_id is None or type(user_id) is str) \
            or not (anonymous is None or type(anonymous) is str):
        return None
    message_id = message_id.strip()
    if not message_id:
        return None
    own: dict[str, Any] = {}
    anonymous = anonymous.strip() if anonymous is not None else None
    if anonymous:
        own["anonymous_id"] = anonymous if anonymous.startswith(ANONYMOUS_PREFIX) \
            else ANONYMOUS_PREFIX + anonymous
    event = {"event_id": message_id,
             "customer_id": (user_id.strip() if user_id is not None else None)
             or own.get("anonymous_id"),
             "timestamp": message.get("timestamp") or message.get("originalTimestamp")
             or received_at.isoformat()}
    if context:
        session = context.get("sessionId")
        if session is None:
            session = context.get("session_id")
        if session is not None:
            event["session_id"] = (session.strip() or None) if type(session) is str \
                else text_id(session)
    properties = message.get("properties")
    if properties is not None:
        if type(properties) is not dict:
            return None
        for key, value in properties.items():
            if type(value) in _NESTED:
                return None
            if key not in _PLAIN_KEYS:
                if type(key) is not str or key.lower() in PERSONAL_KEYS:
                    return None
                if len(_PLAIN_KEYS) < _MAX_PLAIN_KEYS:
                    _PLAIN_KEYS.add(key)
            column = columns.get(key) if value is not None else None
            if column is None:
                own[key] = value
            elif column in event:  # two names for one column: the general path ranks them
                return None
            else:
                event[column] = value
    if spec is not None:
        if spec.name in NAMED_SPECS:
            own["event"] = spec.name
        event["event_type"] = spec.event_type
    else:
        page_name = message.get("name")
        if isinstance(page_name, str) and page_name.strip():
            own["page_name"] = page_name.strip()
        path = own.pop("path", None)
        if path is None:
            page = context.get("page") if context else None
            path = page.get("path") if isinstance(page, dict) else None
        if isinstance(path, str):
            own["page"] = path
        event["event_type"] = "page_view"
    event["properties"] = own
    return event


def _base(message: dict[str, Any], context: Mapping[str, Any], received_at: datetime
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields every event of a message shares (only those it has), and its base
    properties."""
    user_id = text_id(message.get("userId"))
    anonymous = text_id(message.get("anonymousId"))
    properties: dict[str, Any] = {}
    if anonymous:
        properties["anonymous_id"] = anonymous_customer_id(anonymous)
    event = {"event_id": text_id(message.get("messageId")) or content_id(message),
             "customer_id": user_id or properties.get("anonymous_id"),
             "timestamp": message.get("timestamp") or message.get("originalTimestamp")
             or received_at.isoformat()}
    if context:
        signature = context.get(SIGNATURE_PROPERTY)
        if signature is not None:
            properties[SIGNATURE_PROPERTY] = signature
        session = context.get("sessionId", context.get("session_id"))
        if session is not None:
            event["session_id"] = text_id(session)
        device = device_type(context)
        if device is not None:
            event["device_type"] = device
    return event, properties


def general_events(message: dict[str, Any], call: Any, context: Mapping[str, Any],
               received_at: datetime, batch: MappedBatch) -> list[Any]:
    """The contract events of one message by the general path (none for an identify that
    links nothing); `batch` collects its PII traits."""
    event, base = _base(message, context, received_at)
    if call == "track":
        return _track(message, event, base)
    if call in ("page", "screen"):
        return [_page(message, call, event, base)]
    if call == "identify":
        return _identify(message, event, base, batch)
    if call == "alias":
        return _alias(message, event, base)
    # Not a call this API knows: the contract check rejects it by its type, as sent.
    kept = without_personal(message)
    return [{**kept, "event_type": kept.get("event_type") or f"segment {call!r}"}]


def _properties_of(message: dict[str, Any], key: str = "properties") -> dict[str, Any]:
    value = message.get(key)
    return without_personal(value) if isinstance(value, dict) else {}


def _track(message: dict[str, Any], event: dict[str, Any], base: dict[str, Any]
           ) -> list[dict[str, Any]]:
    """A track call: the table's type, or a custom `click` for names it does not know.

    `base` (this message's own) becomes the event's properties: the message's properties
    join it, and the event's name when the type alone does not tell it (a custom event,
    or `Cart Viewed` among the page views)."""
    name = message.get("event")
    name = name.strip() if isinstance(name, str) else ""
    event["properties"] = base
    if not name:  # Segment requires it too: the contract check rejects the row
        event["event_type"] = None
        return [event]
    spec = SPEC_BY_NAME.get(name) or spec_for(name)
    properties = _properties_of(message)
    event.update(_columns(properties, SPEC_SOURCES[spec.name] if spec else CUSTOM_SOURCES))
    base.update(properties)
    if spec is None:
        base["event"], base["custom_event"] = name, True
        event["event_type"] = "click"
        return [event]
    if spec.name in NAMED_SPECS:
        base["event"] = spec.name
    event["event_type"] = spec.event_type
    items = properties.get("products")
    if spec.event_type == "purchase" and event.get("product_id") is None \
            and isinstance(items, list) and items:
        return _order_items(event, base, items)
    return [event]


def _columns(properties: dict[str, Any], sources: tuple[tuple[str, tuple[str, ...]], ...]
             ) -> dict[str, Any]:
    """The contract columns an event takes from its properties (removed from them)."""
    fields: dict[str, Any] = {}
    for column, keys in sources:
        for key in keys:
            if properties.get(key) is not None:
                fields[column] = properties.pop(key)
                break
    return fields


def _order_items(event: dict[str, Any], order: dict[str, Any], items: list[Any]
                 ) -> list[dict[str, Any]]:
    """An `Order Completed` as one purchase per product, each with the order's id."""
    shared = {key: value for key, value in order.items() if key != "products"}
    event_id = event["event_id"]
    rows = []
    for number, item in enumerate(items, start=1):
        item = without_personal(item) if isinstance(item, dict) else {}
        product = take(item, PRODUCT_ID_KEYS)
        price, quantity = item.pop("price", None), item.pop("quantity", None)
        rows.append({**event, "event_id": None if event_id is None else f"{event_id}:{number}",
                     "product_id": product, "price": price, "quantity": quantity,
                     "properties": {**shared, **item}})
    return rows


def _page(message: dict[str, Any], call: str, event: dict[str, Any], base: dict[str, Any]
          ) -> dict[str, Any]:
    """A page or screen call as a page view (`name` kept as `page_name` / `screen`, the
    page's `path` as `page`, as tailor.js names it)."""
    base.update(_properties_of(message))
    name = message.get("name")
    if isinstance(name, str) and name.strip():
        base["page_name" if call == "page" else "screen"] = name.strip()
    if call == "page":
        path = base.pop("path", None)
        if path is None:
            page = message["context"].get("page") if isinstance(message.get("context"),
                                                                dict) else None
            path = page.get("path") if isinstance(page, dict) else None
        if isinstance(path, str):
            base["page"] = path
    event["event_type"], event["properties"] = "page_view", base
    return event


def _identify(message: dict[str, Any], event: dict[str, Any], base: dict[str, Any],
              batch: MappedBatch) -> list[dict[str, Any]]:
    """An identify call: PII traits for the PII store, and the join of the anonymous id to
    the user id as a `click` with `action: identify` when the call names both."""
    traits = message.get("traits")
    if not isinstance(traits, dict):
        context = message.get("context")
        traits = context.get("traits") if isinstance(context, dict) else None
    customer_id = event["customer_id"]
    if isinstance(traits, dict) and customer_id:
        values = {column: _trait_text(traits[key]) for key, column in TRAIT_COLUMNS.items()
                  if traits.get(key) not in (None, "")}
        if values:
            batch.traits.append(Traits(customer_id, values, base.get(SIGNATURE_PROPERTY)))
    user_id = text_id(message.get("userId"))
    if not (user_id and base.get("anonymous_id")):
        return []
    return [{**event, "event_type": "click", "properties": {**base, "action": "identify"}}]


def _trait_text(value: Any) -> str:
    """A trait as the PII store keeps it: text (an address object as JSON)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _alias(message: dict[str, Any], event: dict[str, Any], base: dict[str, Any]
           ) -> list[dict[str, Any]]:
    """An alias call: `previousId` (an anonymous id) joined to `userId`."""
    previous = text_id(message.get("previousId"))
    properties = {**base, "action": "alias"}
    if previous:
        properties["anonymous_id"] = anonymous_customer_id(previous)
        properties["previous_id"] = previous
    return [{**event, "event_type": "click", "properties": properties}]
