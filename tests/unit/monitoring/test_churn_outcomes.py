"""Churn's retention lists judged once their horizon has passed: precision and recall of the
high-risk flag, computed by hand for a few customers and compared; immature lists, missing
scores and corrupt summaries left out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import load_settings
from tailor.models.data import build_shop_data
from tailor.monitoring.churn_outcomes import churn_list_accuracy, matured_lists
from tailor.monitoring.measure import served

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")


def _purchase(customer: str, day: float) -> dict:
    return {"customer_id": customer, "event_type": "purchase", "product_id": "p1",
            "timestamp": AS_OF + pd.Timedelta(days=day), "price": 10.0, "quantity": 1}


def _write_list(folder: Path, as_of: pd.Timestamp, scores: dict[str, float],
                horizon: float = 30.0, threshold: float = 0.5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"retention_{as_of:%Y-%m-%d}"
    pd.DataFrame({"customer_id": list(scores), "churn_probability": list(scores.values())}) \
        .to_parquet(stem.with_suffix(".scores.parquet"), index=False)
    stem.with_suffix(".json").write_text(json.dumps({
        "path": str(stem.with_suffix(".csv")), "as_of": as_of.isoformat(),
        "model_version": "3", "customers_scored": len(scores),
        "high_risk": sum(p > threshold for p in scores.values()), "threshold": threshold,
        "horizon_days": horizon}))


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(home=tmp_path, env={})


def test_a_matured_list_is_scored_against_who_bought_within_its_horizon(settings) -> None:
    # before the list everyone bought; after it c1 and c3 bought within 30 days, c5 after 40
    events = pd.DataFrame([_purchase(c, -5) for c in ("c1", "c2", "c3", "c4", "c5")]
                          + [_purchase("c1", 3), _purchase("c3", 20), _purchase("c5", 40)])
    data = build_shop_data(events)
    _write_list(settings.reports_path / "retention", AS_OF,
                {"c1": 0.9, "c2": 0.8, "c3": 0.2, "c4": 0.3, "c5": 0.7})
    result = churn_list_accuracy(settings, data)
    # churned: c2, c4, c5; flagged (> 0.5): c1, c2, c5 -> hits c2, c5
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert (result["answers"], result["flagged"], result["churned"]) == (5.0, 3.0, 3.0)
    # pairs (churned, stayed) ranked right: c2>c1? no (0.8<0.9); c2>c3 yes; c4>c1 no; c4>c3 yes;
    # c5>c1 no; c5>c3 yes -> 3 of 6
    assert result["roc_auc"] == pytest.approx(0.5)
    # the round's evidence for churn is this list
    assert served(settings, data, "churn", AS_OF, data.end, 10) == result


def test_a_list_whose_horizon_has_not_passed_is_not_judged(settings) -> None:
    events = pd.DataFrame([_purchase("c1", -5), _purchase("c2", -5), _purchase("c1", 10)])
    data = build_shop_data(events)  # the data ends 10 days after the list: 30 days not passed
    _write_list(settings.reports_path / "retention", AS_OF, {"c1": 0.9, "c2": 0.1})
    assert matured_lists(settings, data.end) == []
    assert churn_list_accuracy(settings, data) is None


def test_the_newest_matured_list_is_used_and_broken_ones_are_skipped(settings, caplog) -> None:
    # c1 buys 20 days after the newer list (34 after the older one); the data runs to day 35
    events = pd.DataFrame([_purchase(c, -40) for c in ("c1", "c2")]
                          + [_purchase("c1", 20), _purchase("c3", 35)])
    data = build_shop_data(events)
    folder = settings.reports_path / "retention"
    _write_list(folder, AS_OF - pd.Timedelta(days=14), {"c1": 0.9, "c2": 0.1})
    _write_list(folder, AS_OF, {"c1": 0.1, "c2": 0.9})
    (folder / "retention_2026-03-08.json").write_text("{not json")
    result = churn_list_accuracy(settings, data)
    assert result["precision"] == 1.0 and result["recall"] == 1.0  # the newer list: c2 flagged
    assert "retention_2026-03-08.json: not a retention list summary" in caplog.text
    (folder / f"retention_{AS_OF:%Y-%m-%d}.scores.parquet").unlink()
    older = churn_list_accuracy(settings, data)  # its scores are gone: the older list
    assert older["precision"] == 1.0 and older["recall"] == 0.5  # c1 flagged; both churned
