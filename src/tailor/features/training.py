"""Training sets: a feature service's values at given (entity, time) rows, point in time.

Reads the offline Parquet sources through Feast's `get_historical_features` (an as-of
join: for each row, the newest feature row stamped at or before its time and within
the view's TTL) and runs the on-demand views with the row's time as the request time.
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

ROW_ID = "__tailor_row"
TIMESTAMP = "event_timestamp"


def _normalise_times(entity_df: pd.DataFrame) -> pd.DataFrame:
    """A copy with event_timestamp as UTC and request_time set to it."""
    if TIMESTAMP not in entity_df.columns:
        raise ValueError(f"entity_df: needs an {TIMESTAMP} column (the time of each row)")
    frame = entity_df.copy()
    stamps = pd.to_datetime(frame[TIMESTAMP], utc=True)
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

    Args:
        settings: the Tailor settings (home, project).
        entity_df: the entity key column (customer_id or product_id), `event_timestamp`
            (the time each row's features are wanted at; values use only events strictly
            before the snapshot at or before it) and any label columns to carry along.
        service: homepage, cross_sell, churn or checkout.
        store: an open `feast.FeatureStore` (default: the home's).

    Returns:
        `entity_df`'s rows in their order, with one column per feature of the service.

    Raises:
        ValueError: `entity_df` has no `event_timestamp` column.
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
    result = frame.drop(columns=["request_time"])
    groups, request_only = retrieval_groups(store, feature_service)
    for refs in groups:
        joined = store.get_historical_features(entity_df=unique, features=refs).to_df()
        # Feast also returns the inputs of on-demand views (raw timestamps); keep the refs'.
        names = [ref.split(":", 1)[1] for ref in refs]
        result = result.merge(joined[keys + [TIMESTAMP] + names], on=keys + [TIMESTAMP],
                              how="left")
    for view, names in request_only.items():
        # Feast cannot retrieve a view that reads only request data on its own; its
        # registered transformation is run here on the rows' request times instead.
        outputs = store.get_on_demand_feature_view(view).transform_dict(
            {"request_time": list(frame["request_time"])})
        for name in names:
            result[name] = list(outputs[name])
    result = result.sort_values(ROW_ID).drop(columns=[ROW_ID]).reset_index(drop=True)
    manifest = read_manifest(settings.home_path) or {}
    specs = {spec.name: spec for spec in catalogue.all_specs(manifest.get("categories", ()))}
    return apply_defaults(result, specs)


def retrieval_groups(store: Any, feature_service: Any) -> tuple[list[list[str]],
                                                                 dict[str, list[str]]]:
    """The service's feature refs ("view:feature"), one group per batch view with the
    on-demand views that read it; and the features of on-demand views that read only
    request data, by view.

    One `get_historical_features` call per group: Feast's file offline store drops an
    entity row from the whole answer when one of the views has rows for the entity but
    none within its TTL (the session view, typically), instead of leaving that view's
    features empty. Per view, a dropped row just means "no value within the TTL", which
    becomes the default like any missing value.
    """
    on_demand = {view.name: view for view in store.list_on_demand_feature_views()}
    groups: dict[str, list[str]] = {}
    request_only: dict[str, list[str]] = {}
    attached: list[tuple[str, list[str]]] = []
    for projection in feature_service.feature_view_projections:
        refs = [f"{projection.name}:{feature.name}" for feature in projection.features]
        if projection.name not in on_demand:
            groups.setdefault(projection.name, []).extend(refs)
            continue
        sources = list(on_demand[projection.name].source_feature_view_projections)
        if sources:
            attached.append((sources[0], refs))
        else:
            request_only[projection.name] = [feature.name for feature in projection.features]
    for source, refs in attached:
        groups.setdefault(source, []).extend(refs)
    return list(groups.values()), request_only


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
