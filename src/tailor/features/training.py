"""Training sets: a feature service's values at given (entity, time) rows, point in time.

Reads the offline Parquet sources through Feast's `get_historical_features` (an as-of
join: for each row, the newest feature row stamped at or before its time and within
the view's TTL; on DuckDB, or on Spark under `features.engine = spark`) and runs the on-demand views with the row's time as the request time.
Writes nothing.

Missing values get the catalogue defaults, exactly as the online reader
(`tailor.features.online`) serves them, so a model sees the same vector in training
and in serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tailor.config import Settings
from tailor.features import specs as catalogue
from tailor.features.compute import read_manifest
from tailor.features.offline_store import offline_engine

ROW_ID = "__tailor_row"
TIMESTAMP = "event_timestamp"


def _normalise_times(entity_df: pd.DataFrame) -> pd.DataFrame:
    """A copy with event_timestamp as UTC (whole microseconds, the offline store's
    precision: no feature row lies between t and t floored), request_time set to it and a
    row number."""
    if TIMESTAMP not in entity_df.columns:
        raise ValueError(f"entity_df: needs an {TIMESTAMP} column (the time of each row)")
    frame = entity_df.copy()
    stamps = pd.to_datetime(frame[TIMESTAMP], utc=True).dt.floor("us")
    frame[TIMESTAMP] = stamps
    frame["request_time"] = stamps
    frame[ROW_ID] = np.arange(len(frame))
    return frame


def _fill_default(values: pd.Series, spec: catalogue.FeatureSpec) -> pd.Series:
    """A column with nulls replaced by the spec's default and the spec's type restored."""
    if spec.dtype == "string_list":
        return values.map(lambda item: list(item) if isinstance(item, (list, tuple, np.ndarray))
                          else list(spec.default))
    if spec.dtype == "timestamp":
        return pd.to_datetime(values, utc=True)
    filled = values.astype(object).where(values.notna(), spec.default)
    target = {"int64": "int64", "float64": "float64", "bool": "bool", "string": object}[spec.dtype]
    return filled.astype(target)


def apply_defaults(frame: pd.DataFrame, specs: dict[str, catalogue.FeatureSpec]) -> pd.DataFrame:
    """Replace nulls in every catalogue column of `frame` by the catalogue default."""
    for name in frame.columns:
        if name in specs:
            frame[name] = _fill_default(frame[name], specs[name])
    return frame


def training_frame(settings: Settings, entity_df: pd.DataFrame, service: str,
                   store: Any | None = None) -> pd.DataFrame:
    """A feature service's values for each row of `entity_df`, point in time.

    One Feast `get_historical_features` call on the service: the offline store (DuckDB,
    or Spark under `features.engine = spark`) joins each batch view as of the row's time,
    and the on-demand views run with the row's time as the request time.

    Args:
        settings: the Tailor settings (home, project).
        entity_df: the entity key column (customer_id or product_id), `event_timestamp`
            (the time each row's features are wanted at; values use only events strictly
            before the snapshot at or before it) and any label columns to carry along.
        service: homepage, cross_sell, churn or checkout.
        store: an open `feast.FeatureStore` (default: the home's).

    Returns:
        `entity_df`'s rows in their order, with one column per feature of the service;
        `event_timestamp` as UTC, to the microsecond.

    Raises:
        ValueError: `entity_df` lacks `event_timestamp` or the service's key column.
    """
    if store is None:
        from tailor.features.repo import open_feature_store

        store = open_feature_store(settings)
    frame = _normalise_times(entity_df)
    feature_service = store.get_feature_service(service)
    keys = service_join_keys(store, feature_service)
    missing = [key for key in keys if key not in frame.columns]
    if missing:
        raise ValueError(f"entity_df: the {service} service needs column(s) {', '.join(missing)}")
    # Feast joins each distinct (key, time) once; rows asking twice get the same answer.
    unique = frame[keys + [TIMESTAMP, "request_time"]].drop_duplicates(keys + [TIMESTAMP])
    with offline_engine(settings):
        joined = store.get_historical_features(entity_df=unique,
                                               features=feature_service).to_df()
    joined[TIMESTAMP] = pd.to_datetime(joined[TIMESTAMP], utc=True)
    # Feast also returns the inputs of on-demand views (raw timestamps); keep the service's.
    names = [feature.name for projection in feature_service.feature_view_projections
             for feature in projection.features]
    result = frame.drop(columns=["request_time"]).merge(
        joined[keys + [TIMESTAMP] + names], on=keys + [TIMESTAMP], how="left")
    result = result.sort_values(ROW_ID).drop(columns=[ROW_ID]).reset_index(drop=True)
    manifest = read_manifest(settings.home_path) or {}
    specs = {spec.name: spec for spec in catalogue.all_specs(manifest.get("categories", ()))}
    return apply_defaults(result, specs)


def service_join_keys(store: Any, feature_service: Any) -> list[str]:
    """The entity key columns a feature service's batch views are looked up by."""
    on_demand = {view.name for view in store.list_on_demand_feature_views()}
    keys: list[str] = []
    for projection in feature_service.feature_view_projections:
        if projection.name in on_demand:
            continue
        view = store.get_feature_view(projection.name)
        keys += [column.name for column in view.entity_columns if column.name not in keys]
    return keys
