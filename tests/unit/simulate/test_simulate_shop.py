"""The bulk simulator: determinism, settings, summary, incremental writing, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.simulate import ShopConfig, simulate_shop

SMALL = ShopConfig(n_customers=200, n_products=60, n_days=10, seed=5)


def _frame_hash(path: Path) -> int:
    frame = pd.read_parquet(path)
    return int(pd.util.hash_pandas_object(frame.astype(str), index=False).sum())


def test_same_config_writes_identical_events(tmp_path: Path) -> None:
    simulate_shop(SMALL, tmp_path / "first")
    simulate_shop(SMALL, tmp_path / "second")
    simulate_shop(ShopConfig(**{**SMALL.to_dict(), "seed": 6}), tmp_path / "other")
    first = _frame_hash(tmp_path / "first" / "events.parquet")
    assert first == _frame_hash(tmp_path / "second" / "events.parquet")
    assert first != _frame_hash(tmp_path / "other" / "events.parquet")
    for name in ("products.csv", "customers.csv", "ground_truth/complements.csv"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


@pytest.mark.parametrize(("field", "value"), [
    ("n_customers", 0), ("n_days", -1), ("fault_rate", 0.9), ("start", "05/01/2026"),
    ("sessions_per_day", 0.0), ("email_weekday", 7),
])
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ShopConfig(**{field: value})


def test_summary_counts_match_the_written_files(tmp_path: Path) -> None:
    summary = simulate_shop(SMALL, tmp_path)
    events = pd.read_parquet(tmp_path / "events.parquet")
    report = summary.to_dict()
    assert report["events"] == len(events) == summary.n_events
    assert report["events_by_type"] == events["event_type"].value_counts().reindex(
        report["events_by_type"]).fillna(0).astype(int).to_dict()
    assert summary.n_orders == events["order_id"].nunique()
    assert report["sessions"] == events["session_id"].nunique()
    conversion = summary.n_orders / summary.n_sessions
    assert report["conversion_rate"] == pytest.approx(conversion, abs=1e-5)
    assert Path(report["paths"]["events"]).is_file()
    assert json.loads((tmp_path / "ground_truth" / "config.json").read_text()) == SMALL.to_dict()


def test_events_are_written_in_bounded_row_groups(tmp_path: Path) -> None:
    config = ShopConfig(**{**SMALL.to_dict(), "rows_per_group": 2_000})
    summary = simulate_shop(config, tmp_path)
    metadata = pq.ParquetFile(tmp_path / "events.parquet").metadata
    assert metadata.num_row_groups >= summary.n_events // 6_000
    # a day's events are queued before a group is cut, so a group is at most ~a day bigger
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) < 6_000


def test_cli_simulate_prints_the_summary_as_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "simulate", "--customers", "80", "--products", "40", "--days", "5", "--seed", "2",
        "--faults", "0.02", "--out", str(tmp_path / "shop"), "--json",
        "--home", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    written = pq.ParquetFile(tmp_path / "shop" / "events.parquet").metadata.num_rows
    assert report["events"] == written
    assert report["customers"] == 80 and report["days"] == 5
    assert min(report["faults"].values()) >= 1


def test_cli_simulate_rejects_a_bad_start_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--start", "soon", "--out", str(tmp_path),
                                      "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "start" in result.output
