"""The import job (`tailor ingest`): checks the options and files, loads the catalogue and
customers, streams the events through in chunks, and records the run.

Reads the events file (CSV, JSON Lines or Parquet; local or an fsspec URL) and optionally a
products and a customers file; writes through the other `tailor.events.ingest` modules to
the event store and the PII store, and one `ingest_runs` row. Returns the `IngestReport`.
Events stream through in chunks of `ingest_chunk_rows`, so memory stays bounded whatever the
file size; re-importing a file stores nothing twice. When the file holds more than one
chunk, a reader process reads and validates the next chunk while this process writes the
current one (one transaction per chunk): an import killed midway leaves whole chunks, and
importing again completes it.

Whole-file problems (a bad flag or setting, missing file, unknown format, empty file, text
not in its encoding, a required column missing after the mapping) raise before anything is
written. Row problems never do: malformed lines and contract violations go to the
dead-letter table and the rows around them are imported. The report states the mapping
used, the timestamp format and zone, the event-type names read and sample rejections.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.errors import InputError
from tailor.events.ingest.catalogue import load_customers, load_products
from tailor.events.ingest.chunks import write_chunk
from tailor.events.ingest.files import InputFile, check_input_file, file_columns, require_columns
from tailor.events.ingest.formats import JSON_LINES, PARQUET, base_name
from tailor.events.ingest.jsonl import SAMPLE_LINES
from tailor.events.ingest.mapping import SEGMENT, ColumnPlan, plan_columns
from tailor.events.ingest.options import ImportFlags, ImportOptions, resolve_options
from tailor.events.ingest.reader_process import ReaderProcess, ReadPlan, validated_chunks
from tailor.events.ingest.report import IngestReport, warn
from tailor.events.pii import pii_columns
from tailor.events.retry import RetryPolicy, one_line, with_retries
from tailor.events.schema import REQUIRED_EVENT_COLUMNS, ContractError
from tailor.events.store import (
    RUN_ABORTED,
    RUN_FINISHED,
    EventStore,
    IngestRun,
    StoreUnavailable,
    open_event_store,
)
from tailor.events.tombstones import TombstoneSet
from tailor.urls import redact_url

log = logging.getLogger(__package__)  # one logger for the whole import, as before the split


def _progress_bar(enabled: bool) -> Any:
    """A rich progress display on stderr (disabled: a no-op with the same interface)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def ingest_files(settings: Any, events_path: Path | str, *, products_path: Path | str | None = None,
                 customers_path: Path | str | None = None, now: pd.Timestamp | None = None,
                 progress: bool = True, flags: ImportFlags | None = None) -> IngestReport:
    """Import products, customers (PII split off) and events into the stores the settings name.

    Args:
        settings: resolved `Settings` (store URLs, chunk size, future-time tolerance, home,
            the saved `ingest.*` import defaults).
        events_path: events file (CSV, JSON Lines or Parquet, plain or gzipped), a local
            path or an fsspec URL (s3://, memory://, file://).
        products_path: optional catalogue file, loaded first (enables the unknown-product check).
        customers_path: optional customers file; PII columns go to the PII store only.
        now: the receive time for the future-timestamp check (default: the current time).
        progress: show a rich progress bar on stderr.
        flags: the command line's import options (mapping, event types, timestamp format,
            zone, delimiter, encoding, format), over the saved ones.

    Returns:
        The `IngestReport` (accepted, duplicates, rejected per reason, ...).

    Raises:
        ImportOptionError: a flag or saved setting is malformed (nothing is read).
        FileNotFoundError, IsADirectoryError: a path is not a file.
        ContractError: a required column is missing (nothing is written).
        InputError: unknown format, empty file or text not in its encoding (nothing is
            written), or a CSV that cannot be parsed past some point (rows before it are
            kept; re-run after fixing).
    """
    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    options = resolve_options(settings, flags)
    plan = _check_inputs(events_path, products_path, customers_path, options)
    column_plan, notes = _plan_event_columns(plan["events"], options)
    store = open_event_store(settings.event_store_url)
    report = IngestReport(batch_id=f"import-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                          store=redact_url(settings.event_store_url))
    for note in notes:
        warn(report, note)
    dropped: list[str] = []
    policy = replace(RetryPolicy.from_settings(settings), on_retry=dropped.append)
    try:
        if "products" in plan:
            load_products(store, plan["products"], settings.ingest_chunk_rows, report, policy)
        if "customers" in plan:
            load_customers(store, plan["customers"], settings, settings.ingest_chunk_rows, report,
                           policy)
        _load_events(store, plan["events"], settings, now, progress, report, policy,
                     options, column_plan)
    finally:
        report.seconds = time.perf_counter() - started
        store.close()
    if dropped:
        warn(report, f"the event store connection dropped {len(dropped)} time(s) (first: "
                      f"{dropped[0]}); each write was tried again and its rows stored once")
    log.info("ingest %s: accepted %d, duplicates %d, rejected %s", report.batch_id,
             report.accepted, report.duplicates, report.rejected or "none")
    return report


def _check_inputs(events_path: Path | str, products_path: Path | str | None,
                  customers_path: Path | str | None, options: ImportOptions
                  ) -> dict[str, InputFile]:
    """Check every file and header before anything is written; returns label → file.
    The delimiter, encoding and format options apply to every file; products and customers
    are CSV or Parquet."""
    plan: dict[str, InputFile] = {}
    for label, raw in (("products", products_path), ("customers", customers_path),
                       ("events", events_path)):
        if raw is not None:
            plan[label] = check_input_file(raw, label, forced_format=options.file_format
                                           if label == "events" else "",
                                           delimiter=options.delimiter,
                                           encoding=options.encoding)
    for label, required in (("products", "product_id"), ("customers", "customer_id")):
        if label in plan:
            if plan[label].kind == JSON_LINES:
                raise InputError(f"{plan[label].shown}: the {label} file must be CSV or Parquet")
            found = file_columns(plan[label])
            require_columns(plan[label].shown, found, (required,))
    return plan


def _plan_event_columns(events: InputFile, options: ImportOptions
                        ) -> tuple[ColumnPlan, list[str]]:
    """The events file's column plan, checked to give every required contract column, and
    the warnings to report (JSON Lines whose first lines lack a required key: in JSON an
    absent key is a missing value, so the rows are rejected one by one, not the file).

    Raises:
        ContractError: a CSV or Parquet file lacks a required column after the mapping (the
            message says how to map it), or a `--map` source is not in the file.
    """
    columns = file_columns(events)
    plan = plan_columns(columns, options.flag_map, options.saved_map, where=events.shown,
                        strict=events.kind != JSON_LINES)
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in plan.contract_columns()]
    if not missing:
        return plan, []
    shown = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "")
    how = ("name the file's column(s) with --map "
           + ",".join(f"{name}=<column>" for name in missing)
           + " (or ingest.column_map in tailor.toml)")
    if events.kind == JSON_LINES:  # a key absent from an object is a missing value
        return plan, [f"{events.shown}: no line of the first {SAMPLE_LINES:,} has "
                      f"{', '.join(missing)} (keys seen: {shown or 'none'}); rows without "
                      f"it are rejected; if the file names it otherwise, {how}"]
    raise ContractError(
        f"{events.shown}: missing required column(s): {', '.join(missing)} (required: "
        f"{', '.join(REQUIRED_EVENT_COLUMNS)}; found: {shown or 'none'}); {how}")


def _load_events(store: EventStore, source: InputFile, settings: Any, now: pd.Timestamp,
                 progress: bool, report: IngestReport, policy: RetryPolicy,
                 options: ImportOptions, column_plan: ColumnPlan) -> None:
    """Stream the events file through validation into the store; records the ingest run,
    as `aborted` with the reason when it stops early (the counts are what was committed).

    A file of more than one chunk is read and validated in a `ReaderProcess` while this
    process writes; a smaller one in this process (there is nothing to overlap).
    """
    path = source.shown
    report.pii_in_events = bool(pii_columns(column_plan.columns))
    event_types = replace(options.event_types, skip_non_events=column_plan.layout == SEGMENT)
    plan = ReadPlan(source=source, columns=list(column_plan.columns),
                    chunk_rows=settings.ingest_chunk_rows, now=now,
                    known_products=with_retries(lambda _: store.product_ids(),
                                                "the catalogue", policy) or None,
                    max_future_seconds=settings.ingest_max_future_seconds,
                    pii_in_events=report.pii_in_events, timestamps=options.timestamps,
                    column_plan=column_plan, event_types=event_types)
    _describe_import(report, source, options, column_plan)
    run_started = pd.Timestamp.now(tz="UTC")
    # Started before the progress bar's thread: a forked child copies no running thread.
    reader = ReaderProcess(plan) if source.rows_estimate > plan.chunk_rows else None
    tombstones = TombstoneSet(settings.home_path)  # forgotten customers are never stored again
    status, reason = RUN_ABORTED, "interrupted"
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task(f"ingest {base_name(source.path)}",
                                total=max(source.rows_estimate, 1))
            for valid, rejected, warnings, notes in (reader or validated_chunks(plan)):
                write_chunk(store, report, path, valid, rejected, policy, tombstones)
                report.add_notes(notes)
                for message in warnings:
                    if message not in report.warnings:
                        report.warnings.append(message)
                bar.update(task, completed=min(report.received, source.rows_estimate))
            bar.update(task, completed=source.rows_estimate)
        status, reason = RUN_FINISHED, ""
    except Exception as error:
        reason = f"{type(error).__name__}: {one_line(error)}"
        raise
    finally:
        if reader is not None:
            reader.close()
        _record_run(store, IngestRun(
            batch_id=report.batch_id, source=path, started_at=run_started,
            finished_at=pd.Timestamp.now(tz="UTC"), received=report.received,
            accepted=report.accepted, duplicates=report.duplicates,
            rejected=dict(report.rejected), status=status, abort_reason=reason), policy)
    if report.received == 0:
        warn(report, f"{path}: no data rows (header only); nothing imported")


def _describe_import(report: IngestReport, source: InputFile, options: ImportOptions,
                     column_plan: ColumnPlan) -> None:
    """The report's statement of how the file was read: format, delimiter, encoding,
    layout, the column mapping and the timestamp rules."""
    report.source = {**source.describe(), "layout": column_plan.layout}
    if source.kind == PARQUET:
        report.source.pop("encoding", None)
    report.mapping = column_plan.describe()
    rules = options.timestamps
    report.naive_timezone, report.zone_origin = rules.naive_timezone, options.zone_origin
    report.timestamp_format, report.format_origin = rules.timestamp_format, options.format_origin
    report.dayfirst = rules.dayfirst


def _record_run(store: EventStore, run: IngestRun, policy: RetryPolicy) -> None:
    """Record the run (retried like the writes). An aborted run whose record cannot be
    written either is logged: the error that aborted it is the one to raise."""
    try:
        with_retries(lambda _: store.record_ingest(run), "the ingest run", policy)
    except StoreUnavailable as error:
        if run.status == RUN_FINISHED:
            raise
        log.error("ingest %s aborted (%s), and its run could not be recorded: %s",
                  run.batch_id, run.abort_reason, error)
