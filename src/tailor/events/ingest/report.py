"""What an import reports and the pieces it passes between its stages: the `IngestReport`,
a chunk of rows and a malformed CSV line.

Reads and writes nothing but the report itself (and the log, for its warnings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__package__)  # one logger for the whole import, as before the split


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

    def to_dict(self) -> dict[str, Any]:
        """`{"accepted", "duplicates", "rejected": {reason: n}}` followed by the extra keys."""
        payload: dict[str, Any] = {
            "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
            "received": self.received, "products": self.products, "customers": self.customers,
            "batch_id": self.batch_id, "store": self.store, "seconds": round(self.seconds, 3),
            "timestamps": {"zone_less": self.naive_timestamps,
                           "assumed_zone": self.naive_timezone},
        }
        if self.warnings:
            payload["warnings"] = list(self.warnings)
        return payload

    def summary_text(self, store_url: str) -> str:
        """A few lines for people: counts, the zone-less timestamps and the store."""
        rejected = ", ".join(f"{reason} {count:,}"
                             for reason, count in sorted(self.rejected.items())) or "none"
        return (f"accepted {self.accepted:,}; duplicates {self.duplicates:,}; "
                f"rejected: {rejected}\n"
                f"zone-less timestamps: {self.naive_timestamps:,} (read as "
                f"{self.naive_timezone}, events.naive_timezone)\n"
                f"store: {store_url}")

    def count_rejected(self, reasons: pd.Series) -> None:
        """Add a chunk's rejection reasons to the per-reason counts."""
        for reason, count in reasons.value_counts().items():
            self.rejected[str(reason)] = self.rejected.get(str(reason), 0) + int(count)


@dataclass
class MalformedLine:
    """A CSV record the parser could not split into the header's columns."""

    row_number: int  # 1-based data row (the header is not counted)
    text: str
    fields_found: int
    fields_expected: int


@dataclass
class Chunk:
    """Rows of one chunk plus where they sit in the file and the malformed lines seen so far."""

    frame: pd.DataFrame
    row_numbers: np.ndarray  # 1-based data row of each frame row
    malformed: list[MalformedLine]
    line_break_in: np.ndarray | None = None  # per row: a one-line field holding a line break

    def split(self, shares: tuple[float, ...]) -> list["Chunk"]:
        """The chunk cut into consecutive pieces of these shares of its rows (the malformed
        lines go with the first piece)."""
        ends = [round(len(self.frame) * share) for share in np.cumsum(shares)]
        pieces, start = [], 0
        for end in [*ends[:-1], len(self.frame)]:
            breaks = None if self.line_break_in is None else self.line_break_in[start:end]
            pieces.append(Chunk(self.frame.iloc[start:end].reset_index(drop=True),
                                self.row_numbers[start:end],
                                self.malformed if not pieces else [], breaks))
            start = end
        return pieces


def warn(report: IngestReport, message: str) -> None:
    """Add a warning to the report (shown by `tailor ingest`) and log it."""
    report.warnings.append(message)
    log.warning(message)
