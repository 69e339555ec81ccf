"""A guardrail on the trained home, end to end: the pipeline serves an experiment and logs
each answer's latency, `tailor experiment guardrails`' check reads the log, a variant over
its latency ceiling stops the experiment, and the same pipeline's next refresh serves the
defaults.

The pipeline has an event store of its own (`database_url`), as in test_experiment_variants.
"""

from __future__ import annotations

from experiment_definitions import make_definition, variants
from tailor.experiments.guardrails import check_all
from tailor.experiments.state import STOPPED, ExperimentStore, start
from tailor.serving.schemas import HomepageRequest


def test_a_variant_over_its_latency_ceiling_is_stopped_and_the_defaults_served(
        served_home, pipeline_factory, tmp_path) -> None:
    settings = served_home.settings.replace(
        database_url=f"sqlite:///{tmp_path / 'events.db'}", experiments_guardrail_min_units=5,
        mail_recipients="", alerts_webhook_url="")
    pipeline = pipeline_factory(settings)
    # The carousel's ceiling is below any real answer's time: it must breach, the grid's
    # `max_increase` on fallbacks must not.
    definition = make_definition(
        variants=variants(("grid", 0.5, {"layout": "grid"}),
                          ("carousel", 0.5, {"layout": "carousel"})),
        guardrails=[{"metric": "latency_p99_ms", "max": 0.0001},
                    {"metric": "fallback_rate", "max_increase": 0.5}])
    start(settings, definition.name, "tests", "go", definition=definition)
    assert pipeline.experiments.refresh()
    customers = [str(customer) for customer in
                 pipeline.slots["homepage"].current.model.customers.ids][:60]
    answers = [pipeline.homepage(HomepageRequest(customer_id=customer, k=4))
               for customer in customers]
    assert {answer.experiment_variant for answer in answers} == {"grid", "carousel"}
    assert pipeline.predictions.flush(30)

    [result] = check_all(settings)

    assert result.stopped
    assert [(check.metric, check.variant) for check in result.breaches] == \
        [("latency_p99_ms", "carousel")]
    with ExperimentStore(settings.event_store_url) as store:
        assert store.record("layout-test").status == STOPPED
    assert pipeline.experiments.refresh()
    after = [pipeline.homepage(HomepageRequest(customer_id=customer, k=4))
             for customer in customers[:10]]
    assert {(answer.experiment, answer.layout) for answer in after} == {(None, None)}
