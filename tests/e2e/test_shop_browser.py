"""The demo shop of `tailor serve --demo-shop` in headless Chromium, on the shared trained
home's server (`serving`, built once for the e2e serving tests).

A stranger's journey: the cold-start list with its trending reasons, three products of one
category, the homepage re-ranked by the session ("because you are browsing ..."), a cart
with the checkout offer the API returned, a purchase; then, through "Who am I", a known
customer of the trained home (one with purchases in its history: retraining inside the
test would take a minute) whose list says "because you bought ...". Every product, reason
and number on a page is compared with the API's own answer: the same request sent to the
serving API with a secret key, or the prediction log's row of the answer's request id.
And an opted-out visitor: the list everybody gets, unchanged by browsing, and not one
request to the events endpoint.

Screenshots of each step go to pytest's temporary folder (`<tmp>/screenshots/`, printed
on failure); with TAILOR_SHOP_SCREENSHOTS=<folder> they are copied there too (the README's
pictures: `docs/images/`). Needs Debian's `chromium` and `chromium-driver` and selenium.
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
from serving_home import Serving, logged_rows
from tailor.events.store import open_event_store
from waiting import wait_until

pytestmark = pytest.mark.slow

SCREENSHOTS_ENV = "TAILOR_SHOP_SCREENSHOTS"
BROWSING = "because you are browsing "
OFFER_TEXT = {"10_off": "10% off this order", "free_shipping": "Free shipping on this order",
              "none": "No offer on this cart"}
TOP = 4  # the homepage's first row on a desktop window
PHONE = (390, 844)  # a phone-sized window, CSS pixels


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


def unlisted_buyer(serving: Serving, listed: list[str]) -> str:
    """A customer with purchases in the simulated shop whom the switcher does not list."""
    events = pd.read_parquet(serving.home.shop / "events.parquet",
                             columns=["customer_id", "event_type"])
    buyers = events[events["event_type"] == "purchase"]["customer_id"].value_counts()
    return next(str(buyer) for buyer in buyers.index[::-1] if str(buyer) not in listed)


def category_to_browse(products: pd.DataFrame, top: list[str]) -> str:
    """The category with the most products that none of the first homepage items is in."""
    counts = products[~products["category"].isin(top)]["category"].value_counts()
    assert len(counts) and counts.iloc[0] >= 3, counts
    return str(counts.index[0])


def test_a_strangers_journey_is_personalised_within_the_session(
        serving: Serving, new_browser: Callable[..., Any],
        screenshot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    products, shop, start, driver = visit(serving, new_browser)

    # A stranger: the cold-start list, popular and trending.
    stranger = last_answer(driver, "homepage")
    items = stranger["answer"]["items"]
    assert_page_shows(shown_cards(driver, "recommendations"), items, products)
    assert_api_agrees(serving, "/homepage", stranger)
    assert any("trending" in item["reason"] for item in items), items
    assert not any(item["reason"].startswith("because you") for item in items)
    assert "new here" in driver.find_element(By.ID, "why-text").text
    screenshot(driver, "1-stranger")

    # Three products of a category the first row lacks.
    category = category_to_browse(products, [products.loc[item["product_id"], "category"]
                                             for item in items[:TOP]])
    viewed = list(products[products["category"] == category].index[:3])
    for product_id in viewed:
        open_page(driver, f"{shop}product.html?id={product_id}")
        assert driver.find_element(By.ID, "name").text == products.loc[product_id, "name"]
        also = last_answer(driver, "also_bought")
        assert also["request"]["product_id"] == product_id
        assert_page_shows(shown_cards(driver, "also-bought"), also["answer"]["items"], products)
        assert_api_agrees(serving, "/also_bought", also)
    screenshot(driver, "2-product")

    # Back home within the session: the category moves up, and the page says why.
    def browsing_home() -> dict[str, Any] | None:
        open_page(driver, shop)
        asked = last_answer(driver, "homepage")
        return asked if any(item["reason"] == BROWSING + category
                            for item in asked["answer"]["items"]) else None

    browsing = wait_until(browsing_home, 30, f"the homepage to say 'because you are "
                                             f"browsing {category}'", interval=0.5)
    items = browsing["answer"]["items"]
    assert_page_shows(shown_cards(driver, "recommendations"), items, products)
    assert_api_agrees(serving, "/homepage", browsing)
    first_row = [products.loc[item["product_id"], "category"] for item in items[:TOP]]
    assert category in first_row  # none of the stranger's first row was
    assert f"You are browsing {category}" in driver.find_element(By.ID, "why-text").text
    screenshot(driver, "3-browsing")

    # Into the cart: the page shows the offer the API returned (the prediction log's row).
    open_page(driver, f"{shop}product.html?id={viewed[0]}")
    driver.find_element(By.ID, "add-to-cart").click()
    open_page(driver, f"{shop}cart.html")
    offer = last_answer(driver, "checkout_offer")["answer"]
    text = driver.find_element(By.ID, "offer-text").text
    assert text == f"{OFFER_TEXT[offer['offer']]}. {offer['reason']}"
    facts = dict(zip(*[[node.text for node in
                        driver.find_elements(By.CSS_SELECTOR, f"#offer {tag}")]
                       for tag in ("dt", "dd")]))
    assert facts["P(abandon)"] == ("unknown" if offer["p_abandon"] is None
                                   else f"{offer['p_abandon']:.4f}")
    assert facts["request id"] == offer["request_id"]
    logged = logged_rows(serving.home.settings, [offer["request_id"]]).loc[offer["request_id"]]
    assert (logged["endpoint"], logged["offer"]) == ("checkout_offer", offer["offer"])
    assert logged["p_abandon"] == pytest.approx(offer["p_abandon"])
    driver.set_window_size(*PHONE)
    assert driver.execute_script(  # a phone-sized window scrolls down, never sideways
        "return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(driver, "4-cart-offer-phone")
    driver.set_window_size(1280, 1000)

    # Checkout and buy; the purchase reaches the event store.
    anonymous_id = driver.execute_script("return tailor.anonymousId()")
    driver.find_element(By.ID, "checkout").click()
    wait_until(lambda: driver.execute_script("return document.body.dataset.page === 'checkout'"
                                             " && document.body.dataset.ready"), 30,
               "the checkout page")
    driver.find_element(By.ID, "place-order").click()
    assert "Thank you" in driver.find_element(By.ID, "confirmation").text
    screenshot(driver, "5-bought")

    def purchases() -> pd.DataFrame:
        events = of_visitor(events_since(serving, start), anonymous_id)
        return events[events["event_type"] == "purchase"]

    bought, = wait_until(lambda: found(purchases()), 30, "the purchase event")
    assert list(bought["product_id"]) == [viewed[0]]
    journey = of_visitor(events_since(serving, start), anonymous_id)
    assert set(viewed) <= set(journey.loc[journey["event_type"] == "product_view", "product_id"])
    assert {"page_view", "add_to_cart", "checkout_start"} <= set(journey["event_type"])

    # A known customer of the trained home: the switcher's last (its 12th most frequent
    # buyer), not the top buyers whose answers and sessions other serving tests check.
    customers = [option.get_attribute("value")
                 for option in Select(driver.find_element(By.ID, "who")).options]
    customer = [value for value in customers if value and value != serving.home.known_buyer][-1]
    Select(driver.find_element(By.ID, "who")).select_by_value(customer)
    known = homepage_of(driver, customer)
    assert_page_shows(shown_cards(driver, "recommendations"), known["answer"]["items"], products)
    assert_api_agrees(serving, "/homepage", known)
    assert any(item["reason"].startswith("because you bought ")
               for item in known["answer"]["items"])
    screenshot(driver, "6-known-customer")
    # Signed in through the shop's own identity route: its events count as that customer.
    def customer_events() -> pd.DataFrame:
        events = events_since(serving, start)
        return events[events["customer_id"] == customer]

    signed_in, = wait_until(lambda: found(customer_events()), 30,
                            f"the identify event of {customer}")
    assert set(signed_in["properties"].map(lambda text: json.loads(text)["identity"])) \
        == {"verified"}

    # Any other customer of the shop, by id (the footer's form).
    other = unlisted_buyer(serving, customers)
    driver.find_element(By.ID, "who-id").send_keys(other)
    driver.find_element(By.CSS_SELECTOR, "#who-form button").click()
    typed = homepage_of(driver, other)
    assert_page_shows(shown_cards(driver, "recommendations"), typed["answer"]["items"], products)
    assert_api_agrees(serving, "/homepage", typed)
    assert Select(driver.find_element(By.ID, "who")).first_selected_option.get_attribute(
        "value") == other


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser requested since the last call (DevTools' network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_an_opted_out_visitor_sees_the_list_everybody_gets_and_sends_no_events(
        serving: Serving, new_browser: Callable[..., Any],
        screenshot: Callable[[Any, str], Path]) -> None:
    from selenium.webdriver.common.by import By

    products, shop, start, driver = visit(serving, new_browser, network_log=True)
    driver.find_element(By.ID, "personalization").click()  # opts out, then reloads
    wait_until(lambda: driver.execute_script(
        "return document.body.dataset.ready === 'true' && "
        "document.getElementById('personalization').getAttribute('aria-pressed') === 'false'"),
        30, "the page to reload with personalization off")
    anonymous_id = driver.execute_script("return tailor.anonymousId()")
    everybody = serving.post("/homepage", {"customer_id": "never-seen-visitor", "k": 12}).json()
    opted_out = last_answer(driver, "homepage")
    assert opted_out["answer"]["personalised"] is False
    assert_page_shows(shown_cards(driver, "recommendations"), opted_out["answer"]["items"],
                      products)
    assert_api_agrees(serving, "/homepage", opted_out)
    assert comparable(opted_out["answer"]["items"]) == comparable(everybody["items"])
    assert "turned personalization off" in driver.find_element(By.ID, "why-text").text
    screenshot(driver, "opted-out")
    requested_urls(driver)  # from here on: the journey's requests

    category = category_to_browse(products, [products.loc[item["product_id"], "category"]
                                             for item in everybody["items"][:TOP]])
    viewed = list(products[products["category"] == category].index[:3])
    for product_id in viewed:
        open_page(driver, f"{shop}product.html?id={product_id}")
    driver.find_element(By.ID, "add-to-cart").click()
    open_page(driver, f"{shop}cart.html")
    open_page(driver, shop)
    after = last_answer(driver, "homepage")
    assert comparable(after["answer"]["items"]) == comparable(opted_out["answer"]["items"])
    driver.get("about:blank")  # leaving the page would send anything still waiting

    urls = requested_urls(driver)
    assert any("/shop/api/homepage" in url for url in urls)  # the log did record the pages
    assert not [url for url in urls if "/collect/v1/events" in url]
    assert of_visitor(events_since(serving, start), anonymous_id).empty
