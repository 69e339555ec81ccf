"""How the report writes its numbers, shared by the page and the mail. Reads and writes
nothing."""

from __future__ import annotations

DASH = "–"


def count(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f}"


def money(value: float | None) -> str:
    return DASH if value is None else f"{value:,.2f}"


def percent(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{100 * value:.{digits}f}%"


def metric(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def milliseconds(seconds: float | None) -> str:
    return DASH if seconds is None else f"{1000 * seconds:.1f} ms"


def change(now: float | None, before: float | None) -> str:
    """The relative change from `before` to `now` (+4.2%), or a dash."""
    if now is None or not before:
        return DASH
    return f"{100 * (now / before - 1):+.1f}%"
