"""The feature catalogue and the request-time features: names, defaults, hand-computed values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tailor.features import specs as catalogue
from tailor.features.request_time import (
    customer_recency_features,
    frequency_score,
    monetary_score,
    recency_score,
    request_context_features,
)

NOW = datetime(2026, 3, 7, 15, 30, 45, 900_000, tzinfo=timezone.utc)  # a Saturday


def test_catalogue_has_over_fifty_uniquely_named_described_features() -> None:
    specs = catalogue.all_specs(["books", "toys"])
    names = [spec.name for spec in specs]
    assert len(names) >= 50
    assert len(set(names)) == len(names)
    assert all(spec.description.strip() for spec in specs)
    views = {spec.view for spec in specs}
    assert views == set(catalogue.BATCH_VIEWS + catalogue.ON_DEMAND_VIEWS
                        + (catalogue.SESSION_CONTEXT,))


def test_category_columns_come_from_the_data_and_clashes_are_named() -> None:
    specs = catalogue.category_specs(["Home & Garden", "toys"])
    assert [spec.name for spec in specs] == ["category_share_home_garden", "category_share_toys"]
    assert all(spec.view == catalogue.CUSTOMER_CATEGORIES and spec.default == 0.0 for spec in specs)
    with pytest.raises(ValueError, match="'home garden' and 'Home-Garden' both map"):
        catalogue.category_columns(["home garden", "Home-Garden"])
    with pytest.raises(ValueError, match="cannot be named"):
        catalogue.category_column("***")


def test_defaults_are_fresh_copies_for_lists() -> None:
    first = catalogue.defaults(catalogue.specs_for_view(catalogue.SESSION_CONTEXT))
    first["session_viewed_categories"].append("toys")
    second = catalogue.defaults(catalogue.specs_for_view(catalogue.SESSION_CONTEXT))
    assert second["session_viewed_categories"] == []


def test_no_feature_is_named_like_personal_data() -> None:
    for spec in catalogue.all_specs(["books"]):
        assert not any(word in spec.name for word in ("email_address", "name", "phone", "address"))


@pytest.mark.parametrize(("days", "score"), [(0.5, 5), (7.0, 5), (7.01, 4), (30, 4), (90, 3),
                                             (180, 2), (181, 1), (None, 0)])
def test_recency_score_edges(days: float | None, score: int) -> None:
    assert recency_score(days) == score


@pytest.mark.parametrize(("orders", "score"), [(0, 0), (1, 1), (2, 2), (4, 3), (5, 4), (9, 4),
                                               (10, 5)])
def test_frequency_score_edges(orders: int, score: int) -> None:
    assert frequency_score(orders) == score


@pytest.mark.parametrize(("revenue", "score"), [(0, 0), (0.01, 1), (49.99, 1), (50, 2), (399, 3),
                                                (400, 4), (1000, 5)])
def test_monetary_score_edges(revenue: float, score: int) -> None:
    assert monetary_score(revenue) == score


def test_customer_recency_by_hand() -> None:
    last_purchase = NOW - timedelta(days=10, hours=12)
    result = customer_recency_features({
        "last_purchase_at": [last_purchase, None],
        "last_seen_at": [NOW - timedelta(hours=6), None],
        "signup_at": [datetime(2025, 3, 7, tzinfo=timezone.utc), None],
        "orders_lifetime": [3, None],
        "revenue_lifetime": [420.0, None],
        "request_time": [NOW, NOW],
    })
    # The request time counts in whole seconds (Feast's online precision): 0.9 s dropped.
    assert result["days_since_last_purchase"][0] == pytest.approx(10.5 - 0.9 / 86_400)
    assert result["days_since_last_visit"][0] == pytest.approx(0.25 - 0.9 / 86_400)
    assert result["days_since_signup"][0] == pytest.approx(365 + (15.5 * 3600 + 45) / 86_400)
    assert (result["recency_score"][0], result["frequency_score"][0],
            result["monetary_score"][0], result["rfm_score"][0]) == (4, 3, 4, 11)
    # Nothing known: the catalogue defaults.
    recency_defaults = catalogue.defaults(catalogue.specs_for_view(catalogue.CUSTOMER_RECENCY))
    assert {name: values[1] for name, values in result.items()} == recency_defaults


def test_request_context_by_hand() -> None:
    result = request_context_features({"request_time": [NOW, NOW - timedelta(days=5, hours=10),
                                                        None]})
    assert result["hour_of_day"] == [15, 5, 0]
    assert result["day_of_week"] == [5, 0, 0]
    assert result["is_weekend"] == [True, False, False]
    assert result["time_of_day"] == ["afternoon", "night", "night"]


def test_docs_hold_the_generated_catalogue() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "features.md").read_text("utf-8")
    assert docs.endswith(catalogue.catalogue_markdown())
