"""Writes a simulated shop to disk.

Writes `<out>/products.csv`, `<out>/customers.csv`, `<out>/events.parquet` (row group
by row group, so memory stays bounded) and `<out>/ground_truth/` (hidden traits,
latent vectors, churn dates, abandonment causes, complement rules, faults, config and
the state needed to continue the shop in a closed loop).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tailor.simulate import taxonomy
from tailor.simulate.events import EVENT_SCHEMA, EventColumns, Vocabulary, to_arrow
from tailor.simulate.world import (
    SUBCATEGORY_NAMES,
    SUBCATEGORY_SEASON,
    ShopState,
    save_dynamic,
)

GROUND_TRUTH = "ground_truth"


def products_frame(state: ShopState) -> pd.DataFrame:
    """The catalogue in the products contract, plus subcategory and season."""
    catalogue = state.catalogue
    seasons = np.array(SUBCATEGORY_SEASON, dtype=object)[catalogue.subcategory]
    return pd.DataFrame({
        "product_id": catalogue.product_ids,
        "name": catalogue.names,
        "category": np.array(taxonomy.CATEGORIES)[catalogue.category],
        "price": catalogue.price.round(2),
        "rating": catalogue.rating.astype(np.float64).round(1),
        "inventory": catalogue.inventory,
        "seasonal": pd.notna(seasons),
        "subcategory": np.array(SUBCATEGORY_NAMES)[catalogue.subcategory],
        "season": seasons,
    })


def _day_dates(state: ShopState, days: np.ndarray) -> np.ndarray:
    """ISO dates of day indices relative to the window start; None for infinite days."""
    finite = np.isfinite(days)
    start = np.datetime64(state.config.start_date.isoformat(), "D")
    dates = (start + np.where(finite, days, 0).astype("timedelta64[D]")).astype(str).astype(object)
    dates[~finite] = None
    return dates


def customers_frame(state: ShopState) -> pd.DataFrame:
    """Customers in the customers contract, with their (fake) PII columns."""
    customers = state.customers
    return pd.DataFrame({
        "customer_id": customers.customer_ids,
        "signup_date": _day_dates(state, customers.signup_day),
        "location": np.array(taxonomy.REGIONS)[customers.region],
        "device_type": np.array(taxonomy.DEVICES)[customers.device],
        "email": customers.emails,
        "name": customers.names,
    })


class EventWriter:
    """Appends event chunks to one Parquet file, a row group per `rows_per_group` rows."""

    def __init__(self, path: Path, vocabulary: Vocabulary, rows_per_group: int) -> None:
        self.path = path
        self.vocabulary = vocabulary
        self.rows_per_group = rows_per_group
        self.pending: list[EventColumns] = []
        self.pending_rows = 0
        self.rows_written = 0
        self._writer = pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd")

    def write(self, events: EventColumns) -> None:
        """Queue `events`; a row group is written once enough rows are queued."""
        self.pending.append(events)
        self.pending_rows += len(events)
        if self.pending_rows >= self.rows_per_group:
            self.flush()

    def flush(self) -> None:
        if self.pending_rows:
            table = to_arrow(EventColumns.concat(self.pending), self.vocabulary)
            self._writer.write_table(table, row_group_size=max(len(table), 1))
            self.rows_written += len(table)
        self.pending, self.pending_rows = [], 0

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.flush()
        self._writer.close()


def _vector_columns(prefix: str, vectors: np.ndarray) -> dict[str, np.ndarray]:
    return {f"{prefix}_{index:02d}": vectors[:, index] for index in range(vectors.shape[1])}


def customers_truth_frame(state: ShopState) -> pd.DataFrame:
    """Hidden customer traits: tastes, category preferences, rates, churn."""
    customers = state.customers
    preferences = {f"pref_{name}": customers.category_preference[:, index]
                   for index, name in enumerate(taxonomy.CATEGORIES)}
    return pd.DataFrame({
        "customer_id": customers.customer_ids,
        "price_sensitivity": customers.price_sensitivity,
        "session_rate": customers.session_rate,
        "buy_propensity": customers.buy_propensity,
        "email_opt_in": customers.email_opt_in,
        "email_open_rate": customers.email_open_rate,
        "email_click_rate": customers.email_click_rate,
        "weekly_churn_hazard": customers.weekly_churn_hazard,
        "churn_date": _day_dates(state, customers.churn_day),
        "decay_days": customers.decay_days,
        "hesitancy": customers.hesitancy,
        **preferences,
        **_vector_columns("taste", customers.tastes),
    })


def products_truth_frame(state: ShopState) -> pd.DataFrame:
    """Hidden product traits: popularity, relative price and latent vector (taste · vector)."""
    catalogue = state.catalogue
    return pd.DataFrame({
        "product_id": catalogue.product_ids,
        "subcategory": np.array(SUBCATEGORY_NAMES)[catalogue.subcategory],
        "log_popularity": catalogue.log_popularity,
        "price_z": catalogue.price_z,
        **_vector_columns("vector", catalogue.product_vectors()),
    })


def complements_frame(state: ShopState) -> pd.DataFrame:
    """The complement rules: (anchor, complement, probability added to the anchor's cart)."""
    catalogue = state.catalogue
    names = np.array(SUBCATEGORY_NAMES)
    return pd.DataFrame({
        "anchor": catalogue.product_ids[catalogue.rule_anchor],
        "complement": catalogue.product_ids[catalogue.rule_complement],
        "probability": catalogue.rule_probability.astype(np.float64).round(3),
        "anchor_subcategory": names[catalogue.subcategory[catalogue.rule_anchor]],
        "complement_subcategory": names[catalogue.subcategory[catalogue.rule_complement]],
    })


def write_ground_truth(state: ShopState, folder: Path, abandonment: pd.DataFrame,
                       faults: dict[str, int]) -> dict[str, str]:
    """Write every ground-truth file into `folder`; returns their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, file in (
        ("customers", "customers_truth.parquet"), ("products", "products_truth.parquet"),
        ("churn", "churn.csv"), ("abandonment", "abandonment.parquet"),
        ("complements", "complements.csv"), ("faults", "faults.json"), ("config", "config.json"),
        ("state", "shop_state.npz"))}
    truth = customers_truth_frame(state)
    truth.to_parquet(paths["customers"], index=False)
    products_truth_frame(state).to_parquet(paths["products"], index=False)
    truth[["customer_id", "churn_date"]].to_csv(paths["churn"], index=False)
    pq.write_table(pa.Table.from_pandas(abandonment, preserve_index=False), paths["abandonment"])
    complements_frame(state).to_csv(paths["complements"], index=False)
    paths["faults"].write_text(json.dumps(faults, indent=2) + "\n")
    paths["config"].write_text(json.dumps(state.config.to_dict(), indent=2) + "\n")
    save_dynamic(state, paths["state"])
    return {name: str(path) for name, path in paths.items()}
