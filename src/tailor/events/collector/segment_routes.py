"""Segment's HTTP Tracking API on the collector: a drop-in destination for Segment and
RudderStack sources and their libraries.

Routes (also under `/collect` in `tailor serve`): `POST /v1/batch`, `/v1/track`,
`/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/alias`, `/v1/group` (and analytics.js's short
forms `/v1/b`, `/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/a`, `/v1/g`), and their CORS
preflights. The write key is the HTTP Basic user (Segment's convention), else
`X-Tailor-Key` / `Authorization: Bearer`, else `writeKey` in the body; it is a Tailor key
with the `events:write` scope, counted against that key's rate limit like `/v1/events`.
Messages become contract events through `tailor.events.segment_messages` (the table of
`tailor.events.segment_mapping`) and go through the same writer as `POST /v1/events`:
answered only after the commit, `messageId` as the event id, so a retried batch is stored
once.

Reads the request (`segment_requests`), the tombstones of forgotten customers
(`app.state.tombstones`) and the opt-out list when the app has one (`app.state.opt_outs`,
its `blocked_ids()`): events and traits of those ids are dropped after the identity rule, as
`POST /v1/events` drops them (counted in `skipped` as `forgotten` and `opted_out`); and the
identity secret (signed ids). Writes
events and dead-letter rows through the writer, and identify traits (e-mail, name) to the
PII store (`settings.pii_store_url`), only for calls made with a secret key, about an
anonymous id, or with a valid identity signature: a browser cannot overwrite a known
customer's e-mail.

Answers: 200 `{"success": true, "accepted", "duplicates", "rejected", "skipped"}`; 400 for
what Segment refuses (JSON, sizes); 401/403 for a missing, unknown, revoked or expired key
or one without `events:write` (neither library retries those); 415 for a content type or
encoding it does not take; 429 with Retry-After over the key's rate limit and 503 with
Retry-After while the store is down (both libraries retry those).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tailor.events.collector.access import CollectorContext, cors_headers
from tailor.events.collector.batches import BatchResult, Submission
from tailor.events.collector.enrichment import clock_skew_seconds, region_from_headers
from tailor.events.collector.requests import RequestError
from tailor.events.collector.segment_requests import (
    basic_auth_user,
    body_write_key,
    check_encoding,
    read_body,
    read_document,
    read_sent_at,
    request_messages,
)
from tailor.events.identity import ANONYMOUS_PREFIX, signature_valid
from tailor.events.key_ring import KeyRefusal
from tailor.events.keys import EVENTS_WRITE
from tailor.events.segment_consent import ConsentRule
from tailor.events.segment_messages import MappedBatch, Traits, map_messages
from tailor.events.tombstones import TombstoneSet
from tailor.throttled_log import error_key

log = logging.getLogger(__package__)

CALLS = ("track", "identify", "page", "screen", "alias", "group")
# The batch route, each call's route, and analytics.js's one-letter routes (`/v1/t`, ...,
# and `/v1/b` for its batching delivery).
PATHS = {"/v1/batch": None, "/v1/b": None, **{f"/v1/{call}": call for call in CALLS},
         **{f"/v1/{call[0]}": call for call in CALLS}}
CORS_ALLOWED_HEADERS = "Content-Type, Content-Encoding, Authorization, X-Tailor-Key"
_PII_LOCK = threading.Lock()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal in the shape both libraries read (`code`, `message`) and Tailor's (`error`)."""
    code = {400: "invalid_request", 401: "missing_write_key", 403: "invalid_write_key",
            415: "unsupported_media_type", 429: "rate_limited",
            503: "unavailable"}.get(status, "error")
    return JSONResponse({"success": False, "code": code, "message": message, "error": message},
                        status_code=status, headers=headers)


async def segment_call(request: Request) -> Response:
    """A Segment call or batch: authenticate, read, map, store, answer after the commit."""
    context: CollectorContext = request.app.state.collector
    started = time.perf_counter()
    browser_origin = request.headers.get("origin") if context.origin_allowed(request) else None
    try:
        kind, answer = await _handle(request, context)
        if kind == "secret":
            browser_origin = None  # secret keys are for servers: no CORS
        response = JSONResponse(answer)
    except RequestError as error:
        response = _error(error.status, error.message, error.headers)
    except Exception as error:  # the store failed: nothing acknowledged, the client retries
        context.log_limiter.log(logging.WARNING, "503 " + error_key(error),
                                "collector: answering a Segment call 503 after a store error: "
                                "%s", type(error).__name__)
        response = _error(503, "event store unavailable; nothing from this batch was "
                               "acknowledged, retry it", {"Retry-After": "1"})
    if browser_origin:
        response.headers.update(cors_headers(browser_origin))
    context.metrics.requests.labels(status=str(response.status_code)).inc()
    context.metrics.latency.observe(time.perf_counter() - started)
    return response


async def _handle(request: Request, context: CollectorContext) -> tuple[str, dict[str, Any]]:
    """The key's kind and the answer for an accepted request."""
    encoding = check_encoding(request)
    header_key = basic_auth_user(request)
    kind = _authorize(request, context, header_key) if header_key or _has_tailor_key(request) \
        else None
    body = await read_body(request, encoding)
    received_at = datetime.now(timezone.utc)
    call = PATHS[_route_path(request)]
    document, sizes = read_document(body, batch_call=call is None)
    if kind is None:  # the key may only be in the body (analytics.js): checked before the rest
        plain_key = body_write_key(document)
        if plain_key is None:
            raise RequestError(401, "missing write key: send it as the HTTP Basic user "
                                    "(Segment's libraries do), X-Tailor-Key, or writeKey")
        kind = _kind_of(context, plain_key)
    context.check_origin(request, kind)
    parsed = request_messages(document, sizes, len(body), batch_call=call is None)
    batch_sent_at = parsed.sent_at
    mapped = map_messages(parsed.messages, received_at,
                          ConsentRule.parse(context.settings.collector_segment_consent_categories),
                          default_type=call)
    # The messages are mapped: let them go before the wait for the commit, so the cyclic
    # garbage collector does not walk them again and again while 16 batches wait.
    del body, document, parsed
    blocked = _blocked_ids(request)
    tombstones: TombstoneSet | None = getattr(request.app.state, "tombstones", None)
    forgotten = (tombstones.forgotten_among({traits.customer_id for traits in mapped.traits})
                 if tombstones is not None and mapped.traits else set())
    mapped.traits = [traits for traits in mapped.traits
                     if traits.customer_id not in blocked and traits.customer_id not in forgotten]
    if mapped.traits:
        await run_in_threadpool(_store_traits, request.app.state, context, mapped.traits, kind)
    result = await _submit(request, context, kind, mapped, batch_sent_at, received_at,
                           blocked, tombstones)
    return kind, {"success": True, **result.to_dict(),
                  "skipped": dict(sorted(mapped.skipped.items()))}


def _route_path(request: Request) -> str:
    """The route's own path (without the `/collect` mount prefix in `tailor serve`)."""
    path = request.url.path
    root = request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _has_tailor_key(request: Request) -> bool:
    authorization = request.headers.get("authorization", "").lower()
    return bool(request.headers.get("x-tailor-key")) or authorization.startswith("bearer ")


def _authorize(request: Request, context: CollectorContext, basic_user: str | None) -> str:
    """The kind of the request's key from its headers (Basic user, else Tailor's own)."""
    if basic_user is None:
        return context.authenticate(request, EVENTS_WRITE).kind
    return _kind_of(context, basic_user)


def _kind_of(context: CollectorContext, plain_key: str) -> str:
    """`public` or `secret` for a key with the `events:write` scope (counted against its
    rate limit); 403 for any other key, 429 over the limit."""
    try:
        return context.guard.authorize(plain_key, (EVENTS_WRITE,)).kind
    except KeyRefusal as refusal:
        message = refusal.message
        if refusal.status == 403 and message.startswith("unknown key"):
            message = ("unknown write key: use a Tailor key with events:write (`tailor keys "
                       "create secret` for a server source, `public` for analytics.js)")
        raise RequestError(refusal.status, message, refusal.headers) from None


def _blocked_ids(request: Request) -> frozenset[str]:
    """The ids on the opt-out list (`app.state.opt_outs`), none when the app has no list."""
    registry = getattr(request.app.state, "opt_outs", None)
    return registry.blocked_ids() if registry is not None else frozenset()


def _event_ids(event: Any) -> tuple[Any, Any]:
    """An event's customer id and anonymous id (None where missing)."""
    if not isinstance(event, dict):
        return None, None
    return event.get("customer_id"), (event.get("properties") or {}).get("anonymous_id")


def _drop_forgotten(mapped: MappedBatch, events: list[Any],
                    tombstones: TombstoneSet | None) -> list[Any]:
    """The events whose customer id and anonymous id are both untombstoned (`tailor forget`);
    `mapped` follows and counts the dropped ones as `forgotten` in its `skipped`."""
    if tombstones is None or not tombstones.current() or not events:
        return events
    ids = [_event_ids(event) for event in events]
    customer_gone = tombstones.forgotten_mask(customer for customer, _ in ids)
    anonymous_gone = tombstones.forgotten_mask(anonymous for _, anonymous in ids)
    dropped = [one or other for one, other in zip(customer_gone, anonymous_gone)]
    return _keep(mapped, events, dropped, "forgotten")


def _drop_opted_out(mapped: MappedBatch, events: list[Any], blocked: frozenset[str]
                    ) -> list[Any]:
    """The events (after the identity rule, so a rewritten id is checked as stored) whose
    customer id and anonymous id are both off the list; `mapped` follows, and counts the
    dropped ones in its `skipped`."""
    dropped = [customer in blocked or anonymous in blocked
               for customer, anonymous in map(_event_ids, events)]
    return _keep(mapped, events, dropped, "opted_out")


def _keep(mapped: MappedBatch, events: list[Any], dropped: list[bool], reason: str
          ) -> list[Any]:
    """The events not `dropped`, with `mapped`'s per-event lists cut the same way and the
    dropped ones counted under `reason` in its `skipped`."""
    kept = [position for position, gone in enumerate(dropped) if not gone]
    if len(kept) == len(events):
        return events
    mapped.skipped[reason] += len(events) - len(kept)
    mapped.origin = [mapped.origin[position] for position in kept]
    mapped.sent_at = [mapped.sent_at[position] for position in kept]
    return [events[position] for position in kept]


def _store_traits(state: Any, context: CollectorContext, traits: list[Traits],
                  kind: str) -> None:
    """Merge identify traits into the PII store (opened once per app, kept on its `state`),
    where the caller may speak for the id."""
    import pandas as pd

    from tailor.events.pii import open_pii_store

    secret = context.identity.secret() if context.identity is not None else None
    allowed = [item for item in traits
               if kind == "secret" or item.customer_id.startswith(ANONYMOUS_PREFIX)
               or signature_valid(secret, item.customer_id, item.signature)]
    if not allowed:
        return
    with _PII_LOCK:
        store = getattr(state, "segment_pii_store", None)
        if store is None:
            store = open_pii_store(context.settings)
            state.segment_pii_store = store
        for item in allowed:
            merged = {**(store.get(item.customer_id) or {}), **item.values}
            store.upsert(pd.DataFrame([{"customer_id": item.customer_id, **merged}]))


async def _submit(request: Request, context: CollectorContext, kind: str, mapped: MappedBatch,
                  batch_sent_at: Any, received_at: datetime,
                  blocked: frozenset[str], tombstones: TombstoneSet | None) -> BatchResult:
    """Hand the events to the writer, one submission per clock skew, and sum the answers.

    The skew of an event is Segment's `receivedAt - sentAt` of its message (a message's own
    `sentAt`, else the batch's), applied as for `POST /v1/events`: only past 2 s, so network
    delay never reorders events, and not past a day, where `sentAt` is taken as broken.
    """
    events = mapped.events
    if context.identity is not None:
        events = context.identity.bind(events, kind)
    events = _drop_forgotten(mapped, events, tombstones)
    if blocked:
        before = len(events)
        events = _drop_opted_out(mapped, events, blocked)
        context.metrics.opted_out.inc(before - len(events))
    total = BatchResult()
    if not events:
        return total
    batch_skew = clock_skew_seconds(read_sent_at(batch_sent_at), received_at)
    groups: dict[float, list[int]] = {}
    if mapped.sent_at.count(None) == len(mapped.sent_at):
        groups[batch_skew] = list(range(len(events)))
    else:
        for position, own in enumerate(mapped.sent_at):
            skew = batch_skew if own is None else clock_skew_seconds(read_sent_at(own),
                                                                     received_at)
            groups.setdefault(skew, []).append(position)
    region = region_from_headers(request.headers)
    submissions = [(positions, Submission(
        events=events if len(groups) == 1 else [events[position] for position in positions],
        received_at=received_at, skew_seconds=skew, region=region))
        for skew, positions in groups.items()]
    if len(submissions) == 1:  # the usual case: one sentAt for the whole batch
        results = [await asyncio.wrap_future(context.writer.submit(submissions[0][1]))]
    else:
        results = await asyncio.gather(*(asyncio.wrap_future(context.writer.submit(submission))
                                         for _, submission in submissions))
    for (positions, _), result in zip(submissions, results):
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.rejected += [{**item, "index": mapped.origin[positions[item["index"]]]}
                           for item in result.rejected]
    total.rejected.sort(key=lambda item: item["index"])
    return total


async def segment_preflight(request: Request) -> Response:
    """The CORS preflight of a Segment route, for configured origins only."""
    context: CollectorContext = request.app.state.collector
    origin = request.headers.get("origin")
    if not origin or not context.origin_allowed(request):
        return _error(403, f"origin {str(origin)[:100]!r} is not allowed; add it to "
                           "collector.allowed_origins")
    return Response(status_code=204, headers={
        **cors_headers(origin), "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS, "Access-Control-Max-Age": "600"})


def segment_routes() -> list[Route]:
    """The Segment API's routes, for the collector app."""
    routes = []
    for path in PATHS:
        routes.append(Route(path, segment_call, methods=["POST"]))
        routes.append(Route(path, segment_preflight, methods=["OPTIONS"]))
    return routes


def segment_openapi_paths(error: dict[str, Any], key_refusals: dict[str, Any]
                          ) -> dict[str, Any]:
    """The Segment routes for the collector's OpenAPI document (`collector.openapi`)."""
    text = {"type": "string", "maxLength": 200}
    message = {"type": "object", "properties": {
        "type": {"type": "string", "enum": list(CALLS)}, "event": text, "userId": text,
        "anonymousId": text, "messageId": text, "previousId": text, "name": text,
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"}, "traits": {"type": "object"},
        "context": {"type": "object"}, "integrations": {"type": "object"}}}
    answers = {"200": {"description": "stored, duplicates, rejections and skipped calls"},
               "400": error, "415": error, **key_refusals, "503": error}
    key_header = [{"name": "X-Tailor-Key", "in": "header", "required": False,
                   "schema": {"type": "string"}}]

    def operation(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"post": {"summary": summary, "security": [{"key": []}, {"basic": []}],
                         "parameters": key_header, "requestBody": {"required": True, "content": {
                             "application/json": {"schema": schema}}},
                         "responses": answers}}

    paths = {"/v1/batch": operation(
        "Segment's batch call: the write key as the HTTP Basic user (events:write).",
        {"type": "object", "required": ["batch"], "properties": {
            "batch": {"type": "array", "items": {**message, "required": ["type"]}},
            "sentAt": {"type": "string", "format": "date-time"}}})}
    for call in CALLS:
        paths[f"/v1/{call}"] = operation(f"Segment's {call} call (events:write).", message)
    return paths

