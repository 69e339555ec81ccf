"""The import report for people: `tailor ingest` without `--json` prints these rich tables.

Reads an `IngestReport`; writes nothing (the command prints what this returns). Shows the
counts, how the file was read (format, delimiter, encoding, layout, the column mapping, the
timestamp format and zone), the event-type names read as the contract's, and a few
rejected rows per reason (row number, field and detail only: no personal data).
"""

from __future__ import annotations

from typing import Any

from tailor.events.ingest.report import IngestReport


def render_report(report: IngestReport, store_url: str) -> Any:
    """A rich renderable of the report (imported here: rich is not needed to import)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    counts = Table(title="import", show_header=False, title_justify="left")
    counts.add_column("what", style="bold")
    counts.add_column("value")
    counts.add_row("accepted", f"{report.accepted:,}")
    counts.add_row("duplicates", f"{report.duplicates:,}")
    if not report.rejected:
        counts.add_row("rejected", "0")
    for reason, count in sorted(report.rejected.items()):
        counts.add_row(f"rejected: {reason}", f"{count:,}")
    for call, count in sorted(report.skipped.items()):
        counts.add_row(f"left out ({call} calls)", f"{count:,}")
    counts.add_row("received", f"{report.received:,}")
    if report.products or report.customers:
        counts.add_row("products, customers", f"{report.products:,}, {report.customers:,}")
    counts.add_row("store", escape(store_url))

    read = Table(title="how the file was read", show_header=False, title_justify="left")
    read.add_column("what", style="bold")
    read.add_column("value")
    for key, value in report.source.items():
        read.add_row(key, escape(repr(value) if key == "delimiter" else str(value)))
    for column, source in report.mapping.items():
        read.add_row(f"column {column}", escape(source))
    read.add_row("timestamp format", escape(report.timestamp_format_used()))
    forms = ", ".join(f"{form} {count:,}" for form, count in sorted(report.timestamp_forms.items()))
    read.add_row("timestamps read as", forms or "none")
    read.add_row("zone-less timestamps", f"{report.naive_timestamps:,} in "
                 f"{report.naive_timezone} ({report.zone_origin})")
    for name, (event_type, rows) in sorted(report.event_types_renamed.items()):
        read.add_row(escape(f"event type {name!r}"), f"{event_type} ({rows:,} rows)")

    parts: list[Any] = [counts, read]
    if report.samples:
        samples = Table(title="rejected rows (samples)", title_justify="left")
        for name in ("reason", "row", "field", "detail"):
            samples.add_column(name)
        for reason, rows in sorted(report.samples.items()):
            for row in rows:
                samples.add_row(reason, str(row["row_number"]), escape(row["field"]),
                                escape(row["detail"]))
        parts.append(samples)
    for message in report.warnings:
        parts.append(Text.assemble(("warning: ", "yellow"), message))
    return Group(*parts)
