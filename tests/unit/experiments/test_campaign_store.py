"""`campaign_sends` on SQLite and PostgreSQL, one suite for both: planning adds nobody twice,
a taken code stores nothing, a mail is claimed once, every state change is its own commit,
tokens find their mail, an interrupted send's mails are counted and requeued on demand, a
mail in no experiment is no exposure, and a table from before the `experiment` column
(variant NOT NULL) is migrated with its rows when opened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.events.campaign_store import (FAILED, PENDING, SENDING, SENT, SKIPPED,
                                          CampaignStore, campaign_exposures, open_campaign_store)

DAY = 86_400_000_000
T0 = 1_772_409_600_000_000  # 2026-03-02T00:00:00Z in epoch microseconds


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_campaign_store(url)
    yield opened
    opened.close()


def row(customer: str, mail: int = 1, *, campaign: str = "c1", code: str | None = None,
        token: str | None = None, due: int = T0, delay: int = 0, exposed: bool = True
        ) -> tuple:
    variant = ("immediate" if delay == 0 else "after-2-days") if exposed else None
    return (campaign, customer, mail, "discount-timing" if exposed else None, variant, delay,
            int(mail == 2 or delay == 0), code or f"CODE-{customer}",
            json.dumps([{"product_id": "p1"}]),
            json.dumps([{"label": "shop", "url": "https://shop.example/"}]),
            token or f"token-{campaign}-{customer}-{mail}-xxxxxxxx", T0, due)


def test_planning_again_adds_nobody_twice(store: CampaignStore) -> None:
    assert store.insert_sends([row("a"), row("b")]) == 2
    assert store.insert_sends([row("a", token="token-other-a-xxxxxxxxx"), row("c")]) == 1
    assert store.planned_customers("c1") == {"a", "b", "c"}
    assert len(store.sends("c1")) == 3


def test_a_taken_code_stores_nothing_of_the_batch(store: CampaignStore) -> None:
    store.insert_sends([row("a", code="SAME")])
    with pytest.raises(Exception, match="(?i)unique"):
        store.insert_sends([row("b"), row("c", code="SAME")])
    assert store.planned_customers("c1") == {"a"}


def test_a_mail_is_claimed_once_and_each_change_is_committed(store: CampaignStore) -> None:
    store.insert_sends([row("a")])
    [(send, first)] = store.pending_due(T0)
    assert first is None and send.status == PENDING and send.attempts == 0
    assert store.claim(send.id, "<m1@shop.example>", T0 + 1)
    assert not store.claim(send.id, "<m2@shop.example>", T0 + 2)  # a second sender
    other = CampaignStore(store.url)  # another process sees the claim at once
    try:
        [seen] = other.sends("c1")
        assert (seen.status, seen.message_id, seen.attempts) == (SENDING, "<m1@shop.example>", 1)
        store.mark_sent(send.id, T0 + 5)
        [seen] = other.sends("c1")
        assert (seen.status, seen.sent_at) == (SENT, T0 + 5)
    finally:
        other.close()
    assert store.pending_due(T0 + DAY) == []
    assert campaign_exposures(store, "c1") == [("a", "discount-timing", "immediate", 1, T0 + 5)]


def test_a_mail_in_no_experiment_is_stored_but_no_exposure(store: CampaignStore) -> None:
    store.insert_sends([row("a"), row("b", exposed=False)])
    for send, _ in store.pending_due(T0):
        store.claim(send.id, f"<{send.customer_id}@x>", T0)
        store.mark_sent(send.id, T0 + 1)
    assert {send.customer_id: (send.experiment, send.variant) for send in store.sends("c1")} \
        == {"a": ("discount-timing", "immediate"), "b": (None, None)}
    assert [exposure[0] for exposure in campaign_exposures(store, "c1")] == ["a"]


def test_release_skip_and_due_times(store: CampaignStore) -> None:
    store.insert_sends([row("a"), row("b"), row("c", delay=2),
                        row("c", 2, delay=2, due=T0 + 2 * DAY)])
    due = {(send.customer_id, send.mail): first for send, first in store.pending_due(T0)}
    assert set(due) == {("a", 1), ("b", 1), ("c", 1)}  # c's second mail is not due yet
    later = {(send.customer_id, send.mail): first
             for send, first in store.pending_due(T0 + 3 * DAY)}
    assert later[("c", 2)].customer_id == "c" and later[("c", 2)].mail == 1  # its first mail
    ids = {send.customer_id: send.id for send in store.sends("c1") if send.mail == 1}
    store.claim(ids["a"], "<a@x>", T0)
    store.release(ids["a"], "421 try later", give_up=False)
    store.claim(ids["b"], "<b@x>", T0)
    store.release(ids["b"], "550 no such user", give_up=True)
    store.skip(ids["c"], "opted_out")
    states = {(send.customer_id, send.mail): (send.status, send.last_error)
              for send in store.sends("c1")}
    assert states[("a", 1)] == (PENDING, "421 try later")
    assert states[("b", 1)] == (FAILED, "550 no such user")
    assert states[("c", 1)] == (SKIPPED, "opted_out")
    assert store.status_counts(T0) == {(PENDING, True): 1, (FAILED, True): 1,
                                       (SKIPPED, True): 1, (PENDING, False): 1}


def test_a_token_finds_its_mail_and_nothing_else(store: CampaignStore) -> None:
    store.insert_sends([row("a", token="A" * 22), row("b", token="B" * 22)])
    found = store.by_token("A" * 22)
    assert found is not None and found.customer_id == "a" and found.links[0]["label"] == "shop"
    assert store.by_token("A" * 21 + "B") is None
    assert store.by_token("' OR '1'='1") is None  # parameters, never SQL text


def test_uncertain_mails_are_counted_and_requeued_only_when_asked(store: CampaignStore) -> None:
    store.insert_sends([row("a"), row("b")])
    first, second = store.sends("c1")
    store.claim(first.id, "<a@x>", T0)  # a sender died after this claim
    store.claim(second.id, "<b@x>", T0 + 20 * 60_000_000)  # another is still at work
    assert store.status_counts(T0 + DAY)[(SENDING, True)] == 2
    assert store.pending_due(T0 + DAY) == []  # never sent again on its own
    assert store.requeue_uncertain(T0 + 10 * 60_000_000) == 1
    assert [send.status for send in store.sends("c1")] == [PENDING, SENDING]


def test_recently_planned_customers_of_other_campaigns(store: CampaignStore) -> None:
    store.insert_sends([row("a", campaign="old"), row("b", campaign="c1")])
    assert store.recently_planned(T0, other_than="c1") == {"a"}
    assert store.recently_planned(T0 + 1, other_than="c1") == set()
    assert [name for name, _ in store.campaigns()] == ["c1", "old"]


def test_deleting_a_customer_removes_their_mails(store: CampaignStore) -> None:
    store.insert_sends([row("a"), row("b")])
    assert store.delete_customer("a") == 1
    assert store.planned_customers("c1") == {"b"}


# The table as the first release of the campaigns created it: no experiment, variant NOT NULL.
OLD_TABLE = """
CREATE TABLE campaign_sends (
    id {id_type}, campaign TEXT NOT NULL, customer_id TEXT NOT NULL, mail INTEGER NOT NULL,
    variant TEXT NOT NULL, discount_delay_days INTEGER NOT NULL,
    with_discount INTEGER NOT NULL, code TEXT NOT NULL, picks TEXT NOT NULL,
    links TEXT NOT NULL, token TEXT NOT NULL UNIQUE, planned_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', message_id TEXT,
    attempted_at BIGINT, sent_at BIGINT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    UNIQUE (campaign, customer_id, mail), UNIQUE (code, mail))"""
OLD_ROW = ("INSERT INTO campaign_sends (campaign, customer_id, mail, variant, "
           "discount_delay_days, with_discount, code, picks, links, token, planned_at, due_at, "
           "status, sent_at) VALUES ('old', 'a', 1, 'after-2-days', 2, 0, 'OLD-CODE', '[]', "
           "'[]', 'old-token-xxxxxxxxxxxxxx', 1, 1, 'sent', 2)")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_table_from_before_is_migrated_with_its_rows(dialect: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    if dialect == "sqlite":
        import sqlite3

        url = f"sqlite:///{tmp_path / 'events.db'}"
        with sqlite3.connect(tmp_path / "events.db") as database:
            database.execute(OLD_TABLE.format(id_type="INTEGER PRIMARY KEY AUTOINCREMENT"))
            database.execute(OLD_ROW)
    else:
        import psycopg

        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as database:
            database.execute(OLD_TABLE.format(
                id_type="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"))
            database.execute(OLD_ROW)
    store = open_campaign_store(url)
    try:
        [old] = store.sends("old")
        assert (old.id, old.experiment, old.variant, old.code, old.status, old.sent_at) == (
            1, None, "after-2-days", "OLD-CODE", SENT, 2)
        assert campaign_exposures(store, "old") == []  # hashed without the lifecycle
        assert store.insert_sends([row("b", exposed=False), row("c")]) == 2
        assert [(send.id, send.variant) for send in store.sends("c1")] == [
            (2, None), (3, "immediate")]  # ids go on after the old rows
        with pytest.raises(Exception, match="(?i)unique"):  # the constraints came along
            store.insert_sends([row("d", campaign="old", code="OLD-CODE")])
        if dialect == "sqlite":
            indexes = {name for (name,) in store._read(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                ("campaign_sends",)) if not name.startswith("sqlite_autoindex")}
            assert indexes == {"campaign_sends_due", "campaign_sends_customer"}
        store.close()
        again = open_campaign_store(url)  # a second open finds nothing to do
        assert len(again.sends("c1")) == 2 and not again._outdated()
        again.close()
    finally:
        store.close()
