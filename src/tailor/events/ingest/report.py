"""What an import reports and the pieces it passes between its stages: the `IngestReport`,
the `ChunkNotes` of one chunk, a chunk of rows and a malformed line.

Reads and writes nothing but the report itself (and the log, for its warnings). The report
names no personal data: sample rejections show the row number, field and detail, with
e-mail addresses masked (`tailor.events.ingest.summary` prints it for people).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__package__)  # one logger for the whole import, as before the split
SAMPLES_PER_REASON = 3
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
FORM_NAMES = {"iso8601": "ISO 8601", "epoch_seconds": "epoch seconds",
              "epoch_milliseconds": "epoch milliseconds", "typed": "a timestamp type",
              "dayfirst": "day/month/year (dayfirst)", "timestamp_format": "the given format"}


@dataclass
class ChunkNotes:
    """What checking one chunk noticed beside its rows (sent from a reader process)."""

    naive_timestamps: int = 0
    timestamp_forms: dict[str, int] = field(default_factory=dict)
    event_types_renamed: dict[str, tuple[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestReport:
    """What one `ingest_files` call did; `to_dict` is the `ingest --json` payload."""

    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    received: int = 0
    products: int = 0
    customers: int = 0
    batch_id: str = ""
    store: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    pii_in_events: bool = False  # the events file has PII columns (dropped on read)
    naive_timestamps: int = 0  # zone-less timestamps read, each taken in naive_timezone
    naive_timezone: str = "UTC"
    zone_origin: str = "events.naive_timezone"  # or --timezone
    timestamp_format: str = ""  # given (strftime), with its origin in format_origin
    format_origin: str = ""
    dayfirst: bool = False
    timestamp_forms: dict[str, int] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # format, delimiter, encoding, layout
    mapping: dict[str, str] = field(default_factory=dict)  # contract column: its source
    event_types_renamed: dict[str, tuple[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # calls that are not events
    forgotten: int = 0  # rows of tombstoned (forgotten) customers, dropped unstored
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """`{"accepted", "duplicates", "rejected": {reason: n}}` followed by the extra keys."""
        payload: dict[str, Any] = {
            "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "received": self.received, "products": self.products, "customers": self.customers,
            "batch_id": self.batch_id, "store": self.store, "seconds": round(self.seconds, 3),
            "timestamps": {"zone_less": self.naive_timestamps,
                           "assumed_zone": self.naive_timezone, "zone_from": self.zone_origin,
                           "format": self.timestamp_format_used(),
                           "forms": dict(sorted(self.timestamp_forms.items()))},
            "source": dict(self.source), "mapping": dict(self.mapping),
            "event_types": {name: {"event_type": event_type, "rows": rows} for name, (
                event_type, rows) in sorted(self.event_types_renamed.items())},
            "rejected_samples": {reason: list(rows) for reason, rows in
                                 sorted(self.samples.items())},
        }
        if self.skipped:
            payload["skipped"] = dict(sorted(self.skipped.items()))
        if self.forgotten:
            payload["forgotten"] = self.forgotten
        if self.warnings:
            payload["warnings"] = list(self.warnings)
        return payload

    def timestamp_format_used(self) -> str:
        """The format given (with where from), else the form most values were read in."""
        if self.timestamp_format:
            return f"{self.timestamp_format} ({self.format_origin})"
        if not self.timestamp_forms:
            return "none read"
        form = max(self.timestamp_forms, key=lambda name: self.timestamp_forms[name])
        return FORM_NAMES.get(form, form) + (" (detected)" if form != "dayfirst" else "")

    def add_notes(self, notes: ChunkNotes) -> None:
        """Add what one chunk's check noticed."""
        self.naive_timestamps += notes.naive_timestamps
        for form, count in notes.timestamp_forms.items():
            self.timestamp_forms[form] = self.timestamp_forms.get(form, 0) + count
        for name, (event_type, rows) in notes.event_types_renamed.items():
            if name in self.event_types_renamed or len(self.event_types_renamed) < 100:
                before = self.event_types_renamed.get(name, (event_type, 0))[1]
                self.event_types_renamed[name] = (event_type, before + rows)
        for call, count in notes.skipped.items():
            self.skipped[call] = self.skipped.get(call, 0) + count

    def add_samples(self, rejected: pd.DataFrame) -> None:
        """Keep the first few rejections of each reason: row, field and detail (e-mail
        addresses masked; no raw row, which may hold what the shop keeps private)."""
        if rejected.empty:
            return
        for reason, rows in rejected.groupby("reason", sort=False):
            kept = self.samples.setdefault(str(reason), [])
            for row in rows.head(SAMPLES_PER_REASON - len(kept)).itertuples():
                kept.append({"row_number": int(row.row_number), "field": str(row.field),
                             "detail": _EMAIL.sub("***@***", str(row.detail))[:300]})

    def summary_text(self, store_url: str) -> str:
        """A few lines for people: counts, the zone-less timestamps and the store."""
        rejected = ", ".join(f"{reason} {count:,}"
                             for reason, count in sorted(self.rejected.items())) or "none"
        return (f"accepted {self.accepted:,}; duplicates {self.duplicates:,}; "
                f"rejected: {rejected}\n"
                f"zone-less timestamps: {self.naive_timestamps:,} (read as "
                f"{self.naive_timezone}, {self.zone_origin})\n"
                f"store: {store_url}")

    def count_rejected(self, reasons: pd.Series) -> None:
        """Add a chunk's rejection reasons to the per-reason counts."""
        for reason, count in reasons.value_counts().items():
            self.rejected[str(reason)] = self.rejected.get(str(reason), 0) + int(count)


@dataclass
class MalformedLine:
    """A CSV record the parser could not split into the header's columns, or a JSON line
    that is not an object (`detail` says why)."""

    row_number: int  # 1-based data row (CSV: the header is not counted; JSON: the line)
    text: str
    fields_found: int
    fields_expected: int
    detail: str | None = None


@dataclass
class Chunk:
    """Rows of one chunk plus where they sit in the file and the malformed lines seen so far."""

    frame: pd.DataFrame
    row_numbers: np.ndarray  # 1-based data row of each frame row
    malformed: list[MalformedLine]
    line_break_in: np.ndarray | None = None  # per row: a one-line field holding a line break
    # JSON Lines: per row a field whose value no column can hold (else None), its detail,
    # and the object each row came from (for the dead letter's raw text).
    refused_field: np.ndarray | None = None
    refused_detail: np.ndarray | None = None
    records: list[dict] | None = None

    def split(self, shares: tuple[float, ...]) -> list["Chunk"]:
        """The chunk cut into consecutive pieces of these shares of its rows (the malformed
        lines go with the first piece)."""
        ends = [round(len(self.frame) * share) for share in np.cumsum(shares)]
        pieces, start = [], 0

        def cut(values: Any, start: int, end: int) -> Any:
            return None if values is None else values[start:end]

        for end in [*ends[:-1], len(self.frame)]:
            pieces.append(Chunk(self.frame.iloc[start:end].reset_index(drop=True),
                                self.row_numbers[start:end],
                                self.malformed if not pieces else [],
                                cut(self.line_break_in, start, end),
                                cut(self.refused_field, start, end),
                                cut(self.refused_detail, start, end),
                                cut(self.records, start, end)))
            start = end
        return pieces


def warn(report: IngestReport, message: str) -> None:
    """Add a warning to the report (shown by `tailor ingest`) and log it."""
    report.warnings.append(message)
    log.warning(message)
