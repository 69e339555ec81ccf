"""The attribution rules on small frames whose answers are computed by hand: the window's
edges, events before the exposure, the anonymous -> customer switch, slate clicks, bounces,
the pre-period and the unit's variant."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest

from tailor.errors import InputError
from tailor.experiments.attribution import attribute

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
AS_OF = T0 + timedelta(days=5)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def exposures(*rows: tuple) -> pd.DataFrame:
    """(exposure_id, customer_id, variant, hours after T0, session_id, fallback, slate)."""
    frame = pd.DataFrame(rows, columns=["exposure_id", "customer_id", "variant", "hours",
                                        "session_id", "fallback", "slate"])
    frame["served_at"] = [at(hours) for hours in frame.pop("hours")]
    return frame


def events(*rows: tuple) -> pd.DataFrame:
    """(customer_id, event_type, product_id, hours after T0, session_id, price, order_id,
    properties)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "event_type", "product_id", "hours",
                                        "session_id", "price", "order_id", "properties"])
    frame["timestamp"] = [at(hours) for hours in frame.pop("hours")]
    frame["quantity"] = 1.0
    return frame


def run(exposure_frame: pd.DataFrame, event_frame: pd.DataFrame, **rules) -> pd.DataFrame:
    return attributed(exposure_frame, event_frame, **rules).units.set_index("unit_id")


def attributed(exposure_frame: pd.DataFrame, event_frame: pd.DataFrame, **rules):
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("exposure_frame", exposure_frame)
    connection.register("event_frame", event_frame)
    # Typed as the lake's columns (an empty frame's columns are untyped).
    connection.execute("CREATE VIEW exposure_rows AS SELECT CAST(exposure_id AS BIGINT) AS "
                       "exposure_id, CAST(customer_id AS VARCHAR) AS customer_id, "
                       "CAST(variant AS VARCHAR) AS variant, CAST(served_at AS TIMESTAMPTZ) "
                       "AS served_at, CAST(session_id AS VARCHAR) AS session_id, "
                       "CAST(fallback AS BOOLEAN) AS fallback, "
                       + ("CAST(latency_ms AS DOUBLE)" if "latency_ms" in exposure_frame
                          else "CAST(NULL AS DOUBLE)") + " AS latency_ms FROM exposure_frame")
    connection.execute("CREATE VIEW exposure_slates AS SELECT CAST(exposure_id AS BIGINT) AS "
                       "exposure_id, CAST(slate AS VARCHAR[]) AS slate FROM exposure_frame")
    connection.execute("CREATE VIEW event_rows AS SELECT CAST(customer_id AS VARCHAR) AS "
                       "customer_id, CAST(event_type AS VARCHAR) AS event_type, "
                       "CAST(product_id AS VARCHAR) AS product_id, CAST(timestamp AS "
                       "TIMESTAMPTZ) AS timestamp, CAST(session_id AS VARCHAR) AS session_id, "
                       "CAST(price AS DOUBLE) AS price, CAST(quantity AS DOUBLE) AS quantity, "
                       "CAST(order_id AS VARCHAR) AS order_id, CAST(properties AS VARCHAR) AS "
                       "properties FROM event_frame")
    return attribute(connection, as_of=rules.pop("as_of", AS_OF), **rules)


def test_the_window_counts_from_the_exposure_up_to_its_end_exclusive() -> None:
    units = run(
        exposures((1, "c1", "a", 0, "s1", False, ["p1"])),
        events(("c1", "purchase", "p1", -1, "s0", 50.0, "o0", None),   # before: not an outcome
               ("c1", "purchase", "p1", 0, "s1", 10.0, "o1", None),    # at the exposure: counts
               ("c1", "purchase", "p2", 23.99, "s2", 20.0, "o2", None),  # inside
               ("c1", "purchase", "p3", 24, "s3", 40.0, "o3", None)),    # at the end: out
        window_hours=24, pre_period_days=7)
    row = units.loc["c1"]
    assert (bool(row.converted), row.orders, row.revenue) == (True, 2, 30.0)
    assert (bool(row.pre_converted), row.pre_revenue) == (True, 50.0)


def test_a_later_exposure_opens_a_new_window() -> None:
    units = run(
        exposures((1, "c1", "a", 0, None, False, []), (2, "c1", "a", 48, None, False, [])),
        events(("c1", "purchase", "p1", 30, None, 5.0, "o1", None),    # between windows: out
               ("c1", "purchase", "p1", 50, None, 7.0, "o2", None)),   # after the 2nd: in
        window_hours=24)
    assert (units.loc["c1"].orders, units.loc["c1"].revenue, units.loc["c1"].exposures) == \
        (1, 7.0, 2)


def test_events_before_the_first_exposure_and_after_as_of_are_ignored() -> None:
    units = run(
        exposures((1, "c1", "b", 10, None, False, []), (2, "c2", "a", 0, None, False, [])),
        events(("c1", "purchase", "p1", 9, None, 99.0, "o1", None),
               ("c2", "purchase", "p1", 2, None, 5.0, "o2", None)),
        as_of=at(1), window_hours=24)
    assert list(units.index) == ["c2"]               # c1's exposure is after as_of
    assert units.loc["c2"].orders == 0                # its purchase too


def test_an_anonymous_visitor_who_logs_in_and_buys_is_one_unit() -> None:
    identify = json.dumps({"anonymous_id": "anon-7", "action": "identify"})
    units = run(
        exposures((1, "anon-7", "b", 0, "s1", False, ["p9"]),
                  (2, "c42", "b", 1, "s1", False, ["p9"])),    # the same visitor, logged in
        events(("anon-7", "page_view", None, 0.1, "s1", None, None,
                json.dumps({"anonymous_id": "anon-7"})),
               ("c42", "click", None, 0.5, "s1", None, None, identify),
               ("c42", "purchase", "p9", 2, "s1", 30.0, "o1",
                json.dumps({"anonymous_id": "anon-7"}))),
        window_hours=24)
    assert list(units.index) == ["anon-7"]
    row = units.loc["anon-7"]
    assert (row.variant, row.exposures, bool(row.converted), row.revenue) == ("b", 2, True, 30.0)


def test_a_unit_keeps_the_variant_of_its_first_exposure_and_is_counted_when_it_moved() -> None:
    connection_units = run(
        exposures((1, "c1", "a", 0, None, False, []), (2, "c1", "b", 5, None, False, [])),
        events(), window_hours=24)
    row = connection_units.loc["c1"]
    assert (row.variant, row.variants) == ("a", 2)


def test_clicks_count_only_products_of_the_slate_shown_before_them() -> None:
    units = run(
        exposures((1, "c1", "a", 0, "s1", False, ["p1", "p2"]),
                  (2, "c2", "a", 0, "s2", False, ["p5"])),
        events(("c1", "click", "p2", 0.1, "s1", None, None, None),         # on the slate
               ("c1", "product_view", "p1", 0.2, "s1", None, None, None),  # on the slate
               ("c1", "product_view", "p7", 0.3, "s1", None, None, None),  # not on it
               ("c2", "product_view", "p1", 0.1, "s2", None, None, None)),  # c1's slate, not c2's
        window_hours=24)
    assert units.loc["c1"].clicks == 2 and units.loc["c2"].clicks == 0


def test_a_bounce_is_an_exposed_session_whose_only_event_is_one_page_view() -> None:
    units = run(
        exposures((1, "c1", "a", 0, "s1", False, []), (2, "c2", "a", 0, "s2", False, []),
                  (3, "c3", "a", 0, "s3", False, []), (4, "c4", "a", 0, None, False, [])),
        events(("c1", "page_view", None, -0.001, "s1", None, None, None),   # single page view
               ("c2", "page_view", None, 0, "s2", None, None, None),
               ("c2", "product_view", "p1", 0.1, "s2", None, None, None),   # went on
               ("c4", "page_view", None, 0, "s9", None, None, None)),        # no exposed session
        window_hours=24)
    assert (units.loc["c1"].sessions, units.loc["c1"].bounced_sessions) == (1, 1)
    assert (units.loc["c2"].sessions, units.loc["c2"].bounced_sessions) == (1, 0)
    assert units.loc["c3"].sessions == 0     # exposed, but no event of its session: unobserved
    assert units.loc["c4"].sessions == 0


def test_orders_count_distinct_order_ids_and_lines_without_one_group_by_session() -> None:
    units = run(
        exposures((1, "c1", "a", 0, None, False, [])),
        events(("c1", "purchase", "p1", 1, "s1", 10.0, "o1", None),
               ("c1", "purchase", "p2", 1, "s1", 15.0, "o1", None),     # the same order
               ("c1", "purchase", "p3", 2, "s2", 5.0, None, None),      # no id: session s2
               ("c1", "purchase", "p4", 2, "s2", 5.0, None, None)),
        window_hours=24)
    assert (units.loc["c1"].orders, units.loc["c1"].revenue) == (2, 35.0)


def test_no_exposure_answers_no_units_and_bad_rules_are_named() -> None:
    assert run(exposures(), events(), window_hours=1).empty
    with pytest.raises(InputError, match="attribution_window_hours"):
        run(exposures(), events(), window_hours=0)
    with pytest.raises(InputError, match="pre_period_days"):
        run(exposures(), events(), window_hours=1, pre_period_days=-1)


def test_each_variant_gets_its_answers_fallbacks_and_latency_p99() -> None:
    rows = [(n, f"c{n}", "control" if n < 100 else "grid", 1.0, f"s{n}", n % 50 == 0, ["p1"])
            for n in range(200)]
    frame = exposures(*rows)
    # control: 1..100 ms (p99 = 99 ms, rounded up); grid: 10.2 ms but two slow answers.
    frame["latency_ms"] = [float(n + 1) if n < 100 else 10.2 for n in range(200)]
    frame.loc[[198, 199], "latency_ms"] = 250.0
    answers = attributed(frame, events(("c1", "purchase", "p1", 2.0, "s1", 10.0, "o1",
                                        "{}"))).answers
    assert answers["control"].answers == 100 and answers["control"].fallbacks == 2
    assert answers["control"].latency_p99_ms == 99.0
    assert answers["grid"].latency_p99_ms == 250.0  # 2 of 100 answers above the 99th rank
    frame["latency_ms"] = None  # a log from before latency was logged
    answers = attributed(frame, events()).answers
    assert answers["grid"].latency_p99_ms is None and answers["grid"].fallbacks == 2
