"""The demo shop's pages in headless Chromium, for the browser tests of a served home
(`test_shop_browser.py`, `test_shop_after_retraining.py`): a browser per test, screenshots,
and what a page showed beside what the API answers.

`new_browser` starts Chromium with a fresh profile; `screenshot` keeps the page as
`<tmp>/screenshots/<name>.png` (and a copy in $TAILOR_SHOP_SCREENSHOTS when set, the README's
pictures). The helpers read the page's `window.shopAnswers`, its cards, the home's catalogue
and its event store; they write nothing but the screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import pandas as pd
import pytest

from browsers import browser_paths, start_browser
from serving_home import Serving
from tailor.events.store import open_event_store
from waiting import wait_until

SCREENSHOTS_ENV = "TAILOR_SHOP_SCREENSHOTS"


@pytest.fixture
def new_browser(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Starts browsers with a fresh profile each; quits them after."""
    browser_paths()
    drivers = []

    def start(**options: Any) -> Any:
        drivers.append(start_browser(tmp_path, **options))
        drivers[-1].set_window_size(1280, 1000)
        return drivers[-1]

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """`screenshot(driver, name)`: the page as `<tmp>/screenshots/<name>.png` (and a copy in
    $TAILOR_SHOP_SCREENSHOTS as `demo-shop-<name>.png` when set)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots of this test: {folder}")  # shown with a failure's captured output
    extra = os.environ.get(SCREENSHOTS_ENV)

    def take(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot {path}"
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / f"demo-shop-{name}.png")
        return path

    return take


def catalogue(serving: Serving) -> pd.DataFrame:
    """The simulated shop's products (id, name, category, price), indexed by id."""
    products = pd.read_csv(serving.home.shop / "products.csv",
                           usecols=["product_id", "name", "category", "price"])
    return products.set_index("product_id")


def open_page(driver: Any, url: str) -> None:
    """Load a shop page and wait until its script has shown the answers."""
    driver.get(url)
    state = wait_until(lambda: driver.execute_script("return document.body.dataset.ready"),
                       30, f"{url} to finish loading")
    notice = driver.execute_script("return document.getElementById('notice').textContent")
    assert state == "true", notice


def last_answer(driver: Any, name: str) -> dict[str, Any]:
    """The page's last request to the shop's `api/<name>` route and the answer it got."""
    return driver.execute_script(f"return window.shopAnswers['{name}']")


def shown_cards(driver: Any, list_id: str) -> list[dict[str, str]]:
    """The product cards of a list as the page shows them."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#' + arguments[0] + ' > li')].map((card) => ({
          product_id: card.dataset.productId,
          name: card.querySelector('.name').textContent,
          category: card.querySelector('.category').textContent,
          price: card.querySelector('.price').textContent,
          reason: card.querySelector('.reason').textContent,
          numbers: card.querySelector('.numbers').textContent}));""", list_id)


def numbers_of(item: dict[str, Any]) -> str:
    if item.get("confidence") is not None:
        return f"confidence {item['confidence']:.2f} · lift {item['lift']:.2f}"
    return f"score {item['score']:.4f}"


def assert_page_shows(cards: list[dict[str, str]], items: list[dict[str, Any]],
                      products: pd.DataFrame) -> None:
    """The cards are the answer's items, in order, with the catalogue's names, categories
    and prices and the answer's reasons and numbers."""
    assert [card["product_id"] for card in cards] == [item["product_id"] for item in items]
    assert [card["reason"] for card in cards] == [item["reason"] for item in items]
    assert [card["numbers"] for card in cards] == [numbers_of(item) for item in items]
    for card in cards:
        product = products.loc[card["product_id"]]
        assert (card["name"], card["category"], card["price"]) == (
            product["name"], product["category"], f"{product['price']:.2f} EUR")


def comparable(items: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    return [(item["product_id"], item["reason"], round(item["score"], 9)) for item in items]


def assert_api_agrees(serving: Serving, path: str, asked: dict[str, Any]) -> dict[str, Any]:
    """The serving API, asked the page's request with a secret key, answers the same list."""
    answer = serving.post(path, asked["request"])
    assert answer.status_code == 200, answer.text
    assert comparable(answer.json()["items"]) == comparable(asked["answer"]["items"])
    return answer.json()


def events_since(serving: Serving, seq: int) -> pd.DataFrame:
    store = open_event_store(serving.home.settings.event_store_url)
    try:
        return store.events_after(seq, 10_000)
    finally:
        store.close()


def store_position(serving: Serving) -> int:
    store = open_event_store(serving.home.settings.event_store_url)
    try:
        return store.max_seq()
    finally:
        store.close()


class Visit(NamedTuple):
    """A browser on the demo shop: the catalogue it shows, the shop's address and where the
    event store stood before the visit (events after it are the visit's)."""

    products: pd.DataFrame
    shop: str
    start: int
    driver: Any


def visit(serving: Serving, new_browser: Callable[..., Any], **browser: Any) -> Visit:
    """A new browser (`browser`: `new_browser`'s options) on the shop's homepage."""
    products, start = catalogue(serving), store_position(serving)
    shop, driver = f"{serving.url}/shop/", new_browser(**browser)
    open_page(driver, shop)
    return Visit(products, shop, start, driver)


def homepage_of(driver: Any, customer: str) -> dict:
    """The page's homepage answer once it is for `customer` and the page is drawn."""
    return wait_until(lambda: driver.execute_script(
        "const asked = window.shopAnswers.homepage; return document.body.dataset.ready === "
        "'true' && asked && asked.request.customer_id === arguments[0] && asked;", customer),
        30, f"the homepage of {customer}")


def found(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """`[frame]` when it has rows, else [] (for `wait_until`, which wants a truthy value)."""
    return [frame] if len(frame) else []


def of_visitor(events: pd.DataFrame, anonymous_id: str) -> pd.DataFrame:
    """The events sent by a browser: its anonymous id as customer or in the properties."""
    anonymous = events["properties"].map(lambda text: json.loads(text or "{}")
                                         .get("anonymous_id"))
    return events[(events["customer_id"] == anonymous_id) | (anonymous == anonymous_id)]
