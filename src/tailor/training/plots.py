"""Plots of a holdout result, logged to the training run under `plots/`.

Reads a `BacktestResult`; writes nothing itself (returns matplotlib figures, which
`log_plots` hands to MLflow). Ranking models get a precision@k curve beside the baselines;
classifiers get ROC and precision-recall curves, a calibration plot and feature importance.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from tailor.models.evaluate import BacktestResult  # noqa: E402
from tailor.models.metrics import calibration_table  # noqa: E402

TOP_FEATURES_SHOWN = 15


def precision_at_k_figure(result: BacktestResult) -> Figure:
    """precision@k against k for the model and each baseline."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in result.curves.items():
        if isinstance(curve, dict) and curve:
            axis.plot(list(curve), list(curve.values()), marker="o", label=name)
    axis.axvline(result.k, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="k", ylabel="precision@k", title=f"{result.model}: precision@k on the holdout")
    axis.legend()
    figure.tight_layout()
    return figure


def roc_pr_figure(result: BacktestResult) -> Figure:
    """ROC and precision-recall curves of the model and the recency baseline."""
    labels = result.curves["labels"]
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("model", "recency"):
        scores = result.curves[name]
        if len(np.unique(labels)) < 2:
            continue
        false_positive, true_positive, _ = roc_curve(labels, scores)
        roc_axis.plot(false_positive, true_positive, label=name)
        precision, recall, _ = precision_recall_curve(labels, scores)
        pr_axis.plot(recall, precision, label=name)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate",
                 title=f"ROC (AUC {result.metrics['roc_auc']:.3f})")
    pr_axis.set(xlabel="recall", ylabel="precision",
                title=f"precision-recall (AP {result.metrics['pr_auc']:.3f})")
    roc_axis.legend()
    pr_axis.legend()
    figure.tight_layout()
    return figure


def calibration_figure(result: BacktestResult) -> Figure:
    """Observed rate against predicted probability (a calibrated model follows the diagonal)."""
    table = calibration_table(result.curves["labels"], result.curves["model"])
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.plot(table["mean_probability"], table["observed_rate"], marker="o")
    axis.set(xlabel="predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1),
             title=f"{result.model}: calibration on the holdout")
    figure.tight_layout()
    return figure


def importance_figure(result: BacktestResult) -> Figure:
    """Total gain of the most important features."""
    importance = result.curves["importance"].head(TOP_FEATURES_SHOWN)[::-1]
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(importance) + 1.5))
    axis.barh(list(importance.index), importance.to_numpy())
    axis.set(xlabel="total gain", title=f"{result.model}: feature importance")
    figure.tight_layout()
    return figure


def log_plots(result: BacktestResult) -> list[str]:
    """Log the plots that fit `result`'s model to the active run; returns their artifact paths."""
    if "labels" in result.curves:
        figures = {"roc_pr.png": roc_pr_figure(result),
                   "calibration.png": calibration_figure(result),
                   "feature_importance.png": importance_figure(result)}
    else:
        figures = {"precision_at_k.png": precision_at_k_figure(result)}
    paths = []
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}")
        plt.close(figure)
        paths.append(f"plots/{name}")
    return paths
