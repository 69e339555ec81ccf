"""The prediction log on a trained home: every answer the pipeline gives (one request, a
batch, the async path; homepage, also bought, checkout offer; fallbacks too) lands once in
the `predictions` table with its model, version, variant, items and fallback fields; an
opted-out customer's answer without an id; and from there in the lake and the warehouse.

Each pipeline here writes to its own SQLite event store (`database_url`), so the shared home
stays as it was.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from tailor.config import Settings, load_settings
from tailor.events.lake import export_lake
from tailor.monitoring.prediction_log import read_predictions
from tailor.privacy.excluded_customers import exclusions_path
from tailor.serving.exclusions import ExclusionList
from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)
from tailor.warehouse import query_warehouse, refresh_warehouse

MODELS = {"homepage": "homepage", "also_bought": "cross_sell", "checkout_offer": "checkout"}


def own_store(settings: Settings, folder: Path) -> Settings:
    """The settings with the event store in `folder` (the home's warehouse still gives the
    catalogue)."""
    return settings.replace(database_url=f"sqlite:///{folder / 'events.db'}")


def customers(pipeline, count: int) -> list[str]:
    return [str(customer) for customer in
            pipeline.slots["homepage"].current.model.customers.ids[20:20 + count]]


def a_product(pipeline) -> str:
    table = pipeline.slots["cross_sell"].current.model.table
    return str(table["anchor_product_id"].iloc[0])


def cart(customer: str, session: str, product: str) -> CheckoutOfferRequest:
    return CheckoutOfferRequest(customer_id=customer, session_id=session,
                                cart=[CartLine(product_id=product, quantity=2, price=25.0)])


def logged(pipeline) -> "object":
    """Everything the pipeline's log holds once its queue is written."""
    assert pipeline.predictions.flush(30)
    now = datetime.now(timezone.utc)
    return read_predictions(pipeline.settings, now - timedelta(hours=1),
                            now + timedelta(hours=1)).set_index("request_id")


def assert_logged(frame, endpoint: str, request, answer) -> None:
    """The row of `answer` holds what the answer and its request said."""
    row = frame.loc[answer.request_id]
    assert (row["endpoint"], row["model"]) == (endpoint, MODELS[endpoint])
    assert row["model_version"] == answer.model_version and row["variant"] == answer.variant
    assert (row["fallback"], row["fallback_reason"], row["stale"]) == \
        (answer.fallback, answer.fallback_reason, answer.stale)
    assert row["items"] == [{"product_id": item.product_id, "score": item.score,
                             "reason": item.reason} for item in getattr(answer, "items", [])]
    assert row["customer_id"] == request.customer_id
    if endpoint == "checkout_offer":
        assert (row["offer"], row["session_id"]) == (answer.offer, request.session_id)
        assert row["p_abandon"] == answer.p_abandon or \
            (answer.p_abandon is None and pd.isna(row["p_abandon"]))
    else:
        assert row["k"] == request.k
    if endpoint == "homepage":
        assert row["personalised"] == answer.personalised


@pytest.fixture(scope="module")
def logging_pipeline(served_home, pipeline_factory, tmp_path_factory):
    return pipeline_factory(own_store(served_home.settings, tmp_path_factory.mktemp("predlog")))


def test_every_endpoint_and_batch_form_is_logged_once(served_home, logging_pipeline) -> None:
    pipeline = logging_pipeline
    first, second, third = customers(pipeline, 3)
    product = a_product(pipeline)
    served = []
    homepage = HomepageRequest(customer_id=first, k=5, context={"session_id": "s-home"})
    served.append(("homepage", homepage, pipeline.homepage(homepage)))
    batch = [HomepageRequest(customer_id=second, k=3), HomepageRequest(customer_id=third, k=4)]
    served += [("homepage", request, answer)
               for request, answer in zip(batch, pipeline.homepage_batch(batch))]
    async_home = HomepageRequest(customer_id=third, k=2)
    served.append(("homepage", async_home, asyncio.run(pipeline.ahomepage(async_home))))
    for request in (AlsoBoughtRequest(product_id=product, k=4),
                    AlsoBoughtRequest(product_id=product, customer_id=first, k=3)):
        served.append(("also_bought", request, pipeline.also_bought(request)))
    async_also = AlsoBoughtRequest(product_id=product, k=2)
    served.append(("also_bought", async_also, asyncio.run(pipeline.aalso_bought(async_also))))
    offer = cart(first, "s-cart-1", product)
    served.append(("checkout_offer", offer, pipeline.checkout_offer(offer)))
    carts = [cart(second, "s-cart-2", product), cart(third, "s-cart-3", product)]
    served += [("checkout_offer", request, answer)
               for request, answer in zip(carts, pipeline.checkout_batch(carts))]
    async_cart = cart(first, "s-cart-4", product)
    served.append(("checkout_offer", async_cart,
                   asyncio.run(pipeline.acheckout_offer(async_cart))))

    frame = logged(pipeline)
    ours = frame.loc[[answer.request_id for _, _, answer in served]]
    assert ours.index.is_unique and len(ours) == len(served) == 11
    for endpoint, request, answer in served:
        assert_logged(frame, endpoint, request, answer)
    assert not ours["fallback"].any()  # the model answered every one...
    assert (ours["latency_ms"] > 0).all() and ours["fallback_kind"].isna().all()
    assert {row["model"]: row["model_version"] for _, row in ours.iterrows()} == \
        served_home.versions  # ...each the version serving now
    assert set(ours["variant"]) == {"champion"}
    also = frame.loc[served[4][2].request_id]
    assert also["customer_id"] is None and also["anchor_product_id"] == product
    assert frame.loc[served[0][2].request_id, "session_id"] == "s-home"
    assert pipeline.status()["prediction_log"]["dropped"] == {}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fallback_answers_are_logged_with_their_reason(served_home, pipeline_factory,
                                                       tmp_path: Path) -> None:
    settings = own_store(served_home.settings, tmp_path).replace(
        redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    degraded = pipeline_factory(settings)
    customer = customers(degraded, 1)[0]
    home = HomepageRequest(customer_id=customer, k=4)
    offer = cart(customer, "s-9", a_product(degraded))
    answers = [("homepage", home, degraded.homepage(home)),
               ("checkout_offer", offer, degraded.checkout_offer(offer))]
    frame = logged(degraded)
    for endpoint, request, answer in answers:
        assert answer.fallback
        assert_logged(frame, endpoint, request, answer)
        row = frame.loc[answer.request_id]
        assert row["model_version"] is None
        assert row["fallback_reason"].startswith("feature store unavailable")
        assert row["fallback_kind"] == "feature_store" and row["latency_ms"] > 0
    assert frame.loc[answers[0][2].request_id, "personalised"] == False  # noqa: E712 (pd.NA-safe)
    assert len(frame.loc[answers[0][2].request_id, "items"]) == 4  # the popularity list shown
    counted = degraded.metrics.value("tailor_predictions_logged_total", {"endpoint": "homepage"})
    assert counted == 1


def test_an_opted_out_customer_is_logged_without_an_id(served_home, logging_pipeline,
                                                       tmp_path: Path) -> None:
    pipeline = logging_pipeline
    leaver, stayer = customers(pipeline, 2)
    privacy = load_settings(home=tmp_path / "privacy-home", env={})  # its own exclusion list
    path = exclusions_path(privacy)
    path.parent.mkdir(parents=True)
    path.write_text("customer_id,reason,recorded_at\n"
                    f"{leaver},opted_out,{datetime.now(timezone.utc).isoformat()}\n")
    listed = ExclusionList(privacy)
    assert leaver in listed
    shared = pipeline.exclusions
    pipeline.exclusions = listed
    try:
        home = HomepageRequest(customer_id=leaver, k=3, context={"session_id": "s-leaver"})
        answers = [pipeline.homepage(home),
                   pipeline.checkout_offer(cart(leaver, "s-leaver", a_product(pipeline))),
                   pipeline.also_bought(AlsoBoughtRequest(product_id=a_product(pipeline),
                                                          customer_id=leaver)),
                   pipeline.homepage(HomepageRequest(customer_id=stayer, k=3))]
        frame = logged(pipeline)
    finally:
        pipeline.exclusions = shared
    rows = frame.loc[[answer.request_id for answer in answers]]
    assert rows["customer_id"].tolist() == [None, None, None, stayer]
    assert rows["session_id"].tolist()[:2] == [None, None]
    assert answers[0].personalised is False and not answers[0].fallback
    assert rows["personalised"].tolist()[0] == False  # noqa: E712 (a nullable boolean)


def test_with_the_log_off_nothing_is_recorded(served_home, pipeline_factory,
                                              tmp_path: Path) -> None:
    settings = own_store(served_home.settings, tmp_path).replace(
        monitoring_prediction_log=False)
    quiet = pipeline_factory(settings)
    quiet.homepage(HomepageRequest(customer_id=customers(quiet, 1)[0]))
    assert quiet.predictions is None and quiet.status()["prediction_log"] is None
    assert not (tmp_path / "events.db").exists()


def test_logged_answers_reach_the_lake_and_the_warehouse(logging_pipeline,
                                                         tmp_path: Path) -> None:
    pipeline = logging_pipeline
    customer = customers(pipeline, 1)[0]
    answers = pipeline.homepage_batch([HomepageRequest(customer_id=customer, k=6),
                                       HomepageRequest(customer_id="someone-new", k=6)])
    assert pipeline.predictions.flush(30)
    analysis = pipeline.settings.replace(lake_url=str(tmp_path / "lake"),
                                         warehouse_path=str(tmp_path / "warehouse.duckdb"))
    summary = export_lake(analysis, progress=False)
    assert summary.predictions >= 2
    refresh_warehouse(analysis)
    shown = query_warehouse(analysis, """
        SELECT request_id, customer_id, endpoint, model_version, item.product_id AS product_id,
               item.reason AS reason
        FROM predictions, UNNEST(items) WITH ORDINALITY AS shown(item, position)
        WHERE request_id IN (?, ?) ORDER BY request_id, position""",
                            [answers[0].request_id, answers[1].request_id])
    for answer in answers:
        rows = shown[shown["request_id"] == answer.request_id]
        assert rows["product_id"].tolist() == [item.product_id for item in answer.items]
        assert rows["reason"].tolist() == [item.reason for item in answer.items]
        assert set(rows["model_version"]) == {answer.model_version}
