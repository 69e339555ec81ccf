"""The discount timing of a campaign customer comes from the experiments' lifecycle and
assignment: control timing and no variant before a start, after a stop and in the global
holdout; a running experiment's split follows its weights (a chi-square test against them)
and the contract's hashing rule (computed independently here); the layer's slice; a promoted
winner's timing for everyone outside the holdout; the same variant the server's assigner
gives the id on the campaign surface; the definition's errors name the file and the field."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from scipy.stats import chisquare

from campaign_homes import DEFINITION, campaign_settings, write_definition
from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments import state
from tailor.experiments.campaign_variants import Timing, load_campaign_experiment
from tailor.experiments.definition import load_definition, parse_definition
from tailor.serving.experiment_watcher import ExperimentWatcher

CUSTOMERS = [f"c{number:05d}" for number in range(4_000)]
DELAYS = {"immediate": 0, "after-2-days": 2}


def contract_bucket(salt: str, unit: str) -> float:
    """The contract's bucket, from its words: the first 8 bytes of sha256 as an integer."""
    return int(hashlib.sha256(f"{salt}:{unit}".encode()).hexdigest()[:16], 16) / 2 ** 64


def contract_variant(salt: str, unit: str, weights: list[tuple[str, float]]) -> str:
    point, edge = contract_bucket(salt, unit), 0.0
    for name, weight in weights:
        edge += weight
        if point < edge:
            return name
    return weights[-1][0]


def timings(settings: Settings) -> dict[str, Timing]:
    experiment = load_campaign_experiment(settings)
    return {customer: experiment.timing(customer) for customer in CUSTOMERS}


def weighted(first: float, second: float, extra: str = "") -> str:
    """The test definition with other weights (and lines added after the layer)."""
    return DEFINITION.replace("weight: 0.5\n    changes: {discount_delay_days: 0}",
                              f"weight: {first}\n    changes: {{discount_delay_days: 0}}") \
        .replace("weight: 0.5\n    changes: {discount_delay_days: 2}",
                 f"weight: {second}\n    changes: {{discount_delay_days: 2}}") \
        .replace("layer: campaign\n", f"layer: campaign\n{extra}")


def test_before_a_start_everyone_gets_the_control_timing_and_no_variant(tailor_home: Path
                                                                         ) -> None:
    settings = campaign_settings(tailor_home, started=False)
    experiment = load_campaign_experiment(settings)
    assert (experiment.status, experiment.source) == (
        "not created", str(tailor_home / "experiments" / "discount-timing.yaml"))
    assert set(timings(settings).values()) == {Timing(None, None, 0)}
    assert "never started" in experiment.note() and "no variant" in experiment.note()
    # A draft whose control waits two days: that is everyone's timing, still no variant.
    path = write_definition(tailor_home, DEFINITION.replace("control: immediate",
                                                            "control: after-2-days"))
    with state.open_store(settings) as store:
        store.create(load_definition(path), "tests")
    experiment = load_campaign_experiment(settings)
    assert experiment.status == "draft" and "is a draft" in experiment.note()
    assert set(timings(settings).values()) == {Timing(None, None, 2)}


def test_running_then_stopped(tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home)
    running = timings(settings)
    assert {timing.variant for timing in running.values()} == set(DELAYS)  # the baseline
    assert all(timing.experiment == "discount-timing"
               and timing.discount_delay_days == DELAYS[timing.variant]
               for timing in running.values())
    write_definition(tailor_home, weighted(0.1, 0.9))  # edited after the start: not used
    assert timings(settings) == running
    state.stop(settings, "discount-timing", "tests", "enough")
    experiment = load_campaign_experiment(settings)
    assert experiment.status == "stopped" and "is stopped" in experiment.note()
    assert set(timings(settings).values()) == {Timing(None, None, 0)}


def test_a_running_experiment_splits_by_its_weights_and_the_contracts_hash(
        tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home,
                                 definition=weighted(0.2, 0.8, extra="salt: round-2\n"))
    got = timings(settings)
    weights = [("immediate", 0.2), ("after-2-days", 0.8)]
    assert all(got[customer].variant == contract_variant("round-2", customer, weights)
               for customer in CUSTOMERS)
    observed = [sum(timing.variant == name for timing in got.values()) for name, _ in weights]
    assert chisquare(observed, [weight * len(CUSTOMERS) for _, weight in weights]).pvalue > 1e-3
    # The same counts are far from an even split: the test can tell the weights apart.
    assert chisquare(observed, [len(CUSTOMERS) / 2] * 2).pvalue < 1e-6


def test_holdout_customers_get_the_control_timing_and_no_variant(tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home, experiments_holdout_share=0.2)
    got = timings(settings)
    held = {customer for customer in CUSTOMERS
            if contract_bucket("tailor-holdout", customer) < 0.2}
    assert 0.15 < len(held) / len(CUSTOMERS) < 0.25
    assert all(got[customer] == Timing(None, None, 0) for customer in held)
    assert all(got[customer].variant in DELAYS for customer in set(CUSTOMERS) - held)
    assert "holdout (20%)" in load_campaign_experiment(settings).note()


def test_outside_the_layers_slice_there_is_no_variant_and_another_experiment_is_named(
        tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home,
                                 definition=DEFINITION.replace("traffic: 1.0", "traffic: 0.6"))
    other = parse_definition(yaml.safe_load(DEFINITION.replace("traffic: 1.0", "traffic: 0.4")
                                            .replace("name: discount-timing", "name: late-offer")
                                            .replace("{discount_delay_days: 2}",
                                                     "{discount_delay_days: 5}")), "late-offer")
    got = timings(settings)
    assert set(got.values()) - {Timing(None, None, 0)}  # a slice of 0.6: some get variants
    assert all((got[customer].variant is None)
               == (contract_bucket("layer:campaign", customer) >= 0.6) for customer in CUSTOMERS)
    state.start(settings, "late-offer", "tests", definition=other)  # the layer's other 0.4
    got = timings(settings)
    for customer in CUSTOMERS:
        expected = "discount-timing" if contract_bucket("layer:campaign", customer) < 0.6 \
            else "late-offer"
        assert got[customer].experiment == expected, customer
    assert {got[c].discount_delay_days for c in CUSTOMERS
            if got[c].experiment == "late-offer"} == {0, 5}
    assert "late-offer" in load_campaign_experiment(settings).note()


def test_a_promoted_winner_is_everyones_timing_but_the_holdouts(tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home, experiments_holdout_share=0.1)
    state.promote(settings, "discount-timing", "after-2-days", "tests", "it won")
    got = timings(settings)
    held = {customer for customer in CUSTOMERS
            if contract_bucket("tailor-holdout", customer) < 0.1}
    assert held and all(got[customer] == Timing(None, None, 0) for customer in held)
    assert all(got[customer] == Timing(None, None, 2) for customer in set(CUSTOMERS) - held)
    assert "promoted (after-2-days)" in load_campaign_experiment(settings).note()


def test_the_campaign_gets_what_the_servers_assigner_gives_the_same_id(tailor_home: Path
                                                                        ) -> None:
    settings = campaign_settings(
        tailor_home, definition=weighted(0.3, 0.7).replace("traffic: 1.0", "traffic: 0.8"),
        experiments_holdout_share=0.15)
    watcher = ExperimentWatcher(settings, {}, new_slot=None)  # type: ignore[arg-type]
    assert watcher.refresh() and watcher.status()["serving"] == ["discount-timing"]
    got = timings(settings)
    served = {customer: watcher.assign("campaign", customer) for customer in CUSTOMERS}
    assert any(answer is None for answer in served.values())  # holdout and outside the slice
    for customer in CUSTOMERS:
        answer = served[customer]
        assert (got[customer].experiment, got[customer].variant) == (
            (answer.experiment, answer.variant) if answer else (None, None)), customer
    watcher.stop()


@pytest.mark.parametrize(("change", "message"), [
    (("weight: 0.5\n    changes: {discount_delay_days: 2}",
      "weight: 0.4\n    changes: {discount_delay_days: 2}"), "variants: the weights sum to 0.9"),
    (("{discount_delay_days: 2}", "{discount_delay_days: -1}"),
     r"variants\.1\.changes\.discount_delay_days"),
    (("control: immediate", "control: later"), "control: 'later' is not one of the variants"),
    (("attribution_window_hours: 48", "attribution_window_hours: 0"),
     "metrics.attribution_window_hours"),
    (("{discount_delay_days: 2}", "{layout: carousel}"),
     "variants.1.changes.layout: not a change of surface campaign"),
])
def test_a_wrong_definition_names_the_file_and_the_field(tailor_home: Path, change, message
                                                         ) -> None:
    settings = campaign_settings(tailor_home, started=False)
    path = write_definition(tailor_home, DEFINITION.replace(*change))
    with pytest.raises(InputError, match=message) as raised:
        load_campaign_experiment(settings)
    assert str(path) in str(raised.value)


def test_a_missing_or_foreign_definition_is_bad_input(tailor_home: Path) -> None:
    settings = campaign_settings(tailor_home, started=False)
    with pytest.raises(InputError, match="no-such-test.yaml") as raised:
        load_campaign_experiment(settings.replace(experiments_campaign_experiment="no-such-test"))
    assert str(tailor_home / "experiments") in str(raised.value)
    with pytest.raises(InputError, match="homepage-layout runs on surface homepage"):
        load_campaign_experiment(settings.replace(  # the shipped one, not the campaign's
            experiments_campaign_experiment="homepage-layout"))
