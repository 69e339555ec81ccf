"""Memory of the ranking models' backtests on a shop with a large catalogue (at scale).

A shop of 1M customers and 100k products was OOM-killed in training because something built
a dense customers x products matrix (8 bytes a cell: 800 GB there). Here the catalogue is
large next to the history (12,000 products, about 1,400 customers), so such a matrix, or a
products x products one, would be several times what the work really needs: the traced
peak of fitting and ranking every customer (homepage and its re-ranker) or of a whole
backtest (cross-sell: fit, predictions, baselines, metrics) must stay within a bound that
grows only with events, customers, products and list lengths, never with their products.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest

from simulated_shops import simulated_shop
from tailor.models import interactions
from tailor.models.cross_sell import CrossSellParams
from tailor.models.data import ShopData
from tailor.models.evaluate import backtest
from tailor.models.homepage import HomepageParams, fit_homepage
from tailor.models.reranker import fit_reranker

pytestmark = pytest.mark.slow

CELLS = 1 << 16  # dense scores held at once (the test's SCORE_CELLS)
PER_EVENT = 300  # bytes per event: the split, targets, exclusions, sparse matrices
PER_ID = 1_000  # bytes per customer or product: indexes, factors, names, per-row arrays
PER_PAIR = 1_000  # bytes per also-bought pair of the cross-sell table (with its reason)
OVERHEAD = 16 * 2**20
MATRICES_PER_BATCH = 8  # score, blend parts, filtered copy, ranking of one batch


@pytest.fixture(scope="module")
def wide_shop(tmp_path_factory: pytest.TempPathFactory) -> ShopData:
    return simulated_shop(tmp_path_factory.mktemp("wide-shop"), customers=1_500, products=12_000,
                          days=20, seed=7)


def _peak_bytes(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _linear_bound(data: ShopData, pairs: int = 0) -> int:
    ids = data.events["customer_id"].nunique() + len(data.products)
    return (PER_EVENT * len(data.events) + PER_ID * ids + PER_PAIR * pairs + OVERHEAD
            + MATRICES_PER_BATCH * 8 * CELLS)


def test_homepage_memory_grows_with_the_sizes_not_their_product(
        wide_shop: ShopData, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interactions, "SCORE_CELLS", CELLS)
    customers, products = wide_shop.events["customer_id"].nunique(), len(wide_shop.products)
    dense = 8 * customers * products
    bound = _linear_bound(wide_shop)
    assert bound < dense / 2, "the shop is too small for this test to tell the difference"
    everyone = wide_shop.events["customer_id"].drop_duplicates()
    truth = wide_shop.purchases().drop_duplicates("customer_id")[["customer_id", "product_id"]]

    def fit_and_rank_everyone() -> None:
        model = fit_homepage(wide_shop, HomepageParams(iterations=5))
        model.recommend(everyone.tolist(), k=20, exclude_interacted=True)
        fit_reranker(model, truth, candidates=50)  # scores every customer in `truth` too

    peak = _peak_bytes(fit_and_rank_everyone)
    assert peak < bound, (f"homepage fit and ranking peaked at {peak / 2**20:.0f} MiB; bound "
                          f"{bound / 2**20:.0f} MiB (customers x products: {dense / 2**20:.0f})")


def test_cross_sell_memory_grows_with_the_sizes_not_their_square(wide_shop: ShopData) -> None:
    params = CrossSellParams(iterations=5, top_n=10)
    products = len(wide_shop.products)
    dense = 8 * products * products
    bound = _linear_bound(wide_shop, pairs=products * params.top_n)
    assert bound < dense / 4, "the catalogue is too small for this test to tell the difference"
    peak = _peak_bytes(lambda: backtest("cross_sell", wide_shop, params))
    assert peak < bound, (f"cross-sell backtest peaked at {peak / 2**20:.0f} MiB; bound "
                          f"{bound / 2**20:.0f} MiB (products x products: {dense / 2**20:.0f})")
