"""A pipeline over an empty home (no events, no warehouse, no registry) is ready and answers
empty fallbacks: the collector beside it must take a new shop's first events."""

from __future__ import annotations

from pathlib import Path

from tailor.config import load_settings
from tailor.serving.schemas import HomepageRequest


def test_an_empty_home_is_ready_and_answers_empty_fallbacks(tmp_path: Path,
                                                            pipeline_factory) -> None:
    empty = pipeline_factory(load_settings(home=tmp_path / "empty", env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none.db'}"))
    assert empty.ready()  # the collector beside it must take a new shop's first events
    answer = empty.homepage(HomepageRequest(customer_id="c1"))
    assert answer.fallback and answer.items == []
    status = empty.status()
    assert status["fallback"]["size"] == 0 and status["catalogue"]["error"]
