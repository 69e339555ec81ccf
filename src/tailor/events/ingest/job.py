"""The import job (`tailor ingest`): checks the files, loads the catalogue and customers,
streams the events through in chunks, and records the run.

Reads the events file and optionally a products and a customers file; writes through the
other `tailor.events.ingest` modules to the event store and the PII store, and one
`ingest_runs` row. Returns the `IngestReport`. Events stream through in chunks of
`ingest_chunk_rows`, so memory stays bounded whatever the file size; re-importing a file
stores nothing twice. When the file holds more than one chunk, a reader process reads and
validates the next chunk while this process writes the current one (one transaction per
chunk): an import killed midway leaves whole chunks, and importing again completes it.

Whole-file problems (missing file, unknown format, empty file, invalid UTF-8, a missing
required column) raise before anything is written. Row problems never do: malformed lines
and contract violations go to the dead-letter table and the rows around them are imported.
Zone-less timestamps are read in `events.naive_timezone`; the report counts them and names
the zone (`timestamps` in `ingest --json`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.events.ingest.catalogue import load_customers, load_products
from tailor.events.ingest.chunks import write_chunk
from tailor.events.ingest.files import InputFile, check_input_file, file_columns, require_columns
from tailor.events.ingest.reader_process import ReaderProcess, ReadPlan, validated_chunks
from tailor.events.ingest.report import IngestReport, warn
from tailor.events.pii import pii_columns
from tailor.events.retry import RetryPolicy, one_line, with_retries
from tailor.events.schema import ContractError, TimestampRules, check_event_columns
from tailor.events.store import (
    RUN_ABORTED,
    RUN_FINISHED,
    EventStore,
    IngestRun,
    StoreUnavailable,
    open_event_store,
)
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
                 progress: bool = True) -> IngestReport:
    """Import products, customers (PII split off) and events into the stores the settings name.

    Args:
        settings: resolved `Settings` (store URLs, chunk size, future-time tolerance, home).
        events_path: events file (.csv, .csv.gz, .parquet, .pq).
        products_path: optional catalogue file, loaded first (enables the unknown-product check).
        customers_path: optional customers file; PII columns go to the PII store only.
        now: the receive time for the future-timestamp check (default: the current time).
        progress: show a rich progress bar on stderr.

    Returns:
        The `IngestReport` (accepted, duplicates, rejected per reason, ...).

    Raises:
        FileNotFoundError, IsADirectoryError: a path is not a file.
        ContractError: a required column is missing (nothing is written).
        ValueError: unknown format, empty or non-UTF-8 file (nothing is written), or a CSV
            that cannot be parsed past some point (rows before it are kept; re-run after fixing).
    """
    started = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    plan = _check_inputs(Path(events_path), products_path, customers_path)
    store = open_event_store(settings.event_store_url)
    report = IngestReport(batch_id=f"import-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                          store=redact_url(settings.event_store_url))
    dropped: list[str] = []
    policy = replace(RetryPolicy.from_settings(settings), on_retry=dropped.append)
    try:
        if "products" in plan:
            load_products(store, plan["products"], settings.ingest_chunk_rows, report, policy)
        if "customers" in plan:
            load_customers(store, plan["customers"], settings, settings.ingest_chunk_rows, report,
                           policy)
        _load_events(store, plan["events"], settings, now, progress, report, policy)
    finally:
        report.seconds = time.perf_counter() - started
        store.close()
    if dropped:
        warn(report, f"the event store connection dropped {len(dropped)} time(s) (first: "
                      f"{dropped[0]}); each write was tried again and its rows stored once")
    log.info("ingest %s: accepted %d, duplicates %d, rejected %s", report.batch_id,
             report.accepted, report.duplicates, report.rejected or "none")
    return report


def _check_inputs(events_path: Path, products_path: Path | str | None,
                  customers_path: Path | str | None) -> dict[str, InputFile]:
    """Check every file and header before anything is written; returns label → file."""
    plan: dict[str, InputFile] = {}
    for label, raw in (("products", products_path), ("customers", customers_path),
                       ("events", events_path)):
        if raw is not None:
            plan[label] = check_input_file(Path(raw), label)
    events = plan["events"]
    try:
        check_event_columns(file_columns(events.path, events.kind))
    except ContractError as error:
        raise ContractError(f"{events.path}: {error}") from None
    for label, required in (("products", "product_id"), ("customers", "customer_id")):
        if label in plan:
            found = file_columns(plan[label].path, plan[label].kind)
            require_columns(plan[label].path, found, (required,))
    return plan


def _load_events(store: EventStore, source: InputFile, settings: Any, now: pd.Timestamp,
                 progress: bool, report: IngestReport, policy: RetryPolicy) -> None:
    """Stream the events file through validation into the store; records the ingest run,
    as `aborted` with the reason when it stops early (the counts are what was committed).

    A file of more than one chunk is read and validated in a `ReaderProcess` while this
    process writes; a smaller one in this process (there is nothing to overlap).
    """
    path = source.path
    columns = file_columns(path, source.kind)
    report.pii_in_events = bool(pii_columns(columns))
    plan = ReadPlan(path=path, kind=source.kind, columns=columns,
                    chunk_rows=settings.ingest_chunk_rows, now=now,
                    known_products=with_retries(lambda _: store.product_ids(),
                                                "the catalogue", policy) or None,
                    max_future_seconds=settings.ingest_max_future_seconds,
                    pii_in_events=report.pii_in_events,
                    timestamps=TimestampRules.from_settings(settings))
    report.naive_timezone = plan.timestamps.naive_timezone
    run_started = pd.Timestamp.now(tz="UTC")
    # Started before the progress bar's thread: a forked child copies no running thread.
    reader = ReaderProcess(plan) if source.rows_estimate > plan.chunk_rows else None
    status, reason = RUN_ABORTED, "interrupted"
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task(f"ingest {path.name}", total=max(source.rows_estimate, 1))
            for valid, rejected, warnings, naive in (reader or validated_chunks(plan)):
                write_chunk(store, report, str(path), valid, rejected, policy)
                report.naive_timestamps += naive
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
            batch_id=report.batch_id, source=str(path), started_at=run_started,
            finished_at=pd.Timestamp.now(tz="UTC"), received=report.received,
            accepted=report.accepted, duplicates=report.duplicates,
            rejected=dict(report.rejected), status=status, abort_reason=reason), policy)
    if report.received == 0:
        warn(report, f"{path}: no data rows (header only); nothing imported")


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
