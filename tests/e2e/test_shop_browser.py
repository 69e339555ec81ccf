"""The demo shop of `tailor serve --demo-shop` in headless Chromium, on the shared trained
home's server (`serving`, built once for the e2e serving tests).

A stranger's journey: the cold-start list with its trending reasons, three products of one
category, the homepage re-ranked by the session ("because you are browsing ..."), a cart
with the checkout offer the API returned, a purchase; then, through "Who am I", a known
customer of the trained home whose list says "because you bought ..." and whose sign-in
is verified, and a customer typed into the footer's form. The journey's last step with a
retrained model (the buyer of the journey told "because you bought <it>" by the next
version) needs a home of its own: `test_shop_after_retraining.py`; retraining here would
move the champion under the other tests of this server. Every product, reason and number
on a page is compared with the API's own answer: the same request sent to the serving API
with a secret key, or the prediction log's row of the answer's request id. And an
opted-out visitor: the list everybody gets, unchanged by browsing, and not one request to
the events endpoint.

Screenshots of each step go to pytest's temporary folder (`<tmp>/screenshots/`, printed
on failure; `shop_pages.screenshot`); with TAILOR_SHOP_SCREENSHOTS=<folder> they are copied
there too (the README's pictures: `docs/images/`). Needs Debian's `chromium` and
`chromium-driver` and selenium.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from serving_home import Serving, logged_rows
from shop_pages import (  # noqa: F401 (new_browser and screenshot are fixtures)
    assert_api_agrees, assert_page_shows, comparable, events_since, found, homepage_of,
    last_answer, new_browser, of_visitor, open_page, screenshot, shown_cards, visit,
)
from waiting import wait_until

pytestmark = pytest.mark.slow

BROWSING = "because you are browsing "
OFFER_TEXT = {"10_off": "10% off this order", "free_shipping": "Free shipping on this order",
              "none": "No offer on this cart"}
TOP = 4  # the homepage's first row on a desktop window
PHONE = (390, 844)  # a phone-sized window, CSS pixels


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
