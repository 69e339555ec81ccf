"""A batch on its way through the collector: the accepted request (`Submission`), the
answer it gets (`BatchResult`), and a group of them flattened into rows.

Reads the raw JSON events of each submission; writes nothing. Events whose JSON types
cannot be a contract row are set aside here as malformed, before the contract check.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from tailor.events.schema import MALFORMED_ROW, STRING_COLUMNS


@dataclass
class Submission:
    """One accepted request waiting for the writer: its events and what enrichment applies."""

    events: list[Any]
    received_at: datetime
    skew_seconds: float = 0.0
    device_type: str | None = None  # from the User-Agent, for browser (public key) calls
    region: str | None = None
    future: Future = field(default_factory=Future)


@dataclass
class BatchResult:
    """What happened to one batch: new events, duplicates, and each rejected event."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    forgotten: int = 0  # events of forgotten (tombstoned) customers, dropped unstored

    def to_dict(self) -> dict[str, Any]:
        """The response body of `POST /v1/events` (`forgotten` only when some were)."""
        body: dict[str, Any] = {"accepted": self.accepted, "duplicates": self.duplicates,
                                "rejected": self.rejected}
        if self.forgotten:
            body["forgotten"] = self.forgotten
        return body


@dataclass
class GroupRows:
    """The events of several submissions, flattened: contract rows and who sent each."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # submission number of each row
    index: list[int] = field(default_factory=list)  # position of each row in its batch
    rejected: list[dict[str, Any]] = field(default_factory=list)  # refused before validation


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}.get(
        type(value), type(value).__name__)


def json_shape_problem(event: Any) -> tuple[str, str] | None:
    """(field, detail) when an event's JSON types cannot be a contract row, else None.

    Only what a table of scalars cannot express is checked here (an event that is not
    an object, a nested value where text is expected); the contract's own rules run
    afterwards in `validate_events`.
    """
    if not isinstance(event, dict):
        return "event", f"event: expected a JSON object, got {_json_type(event)}"
    for name in (*STRING_COLUMNS, "timestamp", "price", "quantity"):
        value = event.get(name)
        if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
            continue
        expected = "a string" if name in STRING_COLUMNS else (
            "an ISO 8601 string or epoch seconds" if name == "timestamp" else "a number")
        return name, f"{name}: expected {expected}, got {_json_type(value)}"
    return None


def flatten_group(group: Sequence[Submission]) -> GroupRows:
    """Every event of a group of submissions as rows, with JSON-shape rejects set aside."""
    flat = GroupRows()
    for number, submission in enumerate(group):
        for position, event in enumerate(submission.events):
            problem = json_shape_problem(event)
            if problem is None:
                flat.rows.append(event)
                flat.owner.append(number)
                flat.index.append(position)
            else:
                flat.rejected.append({"owner": number, "index": position, "reason": MALFORMED_ROW,
                                      "field": problem[0], "detail": problem[1], "event": event})
    return flat
