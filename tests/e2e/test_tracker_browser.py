"""tailor.js in a real browser: headless Chromium shops in the demo shop of `tailor collect`.

Needs Debian's `chromium` and `chromium-driver` packages and the `selenium` dev extra.
Without them the tests are skipped with the reason; with CI=true they fail instead.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pandas as pd
import pytest

from browsers import browser_paths, start_browser
from collector_process import CollectorProcess, free_port, start_collector
from tailor.events.keys import create_key
from tailor.events.store import open_event_store
from waiting import wait_until

pytestmark = pytest.mark.slow

CUSTOMER_ID = "c-4242"
# The journey below, in the order its events happen (each page's page_view is stamped
# when the page loads, and sent with its time_on_page when the page is left).
JOURNEY_EVENTS = [
    "page_view",                                      # home
    "page_view", "product_view",                      # a product
    "page_view", "search",                            # search results for "jacket"
    "page_view", "product_view", "add_to_cart",       # the jacket, into the cart
    "page_view", "checkout_start",                    # cart, then checkout
    "page_view", "click", "purchase",                 # sign in (identify), buy
]


SECRET_KEYS: dict[Path, str] = {}  # a secret key per collector home, for its /metrics


def with_secret_key(home: Path) -> Path:
    """Create a secret key in `home` (before its collector starts) for reading /metrics."""
    SECRET_KEYS[home] = create_key("secret", home / "collector_keys.json")
    return home


def metrics_text(collector: CollectorProcess) -> str:
    """The collector's /metrics, read with its secret key."""
    answer = httpx.get(f"{collector.url}/metrics",
                       headers={"X-Tailor-Key": SECRET_KEYS[collector.home]})
    assert answer.status_code == 200, answer.text
    return answer.text


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    browser_paths()
    home = with_secret_key(tmp_path_factory.mktemp("browser") / "home")
    process = start_collector(home, demo_shop=True)
    yield process
    process.stop()


@pytest.fixture
def new_browser(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Starts browsers with a fresh profile each (no shared localStorage); quits them after."""
    drivers = []

    def start() -> Any:
        drivers.append(start_browser(tmp_path))
        return drivers[-1]

    yield start
    for driver in drivers:
        driver.quit()


def stored_events(collector: CollectorProcess) -> pd.DataFrame:
    """Every event in the collector's store, in timestamp order."""
    store = open_event_store(f"sqlite:///{collector.home / 'events.db'}")
    try:
        events = store.events_after(0, 10_000)
        return events.sort_values(["timestamp", "seq"]).reset_index(drop=True)
    finally:
        store.close()


def wait_for_events(collector: CollectorProcess, count: int, timeout: float = 20.0) -> pd.DataFrame:
    """The stored events once there are at least `count` (or whatever arrived by the timeout)."""
    deadline = time.monotonic() + timeout
    events = stored_events(collector)
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.25)
        events = stored_events(collector)
    return events


# Counts the page's fetch calls (tailor.js sends batches with fetch): how many are under way
# and how many failed. tailor.js looks `fetch` up at each send, so the count may start late.
WATCH_SENDS = """
window.tailorSends = {pending: 0, failed: 0, settled: 0};
const tailorFetch = window.fetch;
window.fetch = function () {
  window.tailorSends.pending += 1;
  return tailorFetch.apply(this, arguments)
    .catch((error) => { window.tailorSends.failed += 1; throw error; })
    .finally(() => { window.tailorSends.pending -= 1; window.tailorSends.settled += 1; });
};
"""


def sends(driver: Any) -> dict[str, int]:
    """The page's fetch counts since `WATCH_SENDS` ran: pending, failed, settled."""
    return driver.execute_script("return window.tailorSends")


def unsent(driver: Any) -> list[str]:
    """The event types in the page's queue that wait to be sent (held page_views left out)."""
    queued = json.loads(driver.execute_script("return localStorage.getItem('tailor:queue')")
                        or "[]")
    return [item["event"]["event_type"] for item in queued if not item["held"]]


def collector_metric(collector: CollectorProcess, name: str) -> float:
    """The sum of a metric's samples (every label) from the collector's /metrics."""
    text = metrics_text(collector)
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith((name + " ", name + "{")))


def collector_requests(collector: CollectorProcess) -> float:
    """POST /v1/events requests the collector has answered."""
    return collector_metric(collector, "tailor_collector_requests_total")


def shop_the_journey(driver: Any, shop: str) -> str:
    """Browse, search, add to cart, sign in and buy; returns the browser's anonymous id."""
    from selenium.webdriver.common.by import By

    driver.get(f"{shop}/index.html")
    driver.find_element(By.ID, "product-p-100").click()
    driver.find_element(By.ID, "search-query").send_keys("jacket")
    driver.find_element(By.ID, "search-button").click()
    driver.find_element(By.ID, "product-p-103").click()
    driver.find_element(By.ID, "add-to-cart").click()
    driver.find_element(By.ID, "cart-link").click()
    driver.find_element(By.ID, "checkout").click()
    anonymous_id = driver.execute_script("return tailor.anonymousId()")
    driver.find_element(By.ID, "customer-id").send_keys(CUSTOMER_ID)
    driver.find_element(By.ID, "sign-in").click()
    driver.find_element(By.ID, "place-order").click()
    assert "Thank you" in driver.find_element(By.ID, "confirmation").text
    return anonymous_id


def test_a_shopping_journey_arrives_in_order_with_session_and_customer(
        collector: CollectorProcess, new_browser: Callable[[], Any]) -> None:
    driver = new_browser()
    before = len(stored_events(collector))
    anonymous_id = shop_the_journey(driver, f"{collector.url}/shop")
    driver.get("about:blank")  # leave the shop: the last page's events go by sendBeacon
    events = wait_for_events(collector, before + len(JOURNEY_EVENTS)).iloc[before:]
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]

    assert list(events["event_type"]) == JOURNEY_EVENTS, errors
    # The shop works under its Content-Security-Policy: the browser refused nothing.
    assert not [entry for entry in errors if "Content Security Policy" in entry["message"]
                or "Refused to" in entry["message"]], errors
    assert events["session_id"].nunique() == 1 and events["session_id"].iloc[0].startswith("s-")
    properties = events["properties"].map(json.loads)
    assert anonymous_id.startswith("anon-")
    assert set(properties.map(lambda p: p["anonymous_id"])) == {anonymous_id}
    identified = events.index[events["event_type"] == "click"][0]
    assert set(events.loc[:identified - 1, "customer_id"]) == {anonymous_id}
    assert set(events.loc[identified:, "customer_id"]) == {CUSTOMER_ID}
    assert properties[identified]["action"] == "identify"
    purchase = events[events["event_type"] == "purchase"].iloc[0]
    assert (purchase["product_id"], purchase["price"], purchase["quantity"]) == ("p-103", 89.0, 1)
    assert purchase["order_id"].startswith("o-")
    assert events.loc[events["event_type"] == "search", "query"].tolist() == ["jacket"]
    page_views = properties[events["event_type"] == "page_view"]
    assert all(view["time_on_page"] >= 0 for view in page_views)
    assert set(events["device_type"]) == {"desktop"}  # from HeadlessChrome's User-Agent
    assert events["event_id"].is_unique


def excluded(collector: CollectorProcess) -> dict[str, str]:
    """The collector home's opt-out list: each id and its reason."""
    from tailor.config import load_settings
    from tailor.privacy.excluded_customers import exclusion_reasons

    return exclusion_reasons(load_settings(home=collector.home, env={}))


def test_an_opted_out_shopper_sends_nothing(collector: CollectorProcess,
                                            new_browser: Callable[[], Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = new_browser()
    events_before, requests_before = len(stored_events(collector)), collector_requests(collector)
    driver.get(f"{collector.url}/shop/index.html")
    driver.find_element(By.ID, "opt-out").click()
    driver.refresh()  # the choice is persisted, not kept in the page
    assert driver.execute_script("return tailor.isTracking()") is False
    shop_the_journey(driver, f"{collector.url}/shop")
    assert driver.execute_script("return localStorage.getItem('tailor:queue')") is None
    # Signing in while opted out opts the account out too (the one call the tracker makes).
    wait_until(lambda: CUSTOMER_ID in excluded(collector), 20,
               "the signed-in customer on the opt-out list")
    from tailor.config import load_settings
    from tailor.privacy.opt_out import opt_in

    opt_in(load_settings(home=collector.home, env={}), CUSTOMER_ID)  # as the shop's admin would
    # Rather than wait a while for a send that must not come: opt in again, send one marker
    # by fetch and wait for it. Whatever the opted-out pages sent went out before it.
    driver.get(f"{collector.url}/shop/index.html")
    driver.execute_script("tailor.optIn(); tailor.click('opted-in-again'); tailor.flush();")
    wait_until(lambda: len(stored_events(collector)) > events_before, 20,
               "the marker sent after opting in again")
    stored = stored_events(collector).iloc[events_before:]
    assert stored["properties"].map(lambda p: json.loads(p).get("target")).tolist() == \
        ["opted-in-again"]  # nothing from the opted-out journey
    assert collector_requests(collector) == requests_before + 1  # not even a refused request


def test_opting_out_in_the_shop_reaches_the_collectors_list_and_opting_in_leaves_it(
        collector: CollectorProcess, new_browser: Callable[[], Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = new_browser()
    shop_the_journey(driver, f"{collector.url}/shop")  # signed in as CUSTOMER_ID
    anonymous_id = driver.execute_script("return tailor.anonymousId()")
    driver.find_element(By.ID, "opt-out").click()
    wait_until(lambda: {anonymous_id, CUSTOMER_ID} <= set(excluded(collector)), 20,
               "the browser's anonymous id and customer id on the collector's opt-out list")
    # The collector writes the list before it answers: the page forgets the pending choice
    # once the answer is back.
    wait_until(lambda: driver.execute_script(
        "return localStorage.getItem('tailor:choice') === null"), 20,
        "the page to drop the opt-out it sent once the collector answered")
    # Events that still arrive for the customer (another device, a server) are dropped.
    dropped_before = collector_metric(collector, "tailor_collector_events_opted_out_total")
    answer = httpx.post(f"{collector.url}/v1/events", headers={
        "X-Tailor-Key": SECRET_KEYS[collector.home]}, json={"events": [{
            "event_id": "opted-out-elsewhere", "customer_id": CUSTOMER_ID,
            "event_type": "page_view", "timestamp": pd.Timestamp.now(tz="UTC").isoformat()}]})
    assert answer.json()["opted_out"] == 1
    assert "opted-out-elsewhere" not in set(stored_events(collector)["event_id"])
    assert collector_metric(collector, "tailor_collector_events_opted_out_total") \
        == dropped_before + 1
    # Unsigned, the known id may not be opted back in from a browser; the anonymous id is.
    try:
        driver.execute_script("tailor.optIn();")
        wait_until(lambda: anonymous_id not in excluded(collector), 20,
                   "the anonymous id off the list after optIn()")
        assert excluded(collector).get(CUSTOMER_ID) == "opted_out"
    finally:  # the other tests of this collector shop as CUSTOMER_ID too
        from tailor.config import load_settings
        from tailor.privacy.opt_out import opt_in

        opt_in(load_settings(home=collector.home, env={}), CUSTOMER_ID)


def test_where_consent_is_required_nothing_is_sent_before_it(
        collector: CollectorProcess, new_browser: Callable[[], Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = new_browser()
    events_before, requests_before = len(stored_events(collector)), collector_requests(collector)
    driver.get(f"{collector.url}/shop/index.html?consent=required")
    driver.find_element(By.ID, "product-p-102").click()
    # Before consent nothing is recorded, so nothing can be sent (not even held).
    assert driver.execute_script("return localStorage.getItem('tailor:queue')") is None
    assert collector_requests(collector) == requests_before
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.ID, "add-to-cart").click()
    driver.get("about:blank")
    # Anything sent before consent went out before the add_to_cart, which is waited for.
    wait_until(lambda: len(stored_events(collector)) > events_before, 20,
               "the add_to_cart sent after consent")
    events = stored_events(collector).iloc[events_before:]
    assert list(events["event_type"]) == ["add_to_cart"]  # not the views before consent
    assert events["product_id"].iloc[0] == "p-102"


def test_a_session_ends_after_30_idle_minutes(collector: CollectorProcess,
                                             new_browser: Callable[[], Any]) -> None:
    driver = new_browser()
    driver.get(f"{collector.url}/shop/product.html?id=p-101")
    session = "JSON.parse(localStorage.getItem('tailor:session'))"

    def idle_for(minutes: int) -> None:  # pretend the last event was this long ago
        driver.execute_script(f"const s = {session}; s.last = Date.now() - {minutes} * 60000;"
                              "localStorage.setItem('tailor:session', JSON.stringify(s));")

    first = driver.execute_script(f"return {session}.id")
    idle_for(29)
    driver.execute_script("tailor.click('after-29-minutes')")
    idle_for(31)
    driver.execute_script("tailor.click('after-31-minutes')")
    second = driver.execute_script(f"return {session}.id")
    driver.get("about:blank")

    def clicks() -> pd.DataFrame:
        events = stored_events(collector)
        return events[events["properties"].str.contains("after-")]

    wait_until(lambda: len(clicks()) >= 2, 20, "both clicks to be stored")
    stored = clicks()
    targets = stored["properties"].map(lambda p: json.loads(p)["target"])
    assert dict(zip(targets, stored["session_id"])) == {
        "after-29-minutes": first, "after-31-minutes": second}
    assert first != second


def test_events_wait_offline_in_local_storage_and_arrive_once_back_online(
        collector: CollectorProcess, new_browser: Callable[[], Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = new_browser()
    duplicates_before = collector_metric(collector, "tailor_collector_events_duplicate_total")
    driver.get(f"{collector.url}/shop/product.html?id=p-104")
    anonymous_id = driver.execute_script("return tailor.anonymousId()")

    def mine(event_type: str) -> pd.DataFrame:
        events = stored_events(collector)
        return events[(events["event_type"] == event_type)
                      & (events["customer_id"] == anonymous_id)]

    wait_until(lambda: not mine("product_view").empty and unsent(driver) == [], 20,
               "the product_view to go out while online")
    driver.execute_script(WATCH_SENDS)
    driver.set_network_conditions(offline=True, latency=0, throughput=1_000_000)
    driver.find_element(By.ID, "add-to-cart").click()
    wait_until(lambda: sends(driver)["failed"] >= 1, 20, "a send to fail while offline")
    assert unsent(driver) == ["add_to_cart"]  # kept for the retry
    assert mine("add_to_cart").empty
    driver.delete_network_conditions()
    wait_until(lambda: not mine("add_to_cart").empty, 30,
               "the add_to_cart to arrive once back online")
    # Every copy the tracker sent has had its answer once nothing waits and nothing is under
    # way: a second copy would be stored (or counted as a duplicate) by then.
    wait_until(lambda: unsent(driver) == [] and sends(driver)["pending"] == 0, 20,
               "the tracker to have nothing left to send")
    carts = mine("add_to_cart")
    assert len(carts) == 1 and carts["product_id"].iloc[0] == "p-104"
    assert collector_metric(collector, "tailor_collector_events_duplicate_total") \
        == duplicates_before  # sent once, not stored once out of several copies


# -- a shop on another origin: real CORS ------------------------------------------------------


SHOP_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>another shop</title></head><body>
<script>{watch_sends}</script>
<script src="{collector}/tailor.js"></script>
<script>
  tailor.init({{endpoint: "{collector}/v1/events", key: "{key}", batchSize: 2}});
  tailor.productView("{product}");           // these two go by fetch, after a preflight
  tailor.addToCart("{product}", {{price: 5}});
</script></body></html>"""


@pytest.fixture
def shop_origins(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two static web servers on their own ports (so their own origins), serving one folder."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    servers = {name: http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
               for name in ("allowed", "refused")}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


def test_cors_lets_configured_shops_in_and_keeps_others_out(
        tmp_path: Path, shop_origins: dict[str, str], new_browser: Callable[[], Any]) -> None:
    home = with_secret_key(tmp_path / "home")
    key = create_key("public", home / "collector_keys.json")
    collector = start_collector(home, settings={
        "TAILOR_COLLECTOR_ALLOWED_ORIGINS": shop_origins["allowed"]})
    try:
        for name in ("allowed", "refused"):
            (tmp_path / f"{name}.html").write_text(SHOP_PAGE.format(
                collector=collector.url, key=key, product=f"p-{name}",
                watch_sends=WATCH_SENDS))
        driver = new_browser()
        for name in ("allowed", "refused"):
            driver.get(f"{shop_origins[name]}/{name}.html")
            wait_until(lambda: sends(driver)["settled"] >= 1, 20,
                       f"the {name} shop's fetch to be answered or refused")
            driver.get("about:blank")  # the held page_view goes by sendBeacon
        refused = 'tailor_collector_requests_total{status="403"}'
        # The refused shop's requests go out after the allowed shop's: once one of them is
        # counted as a 403 and three events are stored, everything has arrived.
        wait_until(lambda: len(stored_events(collector)) >= 3 and refused in metrics_text(
            collector), 20, "the allowed shop's three events and the refused beacon's 403")
        events = stored_events(collector)
        metrics = metrics_text(collector)
    finally:
        collector.stop()
    assert sorted(events["event_type"]) == ["add_to_cart", "page_view", "product_view"]
    assert set(events["product_id"].dropna()) == {"p-allowed"}
    assert {json.loads(p)["page"] for p in events["properties"]} == {"/allowed.html"}
    assert refused in metrics  # the refused beacon


# -- signed customer ids ------------------------------------------------------------------------


def test_tailor_js_sends_the_identity_signature_and_only_signed_ids_count(
        tmp_path: Path, new_browser: Callable[[], Any]) -> None:
    from tailor.events.identity import create_identity_secret, sign_customer_id

    home = tmp_path / "home"
    secret = create_identity_secret(home / "identity.key")
    signature = sign_customer_id(secret, "c-signed")
    collector = start_collector(home, demo_shop=True, settings={
        "TAILOR_COLLECTOR_REQUIRE_SIGNED_IDENTITY": "true"})
    try:
        for customer, options in (("c-signed", {"signature": signature}), ("c-forged", {})):
            driver = new_browser()
            driver.get(f"{collector.url}/shop/index.html")
            sent = driver.execute_script(
                "tailor.identify(arguments[0], arguments[1]); tailor.productView('p-100');"
                "return JSON.parse(localStorage.getItem('tailor:queue'))"
                ".map(item => item.event.properties.identity_signature || null);",
                customer, options)
            assert sent[-1] == options.get("signature"), sent  # what tailor.js will send
            driver.get("about:blank")
        wait_until(lambda: len(stored_events(collector)) >= 6, 20, "both shoppers' six events")
        events = stored_events(collector)
    finally:
        collector.stop()
    properties = events["properties"].map(json.loads)
    signed = events[events["customer_id"] == "c-signed"]
    assert sorted(signed["event_type"]) == ["click", "product_view"]
    assert set(properties[signed.index].map(lambda p: p.get("identity"))) == {"verified"}
    assert "c-forged" not in set(events["customer_id"])
    forged = properties.map(lambda p: p.get("identity")) == "unverified"
    assert forged.sum() == 2 and events.loc[forged, "customer_id"].str.startswith("anon-").all()
    assert not events["properties"].str.contains("identity_signature").any()
