"""Property-based import tests: generated event logs, written in each format (CSV with each
delimiter, plain or gzipped; flat JSON Lines; Segment-style nested JSON Lines; Parquet), with
the contract's column names or others and a mapping. Whatever the rows, every one is stored
exactly once with the right values or kept in the dead-letter table with its reason, and
the counts add up. A round trip from the lake's Parquet back through import reproduces the
events.

Each example imports into a fresh SQLite home; examples are few and small (fast)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tailor.config import load_settings
from tailor.events.ingest.event_types import SEGMENT_EVENT_TYPES
from tailor.events.ingest.job import ingest_files
from tailor.events.ingest.options import ImportFlags
from tailor.events.schema import EVENT_TYPES, PRODUCT_EVENT_TYPES
from tailor.events.store import open_event_store

NOW = pd.Timestamp("2026-03-01T00:00:00Z")
FIRST, LAST = pd.Timestamp("2025-01-01T00:00:00Z"), pd.Timestamp("2026-02-01T00:00:00Z")
EXAMPLES = hypothesis_settings(max_examples=30, deadline=None, derandomize=True, database=None,
                               suppress_health_check=[HealthCheck.too_slow])
# Other spellings of each type: its Segment names, and its own name in other cases.
SPELLINGS = {event_type: [event_type, event_type.upper(), event_type.replace("_", " ").title()]
             + [name for name, mapped in SEGMENT_EVENT_TYPES.items()
                if mapped == event_type and name not in ("page", "screen")]
             for event_type in EVENT_TYPES}
ANONYMOUS = "anonymous-1"
RENAMED = {"event_id": "id", "customer_id": "user", "event_type": "action", "timestamp": "ts",
           "product_id": "sku", "price": "amount"}


@dataclass
class Row:
    """One generated event, as written and as it should come out."""

    event_id: str
    customer_id: str | None
    event_type: str  # as written
    product_id: str | None
    stamp: pd.Timestamp  # the time meant (UTC), to the millisecond
    form: str  # how the time is written
    price: object  # a float, None, or text a file holds ("inf", "0")
    expected_type: str | None  # None: the type is not readable


@st.composite
def rows(draw: st.DrawFn) -> list[Row]:
    """Events with every kind of fault the import sorts out, and repeats of earlier rows."""
    generated: list[Row] = []
    for number in range(draw(st.integers(1, 8))):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        written = draw(st.sampled_from(SPELLINGS[event_type] + ["not_a_type"]))
        millis = draw(st.integers(FIRST.value // 10**6, LAST.value // 10**6))
        generated.append(Row(
            event_id=f"e{number}",
            customer_id=draw(st.sampled_from(["c1", "c 2", "ü3", None])),
            event_type=written,
            product_id=draw(st.sampled_from(["p1", "p-2", None])),
            stamp=pd.Timestamp(millis, unit="ms", tz="UTC"),
            form=draw(st.sampled_from(["iso", "offset", "naive", "epoch_s", "epoch_ms",
                                       "dayfirst"])),
            price=draw(st.one_of(st.none(), st.floats(0.01, 9_999, allow_nan=False)
                                 .map(lambda value: round(value, 2)),
                                 st.sampled_from(["inf", "-inf", "nan", "1e309", "0"]))),
            expected_type=None if written == "not_a_type" else event_type))
    repeats = draw(st.lists(st.integers(0, len(generated) - 1), max_size=2))
    return generated + [generated[position] for position in repeats]


@dataclass
class Run:
    """How one file is written and imported."""

    file_format: str  # csv, jsonl, segment, parquet
    delimiter: str = ","
    renamed: bool = False
    gzipped: bool = False
    dayfirst: bool = False
    zone: str = "UTC"


runs = st.builds(Run, file_format=st.sampled_from(["csv", "jsonl", "segment", "parquet"]),
                 delimiter=st.sampled_from([",", ";", "\t"]), renamed=st.booleans(),
                 gzipped=st.booleans(), dayfirst=st.booleans(),
                 zone=st.sampled_from(["UTC", "Europe/Berlin"]))


def written_time(row: Row, run: Run) -> object:
    """The row's time in its form (text, or a JSON number in JSON Lines)."""
    if row.form == "epoch_s":
        seconds = row.stamp.floor("s").value // 10**9
        return seconds if run.file_format in ("jsonl", "segment") else str(seconds)
    if row.form == "epoch_ms":
        millis = row.stamp.value // 10**6
        return millis if run.file_format in ("jsonl", "segment") else str(millis)
    local = row.stamp.tz_convert(run.zone).tz_localize(None)
    if row.form == "naive":
        return local.isoformat(timespec="milliseconds")
    if row.form == "dayfirst":
        return local.strftime("%d/%m/%Y %H:%M:%S")
    if row.form == "offset":
        return row.stamp.tz_convert("Asia/Kolkata").isoformat(timespec="milliseconds")
    return row.stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expected_time(row: Row, run: Run) -> pd.Timestamp:
    """The UTC time the import must store (seconds forms lose the milliseconds; a local
    wall time in a DST gap moves forward past it, a repeated one takes its first)."""
    if row.form == "epoch_s":
        return row.stamp.floor("s")
    if row.form in ("naive", "dayfirst"):
        wall = row.stamp.tz_convert(run.zone).tz_localize(None)
        wall = wall.floor("s") if row.form == "dayfirst" else wall
        return wall.tz_localize(run.zone, ambiguous=True,
                                nonexistent="shift_forward").tz_convert("UTC")
    return row.stamp


def expected_reason(row: Row, run: Run) -> str | None:
    """The contract's first reason to reject the row, or None when it is stored."""
    price, customer_id = row.price, expected_customer(row, run)
    bad_time = row.form == "dayfirst" and not run.dayfirst
    if row.expected_type is None or bad_time or price in ("inf", "-inf", "nan", "1e309"):
        return "malformed_row"
    if customer_id is None:
        return "missing_customer_id"
    if row.expected_type in PRODUCT_EVENT_TYPES and row.product_id is None:
        return "missing_product_id"
    if price == "0":
        return "nonpositive_price"
    return None


def expected_customer(row: Row, run: Run) -> str | None:
    """The customer id stored: a Segment call without a user id is its anonymous id's."""
    return ANONYMOUS if run.file_format == "segment" and row.customer_id is None \
        else row.customer_id


def contract_values(row: Row, run: Run) -> dict[str, object]:
    return {"event_id": row.event_id, "customer_id": row.customer_id,
            "event_type": row.event_type, "product_id": row.product_id,
            "timestamp": written_time(row, run), "price": row.price}


def write_file(folder: Path, generated: list[Row], run: Run) -> tuple[Path, str | None]:
    """The rows as a file in the run's format; returns it and the --map it needs."""
    names = RENAMED if run.renamed else {name: name for name in RENAMED}
    mapping = ",".join(f"{name}={renamed}" for name, renamed in RENAMED.items()) \
        if run.renamed else None
    records = [{names[key]: value for key, value in contract_values(row, run).items()}
               for row in generated]
    if run.file_format == "parquet":
        path = folder / "events.parquet"
        pq.write_table(pa.table({name: pa.array([None if record[name] is None
                                                 else str(record[name]) for record in records],
                                                type=pa.string())
                                 for name in names.values()}), path)
        return path, mapping
    if run.file_format == "segment":
        records = [_segment_line(row, run) for row in generated]
        mapping = None
    if run.file_format == "csv":
        text = io.StringIO()
        writer = csv.writer(text, delimiter=run.delimiter, lineterminator="\n")
        header = list(names.values())
        writer.writerow(header)
        for record in records:
            writer.writerow(["" if record[name] is None else record[name] for name in header])
        content, suffix = text.getvalue(), ".csv"
    else:
        content = "\n".join(json.dumps({key: value for key, value in record.items()
                                        if value is not None}) for record in records) + "\n"
        suffix = ".jsonl"
    path = folder / ("events" + suffix + (".gz" if run.gzipped else ""))
    path.write_bytes(gzip.compress(content.encode()) if run.gzipped else content.encode())
    return path, mapping


def _segment_line(row: Row, run: Run) -> dict:
    """A Segment track call from object storage (personal data in its context)."""
    properties: dict[str, object] = {"source": "test"}
    if row.product_id is not None:
        properties["product_id"] = row.product_id
    if row.price is not None:
        properties["price"] = row.price
    line = {"type": "track", "event": row.event_type, "messageId": row.event_id,
            "timestamp": written_time(row, run), "properties": properties,
            "context": {"traits": {"email": "someone@example.com"}, "ip": "10.0.0.1"}}
    if row.customer_id is not None:
        line["userId"] = row.customer_id
    return line | {"anonymousId": ANONYMOUS} if row.customer_id is None else line


def import_file(home: Path, path: Path, mapping: str | None, run: Run) -> tuple[dict, ...]:
    settings = load_settings(home=home, env={}).replace(ingest_chunk_rows=5)
    report = ingest_files(settings, path, now=NOW, progress=False, flags=ImportFlags(
        column_map=mapping, dayfirst=run.dayfirst, timezone=run.zone))
    store = open_event_store(settings.event_store_url)
    try:
        return report.to_dict(), store.events_after(0, 1_000), store.rejected_rows(limit=1_000)
    finally:
        store.close()


@EXAMPLES
@given(generated=rows(), run=runs)
def test_every_row_is_stored_once_or_dead_lettered_with_its_reason(generated: list[Row],
                                                                  run: Run) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, mapping = write_file(Path(folder), generated, run)
        report, events, dead = import_file(Path(folder) / "home", path, mapping, run)
    assert report["received"] == len(generated)
    assert report["accepted"] + report["duplicates"] + sum(report["rejected"].values()) \
        == len(generated)
    expected_valid: dict[str, Row] = {}
    expected_dead: dict[int, str] = {}
    for number, row in enumerate(generated, start=1):
        reason = expected_reason(row, run)
        if reason is None:
            expected_valid.setdefault(row.event_id, row)
        else:
            expected_dead[number] = reason
    assert report["accepted"] == len(expected_valid) == len(events)
    assert events["event_id"].is_unique
    for stored in events.itertuples():
        row = expected_valid[stored.event_id]
        assert (stored.customer_id, stored.event_type, stored.product_id) == (
            expected_customer(row, run), row.expected_type, row.product_id)
        assert stored.timestamp == expected_time(row, run), (row, run)
        assert (pd.isna(stored.price) if row.price is None else stored.price == row.price)
    assert dict(zip(dead["row_number"], dead["reason"])) == expected_dead
    assert not dead["raw"].fillna("").str.contains("someone@example.com").any()


@hypothesis_settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(generated=rows())
def test_the_lake_parquet_imports_back_to_the_same_events(generated: list[Row]) -> None:
    from tailor.events.lake import export_lake

    import fsspec

    run = Run("csv", dayfirst=True)
    lake = f"memory://tailor-lake-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as folder:
        path, _ = write_file(Path(folder), generated, run)
        first = load_settings(home=Path(folder) / "first", env={}).replace(lake_url=lake)
        ingest_files(first, path, now=NOW, progress=False, flags=ImportFlags(dayfirst=True))
        export_lake(first, progress=False)
        second = load_settings(home=Path(folder) / "second", env={})
        fs = fsspec.filesystem("memory")
        for part in sorted(fs.glob(f"{lake[len('memory://'):]}/events/**/*.parquet")):
            ingest_files(second, f"memory://{part}", now=NOW, progress=False)
        fs.rm(lake[len("memory://"):], recursive=True)
        stored = []
        for settings in (first, second):
            store = open_event_store(settings.event_store_url)
            events = store.events_after(0, 1_000).drop(columns=["seq", "received_at"])
            stored.append(events.sort_values("event_id", ignore_index=True))
            store.close()
    pd.testing.assert_frame_equal(stored[1], stored[0])
