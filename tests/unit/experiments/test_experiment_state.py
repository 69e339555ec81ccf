"""The lifecycle tables on SQLite and PostgreSQL: legal transitions with their audit, clear
refusals of the illegal ones, layer slices that never overlap (and stay put when another
experiment stops), and nothing half-started when a start is refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from experiment_definitions import make_definition, variants
from tailor.errors import InputError
from tailor.events.prediction_store import PREDICTION_COLUMNS, open_prediction_store
from tailor.experiments.state import (
    DRAFT, PROMOTED, RUNNING, STOPPED, ExperimentStore, assigner_from,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def store(url: str):
    with ExperimentStore(url) as opened:
        yield opened


def test_draft_running_stopped_promoted_with_the_audit(store: ExperimentStore) -> None:
    definition = make_definition()
    assert store.create(definition, "ana").status == DRAFT
    started = store.start(definition, "ana", "launch")
    assert (started.status, started.slice_start, started.started_at is not None) == \
        (RUNNING, 0.0, True)
    assert started.definition() == definition
    stopped = store.stop(definition.name, "ben", "enough data")
    assert (stopped.status, stopped.actor, stopped.reason, stopped.slice_start) == \
        (STOPPED, "ben", "enough data", None)
    promoted = store.promote(definition.name, "carousel", "cleo", "carousel won")
    assert (promoted.status, promoted.winner, promoted.stopped_at) == \
        (PROMOTED, "carousel", stopped.stopped_at)
    assert [(a.action, a.from_status, a.to_status, a.actor, a.reason)
            for a in store.audit(definition.name)] == [
        ("create", None, DRAFT, "ana", "created"), ("start", DRAFT, RUNNING, "ana", "launch"),
        ("stop", RUNNING, STOPPED, "ben", "enough data"),
        ("promote", STOPPED, PROMOTED, "cleo", "carousel won")]


def test_a_running_experiment_may_be_promoted_directly(store: ExperimentStore) -> None:
    store.start(make_definition(), "ana", "go")
    assert store.promote("layout-test", "control", "ana", "no effect").status == PROMOTED


@pytest.mark.parametrize("action, status, message", [
    ("stop", DRAFT, "cannot stop: it is a draft \\(stop needs running\\)"),
    ("stop", STOPPED, "cannot stop: it is stopped at"),
    ("start", STOPPED, "cannot start: it is stopped at .* never restarted"),
    ("start", RUNNING, "cannot start: it is running since"),
    ("promote", DRAFT, "cannot promote: it is a draft \\(promote needs running or stopped\\)"),
    ("promote", PROMOTED, "cannot promote: it is promoted \\(control\\)"),
])
def test_illegal_transitions_are_refused_saying_why(store: ExperimentStore, action: str,
                                                    status: str, message: str) -> None:
    definition = make_definition()
    store.create(definition, "ana")
    if status in (RUNNING, STOPPED, PROMOTED):
        store.start(definition, "ana", "go")
    if status == STOPPED:
        store.stop(definition.name, "ana", "halt")
    if status == PROMOTED:
        store.promote(definition.name, "control", "ana", "done")
    before = store.audit()
    with pytest.raises(InputError, match=f"layout-test: {message}"):
        if action == "start":
            store.start(definition, "ana", "again")
        elif action == "stop":
            store.stop(definition.name, "ana", "again")
        else:
            store.promote(definition.name, "control", "ana", "again")
    assert store.audit() == before and store.record(definition.name).status == status


def test_unknown_experiments_and_winners_are_named(store: ExperimentStore) -> None:
    with pytest.raises(InputError, match="nothing-here: no such experiment"):
        store.stop("nothing-here", "ana", "x")
    store.start(make_definition(), "ana", "go")
    with pytest.raises(InputError, match="no variant 'purple' \\(variants: control, carousel\\)"):
        store.promote("layout-test", "purple", "ana", "x")
    assert store.record("layout-test").status == RUNNING


def test_a_second_experiment_that_overlaps_the_layer_is_refused_naming_both(
        store: ExperimentStore) -> None:
    store.start(make_definition(name="first-test", traffic=0.6), "ana", "go")
    with pytest.raises(InputError) as refused:
        store.start(make_definition(name="second-test", traffic=0.6), "ana", "go")
    message = str(refused.value)
    assert message.startswith("second-test: traffic: 0.6 of layer 'homepage' overlaps the "
                              "running first-test (traffic 0.6, slice [0, 0.6))")
    assert "sum to 1.2 > 1" in message
    assert store.record("second-test") is None  # nothing half-started
    assert [a.name for a in store.audit()] == ["first-test"]


def test_slices_fill_the_layer_and_stay_put_when_a_neighbour_stops(
        store: ExperimentStore) -> None:
    slices = {name: store.start(make_definition(name=name, traffic=traffic), "ana", "go")
              .slice_start for name, traffic in (("a-test", 0.4), ("b-test", 0.3),
                                                 ("c-test", 0.3))}
    assert slices == pytest.approx({"a-test": 0.0, "b-test": 0.4, "c-test": 0.7})
    store.stop("a-test", "ana", "done")
    assert store.start(make_definition(name="d-test", traffic=0.4), "ana", "go").slice_start \
        == pytest.approx(0.0)
    assert {r.name: r.slice_start for r in store.records([RUNNING])} == \
        pytest.approx({"b-test": 0.4, "c-test": 0.7, "d-test": 0.0})


def test_a_fragmented_layer_refuses_a_slice_wider_than_any_gap(store: ExperimentStore) -> None:
    for name, traffic in (("a-test", 0.3), ("b-test", 0.4), ("c-test", 0.3)):
        store.start(make_definition(name=name, traffic=traffic), "ana", "go")
    store.stop("a-test", "ana", "done")
    store.stop("c-test", "ana", "done")
    with pytest.raises(InputError, match="no free slice that wide is left"):
        store.start(make_definition(name="wide-test", traffic=0.5), "ana", "go")


def test_experiments_of_one_surface_must_share_its_layer(store: ExperimentStore) -> None:
    store.start(make_definition(name="a-test", traffic=0.5), "ana", "go")
    with pytest.raises(InputError, match="b-test: layer: a-test runs on surface homepage in "
                                         "layer 'homepage'"):
        store.start(make_definition(name="b-test", layer="other", traffic=0.5), "ana", "go")
    other_surface = make_definition(name="c-test", surface="checkout_offer", layer="other",
                                    metrics={"primary": "conversion"},
                                    variants=variants(("a", 0.5, {}), ("b", 0.5, {"model": "3"})))
    assert store.start(other_surface, "ana", "go").slice_start == 0.0


def test_two_starts_at_once_cannot_both_take_the_free_slice(url: str) -> None:
    """Each start is one exclusive transaction: of two racing starts one is refused."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def start(name: str) -> None:
        with ExperimentStore(url) as own:
            own.records()  # connected (tables made) before the race
            barrier.wait()
            try:
                own.start(make_definition(name=name, traffic=0.7), "ana", "go")
                outcomes.append("started")
            except InputError:
                outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(name,)) for name in ("a-test", "b-test")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["refused", "started"]
    with ExperimentStore(url) as store:
        assert len(store.records([RUNNING])) == 1


def test_the_assigner_of_the_state_serves_running_and_promoted_ones(
        store: ExperimentStore) -> None:
    store.start(make_definition(name="layout-test", traffic=0.5), "ana", "go")
    store.promote("layout-test", "carousel", "ana", "won")
    store.start(make_definition(name="diversity-test", traffic=0.5, variants=variants(
        ("single", 0.5, {"diversity": "single_category"}),
        ("mixed", 0.5, {"diversity": "mixed"}))), "ana", "go")
    assigner = assigner_from(store.records(), holdout_share=0.0)
    assert assigner.running == ("diversity-test",)
    answers = [assigner.assign("homepage", f"c{i}") for i in range(400)]
    assert all(answer.changes.layout == "carousel" for answer in answers)
    assert {answer.experiment for answer in answers} == {"diversity-test", None}


def test_exposures_count_the_prediction_logs_rows_per_variant(url: str,
                                                              store: ExperimentStore) -> None:
    predictions = open_prediction_store(url)
    base = dict.fromkeys(PREDICTION_COLUMNS)
    base.update(endpoint="homepage", model="homepage", variant="champion", items="[]",
                fallback=False, stale=False)
    rows = []
    for index, (customer, experiment, variant) in enumerate([
            ("c1", "layout-test", "control"), ("c1", "layout-test", "control"),
            ("c2", "layout-test", "carousel"), ("c3", None, None),
            ("c4", "other-test", "control")]):
        row = {**base, "served_at": 1_700_000_000_000_000 + index, "request_id": f"r{index}",
               "customer_id": customer, "experiment": experiment,
               "experiment_variant": variant}
        rows.append(tuple(row[column] for column in PREDICTION_COLUMNS))
    predictions.insert_predictions(rows)
    predictions.close()
    assert store.exposures("layout-test") == {"carousel": {"answers": 1, "customers": 1},
                                              "control": {"answers": 2, "customers": 1}}
    assert store.exposures("nothing-here") == {}


def test_a_read_only_store_finds_no_experiments_where_none_were_made(url: str,
                                                                      tmp_path: Path) -> None:
    """The server only reads: no database file and no tables are created for it."""
    if url.startswith("sqlite:///"):
        url = f"sqlite:///{tmp_path / 'never' / 'events.db'}"
    with ExperimentStore(url, read_only=True) as reader:
        assert reader.records() == []
        with pytest.raises(RuntimeError, match="read-only"):
            reader.start(make_definition(), "ana", "go")
    assert not (tmp_path / "never").exists()
    with ExperimentStore(url) as writer:
        writer.start(make_definition(), "ana", "go")
    with ExperimentStore(url, read_only=True) as reader:
        assert [r.name for r in reader.records()] == ["layout-test"]
