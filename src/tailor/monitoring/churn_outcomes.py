"""Accuracy of the churn lists actually sent out, once their horizon has passed.

Churn is scored in batch (`tailor retention`, weekly), not served, so its "answers" are the
retention lists. Each list leaves beside it every scored customer's probability
(`retention_<date>.scores.parquet`) and its summary (`retention_<date>.json`: as_of, model
version, threshold, horizon). Once `as_of + horizon` is inside the data, the list's label is
known: a scored customer churned when they bought nothing in [as_of, as_of + horizon).

Reads `<home>/reports/retention/` and the events of a `ShopData`; writes nothing. Returns,
for the newest matured list: precision and recall of the high-risk flag at the list's
threshold, ROC AUC of the probabilities, and the counts behind them. Customers excluded
since (opted out, deleted) are left out: their events are gone from the data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.config import Settings

log = logging.getLogger(__name__)

FOLDER = "retention"


def matured_lists(settings: Settings, data_end: pd.Timestamp) -> list[dict[str, Any]]:
    """Summaries of the retention lists whose horizon ended by `data_end`, newest first."""
    folder = settings.reports_path / FOLDER
    matured = []
    for path in sorted(folder.glob("retention_*.json")):
        try:
            summary = json.loads(path.read_text())
            as_of = pd.Timestamp(summary["as_of"])
            horizon = float(summary["horizon_days"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: not a retention list summary (%s: %s); skipped", path,
                        type(error).__name__, error)
            continue
        if as_of.tzinfo is None:
            as_of = as_of.tz_localize("UTC")
        if as_of + pd.Timedelta(days=horizon) <= data_end:
            matured.append(summary | {"summary_path": str(path), "as_of_time": as_of})
    return sorted(matured, key=lambda summary: summary["as_of_time"], reverse=True)


def churn_list_accuracy(settings: Settings, data: Any) -> dict[str, float] | None:
    """Precision, recall and ROC AUC of the newest matured retention list (None without one,
    or when its outcomes are all one class)."""
    from tailor.models.feature_frames import churn_labels
    from tailor.models.metrics import roc_auc

    for summary in matured_lists(settings, data.end):
        scores_path = Path(summary["summary_path"]).with_suffix("").with_suffix(".scores.parquet")
        if not scores_path.is_file():
            log.warning("%s: no scores beside the summary; skipped", scores_path)
            continue
        scores = pd.read_parquet(scores_path, columns=["customer_id", "churn_probability"])
        scores = scores[scores["customer_id"].isin(set(data.events["customer_id"]))]
        if scores.empty:
            continue
        entities = scores.assign(event_timestamp=summary["as_of_time"]).reset_index(drop=True)
        churned = churn_labels(data, entities, pd.Timedelta(days=float(summary["horizon_days"])))
        flagged = entities["churn_probability"] > float(summary["threshold"])
        hits = int((flagged & (churned == 1)).sum())
        result = {"answers": float(len(entities)), "flagged": float(flagged.sum()),
                  "churned": float(churned.sum()),
                  "precision": hits / int(flagged.sum()) if flagged.any() else 0.0,
                  "recall": hits / int(churned.sum()) if churned.any() else 0.0}
        if churned.nunique() == 2:
            result["roc_auc"] = roc_auc(churned.to_numpy(), entities["churn_probability"]
                                        .to_numpy(float))
        return result
    return None
