"""Homepage candidates found ahead per model version (`tailor.serving.precomputed`): the same
products, order and reasons as ranking the whole catalogue at request time, with scores equal
up to float32 rounding, for every customer of the served home; requests that need more (a
browsed category, a diversity rule, a list reaching below the candidates) still go through the
model."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from tailor.serving.homepage import HomepageRanker
from tailor.serving.precomputed import CANDIDATES, LIST_LENGTH
from tailor.serving.schemas import HomepageRequest

MAX_K = 100
ROUNDING = 1e-6  # float32 products of different shapes: scores differ in the last bits


@pytest.fixture(scope="module")
def rankers(pipeline):
    """The served model's ranker with every customer's candidates found ahead, and one
    without."""
    model = pipeline.slots["homepage"].current.model
    ahead = HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers), background=False)
    return model, ahead, HomepageRanker(model, MAX_K, 0.3)


def _shown(items) -> list[tuple[str, str]]:
    return [(item.product_id, item.reason) for item in items]


def _scores(items) -> np.ndarray:
    return np.asarray([item.score for item in items])


class CountingRanks:
    """Counts the ranker's calls of the model (`_rank_rows`)."""

    def __init__(self, ranker: HomepageRanker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = ranker._rank_rows

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(ranker, "_rank_rows", counted)


@pytest.mark.parametrize("k", [1, 10, CANDIDATES])
def test_every_customers_list_is_the_models_own(rankers, monkeypatch, k: int) -> None:
    model, ahead, at_request = rankers
    customers = [str(customer) for customer in model.customers.ids]
    active = {str(model.customers.ids[row]) for row in ahead.precomputed.rows}
    assert ahead.precomputed.done.is_set() and len(ahead.precomputed) == len(active) > 100
    counting = CountingRanks(ahead, monkeypatch)
    differences, largest_gap = [], 0.0
    for customer in customers:
        found = ahead.rank([customer], [k], [frozenset()])[0]
        expected = at_request.rank([customer], [k], [frozenset()])[0]
        if _shown(found) != _shown(expected):
            differences.append(customer)
        elif found:
            largest_gap = max(largest_gap, float(np.abs(_scores(found) -
                                                        _scores(expected)).max()))
    assert not differences, differences[:5]
    assert largest_gap < ROUNDING
    # The customers without any interaction get the stranger's list (no model call either);
    # the others were answered from their candidates, all of them for a short list. A list as
    # long as the candidates reaches their last one, which only counts when no product left
    # out could tie it.
    through_model = counting.calls
    if k < CANDIDATES:
        assert through_model == len(set(customers) - active)
    else:
        assert through_model <= len(set(customers) - active) + len(active) // 4


def test_finished_lists_are_the_candidates_own_answers(rankers, monkeypatch) -> None:
    """The most active customers' finished lists: for every k they cover, the answer the
    candidates give, without scoring anything at request time."""
    model, _, at_request = rankers
    listed = 200
    ranker = HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers),
                            background=False, listed=listed)
    lists = ranker.precomputed
    assert lists.status()["lists"] == listed
    monkeypatch.setattr(model, "candidate_scores", None)  # a lookup must not score
    for row in lists.rows[:listed].tolist():
        customer = str(model.customers.ids[row])
        for k in (1, 10, LIST_LENGTH):
            found = ranker.rank([customer], [k], [frozenset()])[0]
            expected = at_request.rank([customer], [k], [frozenset()])[0]
            assert _shown(found) == _shown(expected)
            assert np.allclose(_scores(found), _scores(expected), rtol=0, atol=ROUNDING)
    monkeypatch.undo()
    row = int(lists.rows[0])
    assert lists.listed_items(row, LIST_LENGTH + 1) is None  # longer: from the candidates
    assert [(i.product_id, i.score, i.reason) for i in lists.listed_items(row, 10)] == \
        [(i.product_id, i.score, i.reason) for i in ranker._from_candidates(row, 10)]
    unlisted = int(lists.rows[listed])
    assert lists.listed_items(unlisted, 10) is None


def test_content_customers_scores_are_exact(rankers) -> None:
    """Outside the collaborative tier a score is a per-product formula: no rounding at all."""
    model, ahead, at_request = rankers
    rows = ahead.precomputed.rows
    content = [str(model.customers.ids[row]) for row in rows
               if model.customer_tiers(np.asarray([row]))[0] == 1]
    if not content:
        pytest.skip("the served home has no customer in the content tier")
    for customer in content[:50]:
        found = ahead.rank([customer], [10], [frozenset()])[0]
        assert [(i.product_id, i.score, i.reason) for i in found] == \
            [(i.product_id, i.score, i.reason)
             for i in at_request.rank([customer], [10], [frozenset()])[0]]


def test_no_product_left_out_reaches_a_rows_bound(rankers) -> None:
    """The bound a row keeps is above the exact score of every product outside it: what makes
    an answer from the candidates complete."""
    model, ahead, _ = rankers
    rows = ahead.precomputed.rows[:200]
    found = model.candidate_block(rows, 8)  # short rows: the bound is tested, not padding
    _, scores, _, _ = model.top_items(rows, 1)
    for position in range(len(rows)):
        kept = found.items[position][found.items[position] >= 0]
        outside = np.delete(scores[position], kept)
        outside = outside[np.isfinite(outside)]
        if len(outside):
            assert outside.max() < found.bound[position]
            assert scores[position, kept].min() >= outside.max() - ROUNDING
        else:
            assert found.bound[position] == -np.inf


def test_a_category_cap_reads_below_the_candidates_through_the_model(rankers,
                                                                    monkeypatch) -> None:
    """With one product per category the cap may need products below the candidates: those
    requests go through the model, and every answer is the model's own."""
    model, _, _ = rankers
    capped = copy.copy(model)
    capped.params = replace(model.params, diversity="category_cap", category_cap=1)
    ahead = HomepageRanker(capped, MAX_K, 0.3, precomputed=len(capped.customers),
                           background=False)
    at_request = HomepageRanker(capped, MAX_K, 0.3)
    counting = CountingRanks(ahead, monkeypatch)
    customers = [str(capped.customers.ids[row]) for row in ahead.precomputed.rows[:300]]
    k = min(5, len(set(capped.categories.tolist())))
    for customer in customers:
        found = ahead.rank([customer], [k], [frozenset()])[0]
        expected = at_request.rank([customer], [k], [frozenset()])[0]
        assert _shown(found) == _shown(expected)
        assert len({capped.categories[capped.products.positions[item.product_id]]
                    for item in found}) == len(found) == k
    assert 0 < counting.calls < len(customers) // 2  # some needed the model; most did not


def test_requests_that_need_more_than_the_candidates_go_through_the_model(rankers,
                                                                          monkeypatch) -> None:
    model, ahead, at_request = rankers
    customer = str(model.customers.ids[ahead.precomputed.rows[0]])
    category = str(model.categories[np.flatnonzero(model.in_stock)[0]])
    counting = CountingRanks(ahead, monkeypatch)
    asks = [([CANDIDATES + 1], [frozenset()], None),  # longer than the candidates kept
            ([10], [frozenset({category})], None),  # a browsed category to boost
            ([10], [frozenset()], ["mixed"])]  # an experiment's diversity rule
    for ks, browsing, diversity in asks:
        found = ahead.rank([customer], ks, browsing, diversity=diversity)[0]
        expected = at_request.rank([customer], ks, browsing, diversity=diversity)[0]
        assert [(i.product_id, i.score, i.reason) for i in found] == \
            [(i.product_id, i.score, i.reason) for i in expected]
    assert counting.calls == len(asks)


def test_the_pipeline_serves_the_candidates_and_reports_them(pipeline) -> None:
    loaded = pipeline.slots["homepage"].current
    lists = loaded.prepared.precomputed
    assert lists is not None and lists.done.wait(60) and lists.error is None
    status = pipeline.status()["precomputed_lists"]
    assert status["customers"] == status["of"] == len(lists.rows) > 0 and status["done"]
    customer = str(loaded.model.customers.ids[lists.rows[0]])
    answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=10))
    assert not answer.fallback and answer.personalised
    assert pipeline.metrics.value("tailor_homepage_candidates_pending", {}) == 0
    assert status["lists"] == min(len(lists.rows),
                                  pipeline.settings.serving_precomputed_lists) > 0
    from_candidates = loaded.prepared._ranked_ahead(int(lists.rows[0]), 10, frozenset(), None)
    assert from_candidates is not None
    assert [(i.product_id, i.score, i.reason) for i in answer.items] == \
        [(i.product_id, i.score, i.reason) for i in from_candidates] == \
        [(i.product_id, i.score, i.reason)
         for i in loaded.prepared._from_candidates(int(lists.rows[0]), 10)]


def test_a_fill_reports_its_progress(rankers) -> None:
    """What the server's pending-candidates gauge adds up: the customers when a fill starts,
    minus each block as it is done."""
    model, ahead, _ = rankers
    changes: list[int] = []
    HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers), background=False,
                   progress=changes.append)
    assert changes[0] == len(ahead.precomputed.rows) and len(changes) > 2
    assert all(change <= 0 for change in changes[1:]) and sum(changes) == 0


def test_a_stopped_fill_keeps_what_it_found(rankers) -> None:
    model, _, at_request = rankers
    changes: list[int] = []
    stopped = HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers),
                             progress=changes.append)
    stopped.close()  # a newer version took over: the thread ends early
    assert stopped.precomputed.done.wait(60)
    assert sum(changes) == 0  # what it did not do is no longer pending either
    assert len(stopped.precomputed) <= len(stopped.precomputed.rows)
    customer = str(model.customers.ids[stopped.precomputed.rows[0]])
    assert _shown(stopped.rank([customer], [10], [frozenset()])[0]) == \
        _shown(at_request.rank([customer], [10], [frozenset()])[0])


class ReversingReranker:
    """A re-ranker that turns its candidates' order around (`Reranker`'s interface)."""

    candidates = 20

    def rescore(self, features) -> np.ndarray:
        return np.arange(len(features), dtype=float)


def test_a_reranked_model_reorders_the_candidates_as_it_reorders_the_catalogue(
        rankers, monkeypatch) -> None:
    """A re-ranker orders its own candidates (the model's best few): from the rows found
    ahead, the same answers as through the model."""
    model, ahead, _ = rankers
    reranked = copy.copy(model)
    reranked.reranker = ReversingReranker()
    ranker = HomepageRanker(reranked, MAX_K, 0.3, precomputed=len(model.customers),
                            background=False)
    at_request = HomepageRanker(reranked, MAX_K, 0.3)
    assert ranker.precomputed.length >= ReversingReranker.candidates
    counting = CountingRanks(ranker, monkeypatch)
    customers = [str(model.customers.ids[row]) for row in ahead.precomputed.rows[:300]]
    changed = 0
    for customer in customers:
        found = ranker.rank([customer], [10], [frozenset()])[0]
        expected = at_request.rank([customer], [10], [frozenset()])[0]
        assert _shown(found) == _shown(expected)
        assert np.allclose(_scores(found), _scores(expected), rtol=0, atol=ROUNDING)
        changed += _shown(found) != _shown(ahead.rank([customer], [10], [frozenset()])[0])
    assert changed > len(customers) // 2  # the re-ranker did re-order them
    assert counting.calls < len(customers) // 10  # and the rows answered nearly all
