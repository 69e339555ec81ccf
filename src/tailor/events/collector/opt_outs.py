"""Opt-outs at the collector: events of opted-out ids are dropped before anything is stored,
and the opt-out / opt-in routes change the list.

Reads the opt-out list through an `OptOutRegistry` handed to the app by whoever builds it
(`tailor collect`, the BentoML service: `tailor.privacy.opt_out_list.OptOutList`), so the
event layer never imports the privacy layer; writes nothing itself (the registry writes the
list and its audit log).

Routes:
- `POST /v1/customers/{customer_id}/opt-out` and `/opt-in`: an admin call from the shop's
  servers (a key with the `admin` scope), trusted as sent.
- `POST /v1/opt-out` and `/v1/opt-in`: the tracker's `optOut()` / `optIn()` from a shop page
  with the public key. A browser may only change the ids it can prove are its own: its
  anonymous id (`anon-…`, 128 random bits only it holds) always; a known customer id with a
  valid identity signature (`tailor.events.identity`); an unsigned customer id only to opt
  *out*, and only while `collector.require_signed_identity` is off (the same trust its
  events get). Nobody can opt another person back *in* from a browser. A key with the
  `admin` scope may call these routes too, and is trusted as sent.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tailor.errors import InputError
from tailor.events.collector.access import (
    CollectorContext,
    cors_headers,
    error_response,
    require_scope,
)
from tailor.events.collector.requests import RequestError, check_content_type, read_capped_body
from tailor.events.identity import ANONYMOUS_PREFIX, signature_valid
from tailor.events.keys import ADMIN, EVENTS_WRITE

OPT_OUT_BODY_BYTES = 4096  # three ids and a signature; anything longer is not a tracker call
ACTIONS = ("opt-out", "opt-in")


class OptOutChange(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class OptOutRegistry(Protocol):
    """The opt-out list as the collector sees it (`tailor.privacy.opt_out_list.OptOutList`)."""

    def blocked_ids(self) -> frozenset[str]:
        """Ids whose events must not be stored (opted out or deleted), kept current."""

    def opt_out(self, customer_id: str, source: str) -> OptOutChange:
        """Put an id on the list; raises `InputError` for a malformed id."""

    def opt_in(self, customer_id: str, source: str) -> OptOutChange:
        """Take an id's opt-out off the list; raises `InputError` for a malformed id."""


def _properties(event: dict[str, Any]) -> dict[str, Any]:
    value = event.get("properties")
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def drop_opted_out(events: list[Any], blocked: frozenset[str]) -> tuple[list[Any], int]:
    """The events whose customer id and browser anonymous id are both off the list, and how
    many were dropped. Events that are not objects are kept for the contract check to reject."""
    if not blocked:
        return events, 0
    kept = []
    for event in events:
        if isinstance(event, dict) and (
                event.get("customer_id") in blocked
                or _properties(event).get("anonymous_id") in blocked):
            continue
        kept.append(event)
    return kept, len(events) - len(kept)


# -- the browser's call ------------------------------------------------------------------------


def browser_ids(body: Any, action: str, trusted: bool, *, secret: str | None,
                signed_required: bool) -> tuple[list[str], list[dict[str, str]]]:
    """The ids a tracker call may change, and the refused ones with the reason.

    Args:
        body: the parsed JSON body `{"anonymous_id", "customer_id", "identity_signature"}`.
        action: `opt-out` or `opt-in`.
        trusted: the key holds the `admin` scope (a shop server): ids are taken as sent.
        secret: the identity secret (None when there is none).
        signed_required: `collector.require_signed_identity`.

    Raises:
        RequestError: 400 when the body is not an object or names no id.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "body must be a JSON object: {\"anonymous_id\": ..., "
                                "\"customer_id\": ..., \"identity_signature\": ...}")
    accepted: list[str] = []
    refused: list[dict[str, str]] = []
    for field in ("anonymous_id", "customer_id"):
        value = body.get(field)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise RequestError(400, f"{field}: expected a string")
        value = value.strip()
        problem = _browser_problem(field, value, body.get("identity_signature"), action,
                                   trusted, secret, signed_required)
        if problem:
            refused.append({"field": field, "reason": problem})
        elif value not in accepted:
            accepted.append(value)
    if not accepted and not refused:
        raise RequestError(400, "anonymous_id or customer_id: send at least one id")
    return accepted, refused


def _browser_problem(field: str, value: str, signature: Any, action: str, trusted: bool,
                     secret: str | None, signed_required: bool) -> str | None:
    """Why a browser may not change this id (None: it may)."""
    if trusted or value.startswith(ANONYMOUS_PREFIX):
        return None
    if field == "anonymous_id":
        return f"an anonymous id starts with {ANONYMOUS_PREFIX!r}"
    if signature is not None:
        return None if signature_valid(secret, value, signature) else "identity_signature: invalid"
    if action == "opt-out" and not signed_required:
        return None
    return ("identity_signature: needed to opt a known customer "
            + ("in" if action == "opt-in" else "out while collector.require_signed_identity is on"))


async def read_json_body(request: Request) -> Any:
    """The small JSON body of an opt-out call (400 when it is not JSON or nested too deeply,
    413 when too long)."""
    check_content_type(request)
    body = await read_capped_body(request, OPT_OUT_BODY_BYTES,
                                  "an opt-out call's fixed limit")
    try:
        return json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):  # 4 KB of `[` passes the cap
        raise RequestError(400, "malformed JSON: send {\"anonymous_id\": ..., \"customer_id\": "
                                "...}") from None


async def apply_changes(registry: OptOutRegistry, action: str, ids: Iterable[str],
                        source: str) -> list[dict[str, Any]]:
    """Opt each id out (or in) off the event loop; the changes as dicts.

    Raises:
        RequestError: 400 naming the field when an id is malformed.
    """
    change = registry.opt_out if action == "opt-out" else registry.opt_in
    results = []
    for customer_id in ids:
        try:
            result = await run_in_threadpool(change, customer_id, source)
        except InputError as error:
            raise RequestError(400, str(error)) from None
        except OSError as error:  # e.g. a home mounted read-only on serving pods
            raise RequestError(503, f"the opt-out list cannot be written here "
                                    f"({type(error).__name__}); nothing was changed for this "
                                    "id: send it to a collector whose home is writable, or run "
                                    "`tailor opt-out`") from None
        results.append(result.to_dict())
    return results


# -- the routes ----------------------------------------------------------------------------------


def _registry(request: Request) -> OptOutRegistry:
    registry = request.app.state.opt_outs
    if registry is None:
        raise RequestError(503, "this collector was started without the opt-out list; start "
                                "it with `tailor collect` or `tailor serve`")
    return registry


def _action(request: Request) -> str:
    return "opt-out" if request.url.path.rstrip("/").endswith("opt-out") else "opt-in"


async def admin_opt_change(request: Request) -> Response:
    """`POST /v1/customers/{customer_id}/opt-out` (or `/opt-in`): one customer, admin key."""
    context: CollectorContext = request.app.state.collector
    action = _action(request)
    try:
        require_scope(request, ADMIN)  # 401 / 403 / 429 with the reason
        results = await apply_changes(_registry(request), action,
                                      [request.path_params["customer_id"]], "api")
        response = JSONResponse(results[0])
    except RequestError as error:
        response = error_response(error)
    context.metrics.opt_out_requests.labels(action=action, status=str(response.status_code)).inc()
    return response


async def browser_opt_change(request: Request) -> Response:
    """`POST /v1/opt-out` (or `/v1/opt-in`): the tracker's call for its own ids."""
    context: CollectorContext = request.app.state.collector
    action = _action(request)
    browser_origin = request.headers.get("origin") if context.origin_allowed(request) else None
    try:
        grant = context.authenticate(request, EVENTS_WRITE, ADMIN)
        context.check_origin(request, grant.kind)
        if grant.kind != "public":
            browser_origin = None  # server keys: no CORS
        trusted = ADMIN in grant.scopes
        identity = context.identity
        ids, refused = browser_ids(
            await read_json_body(request), action, trusted,
            secret=identity.secret() if identity is not None else None,
            signed_required=identity.required if identity is not None else False)
        results = await apply_changes(_registry(request), action, ids,
                                      "api" if trusted else "browser")
        response = JSONResponse({"changes": results, "refused": refused},
                                status_code=200 if results else 403)
    except RequestError as error:
        response = error_response(error)
    if browser_origin:
        response.headers.update(cors_headers(browser_origin))
    context.metrics.opt_out_requests.labels(action=action, status=str(response.status_code)).inc()
    return response
