"""The hand-computable shop of tests/report_homes.py in a temporary home, built once per
module (ingest, lake, warehouse, prediction log, decisions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_homes import build_report_home

from tailor.config import Settings, load_settings


@pytest.fixture(scope="module")
def report_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("report")
    settings = load_settings(home=folder / "home", env={}).replace(
        report_metrics_url="http://127.0.0.1:9/metrics")  # nothing listens on port 9
    return build_report_home(settings, folder / "shop")
