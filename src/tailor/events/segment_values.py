"""Values of Segment messages as Tailor stores them: ids as text, the anonymous id's
prefix, an id for a message without one, personal keys removed, the device type.

Reads and writes nothing; `tailor.events.segment_messages` applies these to each message.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from tailor.events.collector.enrichment import device_type_from_user_agent
from tailor.events.identity import ANONYMOUS_PREFIX
from tailor.events.segment_mapping import PERSONAL_KEYS


def text_id(value: Any) -> str | None:
    """An id as text (numbers as their digits); None for absent, blank or other types."""
    if type(value) is str or isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def anonymous_customer_id(anonymous_id: str) -> str:
    """The customer id an anonymous Segment visitor is stored under: `anon-<anonymousId>`."""
    return anonymous_id if anonymous_id.startswith(ANONYMOUS_PREFIX) \
        else ANONYMOUS_PREFIX + anonymous_id


def content_id(message: Mapping[str, Any]) -> str:
    """The event id of a message without `messageId`: a hash of its content but `sentAt`,
    so the same call sent again (a retry) gets the same id and is stored once."""
    content = {key: value for key, value in message.items() if key not in ("sentAt",
                                                                           "writeKey")}
    text = json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)
    return "seg-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def without_personal(value: Any) -> Any:
    """A JSON value with personal keys (e-mail, name, phone, address, ip, ...) removed at any
    depth. A flat object without such keys (the usual properties) is copied as it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(item) in (dict, list) or str(key).lower() in PERSONAL_KEYS:
                break
        else:
            return dict(value)
        return {key: without_personal(item) for key, item in value.items()
                if str(key).lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [without_personal(item) for item in value]
    return value


def take(properties: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of `keys` present (not None) in properties, removed from them."""
    for key in keys:
        if properties.get(key) is not None:
            return properties.pop(key)
    return None


def device_type(context: Mapping[str, Any]) -> str | None:
    """mobile/tablet/desktop from `context.userAgent` (browsers) or `context.device.type`."""
    if not context:
        return None
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and user_agent.strip():
        return device_type_from_user_agent(user_agent)
    device = context.get("device")
    kind = device.get("type") if isinstance(device, dict) else None
    if isinstance(kind, str):
        kind = kind.strip().lower()
        if kind in ("mobile", "tablet", "desktop"):
            return kind
        if kind in ("ios", "android"):
            return "mobile"
    return None
