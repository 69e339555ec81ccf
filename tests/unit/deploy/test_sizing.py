"""The serving sizing: the HPA's bounds from the measured capacity per worker, checked
against the computation done by hand."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.deploy.sizing import SizingInputs, size_serving


def test_the_brief_shop_needs_2_pods_normally_and_13_in_a_tenfold_surge() -> None:
    sizing = size_serving()
    # 10M events/day = 115.74 events/s; x (0.87 + 0.86 x 0.5) = 1.30 requests per event.
    assert sizing.mean_rps == pytest.approx(10_000_000 / 86_400 * 1.30)
    assert sizing.normal_peak_rps == pytest.approx(451.39, abs=0.01)  # x 3
    assert sizing.surge_rps == pytest.approx(4513.89, abs=0.01)  # x 10
    assert sizing.pod_capacity_rps == 600  # 300 per worker x 2 workers
    assert sizing.pod_planned_rps == pytest.approx(360)  # at the 60% CPU target
    assert (sizing.min_replicas, sizing.max_replicas) == (2, 13)  # ceil(1.25), ceil(12.54)
    assert sizing.cores_at_max == 26


def test_bounds_follow_the_figures() -> None:
    quiet = size_serving(SizingInputs(events_per_day=100_000))
    assert quiet.min_replicas == 2  # never a single pod
    slower = size_serving(SizingInputs(requests_per_worker=150))
    assert slower.max_replicas == 26  # half the capacity, twice the pods (4513.9 / 180)
    assert size_serving(SizingInputs(surge=20)).max_replicas == 26  # 9027.8 / 360


@pytest.mark.parametrize("field", ["requests_per_worker", "surge", "events_per_day"])
def test_a_figure_that_is_not_positive_is_refused_by_name(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        size_serving(SizingInputs(**{field: 0}))


def test_the_sizing_command_prints_the_computation() -> None:
    result = CliRunner().invoke(app, ["deploy", "sizing", "--surge", "10", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["min_replicas"], payload["max_replicas"]) == (2, 13)
    refused = CliRunner().invoke(app, ["deploy", "sizing", "--workers", "0"])
    assert refused.exit_code == 2
