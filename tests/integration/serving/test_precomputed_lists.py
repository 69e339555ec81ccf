"""Homepage lists ranked ahead per model version (`tailor.serving.precomputed`): the same
products, order, scores and reasons as ranking through the model at request time, for every
customer of the served home; requests that need more (a browsed category, a diversity rule, a
longer list) still go through the model."""

from __future__ import annotations

import numpy as np
import pytest

from tailor.serving.homepage import HomepageRanker
from tailor.serving.precomputed import PRECOMPUTED_LENGTH
from tailor.serving.schemas import HomepageRequest

MAX_K = 100


@pytest.fixture(scope="module")
def rankers(pipeline):
    """The served model's ranker with every customer's list ranked ahead, and one without."""
    model = pipeline.slots["homepage"].current.model
    ahead = HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers), background=False)
    return model, ahead, HomepageRanker(model, MAX_K, 0.3)


def _listed(items) -> list[tuple[str, float, str]]:
    return [(item.product_id, item.score, item.reason) for item in items]


class CountingRanks:
    """Counts the ranker's calls of the model (`_rank_rows`)."""

    def __init__(self, ranker: HomepageRanker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = ranker._rank_rows

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(ranker, "_rank_rows", counted)


@pytest.mark.parametrize("k", [1, 10, PRECOMPUTED_LENGTH])
def test_every_customers_list_is_the_models_own(rankers, monkeypatch, k: int) -> None:
    model, ahead, at_request = rankers
    customers = [str(customer) for customer in model.customers.ids]
    active = {str(model.customers.ids[row]) for row in ahead.precomputed.rows}
    assert ahead.precomputed.done.is_set() and len(ahead.precomputed) == len(active) > 100
    counting = CountingRanks(ahead, monkeypatch)
    differences = [customer for customer in customers
                   if _listed(ahead.rank([customer], [k], [frozenset()])[0])
                   != _listed(at_request.rank([customer], [k], [frozenset()])[0])]
    assert not differences, differences[:5]
    # Only the customers without any interaction (the stranger's list) were not ranked ahead.
    assert counting.calls == len(set(customers) - active)


def test_requests_that_need_more_than_the_list_go_through_the_model(rankers,
                                                                   monkeypatch) -> None:
    model, ahead, at_request = rankers
    customer = str(model.customers.ids[ahead.precomputed.rows[0]])
    category = str(model.categories[np.flatnonzero(model.in_stock)[0]])
    counting = CountingRanks(ahead, monkeypatch)
    asks = [([PRECOMPUTED_LENGTH + 1], [frozenset()], None),  # longer than the list kept
            ([10], [frozenset({category})], None),  # a browsed category to boost
            ([10], [frozenset()], ["mixed"])]  # an experiment's diversity rule
    for ks, browsing, diversity in asks:
        assert _listed(ahead.rank([customer], ks, browsing, diversity=diversity)[0]) == \
            _listed(at_request.rank([customer], ks, browsing, diversity=diversity)[0])
    assert counting.calls == len(asks)


def test_the_pipeline_serves_the_lists_and_reports_them(pipeline) -> None:
    loaded = pipeline.slots["homepage"].current
    lists = loaded.prepared.precomputed
    assert lists is not None and lists.done.wait(60) and lists.error is None
    status = pipeline.status()["precomputed_lists"]
    assert status["customers"] == status["of"] == len(lists.rows) > 0 and status["done"]
    customer = str(loaded.model.customers.ids[lists.rows[0]])
    answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=10))
    assert not answer.fallback and answer.personalised
    assert _listed(answer.items) == _listed(lists.items(int(lists.rows[0]), 10))


def test_a_stopped_fill_keeps_what_it_ranked(rankers) -> None:
    model, _, at_request = rankers
    stopped = HomepageRanker(model, MAX_K, 0.3, precomputed=len(model.customers))
    stopped.close()  # a newer version took over: the thread ends early
    assert stopped.precomputed.done.wait(60)
    assert len(stopped.precomputed) <= len(stopped.precomputed.rows)
    customer = str(model.customers.ids[stopped.precomputed.rows[0]])
    assert _listed(stopped.rank([customer], [10], [frozenset()])[0]) == \
        _listed(at_request.rank([customer], [10], [frozenset()])[0])
