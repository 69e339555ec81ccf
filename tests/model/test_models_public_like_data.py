"""The same commands on data shaped like public data sets, built from plain rows.

No simulator: purchases only (no sessions, no carts, no prices, no order ids, no catalogue),
a few thousand customers with latent tastes; and a shop with a single product. Both go
through the real pipeline (ingest, lake, warehouse, quality gate, MLflow) with one trial.
The models must not crash, must say what they cannot do, and must beat popularity (homepage)
and recency (churn) where there is something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.ingest.job import ingest_files
from tailor.events.lake import export_lake
from tailor.training import evaluate_model, train_models
from tailor.warehouse import refresh_warehouse

START = pd.Timestamp("2025-06-01", tz="UTC")


def purchases_only_rows(customers: int = 3000, products: int = 200, days: int = 150,
                        seed: int = 11) -> pd.DataFrame:
    """Customers with one or two favourite product groups, buying at their own pace.

    10 groups of products; 80% of a customer's purchases come from their favourite groups
    (popular items first within a group), the rest from anywhere; every customer has a
    purchase rate and a third of them stop buying at some point (churn).
    """
    rng = np.random.default_rng(seed)
    group_of = np.arange(products) % 10
    appeal = rng.pareto(1.5, products) + 1.0
    rows = []
    for customer in range(customers):
        favourites = rng.choice(10, size=rng.integers(1, 3), replace=False)
        liked = np.flatnonzero(np.isin(group_of, favourites))
        rate = rng.gamma(2.0, 0.025)                      # purchases per day
        stop = rng.uniform(0, days) if rng.random() < 1 / 3 else days
        first = rng.uniform(0, days * 0.5)
        moments = first + np.cumsum(rng.exponential(1 / rate, 40))
        for moment in moments[moments < stop]:
            pool = liked if rng.random() < 0.8 else np.arange(products)
            weights = appeal[pool] / appeal[pool].sum()
            rows.append((f"u{customer:05d}", f"item{int(rng.choice(pool, p=weights)):04d}",
                         START + pd.Timedelta(days=float(moment))))
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "timestamp"])
    frame["event_type"] = "purchase"
    return frame


def _load(settings: Settings, rows: pd.DataFrame, folder: Path) -> None:
    """Rows -> CSV -> the event store -> lake -> warehouse, as a shop's import would go."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.csv"
    rows.assign(timestamp=rows.timestamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path,
                                                                                    index=False)
    report = ingest_files(settings, path)
    assert report.accepted == len(rows)
    export_lake(settings)
    refresh_warehouse(settings)


@pytest.fixture(scope="module")
def purchases_only(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("public-like")
    settings = load_settings(home=home / "home", env={})
    _load(settings, purchases_only_rows(), home / "input")
    return settings


@pytest.fixture(scope="module")
def trained(purchases_only: Settings) -> dict:
    results = train_models(purchases_only, "all", trials=1, force=True)
    return {result.model: result for result in results}


def test_every_model_trains_or_says_why_not(trained: dict) -> None:
    assert set(trained) == {"homepage", "cross_sell", "churn", "checkout"}
    assert trained["checkout"].status == "skipped"
    assert "add_to_cart" in trained["checkout"].reason
    for name in ("homepage", "churn"):
        assert trained[name].status == "trained" and trained[name].version == "1"


def test_homepage_beats_popularity_on_purchases_only(trained: dict) -> None:
    result = trained["homepage"]
    assert result.metrics["precision@10"] > result.baselines["popularity"]["precision@10"]
    assert result.promoted


def test_churn_beats_recency_on_purchases_only(trained: dict) -> None:
    result = trained["churn"]
    assert result.metrics["roc_auc"] > result.baselines["recency"]["roc_auc"]


def test_evaluate_works_on_the_same_data(purchases_only: Settings, trained: dict) -> None:
    payload = evaluate_model(purchases_only, "homepage", split="user", k=5)
    assert payload["version"] == "1" and payload["split"] == "user"
    assert "precision@5" in payload["metrics"]
    with pytest.raises(ValueError, match="churn is labelled by the time"):
        evaluate_model(purchases_only, "churn", split="user")


def test_a_single_product_shop_is_handled_and_explained(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", env={})
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({"customer_id": [f"u{n % 300}" for n in range(900)],
                         "product_id": "the-only-product",
                         "timestamp": START + pd.to_timedelta(np.sort(rng.uniform(0, 90, 900)),
                                                              unit="D"),
                         "event_type": "purchase"})
    _load(settings, rows, tmp_path / "input")
    results = {result.model: result for result in train_models(settings, "all", trials=1,
                                                                force=True)}
    # Every buyer already has the product: nothing new to recommend, nothing to evaluate.
    assert results["homepage"].status == "skipped"
    assert "popularity is all there is" in results["homepage"].reason
    assert results["cross_sell"].status == "skipped"
    assert "two different products" in results["cross_sell"].reason
    assert results["checkout"].status == "skipped"
