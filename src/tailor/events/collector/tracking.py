"""The campaign mails' tracking routes: the open pixel and the click redirect.

Reads `campaign_sends` (`tailor.events.campaign_store`) over a connection of its own, opened on
the first tracking request: which mail a token names, and the link targets stored with it.
Writes, through the writer thread like any batch, one `email_open` or `email_click` event for
the mail's customer per request, with properties {campaign, experiment, variant, mail, link}
(experiment and variant null for a customer the mail reached in no experiment).

- `GET /t/o/<token>.gif`: a 1x1 transparent GIF, and an `email_open`.
- `GET /t/c/<token>?u=<n>`: an `email_click`, and a 302 to the n-th link target stored with the
  mail (0 = the shop, then each pick). The target never comes from the request: a token that
  is malformed or unknown, or a `u` that is not one of the mail's link numbers (a URL in it
  included), gets 404, so the route cannot be made to redirect anywhere else.

Tokens are 128 random bits stored with each mail (`tailor.experiments.campaigns`); guessing
one is hopeless, and a valid one only ever leads to its own mail's links. Once a token is
known, the answer waits for its event's commit but never fails because of it: a store that
cannot take the event still gets the customer their image or their page (the event is lost;
the error is logged once a minute). Answers are `Cache-Control: no-store`, and carry the
collector's security headers like every other.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tailor.events.campaign_store import CampaignSend, CampaignStore, open_campaign_store
from tailor.events.collector.batches import Submission
from tailor.events.collector.enrichment import device_type_from_user_agent, region_from_headers
from tailor.throttled_log import ThrottledLog, error_key

log = logging.getLogger(__package__)  # one logger for the whole collector

OPEN_PATH, CLICK_PATH = "/t/o/{token}.gif", "/t/c/{token}"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LINK_NUMBER = re.compile(r"^[0-9]{1,3}$")
NO_STORE = {"Cache-Control": "no-store, private"}
# The smallest transparent GIF: 1x1, one colour, transparent.
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
             b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


class TrackedMails:
    """The campaign mails a collector looks tokens up in (one connection, opened lazily)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: CampaignStore | None = None
        self._lock = threading.Lock()

    def find(self, token: str) -> CampaignSend | None:
        """The mail a token names, or None; a failed read drops the connection (the next
        request opens a new one) and raises."""
        with self._lock:
            if self._store is None:
                self._store = open_campaign_store(self.url)
            store = self._store
        try:
            return store.by_token(token)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


async def open_pixel(request: Request) -> Response:
    """`GET /t/o/<token>.gif`: the pixel, and an `email_open` for the token's mail."""
    send = await _lookup(request, "open")
    if not isinstance(send, CampaignSend):
        return send
    await _record(request, send, "email_open", None)
    return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


async def click_redirect(request: Request) -> Response:
    """`GET /t/c/<token>?u=<n>`: an `email_click`, then on to the mail's n-th link."""
    send = await _lookup(request, "click")
    if not isinstance(send, CampaignSend):
        return send
    number = request.query_params.get("u", "")
    if not LINK_NUMBER.match(number) or int(number) >= len(send.links):
        _count(request, "click", "unknown")
        return _not_found()
    link = send.links[int(number)]
    await _record(request, send, "email_click", link["label"])
    return RedirectResponse(link["url"], status_code=302, headers=NO_STORE)


async def _lookup(request: Request, kind: str) -> CampaignSend | Response:
    """The mail of the request's token, or the answer to give instead (404, 503)."""
    token = request.path_params.get("token", "")
    if not TOKEN.match(token):
        _count(request, kind, "unknown")
        return _not_found()
    mails: TrackedMails = request.app.state.tracked_mails
    try:
        send = await run_in_threadpool(mails.find, token)
    except Exception as error:  # the store is unreachable: the customer may retry
        _limiter(request).log(logging.WARNING, "tracking " + error_key(error),
                              "collector: a tracking link could not be looked up: %s",
                              error_key(error))
        return JSONResponse({"error": "temporarily unavailable; try again"}, status_code=503,
                            headers={"Retry-After": "5", **NO_STORE})
    if send is None:
        _count(request, kind, "unknown")
        return _not_found()
    return send


async def _record(request: Request, send: CampaignSend, event_type: str,
                  link: str | None) -> None:
    """Store the event through the writer; log (throttled) and carry on when it cannot."""
    context = request.app.state.collector
    received_at = datetime.now(timezone.utc)
    properties: dict[str, Any] = {"campaign": send.campaign, "experiment": send.experiment,
                                  "variant": send.variant, "mail": send.mail}
    if link is not None:
        properties["link"] = link
    event = {"event_id": f"{event_type}-{uuid.uuid4().hex}", "customer_id": send.customer_id,
             "event_type": event_type, "timestamp": received_at.isoformat(),
             "properties": properties}
    submission = Submission(
        events=[event], received_at=received_at,
        device_type=device_type_from_user_agent(request.headers.get("user-agent", "")),
        region=region_from_headers(request.headers))
    kind = "open" if event_type == "email_open" else "click"
    try:
        result = await asyncio.wrap_future(context.writer.submit(submission))
        outcome = "recorded" if result.accepted or result.duplicates else "not_recorded"
    except Exception as error:  # 503 from a busy writer, or the store failed
        _limiter(request).log(logging.WARNING, "tracking event " + error_key(error),
                              "collector: a tracking event was not stored: %s", error_key(error))
        outcome = "not_recorded"
    _count(request, kind, outcome)


def _limiter(request: Request) -> ThrottledLog:
    return request.app.state.collector.log_limiter


def _count(request: Request, kind: str, outcome: str) -> None:
    request.app.state.collector.metrics.tracking.labels(kind=kind, outcome=outcome).inc()


def _not_found() -> Response:
    return JSONResponse({"error": "unknown link"}, status_code=404, headers=NO_STORE)


def tracking_routes() -> list[Route]:
    """The two routes, for the collector app."""
    return [Route(OPEN_PATH, open_pixel, methods=["GET"]),
            Route(CLICK_PATH, click_redirect, methods=["GET"])]
