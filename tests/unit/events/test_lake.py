"""The hourly lake export: hive partitions, incremental by watermark, idempotent, crash-safe,
and the same on a non-local (fsspec memory://) lake."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tailor.config import Settings, load_settings
from tailor.events import lake as lake_module
from tailor.events import lake_files as lake_files_module
from tailor.events.lake import Lake, export_lake, read_watermark
from tailor.events.schema import validate_events
from tailor.events.store import EventStore, IngestRun, open_event_store

NOW = pd.Timestamp("2026-03-01T12:00:00Z")


def make_events(first: int, count: int, start: str = "2026-02-27T22:10:00Z",
                step_minutes: int = 25) -> pd.DataFrame:
    """`count` page views with ids e<first>.., one every `step_minutes` from `start`."""
    times = pd.date_range(start, periods=count, freq=f"{step_minutes}min", tz="UTC")
    return pd.DataFrame({
        "event_id": [f"e{first + index}" for index in range(count)],
        "customer_id": [f"c{index % 3}" for index in range(count)],
        "event_type": "page_view",
        "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device_type": "mobile",
    })


def ingest(store: EventStore, raw: pd.DataFrame, batch_id: str) -> int:
    """Validate and store rows as an ingest job would; returns events stored."""
    result = validate_events(raw, now=NOW)
    stored = store.insert_events(result.valid, batch_id)
    store.insert_rejected(result.rejected, batch_id, "test")
    store.record_ingest(IngestRun(batch_id, "test", NOW, NOW, received=len(raw), accepted=stored,
                                  duplicates=len(result.valid) - stored))
    return stored


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


@pytest.fixture
def store(settings: Settings) -> EventStore:
    opened = open_event_store(settings.event_store_url)
    yield opened
    opened.close()


def lake_files(settings: Settings) -> list[str]:
    fs, root = fsspec.core.url_to_fs(settings.lake_root)
    root = root.rstrip("/")
    return sorted(path[len(root) + 1:] for path in fs.glob(f"{root}/events/**/*.parquet"))


def read_lake_events(settings: Settings) -> pd.DataFrame:
    fs, root = fsspec.core.url_to_fs(settings.lake_root)
    frames = []
    for path in fs.glob(f"{root}/events/**/*.parquet"):
        with fs.open(path, "rb") as handle:
            frames.append(pq.read_table(handle).to_pandas().assign(path=path))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["event_id"])


def test_export_writes_hive_partitions_named_by_seq_range(settings: Settings,
                                                           store: EventStore) -> None:
    ingest(store, make_events(0, 8), "b1")  # 22:10 on Feb 27 to 01:05 on Feb 28
    summary = export_lake(settings, progress=False)

    assert summary.events == 8 and summary.chunks == 1
    files = lake_files(settings)
    assert files == [
        "events/date=2026-02-27/hour=22/part-000000000001-000000000002.parquet",
        "events/date=2026-02-27/hour=23/part-000000000003-000000000005.parquet",
        "events/date=2026-02-28/hour=00/part-000000000006-000000000007.parquet",
        "events/date=2026-02-28/hour=01/part-000000000008-000000000008.parquet",
    ]
    assert summary.files == 4 and sorted(summary.written) == files
    lake = read_lake_events(settings)
    for _, row in lake.iterrows():  # every row sits in the partition of its own hour
        assert f"date={row['timestamp']:%Y-%m-%d}/hour={row['timestamp']:%H}/" in row["path"]
    assert sorted(lake["event_id"]) == sorted(f"e{index}" for index in range(8))
    assert str(lake["timestamp"].dtype) == "datetime64[us, UTC]"


def test_chunks_bound_the_rows_read_per_step(settings: Settings, store: EventStore) -> None:
    ingest(store, make_events(0, 10, step_minutes=1), "b1")  # all within one hour
    summary = export_lake(settings.replace(lake_export_chunk_rows=4), progress=False)

    assert summary.chunks == 3 and summary.events == 10
    assert [Path(name).name for name in lake_files(settings)] == [
        "part-000000000001-000000000004.parquet", "part-000000000005-000000000008.parquet",
        "part-000000000009-000000000010.parquet"]


def test_incremental_exports_hold_every_event_exactly_once(settings: Settings,
                                                           store: EventStore) -> None:
    ingest(store, make_events(0, 6), "b1")
    first = export_lake(settings, progress=False)
    # The second batch has events in hours the first export already wrote.
    ingest(store, make_events(100, 5, start="2026-02-27T22:40:00Z", step_minutes=30), "b2")
    second = export_lake(settings, progress=False)

    assert (first.events, second.events) == (6, 5)
    assert (second.watermark_before, second.watermark_after) == (6, 11)
    lake = read_lake_events(settings)
    assert len(lake) == 11 and lake["event_id"].is_unique
    assert lake["seq"].sort_values().tolist() == list(range(1, 12))
    assert read_watermark(Lake(settings.lake_root)).seq == 11


def test_rerun_adds_nothing(settings: Settings, store: EventStore) -> None:
    ingest(store, make_events(0, 7), "b1")
    export_lake(settings, progress=False)
    before = {name: (Path(settings.lake_root) / name).stat().st_mtime_ns
              for name in lake_files(settings)}

    again = export_lake(settings, progress=False)

    assert again.events == 0 and again.files == 0
    assert {name: (Path(settings.lake_root) / name).stat().st_mtime_ns
            for name in lake_files(settings)} == before


def test_crash_between_files_and_watermark_duplicates_nothing(
        settings: Settings, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(store, make_events(0, 6), "b1")
    export_lake(settings, progress=False)
    ingest(store, make_events(100, 3, start="2026-02-28T00:20:00Z"), "b2")
    real_write_watermark = lake_files_module.write_watermark

    def crash_on_commit(lake: Lake, watermark: lake_module.Watermark,
                        dataset: str = "events") -> None:
        if not watermark.pending and watermark.seq > 6:  # the files are written; die before this
            raise KeyboardInterrupt("simulated crash")
        real_write_watermark(lake, watermark, dataset)

    monkeypatch.setattr(lake_files_module, "write_watermark", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        export_lake(settings, progress=False)
    monkeypatch.setattr(lake_files_module, "write_watermark", real_write_watermark)

    crashed = read_lake_events(settings)
    assert len(crashed) == 9  # the crashed run's files are there...
    assert read_watermark(Lake(settings.lake_root)).seq == 6  # ...but the watermark never moved
    # More events arrive before the re-run, so its chunk is not the crashed run's chunk.
    ingest(store, make_events(200, 2, start="2026-02-28T00:50:00Z"), "b3")
    rerun = export_lake(settings, progress=False)

    assert rerun.recovered_files >= 1 and rerun.events == 5
    lake = read_lake_events(settings)
    assert len(lake) == 11 and lake["event_id"].is_unique
    assert read_watermark(Lake(settings.lake_root)).pending == []


def test_partial_lake_file_from_a_crash_is_replaced(settings: Settings, store: EventStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(store, make_events(0, 4, step_minutes=1), "b1")

    def die_after_half_a_file(self: Lake, relative: str, table: object) -> None:
        self.fs.makedirs(self.path(relative).rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(self.path(relative), "wb") as handle:  # a torn, non-atomic write
            handle.write(b"PAR1 torn")
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(Lake, "write_table", die_after_half_a_file)
    with pytest.raises(KeyboardInterrupt):
        export_lake(settings, progress=False)
    monkeypatch.undo()

    summary = export_lake(settings, progress=False)
    assert summary.recovered_files == 1 and summary.events == 4
    assert sorted(read_lake_events(settings)["event_id"]) == ["e0", "e1", "e2", "e3"]


def test_memory_lake_through_fsspec(tmp_path: Path, store: EventStore,
                                    settings: Settings) -> None:
    lake_url = f"memory://lake-{uuid.uuid4().hex[:8]}"
    memory_settings = settings.replace(lake_url=lake_url)
    ingest(store, make_events(0, 5), "b1")
    first = export_lake(memory_settings, progress=False)
    ingest(store, make_events(50, 2, start="2026-03-01T08:00:00Z"), "b2")
    second = export_lake(memory_settings, progress=False)
    third = export_lake(memory_settings, progress=False)

    assert (first.events, second.events, third.events) == (5, 2, 0)
    assert second.lake_root == lake_url
    assert any(name.startswith("events/date=2026-03-01/hour=08/") for name in
               lake_files(memory_settings))
    lake = read_lake_events(memory_settings)
    assert len(lake) == 7 and lake["event_id"].is_unique
    fs, root = fsspec.core.url_to_fs(lake_url)
    assert json.loads(fs.cat_file(f"{root}/events/_watermark.json"))["seq"] == 7
    assert not (tmp_path / "home" / "lake").exists()


def test_products_and_customers_snapshot_without_pii(settings: Settings, store: EventStore) -> None:
    store.upsert_products(pd.DataFrame({
        "product_id": ["p1", "p2"], "name": ["Shoe", "Hat"], "category": ["shoes", "hats"],
        "price": [59.0, 12.5], "rating": [4.5, None], "inventory": [3, 0],
        "seasonal": [False, True], "colour": ["red", "blue"]}))
    store.upsert_customers(pd.DataFrame({
        "customer_id": ["c1", "c2"], "signup_date": ["2025-01-02", "2025-06-30"],
        "location": ["Berlin", "Lyon"], "device_type": ["mobile", "desktop"]}))
    export_lake(settings, progress=False)
    store.upsert_products(pd.DataFrame({"product_id": ["p3"], "name": ["Sock"], "price": [3.0],
                                        "seasonal": ["no"]}))
    summary = export_lake(settings, progress=False)

    root = Path(settings.lake_root)
    products = pq.read_table(root / "products" / "products.parquet")
    customers = pq.read_table(root / "customers" / "customers.parquet").to_pandas()
    assert (summary.products, summary.customers) == (3, 2)
    assert products.column("product_id").to_pylist() == ["p1", "p2", "p3"]
    assert str(products.schema.field("inventory").type) == "int64"
    assert products.column("seasonal").to_pylist() == [False, True, False]
    assert products.column("rating").to_pylist() == [4.5, None, None]
    assert "colour" in products.column("extra").to_pylist()[0]
    assert not {"email", "name"} & set(customers.columns)
    assert customers["signup_date"].tolist() == [pd.Timestamp("2025-01-02", tz="UTC"),
                                                 pd.Timestamp("2025-06-30", tz="UTC")]


def test_summary_is_json_ready(settings: Settings, store: EventStore) -> None:
    ingest(store, make_events(0, 3), "b1")
    payload = json.loads(json.dumps(export_lake(settings, progress=False).to_dict()))
    assert payload["events"] == 3 and payload["watermark_after"] == 3
    assert payload["lake_root"] == settings.lake_root and "written" not in payload


def test_a_corrupt_watermark_is_a_clear_error(settings: Settings, store: EventStore) -> None:
    ingest(store, make_events(0, 2), "b1")
    watermark = Path(settings.lake_root) / "events" / "_watermark.json"
    watermark.parent.mkdir(parents=True)
    watermark.write_text("{not json")
    with pytest.raises(ValueError, match="_watermark.json"):
        export_lake(settings, progress=False)


@pytest.mark.postgres
def test_export_from_postgresql_is_incremental(settings: Settings, postgres_url: str) -> None:
    on_postgres = settings.replace(database_url=postgres_url)
    store = open_event_store(postgres_url)
    try:
        ingest(store, make_events(0, 5), "b1")
        first = export_lake(on_postgres, progress=False)
        ingest(store, make_events(0, 7), "b2")  # five repeats (stored once) and two new events
        second = export_lake(on_postgres, progress=False)
    finally:
        store.close()

    assert (first.events, second.events) == (5, 2)
    lake = read_lake_events(on_postgres)
    assert sorted(lake["event_id"]) == sorted(f"e{index}" for index in range(7))
    assert str(lake["timestamp"].dtype) == "datetime64[us, UTC]"


def test_a_second_export_while_one_runs_is_refused(settings: Settings, store: EventStore) -> None:
    ingest(store, make_events(0, 3), "b1")
    with lake_module.export_lock(settings.home_path / lake_module.EXPORT_LOCK_FILE):
        other_process = subprocess.run(
            [sys.executable, "-c", "from tailor.config import load_settings; "
             "from tailor.events.lake import export_lake; "
             f"export_lake(load_settings(home={str(settings.home_path)!r}, env={{}}), False)"],
            capture_output=True, text=True, timeout=120)
    assert other_process.returncode != 0
    assert "ExportInProgress: another lake export is running" in other_process.stderr
    assert lake_files(settings) == []
    assert export_lake(settings, progress=False).events == 3  # the lock is released
