"""Experiments on the trained home: customers in different variants get their variant's
changes (layout, model version, diversity rule, personalization threshold), the answers and
the prediction log's rows name the experiment and variant, and starting or stopping an
experiment is served by the same pipeline.

The pipeline here has an event store of its own (`database_url`): its experiments and its
log never reach the shared home, whose pipeline (`pipeline`) is the no-experiment baseline.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from mlflow.tracking import MlflowClient

from experiment_definitions import make_definition, variants
from test_variants import register_copy
from tailor.experiments.state import ExperimentStore, start
from tailor.monitoring.prediction_log import read_predictions
from tailor.serving.diversity import mixed_cap
from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)


@pytest.fixture(scope="module")
def experiments(served_home, pipeline_factory, tmp_path_factory):
    """A pipeline over the trained home with its own event store (experiments and log)."""
    folder = tmp_path_factory.mktemp("experiments")
    settings = served_home.settings.replace(database_url=f"sqlite:///{folder / 'events.db'}")
    return pipeline_factory(settings)


def begin(pipeline, **overrides) -> None:
    """Start an experiment (checked against the registry) and refresh the pipeline."""
    definition = make_definition(**overrides)
    start(pipeline.settings, definition.name, "tests", "go", definition=definition)
    assert pipeline.experiments.refresh()


def end(pipeline, name: str) -> None:
    with ExperimentStore(pipeline.settings.event_store_url) as store:
        store.stop(name, "tests", "done")
    assert pipeline.experiments.refresh()


def known_customers(pipeline) -> list[str]:
    return [str(customer) for customer in pipeline.slots["homepage"].current.model.customers.ids]


def first_in(pipeline, variant: str | None, customers: list[str],
             also: Callable[[str], bool] = lambda customer: True) -> str:
    """The first customer assigned `variant` on the homepage (None: in no experiment) for
    whom `also` holds."""
    for customer in customers:
        answer = pipeline.experiments.assign("homepage", customer)
        if (answer.variant if answer else None) == variant and also(customer):
            return customer
    pytest.fail(f"no customer in variant {variant} among {len(customers)}")


def logged(pipeline, answers) -> "object":
    assert pipeline.predictions.flush(30)
    now = datetime.now(timezone.utc)
    frame = read_predictions(pipeline.settings, now - timedelta(hours=1),
                             now + timedelta(hours=1)).set_index("request_id")
    return frame.loc[[answer.request_id for answer in answers]]


def category_of(pipeline) -> dict[str, str]:
    ranker = pipeline.slots["homepage"].current.prepared
    return {str(product): str(category)
            for product, category in zip(ranker.product_ids, ranker.categories)}


def test_two_variants_get_their_layout_and_the_log_names_them(experiments, pipeline) -> None:
    customers = known_customers(experiments)
    request = lambda customer: HomepageRequest(customer_id=customer, k=4)  # noqa: E731
    before = experiments.homepage(request(customers[0]))
    assert (before.experiment, before.layout) == (None, None)
    begin(experiments, traffic=0.5, variants=variants(("grid", 0.5, {"layout": "grid"}),
                                                      ("carousel", 0.5, {"layout": "carousel"})))
    chosen = {variant: first_in(experiments, variant, customers)
              for variant in ("grid", "carousel", None)}
    answers = {variant: experiments.homepage(request(customer))
               for variant, customer in chosen.items()}
    assert {v: (a.experiment, a.experiment_variant, a.layout) for v, a in answers.items()} == {
        "grid": ("layout-test", "grid", "grid"),
        "carousel": ("layout-test", "carousel", "carousel"),
        None: (None, None, None)}
    for variant, answer in answers.items():  # the layout changes nothing else
        baseline = pipeline.homepage(request(chosen[variant]))
        assert not answer.fallback and answer.personalised
        assert [i.product_id for i in answer.items] == [i.product_id for i in baseline.items]
    rows = logged(experiments, answers.values())
    assert rows["experiment"].tolist() == ["layout-test", "layout-test", None]
    assert rows["experiment_variant"].tolist() == ["grid", "carousel", None]
    assert rows["customer_id"].tolist() == list(chosen.values())

    end(experiments, "layout-test")
    after = experiments.homepage(request(chosen["carousel"]))
    assert (after.experiment, after.layout) == (None, None)


def test_a_variant_serves_another_registered_version(served_home, experiments,
                                                     tmp_path: Path) -> None:
    uri = served_home.settings.tracking_uri
    client = MlflowClient(uri, uri)
    champion = served_home.versions["homepage"]
    candidate = register_copy(client, "tailor-homepage", champion, tmp_path / "candidate")
    client.set_registered_model_alias("tailor-homepage", "experiment-candidate", candidate)
    begin(experiments, name="model-test", variants=variants(
        ("control", 0.5, {}), ("candidate", 0.5, {"model": "experiment-candidate"})))
    try:
        assert experiments.status()["experiments"]["not_served"] == {}
        customers = known_customers(experiments)
        answers = [experiments.homepage(HomepageRequest(customer_id=first_in(
            experiments, variant, customers), k=3)) for variant in ("control", "candidate")]
        assert [(a.experiment_variant, a.variant, a.model_version) for a in answers] == [
            ("control", "champion", champion),
            ("candidate", "experiment-candidate", candidate)]
        assert candidate != champion and not any(answer.fallback for answer in answers)
        rows = logged(experiments, answers)
        assert rows["model_version"].tolist() == [champion, candidate]
        assert rows["variant"].tolist() == ["champion", "experiment-candidate"]
    finally:
        end(experiments, "model-test")


def test_the_diversity_variants_apply_their_rule(experiments, pipeline) -> None:
    categories = category_of(experiments)
    customers = known_customers(experiments)
    begin(experiments, name="diversity-test", variants=variants(
        ("single", 0.5, {"diversity": "single_category"}),
        ("mixed", 0.5, {"diversity": "mixed"})))
    try:
        def spread(customer: str, k: int) -> Counter:
            answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=k))
            return Counter(categories[item.product_id] for item in answer.items)

        # The longest list (up to 10) the catalogue's categories can fill under the cap.
        k = max(n for n in range(2, 11) if mixed_cap(n) * len(set(categories.values())) >= n)
        # Customers whose list without the experiment breaks the variant's rule.
        crowded = first_in(experiments, "mixed", customers,
                           lambda c: max(spread(c, k).values()) > mixed_cap(k))
        varied = first_in(experiments, "single", customers, lambda c: len(spread(c, 4)) > 1)
        mixed = experiments.homepage(HomepageRequest(customer_id=crowded, k=k))
        single = experiments.homepage(HomepageRequest(customer_id=varied, k=4))
        assert (mixed.experiment_variant, single.experiment_variant) == ("mixed", "single")
        assert len(mixed.items) == k
        assert max(Counter(categories[i.product_id] for i in mixed.items).values()) \
            <= mixed_cap(k)
        assert len(single.items) == 4
        assert len({categories[item.product_id] for item in single.items}) == 1
        baseline = pipeline.homepage(HomepageRequest(customer_id=varied, k=4))
        assert single.items[0].product_id == baseline.items[0].product_id  # the top stays
    finally:
        end(experiments, "diversity-test")


def test_a_single_category_cross_sell_variant(experiments, pipeline) -> None:
    categories = category_of(experiments)
    table = experiments.slots["cross_sell"].current.model.table
    anchors = table["anchor_product_id"].value_counts()
    begin(experiments, name="cross-test", surface="also_bought", layer="cross-sell",
          variants=variants(("a", 0.5, {"diversity": "single_category"}),
                            ("b", 0.5, {"diversity": "single_category"})))
    try:
        for anchor in anchors.index[:20]:
            request = AlsoBoughtRequest(product_id=str(anchor), customer_id="c-cross", k=4)
            baseline = pipeline.also_bought(request)
            if len({categories.get(i.product_id) for i in baseline.items}) > 1:
                break
        else:
            pytest.fail("no anchor whose companions span categories")
        answer = experiments.also_bought(request)
        assert answer.experiment == "cross-test" and len(answer.items) == 4
        assert len({categories.get(item.product_id) for item in answer.items}) == 1
        assert answer.items[0].product_id == baseline.items[0].product_id
    finally:
        end(experiments, "cross-test")


def test_the_personalization_threshold_holds_back_one_purchase_customers(
        experiments, pipeline) -> None:
    ranker = experiments.slots["homepage"].current.prepared
    customers = known_customers(experiments)
    begin(experiments, name="threshold-test", variants=variants(
        ("after-1", 0.5, {"personalization_min_purchases": 1}),
        ("after-2", 0.5, {"personalization_min_purchases": 2})))
    try:
        once = lambda c: ranker.purchases(c) == 1  # noqa: E731
        held = first_in(experiments, "after-2", customers, once)
        served = first_in(experiments, "after-1", customers, once)
        regular = first_in(experiments, "after-2", customers, lambda c: ranker.purchases(c) >= 2)
        answers = {name: experiments.homepage(HomepageRequest(customer_id=c, k=5))
                   for name, c in (("held", held), ("served", served), ("regular", regular))}
        assert {name: a.personalised for name, a in answers.items()} == \
            {"held": False, "served": True, "regular": True}
        assert pipeline.homepage(HomepageRequest(customer_id=held, k=5)).personalised
        assert not answers["held"].fallback  # not personalised is no fallback
    finally:
        end(experiments, "threshold-test")


def test_a_checkout_variant_pins_a_version_number(served_home, experiments,
                                                  tmp_path: Path) -> None:
    uri = served_home.settings.tracking_uri
    champion = served_home.versions["checkout"]
    pinned = register_copy(MlflowClient(uri, uri), "tailor-checkout", champion,
                           tmp_path / "pinned")
    begin(experiments, name="offer-test", surface="checkout_offer", layer="checkout",
          metrics={"primary": "conversion"},
          variants=variants(("control", 0.5, {}), ("pinned", 0.5, {"model": int(pinned)})))
    try:
        product = str(experiments.slots["cross_sell"].current.model.table[
            "anchor_product_id"].iloc[0])
        seen = {}
        for customer in known_customers(experiments)[:200]:
            answer = experiments.checkout_offer(CheckoutOfferRequest(
                customer_id=customer, session_id=f"s-{customer}",
                cart=[CartLine(product_id=product, price=30.0)]))
            seen.setdefault(answer.experiment_variant, (answer.variant, answer.model_version))
            if len(seen) == 2:
                break
        assert seen == {"control": ("champion", champion), "pinned": (pinned, pinned)}
    finally:
        end(experiments, "offer-test")
