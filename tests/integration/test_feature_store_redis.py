"""The feature store on the real Redis online store (TAILOR_TEST_REDIS_URL): online equals
offline for the Feast SDK path and the direct-HMGET fast path (after a full and after an
incremental materialization), defaults with flags for unknown, stale and unreachable, and
the real-time push. Each run uses its own Feast
project (the suffix of every Redis key it writes) and deletes its keys afterwards."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from tailor.features.build import run_features
from tailor.features.online import OnlineFeatureReader
from tailor.features.realtime import (
    background_pusher,
    notify_events_committed,
    stop_background_pushers,
)
from tailor.features.training import training_frame

from shop_homes import build_shop_home, feature_mismatches, load_events, redis_settings
from waiting import wait_until

pytestmark = pytest.mark.redis

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def redis_home(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    import redis

    folder = tmp_path_factory.mktemp("redis_features")
    settings = redis_settings(folder / "home", redis_url)
    project = settings.features_project
    shop = build_shop_home(settings, folder / "shop", customers=300, products=100, days=30,
                           seed=9, ends_days_ago=10)
    summary = run_features(settings, now=NOW, show_progress=False)
    events = pd.read_parquet(shop / "events.parquet")
    client = redis.Redis.from_url(redis_url)
    try:
        yield settings, summary, events
    finally:
        stop_background_pushers()
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        if keys:
            client.delete(*keys)


def test_online_store_is_redis_with_this_runs_keys(redis_home, redis_url) -> None:
    import redis

    settings, summary, _ = redis_home
    assert summary.online_store.startswith("redis")
    client = redis.Redis.from_url(redis_url)
    ours = list(client.scan_iter(match=b"*" + settings.features_project.encode(), count=1000))
    assert len(ours) >= 300  # customers and products, one hash each


@pytest.mark.parametrize("service", ["homepage", "checkout", "cross_sell"])
def test_fast_path_sdk_and_offline_agree(redis_home, service) -> None:
    settings, _, events = redis_home
    fast = OnlineFeatureReader(settings, service)
    sdk = OnlineFeatureReader(settings, service, fast_path=False)
    assert fast.fast_path and not sdk.fast_path
    key = fast.join_key
    ids = sorted(events[key].dropna().unique())[:40] + ["never-seen"]
    by_fast = fast.read_many(ids, request_time=NOW)
    by_sdk = sdk.read_many(ids, request_time=NOW)
    rows = pd.DataFrame({key: ids, "event_timestamp": [NOW] * len(ids)})
    offline = training_frame(settings, rows, service)
    problems = []
    for index, entity_id in enumerate(ids):
        a, b = by_fast[index], by_sdk[index]
        if (a.missing_views, a.stale_views, a.error) != (b.missing_views, b.stale_views, b.error):
            problems.append(f"{entity_id}: flags {a} vs {b}")
        expected = offline.iloc[index]
        problems += [f"{entity_id} fast/offline {wrong}"
                     for wrong in feature_mismatches(a.values, expected)]
        problems += [f"{entity_id} sdk/offline {wrong}"
                     for wrong in feature_mismatches(b.values, expected)]
    assert not problems, problems[:5]
    assert by_fast[-1].missing and not by_fast[0].error


def test_stale_rows_are_defaults_with_a_flag(redis_home) -> None:
    settings, _, events = redis_home
    customer = events.loc[events["event_type"] == "purchase", "customer_id"].iloc[0]
    reader = OnlineFeatureReader(settings, "churn")
    assert reader.read(customer, request_time=NOW).values["orders_lifetime"] >= 1
    vector = reader.read(customer, request_time=NOW + timedelta(days=400))
    assert vector.stale and set(vector.stale_views) == {"customer_activity", "customer_categories"}
    assert vector.values["orders_lifetime"] == 0 and vector.values["rfm_score"] == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_redis_gives_defaults_fast_and_never_raises(redis_home, monkeypatch
                                                                ) -> None:
    import tailor.features.online as online

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"the serving path slept {seconds} s (a retry back-off)")

    monkeypatch.setattr(online.time, "sleep", no_sleep)
    settings, _, _ = redis_home
    down = settings.replace(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    for fast_path in (True, False):
        reader = OnlineFeatureReader(down, "homepage", fast_path=fast_path, warm_up=False)
        vectors = reader.read_many(["c000001", "c000002"])
        again = reader.read("c000001")  # within the retry pause: no new connection attempt
        assert all(vector.error for vector in vectors + [again])
        assert vectors[0].values["orders_lifetime"] == 0
        assert vectors[0].values["session_viewed_categories"] == []
        reader._down_until = 0.0  # the pause is over: the next read tries Redis again
        assert reader.read("c000001").error


def test_a_new_cart_reaches_the_online_store_through_the_pusher(redis_home) -> None:
    settings, _, events = redis_home
    customer = sorted(events["customer_id"].unique())[5]
    viewed = events.loc[events["event_type"] == "product_view"].iloc[0]
    reader = OnlineFeatureReader(settings, "checkout")
    pusher = background_pusher(settings)
    assert pusher.ready.wait(30)
    when = datetime.now(timezone.utc) - timedelta(seconds=5)
    batch = pd.DataFrame([
        {"event_id": "redis-rt-1", "customer_id": customer, "event_type": "product_view",
         "product_id": viewed["product_id"], "timestamp": when, "session_id": "redis-rt",
         "price": 19.0, "quantity": None, "device_type": "desktop"},
        {"event_id": "redis-rt-2", "customer_id": customer, "event_type": "add_to_cart",
         "product_id": viewed["product_id"], "timestamp": when + timedelta(seconds=2),
         "session_id": "redis-rt", "price": 19.0, "quantity": 3.0, "device_type": "desktop"},
    ])
    notify_events_committed(settings, batch)
    # A ceiling against a hang, not the one-second latency target (bench/ measures that).
    vector = wait_until(lambda: (lambda v: v if v.values["session_cart_value"] == pytest.approx(
        57.0) else None)(reader.read(customer)), 30.0, "the pushed cart online", interval=0.01)
    assert vector.values["session_cart_items"] == 3.0
    assert "session_context" not in vector.missing_views + vector.stale_views
    assert pusher.failures == 0


def test_incremental_run_rewrites_what_a_late_event_changed(redis_url, tmp_path: Path) -> None:
    """A second `tailor features` run on Redis continues from the recorded end, rewinds
    the views a late purchase changed, and both read paths then agree with the offline
    store."""
    import redis

    settings = redis_settings(tmp_path / "home", redis_url)
    project = settings.features_project
    shop = build_shop_home(settings, tmp_path / "shop", customers=150, products=60, days=30,
                           seed=4, ends_days_ago=10)
    client = redis.Redis.from_url(redis_url)
    try:
        run_features(settings, now=NOW, show_progress=False)
        events = pd.read_parquet(shop / "events.parquet")
        buyer = events.loc[events["event_type"] == "purchase"].iloc[0]
        late = shop / "late.parquet"
        pd.DataFrame([{"event_id": "late-1", "customer_id": buyer["customer_id"],
                       "event_type": "purchase", "product_id": buyer["product_id"],
                       "timestamp": NOW - timedelta(days=15), "session_id": "late-1",
                       "order_id": "late-1", "price": 10.0, "quantity": 1.0}]).to_parquet(late)
        asked = NOW + timedelta(minutes=1)
        before = OnlineFeatureReader(settings, "churn").read(buyer["customer_id"],
                                                             request_time=asked)
        load_events(settings, late)
        summary = run_features(settings, now=asked, show_progress=False)
        modes = {window.view: window.mode for window in summary.windows}
        assert modes["customer_activity"] == "changed"
        assert modes["product_catalogue"] == "incremental"
        rows = pd.DataFrame({"customer_id": [buyer["customer_id"]], "event_timestamp": [asked]})
        offline = training_frame(settings, rows, "churn").iloc[0]
        for fast_path in (True, False):
            vector = OnlineFeatureReader(settings, "churn", fast_path=fast_path).read(
                buyer["customer_id"], request_time=asked)
            assert vector.values["orders_lifetime"] == before.values["orders_lifetime"] + 1
            assert not feature_mismatches(vector.values, offline)
    finally:
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        if keys:
            client.delete(*keys)
