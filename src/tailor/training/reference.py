"""The reference every registered version is judged against, kept with it in MLflow.

Writes (at training, on the training run, under the artifact folder `reference/`):
  * `reference.json`: the holdout's metrics and primary metric (the baseline of the 5%
    rule) with its standard error, and the baselines' metrics on the same holdout, the holdout window (start, end, length in days), the end of the training data and
    how many units were scored;
  * `scored.parquet`: a sample of what the model scored on the holdout (a classifier's
    feature rows with its `prediction` and the `label`; a ranker's lists with their scores);
  * `profile.parquet`: a sample of the holdout window's customer profiles
    (`tailor.models.profiles`), the data drift reference for every model.
Reads them back for a version (`load_reference`); a missing or unreadable reference is a
`ReferenceMissing` that names the version, never a crash.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.models.data import ShopData
from tailor.models.evaluate import BacktestResult
from tailor.models.profiles import customer_profiles

ARTIFACT_DIR = "reference"
SAMPLE_ROWS = 5_000  # rows kept per reference frame; drift tests need no more
SAMPLE_SEED = 11


class ReferenceMissing(LookupError):
    """A version has no readable reference (trained before monitoring, or the artifact is
    corrupt); the message names the version and what is wrong."""


@dataclass(frozen=True)
class Reference:
    """What a version scored on its holdout, as recorded when it was trained."""

    model: str
    primary_metric: str
    metrics: dict[str, float]
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    data_to: pd.Timestamp
    n_evaluated: int
    k: int
    scored: pd.DataFrame
    profile: pd.DataFrame
    baselines: dict[str, dict[str, float]]
    baseline_se: float | None  # standard error of `baseline` (None in older references)

    @property
    def baseline(self) -> float:
        """The primary metric on the holdout: what the 5% rule compares with."""
        return float(self.metrics[self.primary_metric])

    @property
    def popularity(self) -> float | None:
        """What the popularity baseline scored on the same holdout (None if not kept)."""
        value = self.baselines.get("popularity", {}).get(self.primary_metric)
        return None if value is None else float(value)

    @property
    def window_days(self) -> float:
        return (self.window_end - self.window_start) / pd.Timedelta(days=1)


def sample(frame: pd.DataFrame, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """At most `rows` rows of `frame`, drawn uniformly with a fixed seed."""
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(rows, random_state=SAMPLE_SEED).reset_index(drop=True)


def log_reference(data: ShopData, holdout: BacktestResult) -> None:
    """Log the reference of the model the active MLflow run is training (see the module)."""
    import mlflow

    summary = {"model": holdout.model, "primary_metric": holdout.primary_metric,
               "metrics": {name: float(value) for name, value in holdout.metrics.items()},
               "baselines": {name: {metric: float(value) for metric, value in values.items()}
                             for name, values in holdout.baselines.items()},
               "primary_se": holdout.primary_se,
               "window_start": holdout.cutoff.isoformat(), "window_end": data.end.isoformat(),
               "data_to": data.end.isoformat(), "n_evaluated": int(holdout.n_evaluated),
               "k": int(holdout.k)}
    window = data.events[data.events["timestamp"] >= holdout.cutoff]
    scored = holdout.scored if holdout.scored is not None else pd.DataFrame()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "reference.json").write_text(json.dumps(summary, indent=2))
        sample(scored).to_parquet(root / "scored.parquet", index=False)
        sample(customer_profiles(window, data.products)).to_parquet(root / "profile.parquet",
                                                                    index=False)
        mlflow.log_artifacts(folder, ARTIFACT_DIR)


def load_reference(run_id: str, label: str) -> Reference:
    """The reference logged by the training run `run_id`; `label` names the version in errors.

    Raises:
        ReferenceMissing: the run has no reference, or it cannot be read.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from tailor.logs import library_output

    try:
        with library_output("mlflow.output"):  # download bars go to the log only
            folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id,
                                                              artifact_path=ARTIFACT_DIR))
    except (MlflowException, OSError) as error:
        raise ReferenceMissing(f"{label}: no reference artifacts (trained before monitoring "
                               f"existed, or they were removed): {error}") from None
    try:
        summary: dict[str, Any] = json.loads((folder / "reference.json").read_text())
        return Reference(
            model=summary["model"], primary_metric=summary["primary_metric"],
            metrics={name: float(value) for name, value in summary["metrics"].items()},
            window_start=pd.Timestamp(summary["window_start"]),
            window_end=pd.Timestamp(summary["window_end"]),
            data_to=pd.Timestamp(summary["data_to"]), n_evaluated=int(summary["n_evaluated"]),
            k=int(summary["k"]), scored=pd.read_parquet(folder / "scored.parquet"),
            profile=pd.read_parquet(folder / "profile.parquet"),
            baselines={name: {metric: float(value) for metric, value in values.items()}
                       for name, values in summary.get("baselines", {}).items()},
            baseline_se=None if summary.get("primary_se") is None
            else float(summary["primary_se"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReferenceMissing(f"{label}: the reference artifacts cannot be read "
                               f"({type(error).__name__}: {error})") from None
