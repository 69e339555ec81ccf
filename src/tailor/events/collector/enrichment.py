"""What the collector adds to the events it receives: clock-skew correction, the device
type from the User-Agent and a coarse region from a proxy's header.

Reads the request's headers, `sent_at` and each event's timestamp and properties; writes
nothing. A row that changes is a copy: the client's event stays as sent, for the dead
letter. The client's IP address is never read.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pandas as pd

from tailor.events.collector.batches import Submission
from tailor.events.schema import DEFAULT_NAIVE_TIMEZONE, parse_event_timestamps

# Clocks within this of the server's are trusted: correcting them would only add the
# network delay and could swap the order of events sent a few milliseconds apart.
SKEW_TOLERANCE_SECONDS = 2.0
# A sent_at further off than this is taken as broken, not as a skewed clock.
MAX_SKEW_SECONDS = 86_400.0
REGION_HEADERS = ("cf-ipcountry", "cloudfront-viewer-country", "x-region")
REGION_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,16}$")


def clock_skew_seconds(sent_at: datetime | None, received_at: datetime) -> float:
    """Seconds to add to the client's timestamps (receive time minus sent_at), or 0.0.

    0.0 when there is no `sent_at`, when the client's clock is within
    `SKEW_TOLERANCE_SECONDS` (the difference is mostly network delay), or when it is
    more than `MAX_SKEW_SECONDS` off (a broken value, not a skewed clock).
    """
    if sent_at is None:
        return 0.0
    skew = (received_at - sent_at).total_seconds()
    if abs(skew) <= SKEW_TOLERANCE_SECONDS or abs(skew) > MAX_SKEW_SECONDS:
        return 0.0
    return skew


def device_type_from_user_agent(user_agent: str) -> str | None:
    """`mobile`, `tablet` or `desktop` by simple User-Agent rules; None without a User-Agent."""
    text = user_agent.lower()
    if not text.strip():
        return None
    if any(marker in text for marker in ("ipad", "tablet", "kindle", "silk/", "playbook")):
        return "tablet"
    if "android" in text and "mobile" not in text:
        return "tablet"  # Android tablets leave "Mobile" out of their User-Agent
    if any(marker in text for marker in ("mobi", "iphone", "ipod", "android", "windows phone")):
        return "mobile"
    return "desktop"


def region_from_headers(headers: Any) -> str | None:
    """A coarse region (country code) set by a proxy or CDN in front of the collector, if any.

    Only short codes are kept; the client's address itself is never looked at.
    """
    for name in REGION_HEADERS:
        value = (headers.get(name) or "").strip()
        if value and REGION_PATTERN.match(value) and value.upper() not in ("XX", "T1"):
            return value.upper()
    return None


def _merged_properties(value: Any, additions: dict[str, Any]) -> Any:
    """Properties with server-side fields added; values that are not objects are left for
    the contract check to reject."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dict(additions)
    if isinstance(value, str):
        if not value.strip():
            return dict(additions)
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return {**parsed, **additions} if isinstance(parsed, dict) else value
    if isinstance(value, dict):
        return {**value, **additions}
    return value


def enrich_rows(rows: Sequence[dict[str, Any]], group: Sequence[Submission],
                owner: Sequence[int], naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
                ) -> list[dict[str, Any]]:
    """The rows with server-side enrichment: skew-corrected timestamps (the client's own
    time kept in properties), device type from the User-Agent, coarse region.

    A row that changes is a copy: the client's event stays as sent, for the dead letter.

    Args:
        rows: the group's events (JSON objects), one per row.
        group: the submissions the rows came from.
        owner: the submission number of each row.
        naive_timezone: the zone a zone-less timestamp is read in (`events.naive_timezone`)
            before its skew is corrected.
    """
    enriched = list(rows)
    additions: dict[int, dict[str, Any]] = {}
    skewed = [row for row, number in enumerate(owner) if group[number].skew_seconds]
    if skewed:
        _correct_clock_skew(enriched, skewed, group, owner, additions, naive_timezone)
    for row, number in enumerate(owner):
        submission = group[number]
        own = enriched[row].get("device_type")
        if submission.device_type and not (isinstance(own, str) and own.strip()):
            enriched[row] = {**enriched[row], "device_type": submission.device_type}
        if submission.region:
            additions.setdefault(row, {})["region"] = submission.region
    for row, extra in additions.items():
        merged = _merged_properties(enriched[row].get("properties"), extra)
        enriched[row] = {**enriched[row], "properties": merged}
    return enriched


def _correct_clock_skew(rows: list[dict[str, Any]], skewed: list[int],
                        group: Sequence[Submission], owner: Sequence[int],
                        additions: dict[int, dict[str, Any]], naive_timezone: str) -> None:
    """Shift the readable timestamps of the `skewed` rows by their batch's skew, in place;
    note each original in `additions`. Unreadable ones, and those the shift would carry
    past pandas' time range, are left as sent for the contract check to judge."""
    originals = pd.Series([rows[row].get("timestamp") for row in skewed], dtype=object)
    skew = np.array([group[owner[row]].skew_seconds for row in skewed], dtype="float64")
    shifts = pd.to_timedelta(skew, unit="s")
    stamps, _ = parse_event_timestamps(originals, naive_timezone)
    for row, original, stamp, shift, seconds in zip(skewed, originals, stamps, shifts, skew):
        try:
            corrected = stamp + shift
        except (OverflowError, ValueError):  # e.g. a year-2262 time: one event, not the group
            continue
        if corrected is pd.NaT:
            continue
        rows[row] = {**rows[row], "timestamp": corrected.isoformat()}
        additions[row] = {"client_timestamp": original,
                          "clock_skew_seconds": round(float(seconds), 3)}
