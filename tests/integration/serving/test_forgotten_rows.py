"""A forgotten customer's rows leave the model versions a server holds in memory at once
(`tailor.serving.forgotten_rows`): the ALS factors, what they saw and bought, the list ranked
ahead for them; the other customers' answers do not change.

Each test builds its own pipeline (its own copy of the models in memory) and points the
sweeper at tombstones in a folder of its own, so the shared served home forgets nobody.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from tailor.events.tombstones import TombstoneSet, add_tombstone, tombstone_of

KEY = b"k" * 32


def _forget(folder: Path, *customers: str) -> None:
    for customer in customers:
        add_tombstone(folder, tombstone_of(KEY, customer))


def _listed(answer) -> list[tuple[str, float, str]]:
    return [(item.product_id, item.score, item.reason) for item in answer]


@pytest.fixture
def pipeline_and_stones(served_home, pipeline_factory, tmp_path: Path):
    pipeline = pipeline_factory(served_home.settings)
    pipeline.forgotten_rows.tombstones = TombstoneSet(tmp_path, key=KEY, recheck_seconds=0.0)
    return pipeline, tmp_path


def _most_active(model, count: int) -> list[str]:
    counts = np.asarray(model.interaction_counts)
    return [str(model.customers.ids[row]) for row in np.argsort(-counts, kind="stable")[:count]]


def test_a_forgotten_customers_rows_leave_the_loaded_model(pipeline_and_stones) -> None:
    pipeline, stones = pipeline_and_stones
    loaded = pipeline.slots["homepage"].current
    model, ranker = loaded.model, loaded.prepared
    target, *others = _most_active(model, 6)
    row = model.customers.positions[target]
    assert np.any(model.user_factors[row]) and model.seen[row].nnz > 0
    assert ranker.precomputed.candidates(row) is not None
    assert ranker.precomputed.listed_items(row, 10) is not None
    before = {customer: _listed(ranker.rank([customer], [10], [frozenset()])[0])
              for customer in others}
    stranger = _listed(ranker.non_personalised(10))
    assert _listed(ranker.rank([target], [10], [frozenset()])[0]) != stranger

    assert pipeline.forgotten_rows.sweep() == 0  # nothing forgotten yet: nothing touched
    _forget(stones, target)
    assert pipeline.forgotten_rows.sweep() == 1

    assert target not in model.customers.positions and target not in set(model.customers.ids)
    assert not np.any(model.user_factors[row]) and model.seen[row].nnz == 0
    assert model.bought[row].nnz == 0 and model.purchase_counts[row] == 0
    assert not np.any(model.category_affinity[row])
    assert ranker.precomputed.candidates(row) is None
    assert ranker.precomputed.listed_items(row, 10) is None
    assert _listed(ranker.rank([target], [10], [frozenset()])[0]) == stranger
    after = {customer: _listed(ranker.rank([customer], [10], [frozenset()])[0])
             for customer in others}
    assert after == before
    assert pipeline.forgotten_rows.sweep() == 0  # idempotent: the same stones, no new work
    assert pipeline.status()["forgotten_rows"]["removed"] == 1
    assert pipeline.metrics.value("tailor_forgotten_rows_total", {"model": "homepage"}) == 1


def test_the_servers_own_thread_sweeps_within_moments(pipeline_and_stones) -> None:
    pipeline, stones = pipeline_and_stones
    model = pipeline.slots["homepage"].current.model
    first, second = _most_active(model, 2)
    sweeper = pipeline.forgotten_rows
    sweeper.interval_seconds = 0.05
    sweeper.start()
    _forget(stones, first, second)
    deadline = time.monotonic() + 30  # a wait for the thread, not a speed claim
    while sweeper.removed < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sweeper.removed == 2, sweeper.status()
    assert first not in model.customers.positions and second not in model.customers.positions


def test_a_list_being_ranked_ahead_is_not_published_for_a_forgotten_row(pipeline) -> None:
    from tailor.serving.homepage import HomepageRanker

    # A copy of the served model: this test's ranker fills its rows in the calling thread.
    model = pickle.loads(pickle.dumps(pipeline.slots["homepage"].current.model))
    ranker = HomepageRanker(model, 50, 0.3, precomputed=len(model.customers), background=False,
                            listed=10)
    lists = ranker.precomputed
    row = int(lists.rows[0])
    assert lists.candidates(row) is not None and lists.listed_items(row, 5) is not None
    assert lists.forget([row]) == 1
    assert lists.candidates(row) is None and lists.listed_items(row, 5) is None
    # The filling thread finds the row's candidates and list again (a fill still running
    # when the forget came): they are not published.
    lists._store(0, lists.rows[:1], model.candidate_block(lists.rows[:1], lists.length))
    assert lists.candidates(row) is None and lists.listed_items(row, 5) is None
    assert lists.forget([row]) == 0
