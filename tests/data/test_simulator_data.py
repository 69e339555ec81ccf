"""The simulated shop looks and behaves like a real one: contract, funnel, structure, churn.

One small shop is simulated per module (about two seconds) and every test reads it the
way the platform would, from the written files, using ground truth only to check.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tailor.events.schema import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TYPES,
    PRODUCT_COLUMNS,
    PRODUCT_EVENT_TYPES,
    validate_events,
)
from tailor.simulate import ShopConfig, build_shop_state, simulate_shop, true_affinity_scores
from tailor.simulate.taxonomy import ABANDON_CAUSES

CONFIG = ShopConfig(n_customers=1_000, n_products=150, n_days=56, seed=3)
WINDOW_START = pd.Timestamp(CONFIG.start, tz="UTC")
WINDOW_END = WINDOW_START + pd.Timedelta(days=CONFIG.n_days)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("shop")
    summary = simulate_shop(CONFIG, out)
    truth = out / "ground_truth"
    events = pd.read_parquet(out / "events.parquet")
    return {
        "out": out, "summary": summary, "events": events,
        "products": pd.read_csv(out / "products.csv"),
        "customers": pd.read_csv(out / "customers.csv"),
        "churn": pd.read_csv(truth / "churn.csv", parse_dates=["churn_date"]),
        "complements": pd.read_csv(truth / "complements.csv"),
        "abandonment": pd.read_parquet(truth / "abandonment.parquet"),
        "sessions": _sessions(events),
    }


def _sessions(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session: customer, start, device and which funnel steps happened."""
    in_session = events[events["session_id"].notna()]
    grouped = in_session.groupby("session_id")
    steps = pd.crosstab(in_session["session_id"], in_session["event_type"]) > 0
    return pd.DataFrame({"customer_id": grouped["customer_id"].first(),
                         "start": grouped["timestamp"].min(),
                         "device_type": grouped["device_type"].first()}).join(steps)


def test_output_files_have_the_contract_columns(shop: dict) -> None:
    schema = pq.read_schema(shop["out"] / "events.parquet")
    assert tuple(schema.names) == EVENT_COLUMNS
    assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert set(PRODUCT_COLUMNS) | {"subcategory", "season"} <= set(shop["products"].columns)
    assert set(CUSTOMER_COLUMNS) | {"email", "name"} <= set(shop["customers"].columns)
    names = {path.name for path in (shop["out"] / "ground_truth").iterdir()}
    assert {"customers_truth.parquet", "products_truth.parquet", "churn.csv", "abandonment.parquet",
            "complements.csv", "faults.json", "config.json"} <= names


def test_every_event_type_of_the_contract_appears(shop: dict) -> None:
    counts = shop["events"]["event_type"].value_counts()
    assert set(counts.index) == set(EVENT_TYPES)
    assert counts.to_dict() == {k: v for k, v in shop["summary"].events_by_type.items() if v}


def test_clean_output_passes_validation_and_is_sorted(shop: dict) -> None:
    events = shop["events"]
    result = validate_events(events, now=WINDOW_END + pd.Timedelta(days=3),
                             known_products=set(shop["products"]["product_id"]))
    assert result.rejected.empty
    assert events["event_id"].is_unique
    assert events["timestamp"].is_monotonic_increasing
    assert events["customer_id"].str.fullmatch(r"c\d{6}").all()
    assert set(events["customer_id"]) <= set(shop["customers"]["customer_id"])


def test_product_events_carry_the_catalogue_price_and_a_quantity(shop: dict) -> None:
    events = shop["events"]
    product_events = events[events["event_type"].isin(PRODUCT_EVENT_TYPES)]
    price = product_events["product_id"].map(shop["products"].set_index("product_id")["price"])
    assert np.allclose(product_events["price"], price)
    carts = events[events["event_type"].isin(["add_to_cart", "purchase"])]
    assert carts["quantity"].between(1, 3).all()
    purchases = events[events["event_type"] == "purchase"]
    assert purchases["order_id"].notna().all()
    per_order = purchases.groupby("order_id").agg(sessions=("session_id", "nunique"),
                                                  times=("timestamp", "nunique"))
    assert (per_order == 1).all().all()  # one basket, one checkout
    assert events.loc[events["event_type"] != "purchase", "order_id"].isna().all()


def test_funnel_rates_are_those_of_a_real_shop(shop: dict) -> None:
    sessions = shop["sessions"]
    conversion = sessions["purchase"].mean()
    carts = sessions[sessions["add_to_cart"]]
    abandonment = 1 - carts["purchase"].mean()
    assert 0.01 <= conversion <= 0.04
    assert 0.60 <= abandonment <= 0.80
    assert sessions["purchase"].sum() <= sessions["checkout_start"].sum() <= len(carts)
    assert shop["summary"].conversion_rate == pytest.approx(conversion, abs=0.002)


def test_catalogue_looks_like_a_shop(shop: dict) -> None:
    products = shop["products"]
    medians = products.groupby("category")["price"].median()
    assert products["category"].nunique() >= 6
    assert medians["electronics"] > 2 * medians["books"] > 0
    assert (products["price"] > 0).all()
    assert products["rating"].between(1, 5).all()
    assert np.allclose(products["rating"] * 10, (products["rating"] * 10).round())
    assert 0.01 <= (products["inventory"] == 0).mean() <= 0.12
    assert products.loc[products["seasonal"], "season"].notna().all()
    plausible = re.compile(r"[A-Z0-9][\w\- .]* #\d+")
    assert products["name"].map(lambda name: bool(plausible.fullmatch(name))).all()


def test_popularity_has_a_long_tail(shop: dict) -> None:
    views = shop["events"].query("event_type == 'product_view'")["product_id"].value_counts()
    top_tenth = views.iloc[: len(views) // 10].sum() / views.sum()
    assert top_tenth > 0.3


def test_purchases_follow_hidden_affinity(shop: dict) -> None:
    state = build_shop_state(CONFIG)
    customer_index = {cid: i for i, cid in enumerate(state.customers.customer_ids)}
    product_index = {pid: i for i, pid in enumerate(state.catalogue.product_ids)}
    purchases = shop["events"].query("event_type == 'purchase'")
    percentiles = []
    for customer_id, bought in purchases.groupby("customer_id")["product_id"]:
        scores = true_affinity_scores(state, customer_index[customer_id], day=28, hour=20)
        ranks = scores.argsort().argsort() / (len(scores) - 1)
        percentiles.extend(ranks[[product_index[p] for p in bought]])
    assert np.mean(percentiles) > 0.75  # a random product would average 0.5


def test_complements_are_bought_with_their_anchor_at_the_rule_rate(shop: dict) -> None:
    rules = shop["complements"]
    events = shop["events"]
    for event_type, basket_key, tolerance in (("purchase", "order_id", 0.12),
                                              ("add_to_cart", "session_id", 0.08)):
        items = events.loc[events["event_type"] == event_type, [basket_key, "product_id"]]
        items = items.drop_duplicates()
        anchored = items.merge(rules, left_on="product_id", right_on="anchor")
        found = anchored.merge(items.rename(columns={"product_id": "complement"}),
                               on=[basket_key, "complement"], how="left", indicator=True)
        observed = (found["_merge"] == "both").to_numpy()
        expected = found["probability"].to_numpy()
        assert len(observed) >= 60, event_type
        assert observed.mean() == pytest.approx(expected.mean(), abs=tolerance), event_type
        strong = expected >= 0.6
        assert observed[strong].mean() > observed[~strong].mean()


def test_churned_customers_have_no_events_after_churn(shop: dict) -> None:
    churn = shop["churn"].dropna()
    churn = churn[churn["churn_date"].dt.tz_localize("UTC") < WINDOW_END]
    assert len(churn) >= 30
    events = shop["events"].merge(churn, on="customer_id")
    churn_day = events["churn_date"].dt.tz_localize("UTC")
    assert (events["timestamp"] < churn_day + pd.Timedelta(days=1)).all()
    starts = shop["sessions"].merge(churn, on="customer_id")
    assert (starts["start"] < starts["churn_date"].dt.tz_localize("UTC")).all()


def test_activity_declines_before_churn(shop: dict) -> None:
    churn = shop["churn"].dropna()
    churn_at = churn.set_index("customer_id")["churn_date"].dt.tz_localize("UTC")
    late_enough = churn_at >= WINDOW_START + pd.Timedelta(days=42)
    churn_at = churn_at[late_enough & (churn_at < WINDOW_END)]
    signup = pd.to_datetime(shop["customers"].set_index("customer_id")["signup_date"])
    early_rates, late_rates = [], []
    for customer_id, churned in churn_at.items():
        begin = max(WINDOW_START, signup[customer_id].tz_localize("UTC"))
        late_start = churned - pd.Timedelta(days=28)
        if (late_start - begin).days < 7:
            continue
        starts = shop["sessions"].loc[shop["sessions"]["customer_id"] == customer_id, "start"]
        early_rates.append((starts < late_start).sum() / ((late_start - begin).days / 7))
        late_rates.append((starts >= late_start).sum() / 4)
    assert len(early_rates) >= 10
    assert np.mean(late_rates) < 0.8 * np.mean(early_rates)


def _weekly_email_opens(shop: dict) -> pd.DataFrame:
    """One row per customer and campaign send while signed up and not churned: opened or not."""
    events = shop["events"]
    opens = events[events["event_type"] == "email_open"]
    sends = opens["timestamp"].dt.normalize().unique()
    customers = shop["customers"].merge(shop["churn"], on="customer_id")
    grid = customers.merge(pd.DataFrame({"sent": sends}), how="cross")
    signup = pd.to_datetime(grid["signup_date"]).dt.tz_localize("UTC")
    churn = grid["churn_date"].dt.tz_localize("UTC")
    grid = grid[(signup <= grid["sent"]) & ~(churn <= grid["sent"])].copy()
    opened = opens.assign(sent=opens["timestamp"].dt.normalize())[["customer_id", "sent"]]
    opened = opened.drop_duplicates()
    grid = grid.merge(opened, on=["customer_id", "sent"], how="left", indicator=True)
    grid["opened"] = grid.pop("_merge") == "both"
    grid["weeks_to_churn"] = (grid["churn_date"].dt.tz_localize("UTC") - grid["sent"]).dt.days / 7
    return grid


def test_email_engagement_declines_before_churn(shop: dict) -> None:
    grid = _weekly_email_opens(shop)
    near_churn = grid["weeks_to_churn"] < 4
    assert near_churn.sum() >= 100
    assert grid.loc[near_churn, "opened"].mean() < 0.7 * grid.loc[~near_churn, "opened"].mean()


def test_sessions_peak_in_the_evening(shop: dict) -> None:
    hours = shop["sessions"]["start"].dt.hour
    assert hours.between(19, 21).sum() > 5 * hours.between(3, 5).sum()
    assert hours.between(19, 21).sum() > hours.between(9, 11).sum()


def test_abandonment_truth_matches_the_events(shop: dict) -> None:
    truth = shop["abandonment"].set_index("session_id")
    sessions = shop["sessions"].join(truth[["abandoned", "cause"]], how="inner")
    assert len(sessions) == len(truth) == shop["sessions"]["add_to_cart"].sum()
    assert (sessions["abandoned"] == ~sessions["purchase"]).all()
    assert set(truth.loc[truth["abandoned"], "cause"]) <= set(ABANDON_CAUSES)
    assert (truth.loc[~truth["abandoned"], "cause"] == "").all()
    by_device = sessions.groupby("device_type")["abandoned"].mean()
    assert by_device["mobile"] > by_device["desktop"]


def test_customers_have_fake_pii_only(shop: dict) -> None:
    customers = shop["customers"]
    assert customers["email"].str.endswith("@example.com").all()
    assert customers["email"].is_unique
    pii = set(customers["email"]) | set(customers["name"])
    for column in ("customer_id", "product_id", "session_id", "order_id", "query", "properties"):
        assert not shop["events"][column].isin(pii).any(), column
    assert customers["device_type"].value_counts().idxmax() == "mobile"
    signup = pd.to_datetime(customers["signup_date"]).dt.tz_localize("UTC")
    assert (signup < WINDOW_START).mean() > 0.5 and (signup >= WINDOW_START).any()


def test_the_export_ends_with_the_window_and_passes_the_volume_rule(shop: dict) -> None:
    """Nothing after the window (a real export holds nothing later), so no thin tail day
    is judged as the newest full day: the gate's volume rule passes on a normal shop."""
    from tailor.config import load_settings
    from tailor.quality.rules import StoreFacts, check_volume

    timestamps = pd.to_datetime(shop["events"]["timestamp"], utc=True)
    assert timestamps.max() < WINDOW_END
    assert timestamps.max() >= WINDOW_END - pd.Timedelta(hours=1)  # the last day is whole
    daily = timestamps.dt.date.value_counts().rename_axis("date").reset_index(name="events")
    facts = StoreFacts(store="parquet", received=len(timestamps), stored=len(timestamps),
                       duplicates=0, rejected={}, violations={}, daily=daily,
                       latest_event_time=timestamps.max())
    result = check_volume(facts, WINDOW_END + pd.Timedelta(days=1), load_settings(env={}))
    assert result.status == "pass", result.details
    assert (WINDOW_END - pd.Timedelta(days=2)).date().isoformat() in result.details
