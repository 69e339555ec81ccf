"""Evidently's drift reports as a round makes them: a shifted column is flagged and only it,
and two models comparing the same rows in one round share one Evidently run while each
model's project gets its own snapshot, tagged with its own name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailor.config import load_settings
from tailor.monitoring import drift

MOMENT = pd.Timestamp("2026-03-01", tz="UTC")


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"orders": rng.poisson(2.0, rows), "spend": rng.normal(50, 10, rows),
                         "visits": rng.normal(5.0, 1.0, rows), "customer_id": range(rows)})


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = _frame(800, 1)
    current = reference.sample(frac=1.0, random_state=2).reset_index(drop=True)
    current["spend"] += 15.0  # the same shoppers in another order, spending more
    return reference, current


def test_models_comparing_the_same_rows_share_one_run_and_keep_their_own_snapshots(
        tmp_path: Path, frames, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home=tmp_path, env={})
    reference, current = frames
    built = []
    make_report = drift._report
    monkeypatch.setattr(drift, "_report", lambda columns: built.append(columns) or
                        make_report(columns))
    shared = drift.RoundReports()
    first = drift.compare(settings, "homepage", "profile", reference, current, MOMENT, {},
                          shared)
    second = drift.compare(settings, "churn", "profile", reference, current, MOMENT, {}, shared)
    assert len(built) == 1  # the second model reused the first one's run
    assert first.drifted == second.drifted == ["spend"]  # customer_id is not a feature
    assert first.columns == second.columns == 3
    assert first.snapshot != second.snapshot and Path(second.html).is_file()
    workspace = shared.workspace(settings)
    for model in ("homepage", "churn"):
        [project] = workspace.search_project(f"tailor-{model}")
        [run] = workspace.list_runs(project.id)
        snapshot = workspace.get_run(project.id, run)
        assert model in snapshot.tags and "profile" in snapshot.tags
        assert snapshot.metadata["model"] == model

    drift.compare(settings, "checkout", "profile", reference, current.head(500), MOMENT,
                          {}, shared)
    assert len(built) == 2  # different rows: a run of its own


def test_a_round_without_shared_reports_still_saves_its_snapshot(tmp_path: Path, frames) -> None:
    settings = load_settings(home=tmp_path, env={})
    reference, current = frames
    result = drift.compare(settings, "cross_sell", "scored", reference, reference.copy(), MOMENT,
                           {"version": "3"})
    assert result.drifted == [] and result.snapshot and Path(result.html).is_file()
