"""A home copied with `cp -a`: `tailor features` on the copy never touches the
original, byte for byte, and both homes serve their online features afterwards."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import load_settings
from tailor.features.build import run_features
from tailor.features.online import OnlineFeatureReader
from tailor.features.repo import detach_foreign_infra, foreign_infra_paths, online_store_path

from tailor.warehouse.duckdb_warehouse import views_reading_elsewhere

from shop_homes import build_shop_home

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def online_tables(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                for name in names}


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("copied_home")
    settings = load_settings(home=folder / "V", env={})
    shop = build_shop_home(settings, folder / "shop", customers=120, products=40, days=20,
                           seed=7, ends_days_ago=5)
    summary = run_features(settings, now=NOW, show_progress=False)
    assert summary.warnings == [] and summary.materialized_rows > 0  # recent events: fresh
    return settings, shop


def test_features_on_a_copy_leave_the_original_byte_for_byte(original, tmp_path: Path) -> None:
    settings, shop = original
    copy = tmp_path / "W"
    shutil.copytree(settings.home_path, copy, symlinks=True)
    before = tree_hashes(settings.home_path)
    tables_before = online_tables(online_store_path(settings))
    assert tables_before["tailor_customer_activity"] > 0
    copied = load_settings(home=copy, env={})
    assert foreign_infra_paths(copied) == [str(online_store_path(settings))]  # the hazard
    assert views_reading_elsewhere(copied) == ["customers", "events", "products"]
    run_features(copied, now=NOW, show_progress=False)
    assert tree_hashes(settings.home_path) == before
    assert online_tables(online_store_path(settings)) == tables_before
    assert foreign_infra_paths(copied) == [] and views_reading_elsewhere(copied) == []
    rendered = (copy / "feature_repo" / "feature_store.yaml").read_text(encoding="utf-8")
    assert str(settings.home_path.resolve()) not in rendered
    events = pd.read_parquet(shop / "events.parquet")
    customer = events.loc[events["event_type"] == "purchase", "customer_id"].iloc[-1]
    for home in (settings, copied):  # both serve their online features
        vector = OnlineFeatureReader(home, "churn").read(customer, request_time=NOW)
        assert not vector.missing and not vector.stale and vector.error is None
    again = run_features(settings, now=NOW, show_progress=False)  # the original still runs
    assert again.windows


def test_detach_leaves_a_home_of_its_own_alone(original) -> None:
    settings, _ = original
    assert detach_foreign_infra(settings) == []


def test_lost_online_tables_are_created_again_by_a_full_run(original) -> None:
    """The state the fault left the original in (its tables dropped, its registry unchanged):
    `tailor features --full` creates and fills them again."""
    settings, shop = original
    with sqlite3.connect(online_store_path(settings)) as connection:
        connection.execute('DROP TABLE "tailor_customer_activity"')
    run_features(settings, now=NOW, show_progress=False, full=True)
    assert online_tables(online_store_path(settings))["tailor_customer_activity"] > 0
    events = pd.read_parquet(shop / "events.parquet")
    customer = events.loc[events["event_type"] == "purchase", "customer_id"].iloc[-1]
    vector = OnlineFeatureReader(settings, "churn").read(customer, request_time=NOW)
    assert not vector.missing and vector.error is None
