"""The feature store end to end on Feast's SQLite online store, one simulated shop built once:
point-in-time correctness against an independent pandas reference (leakage), online equals
offline (parity), defaults with flags, the real-time push, the `feast` CLI and no PII."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from typer.testing import CliRunner

from tailor.cli import app as cli_app
from tailor.config import Settings, load_settings
from tailor.events.schema import PII_COLUMNS
from tailor.features.build import run_features
from tailor.features.online import OnlineFeatureReader
from tailor.features.realtime import (
    SessionFeaturePusher,
    background_pusher,
    notify_events_committed,
    stop_background_pushers,
)
from tailor.features.repo import apply_definitions, open_feature_store
from tailor.features.training import training_frame
from waiting import wait_until

from leakage import check_checkout, check_churn, churn_entity_rows
from reference import churn_features, load_shop
from shop_homes import build_shop_home, feature_mismatches, load_events

REPO = Path(__file__).resolve().parents[3]
FEAST = Path(sys.executable).with_name("feast")
NOW = datetime.now(timezone.utc).replace(microsecond=0)
PUSH_CEILING_SECONDS = 30.0  # how long a pushed session may take to be readable, at most
SERVICES = ("homepage", "churn", "checkout", "cross_sell")


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, dict]:
    """A simulated shop through ingest, lake and warehouse, then `tailor features --json`."""
    folder = tmp_path_factory.mktemp("feature_store")
    settings = load_settings(home=folder / "home", env={})
    shop = build_shop_home(settings, folder / "shop", customers=300, products=100, days=30,
                           seed=3, ends_days_ago=10)
    with pytest.MonkeyPatch.context() as patch:  # the caller's TAILOR_* must not leak in
        for key in [key for key in os.environ if key.startswith("TAILOR_")]:
            patch.delenv(key)
        result = CliRunner().invoke(cli_app, ["features", "--home", str(settings.home_path),
                                              "--json"])
    assert result.exit_code == 0, result.output
    return settings, shop, json.loads(result.stdout)


@pytest.fixture(scope="module")
def shop(store_home):
    return load_shop(store_home[1])


def test_cli_prints_what_it_computed_applied_and_materialized(store_home) -> None:
    settings, _, report = store_home  # stdout held exactly one JSON object
    assert report["features"] >= 50 and len(report["categories"]) >= 2
    assert report["online_store"].startswith("sqlite")
    assert {"FeatureView:customer_activity", "FeatureService:homepage",
            "PushSource:session_push"} <= set(report["applied"])
    assert all(count > 0 for count in report["rows"].values())
    assert Path(report["repo"], "feature_store.yaml").is_file()


def test_training_features_use_only_events_before_their_time(store_home, shop) -> None:
    """Leakage: for sampled (customer, t), every churn feature equals the reference value
    recomputed by hand from the raw events strictly before t's snapshot (leakage.py; the
    Spark offline store is held to the same check in test_feature_store_spark.py)."""
    checked = check_churn(store_home[0], shop, churn_entity_rows(shop))
    assert not checked.mismatches, \
        f"{len(checked.mismatches)} mismatches, e.g. {checked.mismatches[:5]}"
    every = set(churn_features(shop, checked.frame.at[0, "customer_id"], pd.Timestamp(NOW)))
    assert set(checked.frame.columns) - {"customer_id", "event_timestamp"} == every


def test_checkout_training_set_uses_only_events_up_to_the_cart(store_home, shop) -> None:
    """Leakage, checkout: the checkout model's training rows come from the Feast `checkout`
    service, and every value equals the reference recomputed from the raw events up to the
    cart's last change (session), before its snapshot (customer) and at its time (request)."""
    checked = check_checkout(store_home[0], shop)
    assert not checked.mismatches, \
        f"{len(checked.mismatches)} mismatches, e.g. {checked.mismatches[:5]}"


def test_models_do_not_train_on_a_store_older_than_the_history(store_home) -> None:
    from dataclasses import replace

    from tailor.models.data import load_shop_data
    from tailor.models.feature_frames import feature_source

    data = load_shop_data(store_home[0])
    assert feature_source(data, "churn") == "feast:churn"
    later = data.events.tail(1).assign(timestamp=data.end + pd.Timedelta(hours=1))
    newer = replace(data, events=pd.concat([data.events, later], ignore_index=True))
    # Events the store never saw would get default features: compute locally instead.
    assert feature_source(newer, "churn") == feature_source(newer, "checkout") == "local"


@pytest.mark.parametrize("service", SERVICES)
def test_online_equals_offline_at_materialization_time(store_home, shop, service) -> None:
    settings = store_home[0]
    reader = OnlineFeatureReader(settings, service)
    if service == "cross_sell":
        ids = sorted(shop.events["product_id"].dropna().unique())[:30] + ["no-such-product"]
    else:
        ids = sorted(shop.profiles.index)[:30] + ["no-such-customer"]
    vectors = reader.read_many(ids, request_time=NOW)
    entity_df = pd.DataFrame({reader.join_key: ids, "event_timestamp": [NOW] * len(ids)})
    offline = training_frame(settings, entity_df, service)
    problems = [f"{entity_id}: {wrong}"
                for index, (entity_id, vector) in enumerate(zip(ids, vectors))
                for wrong in feature_mismatches(vector.values, offline.iloc[index])]
    assert not problems, problems[:5]
    assert all(vector.error is None for vector in vectors)
    assert not vectors[0].missing_views or service in ("homepage", "checkout")
    assert vectors[-1].missing  # the made-up entity


@pytest.mark.parametrize("service", SERVICES)
def test_the_sqlite_fast_path_serves_what_the_feast_sdk_serves(store_home, shop,
                                                               service) -> None:
    """One indexed read per view (`tailor.features.sqlite_fetch`) against
    `FeatureStore.get_online_features`: same values and flags, fresh and past the TTL."""
    settings = store_home[0]
    fast = OnlineFeatureReader(settings, service)
    sdk = OnlineFeatureReader(settings, service, fast_path=False)
    assert fast.fast_path and not sdk.fast_path
    column = fast.join_key
    ids = sorted(shop.events[column].dropna().unique())[:40] + ["never-seen", "c\u00e9-42"]
    answers = {}
    for moment in (NOW, NOW + timedelta(days=400)):
        by_fast, by_sdk = fast.read_many(ids, request_time=moment), \
            sdk.read_many(ids, request_time=moment)
        assert by_fast == by_sdk
        assert fast.read(ids[0], request_time=moment) == by_sdk[0]
        answers[moment] = by_fast
    fresh, late = answers[NOW], answers[NOW + timedelta(days=400)]
    assert fresh[-2].missing and not fresh[-2].stale
    assert sum(not vector.stale for vector in fresh) > sum(not vector.stale for vector in late)


def test_an_unreadable_sqlite_file_gives_defaults_and_an_error(store_home, tmp_path) -> None:
    reader = OnlineFeatureReader(store_home[0], "homepage")
    assert reader.fast_path
    reader._fetcher.close()
    reader._fetcher.path = str(tmp_path / "gone" / "online_store.db")  # moved away
    vector = reader.read("c000001", request_time=NOW)
    assert vector.error and "online store read failed" in vector.error
    assert vector.values["orders_lifetime"] == 0


def ingest_late_purchase(settings: Settings, folder: Path, customer_id: str, product_id: str,
                         when: datetime) -> None:
    """A purchase made at `when` that reaches the event store only now, then lake and
    warehouse as the hourly jobs would."""
    path = folder / f"late-{customer_id}.parquet"
    pd.DataFrame([{"event_id": f"late-{customer_id}", "customer_id": customer_id,
                   "event_type": "purchase", "product_id": product_id, "timestamp": when,
                   "session_id": f"late-{customer_id}", "order_id": f"late-{customer_id}",
                   "price": 10.0, "quantity": 1.0, "device_type": "desktop"}]).to_parquet(path)
    load_events(settings, path)


def test_materialization_is_incremental_and_redoes_what_a_late_event_changed(
        tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    shop_folder = build_shop_home(settings, tmp_path / "shop", customers=300, products=100,
                                  days=30, seed=5, ends_days_ago=10)
    first = run_features(settings, now=NOW, show_progress=False)
    assert {window.mode for window in first.windows} == {"window"}  # nothing online yet
    again = run_features(settings, now=NOW + timedelta(minutes=1), show_progress=False)
    # Nothing changed: every view continues from the end Feast's registry recorded.
    assert {(window.mode, window.start) for window in again.windows} == {("incremental", NOW)}
    events = pd.read_parquet(shop_folder / "events.parquet")
    buyers = events.loc[events["event_type"] == "purchase"]
    customer, product = buyers["customer_id"].iloc[0], buyers["product_id"].iloc[0]
    asked = NOW + timedelta(minutes=2)
    before = OnlineFeatureReader(settings, "churn").read(customer, request_time=asked)
    ingest_late_purchase(settings, tmp_path, customer, product, NOW - timedelta(days=15))
    late = run_features(settings, now=asked, show_progress=False)
    modes = {window.view: window.mode for window in late.windows}
    # The late purchase changed rows stamped before the last run's end: those views rewind.
    assert modes["customer_activity"] == modes["product_activity"] == "changed"
    assert modes["product_catalogue"] == "incremental"
    vector = OnlineFeatureReader(settings, "churn").read(customer, request_time=asked)
    assert vector.values["orders_lifetime"] == before.values["orders_lifetime"] + 1
    offline = training_frame(settings, pd.DataFrame({"customer_id": [customer],
                                                     "event_timestamp": [asked]}), "churn")
    assert not feature_mismatches(vector.values, offline.iloc[0])
    product_vector = OnlineFeatureReader(settings, "cross_sell").read(product, request_time=asked)
    product_offline = training_frame(settings, pd.DataFrame({"product_id": [product],
                                                             "event_timestamp": [asked]}),
                                     "cross_sell")
    assert not feature_mismatches(product_vector.values, product_offline.iloc[0])


def test_unknown_entity_gets_defaults_and_a_flag(store_home) -> None:
    reader = OnlineFeatureReader(store_home[0], "churn")
    vector = reader.read("nobody-at-all", request_time=NOW)
    assert vector.missing and not vector.stale and vector.error is None
    assert set(vector.missing_views) == {"customer_activity", "customer_categories"}
    assert vector.values["orders_lifetime"] == 0 and vector.values["region"] == "unknown"
    assert vector.values["days_since_last_purchase"] == 3650.0


def test_rows_older_than_the_ttl_are_stale_defaults_online_and_offline(store_home, shop) -> None:
    settings = store_home[0]
    customer = shop.events.loc[shop.events["event_type"] == "purchase", "customer_id"].iloc[0]
    later = NOW + timedelta(days=400)  # beyond the 365-day TTL of the batch views
    fresh = OnlineFeatureReader(settings, "churn").read(customer, request_time=NOW)
    assert fresh.values["orders_lifetime"] >= 1 and not fresh.stale
    vector = OnlineFeatureReader(settings, "churn").read(customer, request_time=later)
    assert vector.stale and not vector.missing and vector.error is None
    assert set(vector.stale_views) == {"customer_activity", "customer_categories"}
    assert vector.values["orders_lifetime"] == 0
    assert vector.values["days_since_last_purchase"] == 3650.0  # derived from a stale view
    offline = training_frame(settings, pd.DataFrame({"customer_id": [customer],
                                                     "event_timestamp": [later]}), "churn")
    assert not feature_mismatches(vector.values, offline.iloc[0])


def test_unreadable_store_gives_defaults_and_an_error_never_an_exception(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "never_built", env={})
    reader = OnlineFeatureReader(settings, "homepage")
    vector = reader.read("c000001")
    assert vector.error and "homepage" in vector.error
    assert vector.values["orders_lifetime"] == 0 and vector.values["top_category"] == "unknown"
    assert reader.read_many(["a", "b"])[1].error


def test_the_reader_warms_up_before_its_first_request(store_home, monkeypatch) -> None:
    """Connections and caches are loaded by reads made at construction, so the first
    request does not pay for them (the time itself is bench/bench_online_features.py's)."""
    fetched: list[list[str]] = []
    original = OnlineFeatureReader._fetch

    def counting(self, entity_ids, moment):
        fetched.append(list(entity_ids))
        return original(self, entity_ids, moment)

    monkeypatch.setattr(OnlineFeatureReader, "_fetch", counting)
    cold = OnlineFeatureReader(store_home[0], "homepage", warm_up=False)
    assert fetched == [] and cold._layout is not None
    warm = OnlineFeatureReader(store_home[0], "homepage")
    assert len(fetched) >= 1 and "c000001" not in sum(fetched, [])
    assert warm.read("c000001").values == cold.read("c000001").values


def _cart_events(customer_id: str, product_id: str, price: float, when: datetime) -> pd.DataFrame:
    return pd.DataFrame([
        {"event_id": f"rt-{when.timestamp()}-1", "customer_id": customer_id,
         "event_type": "page_view", "product_id": None, "timestamp": when, "session_id": "rt-s1",
         "price": None, "quantity": None, "device_type": "mobile"},
        {"event_id": f"rt-{when.timestamp()}-2", "customer_id": customer_id,
         "event_type": "product_view", "product_id": product_id,
         "timestamp": when + timedelta(seconds=5), "session_id": "rt-s1", "price": price,
         "quantity": None, "device_type": "mobile"},
        {"event_id": f"rt-{when.timestamp()}-3", "customer_id": customer_id,
         "event_type": "add_to_cart", "product_id": product_id,
         "timestamp": when + timedelta(seconds=9), "session_id": "rt-s1", "price": price,
         "quantity": 2.0, "device_type": "mobile"},
    ])


def test_pushed_session_features_fold_across_batches(store_home, shop) -> None:
    settings = store_home[0]
    customer = sorted(shop.events["customer_id"].unique())[3]
    product = shop.events.loc[shop.events["event_type"] == "product_view"].iloc[0]
    when = datetime.now(timezone.utc) - timedelta(seconds=20)
    events = _cart_events(customer, product["product_id"], 12.5, when)
    pusher = SessionFeaturePusher(settings)
    assert pusher.push_events(events.iloc[:2]) == 1
    assert pusher.push_events(events.iloc[2:]) == 1  # the cart arrives in a second batch
    assert pusher.push_events(events.iloc[1:]) == 0  # a client retry: already folded
    vector = OnlineFeatureReader(settings, "checkout").read(customer)
    values = vector.values
    assert "session_context" not in vector.missing_views + vector.stale_views
    assert (values["session_events"], values["session_page_views"]) == (3, 2)
    assert (values["session_cart_items"], values["session_cart_value"]) == (2.0, 25.0)
    assert values["session_viewed_categories"] == [product["category"]]
    assert values["session_is_returning_visitor"] and values["session_device_type"] == "mobile"
    assert values["session_length_seconds"] == pytest.approx(9.0, abs=1.0)


def test_a_cart_posted_to_the_collector_reaches_the_online_store(store_home, shop) -> None:
    """The collector's commit hook folds the events into the session and pushes them."""
    import warnings

    from tailor.events.collector.app import create_collector_app
    from tailor.events.keys import create_key, keys_file_path
    from tailor.features.collector_hook import session_feature_hook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    settings = store_home[0]
    customer = sorted(shop.events["customer_id"].unique())[7]
    product = shop.events.loc[shop.events["event_type"] == "product_view"].iloc[-1]
    key = create_key("secret", keys_file_path(settings), label="feature test")
    reader = OnlineFeatureReader(settings, "checkout")
    pusher = background_pusher(settings)  # the one the collector's hook will use
    assert pusher.ready.wait(30)  # started: the feature store is open in its thread
    events = _cart_events(customer, product["product_id"], 40.0,
                          datetime.now(timezone.utc) - timedelta(seconds=10))
    body = {"events": [{**row, "timestamp": row["timestamp"].isoformat()}
                       for row in events.astype(object).where(events.notna(), None)
                       .to_dict("records")]}
    try:
        with TestClient(create_collector_app(
                settings, commit_hook=session_feature_hook(settings))) as client:
            response = client.post("/v1/events", json=body, headers={"X-Tailor-Key": key})
            assert response.status_code == 200 and response.json()["accepted"] == 3
            # A ceiling against a hang, not the latency target (that figure is measured in
            # bench/, where a slow machine cannot fail a test with it).
            wait_until(lambda: reader.read(customer).values["session_cart_value"] == 80.0,
                       PUSH_CEILING_SECONDS, "the pushed cart readable online", interval=0.01)
    finally:
        stop_background_pushers([pusher])
    assert pusher.failures == 0


def test_hook_never_raises_when_the_store_is_missing(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(home=tmp_path / "no_store", env={})
    pusher = background_pusher(settings)
    with caplog.at_level(logging.WARNING, logger="tailor.features.realtime"):
        notify_events_committed(settings, _cart_events("c1", "p1", 1.0,
                                                       datetime.now(timezone.utc)))
        notify_events_committed(settings, None)
        stop_background_pushers([pusher])
    assert (pusher.pushed, pusher.failures) == (0, 0)  # skipped, not failed, and said why
    assert any("no feature store" in record.getMessage() for record in caplog.records)
    assert not (tmp_path / "no_store" / "feature_repo").exists()  # nothing created


def test_feast_cli_works_on_the_repo(store_home, tmp_path: Path) -> None:
    """`feast plan` and `feast feature-views list` on feature_store/ (TAILOR_HOME = the
    built home), and `feast apply` of the same definitions on a clean home, all at once."""
    settings = store_home[0]
    clean_home = tmp_path / "clean_home"
    base = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    commands = {
        "plan": (["plan"], settings.home_path.resolve()),
        "list": (["feature-views", "list"], settings.home_path.resolve()),
        "apply": (["apply"], clean_home),
    }
    running = {name: subprocess.Popen([str(FEAST), "-c", str(REPO / "feature_store"), *args],
                                      env={**base, "TAILOR_HOME": str(home)}, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name, (args, home) in commands.items()}
    outputs = {name: process.communicate(timeout=120)[0] for name, process in running.items()}
    for name, process in running.items():
        assert process.returncode == 0, f"feast {name} failed:\n{outputs[name][-2000:]}"
    assert "No changes to infrastructure" in outputs["plan"]
    listed = set(re.findall(r"^(\w+)\s", outputs["list"], flags=re.MULTILINE))
    assert {"customer_activity", "customer_categories", "product_activity", "product_catalogue",
            "session_context", "customer_recency", "request_context"} <= listed
    assert (clean_home / "feature_repo" / "data" / "registry.db").is_file()


def test_no_pii_in_any_source_view_or_service(store_home) -> None:
    settings = store_home[0]
    store = open_feature_store(settings)
    names: set[str] = set()
    for view in store.list_feature_views():
        names |= {field.name for field in view.features} | {c.name for c in view.entity_columns}
    for view in store.list_on_demand_feature_views():
        names |= {field.name for field in view.features}
    for service in store.list_feature_services():
        for projection in service.feature_view_projections:
            names |= {field.name for field in projection.features}
    for source in store.list_data_sources():
        names |= {field.name for field in getattr(source, "schema", None) or []}
    for entity in store.list_entities():
        names.add(entity.join_key)
    assert names and not names & set(PII_COLUMNS)
    email = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
    for path in Path(settings.home_path, "features").glob("*.parquet"):
        frame = pd.read_parquet(path)
        assert not set(frame.columns) & set(PII_COLUMNS), path.name
        text = frame.select_dtypes(include="object").astype(str)
        assert not text.apply(lambda column: column.str.contains(email).any()).any(), path.name


def test_definitions_apply_on_a_clean_home_in_process(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "fresh", env={})
    summary = apply_definitions(settings)
    store = open_feature_store(settings)
    assert {view.name for view in store.list_feature_views()} >= {"customer_activity",
                                                                  "session_context"}
    categories = store.get_feature_view("customer_categories")
    assert [field.name for field in categories.features] == ["top_category"]  # no catalogue yet
    assert "FeatureService:checkout" in summary.applied
