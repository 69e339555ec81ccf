"""Evidently drift and data-quality reports, saved as snapshots in the home's workspace.

Reads: a version's `Reference` and the newest window (customer profiles recomputed from the
warehouse, and what the version scores on that window). Writes: snapshots in the Evidently
workspace `<home>/evidently` (one project per model, `tailor-<model>`, so `evidently ui
--workspace <home>/evidently` shows each model over time) and the same reports as HTML under
`<home>/reports/monitoring/`. The statistics are Evidently's own (its per-column default
tests: K-S or chi-square p-values on small samples, Wasserstein or Jensen-Shannon distances on
large ones); this module only reads their verdicts.

Large windows are sampled to `SAMPLE_ROWS` rows per side before the test, uniformly with a
fixed seed. At 5,000 rows per side the two-sample K-S test at the 5% level flags a distance
between the distributions above 1.36 * sqrt(2 / 5000) = 0.027, a mean shift of about 0.07
standard deviations of a normal column: finer than any change a shop would act on. The
sample is what keeps a report on 1M rows x 50 features within its time target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.models.profiles import CATEGORICAL_COLUMNS
from tailor.training.reference import sample

log = logging.getLogger(__name__)

WORKSPACE_DIR = "evidently"
SAMPLE_ROWS = 5_000
NOT_FEATURES = frozenset({"label", "customer_id", "case_id", "product_id", "rank", "reason"})


@dataclass
class DriftResult:
    """Which columns drifted in one comparison, by Evidently's tests."""

    dataset: str  # "profile" (the shoppers), "features" (the model's inputs), "predictions"
    columns: int
    drifted: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    snapshot: str | None = None  # the snapshot's id in the workspace
    html: str | None = None

    @property
    def share(self) -> float:
        return len(self.drifted) / self.columns if self.columns else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "columns": self.columns, "drifted": self.drifted,
                "share": round(self.share, 4), "snapshot": self.snapshot, "html": self.html}


def workspace_path(settings: Settings) -> Path:
    return settings.home_path / WORKSPACE_DIR


@dataclass
class RoundReports:
    """What the reports of one monitoring round share: the workspace, opened once (opening
    it reads every earlier snapshot), and each report by what it compared, so a second model
    whose reference and window sample to the same rows (the four models trained on one day
    share their shoppers' profile) gets the same report, tagged as its own, without Evidently
    running again."""

    snapshots: dict[tuple, Any] = field(default_factory=dict)
    _workspace: Any = None

    def workspace(self, settings: Settings) -> Any:
        if self._workspace is None:
            from evidently.ui.workspace import Workspace

            self._workspace = Workspace.create(str(workspace_path(settings)))
        return self._workspace


def compare(settings: Settings, model: str, dataset: str, reference: pd.DataFrame,
            current: pd.DataFrame, moment: pd.Timestamp, tags: dict[str, str],
            shared: RoundReports | None = None) -> DriftResult:
    """Run Evidently's drift preset and data-quality checks on one reference/current pair,
    save the snapshot and its HTML, and return the verdicts. Columns only one side has, and
    columns with no values, are left out (named in the log). `shared`: the round's reports
    (see `RoundReports`); a new one when not given."""
    numeric, categorical = _columns(reference, current)
    if not numeric and not categorical:
        return DriftResult(dataset, 0)
    from evidently import DataDefinition, Dataset

    shared = shared if shared is not None else RoundReports()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    kept = numeric + categorical

    def rows_of(frame: pd.DataFrame) -> pd.DataFrame:
        rows = sample(frame[kept], SAMPLE_ROWS)
        for name in categorical:  # Evidently counts labels; a missing one is a label too
            rows[name] = rows[name].astype(object).where(rows[name].notna(), "(none)").astype(str)
        return rows

    current_rows, reference_rows = rows_of(current), rows_of(reference)
    key = (dataset, tuple(numeric), tuple(categorical), _fingerprint(current_rows),
           _fingerprint(reference_rows))
    when = moment.to_pydatetime().replace(tzinfo=None)
    labels = {"tags": [model, dataset], "metadata": {"model": model, "dataset": dataset, **tags}}
    earlier = shared.snapshots.get(key)
    if earlier is not None:
        snapshot = _relabelled(earlier, **labels)
    else:
        snapshot = _report(kept).run(
            Dataset.from_pandas(current_rows, data_definition=definition),
            Dataset.from_pandas(reference_rows, data_definition=definition),
            timestamp=when, **labels)
        shared.snapshots[key] = snapshot
    result = DriftResult(dataset, len(kept))
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        drifted = value < threshold if "p_value" in str(config["method"]) else value >= threshold
        result.scores[str(config["column"])] = value
        if drifted:
            result.drifted.append(str(config["column"]))
    result.snapshot, result.html = _save(settings, model, dataset, snapshot, moment,
                                         shared.workspace(settings))
    return result


def _report(columns: list[str]) -> Any:
    """Drift per column (Evidently's preset and its tests) and the window's data quality:
    dataset-level counts (rows, empty and constant columns, duplicates, missing values) and
    each column's missing values. Evidently's per-column summary preset would add a plotted
    distribution per column, which the drift table already shows, at twice the cost."""
    from evidently import Report
    from evidently.metrics import MissingValueCount
    from evidently.presets import DataDriftPreset
    from evidently.presets.dataset_stats import DatasetStats

    return Report([DataDriftPreset(), DatasetStats()]
                  + [MissingValueCount(column=name) for name in columns])


def _fingerprint(rows: pd.DataFrame) -> int:
    return int(pd.util.hash_pandas_object(rows, index=False).sum())


def _relabelled(snapshot: Any, tags: list[str], metadata: dict[str, str]) -> Any:
    """The same results under another model's tags and metadata (Evidently's own round trip
    through its snapshot dictionary)."""
    from evidently.core.report import Snapshot

    content = snapshot.dump_dict()
    content["tags"], content["metadata"] = tags, metadata
    return Snapshot.load_dict(content)


def _columns(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for name in reference.columns:
        if name in NOT_FEATURES or name not in current:
            continue
        if reference[name].isna().all() or current[name].isna().all():
            continue
        if name in CATEGORICAL_COLUMNS or not pd.api.types.is_numeric_dtype(reference[name]):
            categorical.append(name)
        elif pd.api.types.is_bool_dtype(reference[name]):
            categorical.append(name)
        else:
            numeric.append(name)
    return numeric, categorical


def _save(settings: Settings, model: str, dataset: str, snapshot: Any, moment: pd.Timestamp,
          workspace: Any) -> tuple[str | None, str | None]:
    """Add the snapshot to the model's workspace project and write its HTML report."""
    folder = settings.reports_path / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / f"{model}_{dataset}_{moment:%Y-%m-%d}.html"
    snapshot.save_html(str(html))
    name = f"tailor-{model}"
    found = workspace.search_project(name)
    project = found[0] if found else workspace.create_project(
        name, description=f"Tailor {model} model: drift and data quality of each monitoring "
                          "round against the reference of the serving version")
    reference = workspace.add_run(project.id, snapshot, include_data=False)
    return str(reference.id), str(html)

