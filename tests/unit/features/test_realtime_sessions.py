"""The live session fold: a shop without session ids gets a new session after the configured
gap (events.session_gap_minutes), the rule the warehouse and the batch features follow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tailor.features.realtime import DEFAULT_SESSION_GAP, fold_event

START = datetime(2026, 2, 12, 10, 0, tzinfo=timezone.utc)


def _fold(minutes_after_start: list[int], gap: timedelta) -> list[str]:
    """The session id after each page view at the given minutes, folded one by one."""
    state, keys = None, []
    for minutes in minutes_after_start:
        event = {"timestamp": START + timedelta(minutes=minutes), "event_type": "page_view",
                 "session_id": None, "price": None, "quantity": None, "device_type": None}
        state = fold_event(state, event, "c5", None, state is not None, gap)
        keys.append(state.session_id)
    return keys


def test_a_pause_longer_than_the_gap_starts_a_new_session() -> None:
    keys = _fold([0, 10, 40, 75, 80], DEFAULT_SESSION_GAP)  # 35 minutes between 40 and 75
    assert len(set(keys[:3])) == 1 and len(set(keys[3:])) == 1 and keys[2] != keys[3]


def test_a_longer_configured_gap_keeps_the_visit_whole() -> None:
    assert len(set(_fold([0, 10, 40, 75, 80], timedelta(minutes=40)))) == 1
