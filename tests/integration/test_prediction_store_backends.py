"""One behaviour suite for the prediction log's table on every backend: SQLite (a temp file)
and PostgreSQL (a fresh schema), written by the serving writer, read by the monitoring
reader, exported to the lake and cleared of a deleted customer's id by the event store."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry

from tailor.config import load_settings
from tailor.events.lake_files import Lake
from tailor.events.prediction_lake import PREDICTIONS_DIR, export_predictions
from tailor.events.prediction_store import (
    PREDICTION_COLUMNS, PredictionStore, datetime_to_micros, open_prediction_store,
)
from tailor.events.retry import RetryPolicy
from tailor.events.store import open_event_store
from tailor.monitoring.prediction_log import COLUMNS, read_predictions
from tailor.serving.metrics import ServingMetrics
from tailor.serving.prediction_recorder import PredictionRecorder
from tailor.serving.schemas import HomepageRequest, HomepageResponse

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=dt.timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not' / 'yet' / 'events.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> PredictionStore:
    opened = open_prediction_store(store_url)
    yield opened
    opened.close()


def row(request_id: str, minutes: float = 0, endpoint: str = "homepage",
        customer: str | None = "c1", **changes: object) -> tuple:
    """A stored answer `minutes` after T0, in `PREDICTION_COLUMNS` order."""
    model = {"homepage": "homepage", "also_bought": "cross_sell",
             "checkout_offer": "checkout"}[endpoint]
    values = {
        "served_at": datetime_to_micros(T0 + dt.timedelta(minutes=minutes)),
        "request_id": request_id, "customer_id": customer, "session_id": "s1",
        "endpoint": endpoint, "model": model, "model_version": "3", "variant": "champion",
        "items": json.dumps([{"product_id": "p1", "score": 0.25, "reason": "popular right now"}]),
        "k": 10, "p_abandon": None, "offer": None, "fallback": False, "fallback_reason": None,
        "stale": False, "personalised": True if endpoint == "homepage" else None,
        "anchor_product_id": None, "experiment": None, "experiment_variant": None,
        "latency_ms": 12.5, "fallback_kind": None, **changes}
    return tuple(values[name] for name in PREDICTION_COLUMNS)


def test_rows_round_trip_exactly_in_seq_order(store: PredictionStore) -> None:
    written = [row("r1"), row("r2", 1, "checkout_offer", k=None, items="[]", p_abandon=0.75,
                              offer="10_off", stale=True),
               row("r3", 2, "also_bought", customer=None, fallback=True,
                   fallback_reason="no model", model_version=None, anchor_product_id="p9")]
    assert store.insert_predictions(written) == 3
    stored = store.predictions_after(0, 10)
    assert [stored_row[0] for stored_row in stored] == [1, 2, 3]
    # Booleans come back as 0/1 from SQLite and as bools from PostgreSQL: equal either way.
    assert [tuple(stored_row[1:]) for stored_row in stored] == written
    assert store.predictions_after(2, 10)[0][2] == "r3" and store.max_seq() == 3


def test_a_request_id_is_stored_once(store: PredictionStore) -> None:
    assert store.insert_predictions([row("r1"), row("r2")]) == 2
    assert store.insert_predictions([row("r2"), row("r3")]) == 1  # a retried batch
    assert [stored[2] for stored in store.predictions_after(0, 10)] == ["r1", "r2", "r3"]


def test_a_window_is_half_open_and_can_name_an_endpoint(store: PredictionStore) -> None:
    store.insert_predictions([row("r0", 0), row("r1", 10, "checkout_offer"), row("r2", 20),
                              row("r3", 30)])
    start, end = (datetime_to_micros(T0 + dt.timedelta(minutes=m)) for m in (10, 30))
    assert [stored[2] for stored in store.predictions_between(start, end)] == ["r1", "r2"]
    assert [stored[2] for stored in store.predictions_between(start, end, "homepage")] == ["r2"]


def test_delete_exported_keeps_newer_and_unexported_rows(store: PredictionStore) -> None:
    store.insert_predictions([row(f"r{number}", number * 60) for number in range(4)])
    cutoff = datetime_to_micros(T0 + dt.timedelta(hours=2))
    assert store.delete_exported(up_to_seq=1, before_micros=cutoff) == 1  # r1: not exported
    assert store.delete_exported(up_to_seq=4, before_micros=cutoff) == 1  # r2, r3: newer
    assert [stored[2] for stored in store.predictions_after(0, 10)] == ["r2", "r3"]


def test_the_event_store_creates_the_table_and_forgets_a_deleted_customer(
        store_url: str) -> None:
    events = open_event_store(store_url)  # created by the event store, before any answer
    predictions = open_prediction_store(store_url)
    try:
        predictions.insert_predictions([row("r1", customer="leaver"), row("r2", customer="stay")])
        events.delete_customer("leaver")
        stored = {item[2]: (item[3], item[4]) for item in predictions.predictions_after(0, 10)}
    finally:
        events.close()
        predictions.close()
    assert stored == {"r1": (None, None), "r2": ("stay", "s1")}


def test_the_reader_gives_typed_columns(store_url: str, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={}).replace(database_url=store_url)
    store = open_prediction_store(store_url)
    try:
        store.insert_predictions([row("r1"), row("r2", 5, "checkout_offer", k=None,
                                                 p_abandon=0.5, offer="none", items="[]")])
    finally:
        store.close()
    frame = read_predictions(settings, T0, T0 + dt.timedelta(hours=1))
    assert tuple(frame.columns) == COLUMNS
    assert frame["served_at"].tolist() == [pd.Timestamp(T0),
                                           pd.Timestamp(T0 + dt.timedelta(minutes=5))]
    assert str(frame["served_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["items"].tolist() == [[{"product_id": "p1", "score": 0.25,
                                         "reason": "popular right now"}], []]
    assert frame["fallback"].dtype == bool and str(frame["personalised"].dtype) == "boolean"
    assert frame["personalised"].tolist()[0] is True and pd.isna(frame["personalised"][1])
    assert frame["k"].tolist()[0] == 10 and pd.isna(frame["k"][1])
    only = read_predictions(settings, "2026-03-01T12:03:00Z", "2026-03-01T13:00:00",
                            endpoint="checkout_offer")
    assert only["request_id"].tolist() == ["r2"]
    assert read_predictions(settings, T0, T0, "homepage").empty
    with pytest.raises(ValueError, match="endpoint must be one of"):
        read_predictions(settings, T0, T0, "recommend")


def test_the_lake_export_writes_each_row_once(store_url: str, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    store = open_prediction_store(store_url)
    try:
        store.insert_predictions([row("r1"), row("r2", 90)])
        first = export_predictions(lake, store_url, chunk_rows=1)
        store.insert_predictions([row("r3", 91)])
        second = export_predictions(lake, store_url, chunk_rows=10)
    finally:
        store.close()
    assert (first.rows, first.files, first.chunks, second.rows) == (2, 2, 2, 1)
    table = pq.read_table(tmp_path / "lake" / PREDICTIONS_DIR,
                          columns=["seq", "request_id", "items", "fallback", "served_at"])
    ordered = table.sort_by("seq")
    assert ordered.column("request_id").to_pylist() == ["r1", "r2", "r3"]
    assert ordered.column("items").to_pylist()[0] == [
        {"product_id": "p1", "score": 0.25, "reason": "popular right now"}]
    assert ordered.column("served_at").to_pylist()[0] == T0


def _application_url(server_url: str, application: str) -> tuple[str, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in server_url else "?"
    return (f"{server_url}{separator}options={quote(f'-csearch_path={schema}')}"
            f"&application_name={application}"), schema


@pytest.mark.postgres
def test_a_terminated_connection_is_retried_and_each_answer_stored_once(
        postgres_server_url: str) -> None:
    """The server ends the writer's connection between two batches: the next batch is
    written on a new connection, nothing is dropped."""
    application = f"predlog-{uuid.uuid4().hex[:8]}"
    url, schema = _application_url(postgres_server_url, application)
    stored: list[tuple] = []
    try:
        metrics = ServingMetrics(CollectorRegistry())
        log = PredictionRecorder(lambda: open_prediction_store(url), metrics, queue_size=100,
                                 batch_rows=10, flush_seconds=0.05,
                                 retry=RetryPolicy(retries=3, backoff_seconds=0.05)).start()
        def answers(numbers: range) -> None:
            log.record("homepage", [HomepageRequest(customer_id="c1") for _ in numbers],
                       [HomepageResponse(items=[], model_version="1", variant="champion",
                                         fallback=False, personalised=True,
                                         request_id=f"r{number}") for number in numbers])

        answers(range(5))
        assert log.flush(10)
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = %s", (application,)).fetchall()
        assert ended  # the writer's connection was there, and is gone
        answers(range(5, 10))
        assert log.flush(10)
        log.close()
        store = open_prediction_store(url)
        stored = store.predictions_after(0, 100)
        store.close()
        assert metrics.value("tailor_predictions_dropped_total", {"reason": "write_failed"}) == 0
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    assert sorted(item[2] for item in stored) == sorted(f"r{number}" for number in range(10))


def test_concurrent_writers_see_increasing_seqs(store_url: str) -> None:
    """Writers in several threads (as several server workers): every row stored once, seqs
    strictly increasing in the order the export reads them."""
    def write(start: int) -> None:
        own = open_prediction_store(store_url)
        try:
            for batch in range(start, start + 100, 10):
                own.insert_predictions([row(f"r{number}") for number in range(batch, batch + 10)])
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(start,)) for start in range(0, 400, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = open_prediction_store(store_url)
    try:
        stored = store.predictions_after(0, 1_000)
    finally:
        store.close()
    assert len({item[2] for item in stored}) == 400 == len(stored)
    seqs = [item[0] for item in stored]
    assert seqs == sorted(seqs)
