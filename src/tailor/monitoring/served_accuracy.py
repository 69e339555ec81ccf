"""Accuracy of the answers actually served, as their labels mature: the prediction log
joined to the purchases that followed.

Reads the prediction log (`read_predictions`) and the events of a `ShopData`. Writes
nothing. An answer is scored once `monitoring.label_days` have passed since it was served
(its label has matured):
  * homepage: precision@k and hit rate of the list shown against what the customer bought
    within the label window ("did predicted items match actual purchases?");
  * also bought: hit rate: the customer bought one of the companions shown;
  * checkout offer: ROC AUC of the served P(abandon) against whether the customer bought
    within the label window (no purchase = abandoned);
  * churn is scored in batch, not served: None here (`tailor.monitoring.churn_outcomes`
    judges its retention lists once their horizon has passed).
Answers without a customer id (opted out, anonymous) and fallbacks are left out. With no
matured answer the result is None.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tailor.config import Settings

ENDPOINT = {"homepage": "homepage", "cross_sell": "also_bought", "checkout": "checkout_offer"}


def served_accuracy(settings: Settings, data: Any, model: str, start: pd.Timestamp,
                    end: pd.Timestamp, k: int = 10) -> dict[str, float] | None:
    """The served answers' metrics over answers given in [start, end - label_days)."""
    from tailor.models.metrics import roc_auc, standard_error_of_mean
    from tailor.monitoring.prediction_log import read_predictions

    if model not in ENDPOINT:
        return None
    matured = end - pd.Timedelta(days=settings.monitoring_label_days)
    if matured <= start:
        return None
    answers = read_predictions(settings, start, matured, ENDPOINT[model])
    answers = answers[answers["customer_id"].notna() & ~answers["fallback"]]
    if answers.empty:
        return None
    purchases = data.events.loc[data.events["event_type"] == "purchase",
                                ["customer_id", "product_id", "timestamp"]]
    window = pd.Timedelta(days=settings.monitoring_label_days)
    if model == "checkout":
        answers = answers[answers["p_abandon"].notna()]
        bought = _bought_within(answers, purchases, window)
        if answers.empty or bought.nunique() < 2:
            return None
        return {"roc_auc": roc_auc((~bought).astype(int).to_numpy(),
                                   answers["p_abandon"].to_numpy(float)),
                "answers": float(len(answers))}
    shown = answers[["request_id", "customer_id", "served_at", "items"]].explode("items")
    shown = shown.dropna(subset=["items"])
    shown["product_id"] = [item["product_id"] for item in shown["items"]]
    shown["rank"] = shown.groupby("request_id").cumcount() + 1
    shown = shown[shown["rank"] <= k]
    matched = shown.merge(purchases, on=["customer_id", "product_id"], how="left")
    matched["hit"] = (matched["timestamp"] > matched["served_at"]) & (
        matched["timestamp"] <= matched["served_at"] + window)
    hits = matched.groupby(["request_id", "product_id"])["hit"].any().groupby(level=0).sum()
    hits = hits.reindex(answers["request_id"], fill_value=0).to_numpy(float)
    result = {f"hit_rate@{k}": float(np.mean(hits > 0)), "answers": float(len(hits))}
    if model == "homepage":
        precision = hits / k
        result |= {f"precision@{k}": float(precision.mean()),
                   f"precision@{k}_se": standard_error_of_mean(precision)}
    return result


def _bought_within(answers: pd.DataFrame, purchases: pd.DataFrame,
                   window: pd.Timedelta) -> pd.Series:
    """Per answer (in order), whether its customer bought within `window` after it."""
    joined = answers[["request_id", "customer_id", "served_at"]].merge(
        purchases[["customer_id", "timestamp"]], on="customer_id", how="left")
    joined["bought"] = (joined["timestamp"] > joined["served_at"]) & (
        joined["timestamp"] <= joined["served_at"] + window)
    return joined.groupby("request_id")["bought"].any().reindex(
        answers["request_id"], fill_value=False).reset_index(drop=True)
