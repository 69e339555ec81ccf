"""Experiments in a pipeline over a home without models: started and stopped experiments are
seen without a new pipeline (by `refresh` and by the background thread), fallback answers
name their experiment and variant, opted-out customers are in none, a failed read of the
state keeps the last assignment, a variant whose model cannot load is not served."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from experiment_definitions import make_definition, variants
from tailor.config import Settings, load_settings
from tailor.experiments.state import ExperimentStore
from tailor.privacy.excluded_customers import exclusions_path
from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)
from waiting import wait_until


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")


def started(settings: Settings, **overrides):
    definition = make_definition(**overrides)
    with ExperimentStore(settings.event_store_url) as store:
        return store.start(definition, "tests", "go")


def stopped(settings: Settings, name: str) -> None:
    with ExperimentStore(settings.event_store_url) as store:
        store.stop(name, "tests", "done")


def test_a_start_and_a_stop_are_seen_by_refresh_without_a_new_pipeline(
        settings: Settings, pipeline_factory) -> None:
    pipeline = pipeline_factory(settings)
    request = HomepageRequest(customer_id="c1", k=3)
    assert pipeline.homepage(request).experiment is None
    started(settings)
    assert pipeline.experiments.refresh()
    answer = pipeline.homepage(request)
    assert answer.fallback  # no model: the experiment is served in the fallback too
    assert answer.experiment == "layout-test"
    assert answer.layout == ("carousel" if answer.experiment_variant == "carousel" else None)
    assert pipeline.status()["experiments"]["serving"] == ["layout-test"]
    stopped(settings, "layout-test")
    assert pipeline.experiments.refresh()
    assert pipeline.homepage(request).experiment is None


def test_the_background_thread_picks_experiments_up(settings: Settings,
                                                    pipeline_factory) -> None:
    pipeline = pipeline_factory(settings.replace(experiments_refresh_seconds=0.05))
    pipeline.experiments.start()  # the factory's pipelines start no threads
    request = HomepageRequest(customer_id="c1", k=3)
    started(settings)
    wait_until(lambda: pipeline.homepage(request).experiment == "layout-test", 60,
               "the started experiment to be served")
    stopped(settings, "layout-test")
    wait_until(lambda: pipeline.homepage(request).experiment is None, 60,
               "the stopped experiment to stop being served")


def test_both_variants_and_the_units_outside_are_served(settings: Settings,
                                                        pipeline_factory) -> None:
    pipeline = pipeline_factory(settings)
    started(settings, traffic=0.5)
    pipeline.experiments.refresh()
    seen = {}
    for index in range(200):
        answer = pipeline.homepage(HomepageRequest(customer_id=f"c{index}", k=1))
        seen[answer.experiment_variant] = answer.layout
    assert seen == {None: None, "control": None, "carousel": "carousel"}


def test_every_endpoint_names_its_experiment(settings: Settings, pipeline_factory) -> None:
    pipeline = pipeline_factory(settings)
    started(settings, name="cross-test", surface="also_bought", layer="cross-sell",
            variants=variants(("a", 0.5, {}), ("b", 0.5, {"diversity": "mixed"})))
    started(settings, name="offer-test", surface="checkout_offer", layer="checkout",
            metrics={"primary": "conversion"}, variants=variants(("a", 0.5, {}), ("b", 0.5, {})))
    pipeline.experiments.refresh()
    also = pipeline.also_bought(AlsoBoughtRequest(product_id="p1", customer_id="c1"))
    offer = pipeline.checkout_offer(CheckoutOfferRequest(
        customer_id="c1", session_id="s1", cart=[CartLine(product_id="p1")]))
    assert (also.experiment, offer.experiment) == ("cross-test", "offer-test")
    assert pipeline.homepage(HomepageRequest(customer_id="c1")).experiment is None
    anonymous = pipeline.also_bought(AlsoBoughtRequest(product_id="p1"))
    assert anonymous.experiment is None  # no id to assign by


def test_the_anonymous_id_decides_the_variant(settings: Settings, pipeline_factory) -> None:
    pipeline = pipeline_factory(settings)
    started(settings)
    pipeline.experiments.refresh()
    for index in range(40):
        anonymous = f"anon-{index:032x}"
        before = pipeline.homepage(HomepageRequest(customer_id=anonymous))
        after = pipeline.homepage(HomepageRequest(customer_id=f"c{index}",
                                                  context={"anonymous_id": anonymous}))
        assert after.experiment_variant == before.experiment_variant


def test_an_opted_out_customer_is_in_no_experiment(settings: Settings, pipeline_factory) -> None:
    path = exclusions_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("customer_id,reason,recorded_at\n"
                    f"leaver,opted_out,{datetime.now(timezone.utc).isoformat()}\n")
    pipeline = pipeline_factory(settings)
    started(settings)
    pipeline.experiments.refresh()
    assert pipeline.homepage(HomepageRequest(customer_id="leaver")).experiment is None
    assert pipeline.homepage(HomepageRequest(customer_id="stayer")).experiment == "layout-test"


def test_a_failed_read_keeps_the_last_assignment_and_logs_once(
        settings: Settings, pipeline_factory, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = pipeline_factory(settings)
    started(settings)
    pipeline.experiments.refresh()

    def unreachable():
        raise ConnectionError("the database went away")

    pipeline.experiments._opened = unreachable
    with caplog.at_level(logging.WARNING, logger="tailor.serving.experiment_watcher"):
        assert not pipeline.experiments.refresh()
        assert not pipeline.experiments.refresh()
    assert pipeline.homepage(HomepageRequest(customer_id="c1")).experiment == "layout-test"
    assert "the database went away" in pipeline.status()["experiments"]["last_error"]
    warnings = [r for r in caplog.records if "last assignment keeps serving" in r.getMessage()]
    assert len(warnings) == 1


def test_a_variant_whose_model_cannot_load_is_not_served(settings: Settings,
                                                         pipeline_factory) -> None:
    pipeline = pipeline_factory(settings)
    started(settings, name="model-test", variants=variants(
        ("control", 0.5, {}), ("candidate", 0.5, {"model": "challenger"})))
    pipeline.experiments.refresh()
    assert pipeline.homepage(HomepageRequest(customer_id="c1")).experiment is None
    status = pipeline.status()["experiments"]
    assert status["serving"] == []
    assert "variant candidate: no homepage model loaded" in status["not_served"]["model-test"]
