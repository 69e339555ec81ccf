"""The demo shop's homepage in each layout an experiment variant may ask for (grid,
carousel, hero + grid), in headless Chromium, without a trained home: the shop's app
(`tailor.shop.app`) and the collector run under uvicorn in this process, and a stand-in
pipeline answers with the layout the test sets. The trained home's browser journey
(`test_shop_browser.py`) runs no experiment, so the layouts are checked here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from browsers import browser_paths, start_browser
from collector_process import free_port
from tailor.config import Settings, load_settings
from tailor.serving.schemas import HomepageRequest, HomepageResponse, RecommendedItem
from waiting import wait_until

pytestmark = pytest.mark.slow

PRODUCTS = 9
PHONE = (390, 844)


class LayoutPipeline:
    """Answers every homepage request with nine products in `layout` (an experiment's
    variant, as the real pipeline names it)."""

    layout: str | None = None

    async def ahomepage(self, request: HomepageRequest) -> HomepageResponse:
        return HomepageResponse(
            items=[RecommendedItem(product_id=f"p-{number}", score=1.0 - number / 10,
                                   reason="trending this week") for number in range(PRODUCTS)],
            model_version="1", variant="champion", fallback=False, request_id="r-1",
            personalised=True, layout=self.layout, experiment="homepage-layout",
            experiment_variant=self.layout)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LayoutPipeline]]:
    """The shop's app at /shop and the collector at /collect, served on a free port."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from tailor.events.collector.app import create_collector_app
    from tailor.shop.app import create_shop_app

    browser_paths()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings: Settings = load_settings(home=tmp_path_factory.mktemp("layouts") / "home", env={})
    shop_app = create_shop_app(settings)
    shop_app.state.shop.pipeline = pipeline = LayoutPipeline()
    app = Starlette(routes=[
        Mount("/collect", app=create_collector_app(settings, shop_origins=frozenset({origin}))),
        Mount("/shop", app=shop_app)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "uvicorn to start")
    yield f"{origin}/shop/", pipeline
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    browser = start_browser(tmp_path)
    yield browser
    browser.quit()


def card_boxes(driver: Any, url: str) -> dict[str, Any]:
    """Load the homepage; the list's class, width and scroll width, and each card's box."""
    driver.get(url)
    wait_until(lambda: driver.execute_script("return document.body.dataset.ready"), 20,
               "the homepage")
    return driver.execute_script("""
        const list = document.getElementById('recommendations');  // boxes force a layout
        return {className: list.className, width: list.clientWidth,
                scrollWidth: list.scrollWidth, page: document.documentElement.scrollWidth,
                window: window.innerWidth,
                why: document.getElementById('why-text').textContent,
                cards: [...list.children].map((card) => {
                  const box = card.getBoundingClientRect();
                  return {top: Math.round(box.top), left: Math.round(box.left),
                          width: Math.round(box.width)};
                })};""")


def test_each_layout_of_the_experiment_is_drawn_as_asked(
        shop: tuple[str, LayoutPipeline], driver: Any) -> None:
    url, pipeline = shop
    driver.set_window_size(1280, 1000)

    pipeline.layout = "grid"
    grid = card_boxes(driver, url)
    assert grid["className"] == "products layout-grid"
    rows = sorted({card["top"] for card in grid["cards"]})
    assert len(rows) >= 2 and len({card["width"] for card in grid["cards"]}) == 1
    assert "your variant of the homepage-layout experiment" in grid["why"]

    pipeline.layout = "carousel"
    carousel = card_boxes(driver, url)
    assert carousel["className"] == "products layout-carousel"
    assert len({card["top"] for card in carousel["cards"]}) == 1  # one row ...
    assert carousel["scrollWidth"] > carousel["width"]  # ... that scrolls sideways
    assert carousel["page"] <= carousel["window"]  # the list scrolls, not the page

    pipeline.layout = "hero_grid"
    hero = card_boxes(driver, url)
    assert hero["className"] == "products layout-hero_grid"
    first, *rest = hero["cards"]
    assert first["width"] == hero["width"]  # the hero spans the row
    assert all(card["top"] > first["top"] and card["width"] < first["width"] for card in rest)
    assert "Shown as hero + grid" in hero["why"]

    driver.set_window_size(*PHONE)
    for layout in ("grid", "hero_grid"):
        pipeline.layout = layout
        phone = card_boxes(driver, url)
        assert phone["page"] <= phone["window"], layout  # nothing wider than the phone
        assert max(card["left"] + card["width"] for card in phone["cards"]) <= phone["window"]
