"""Planning a campaign from churn scores and picks (stand-ins: `campaign_homes.FakeSources`):
who is chosen, who is skipped and counted, the variant's mails and their timing, the codes,
one batch of picks, and re-planning that adds nobody twice; before the experiment starts,
everyone gets the control's timing and no variant (and the report says so); each stored
variant is the one the server's assigner gives the customer id (holdout included)."""

from __future__ import annotations

import csv
import re
import stat
from datetime import datetime, timedelta, timezone

import pytest

from campaign_homes import (CUSTOMERS, PRODUCT_URL, SHOP_URL, Customer, FakeSources, at_risk,
                            campaign_settings, store_pii)
from smtp_servers import SmtpServer
from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.campaign_store import open_campaign_store
from tailor.events.prediction_store import datetime_to_micros
from tailor.experiments.campaign_variants import load_campaign_experiment
from tailor.experiments.campaigns import default_campaign_id, plan_campaign
from tailor.serving.experiment_watcher import ExperimentWatcher

NOW = datetime(2026, 3, 2, 4, 45, tzinfo=timezone.utc)  # a Monday, the weekly plan's time
CODE = re.compile(r"^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$")


def sends_of(settings: Settings, campaign: str):
    store = open_campaign_store(settings.event_store_url)
    try:
        return store.sends(campaign)
    finally:
        store.close()


def exclude(settings: Settings, rows: list[tuple[str, str]]) -> None:
    path = settings.home_path / "privacy" / "excluded_customers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "reason", "recorded_at"])
        writer.writerows([(customer, reason, "2026-03-01T00:00:00Z") for customer, reason in rows])


def test_customers_above_the_threshold_get_their_variants_mails(settings: Settings,
                                                                sources: FakeSources) -> None:
    report = plan_campaign(settings, now=NOW, sources=sources.sources())
    expected = at_risk(settings.models_churn_threshold)
    assert report.campaign == default_campaign_id(NOW) == "reengage-2026-w10"
    assert (report.status, report.scored, report.at_risk, report.added) == (
        "planned", len(CUSTOMERS), len(expected), len(expected))
    assert (report.churn_version, report.homepage_version) == ("7", "3")
    sends = sends_of(settings, report.campaign)
    assert sorted({send.customer_id for send in sends}) == sorted(expected)
    experiment = load_campaign_experiment(settings)
    for customer in expected:
        mails = [send for send in sends if send.customer_id == customer]
        timing = experiment.timing(customer)
        assert {(send.experiment, send.variant) for send in mails} == {
            ("discount-timing", timing.variant)}
        if timing.discount_delay_days == 0:  # one mail, the discount in it, due now
            [mail] = mails
            assert mail.with_discount and mail.due_at == datetime_to_micros(NOW)
        else:  # the picks now, the discount two days later, the same code in both
            first, second = sorted(mails, key=lambda send: send.mail)
            assert (first.with_discount, second.with_discount) == (False, True)
            assert first.due_at == datetime_to_micros(NOW)
            assert second.due_at == datetime_to_micros(NOW + timedelta(days=2))
            assert first.code == second.code and first.token != second.token
    assert sum(report.variants.values()) == len(expected) and report.no_variant == 0
    assert report.experiment_status == "running" and "discount-timing running" in report.timing
    assert report.mails_added == len(sends)
    assert {send.status for send in sends} == {"pending"}


def test_picks_come_from_one_batch_and_links_from_the_settings(settings: Settings,
                                                               sources: FakeSources) -> None:
    report = plan_campaign(settings, now=NOW, sources=sources.sources())
    assert sources.calls == [at_risk()]  # one batch of every new customer, not one per customer
    k = settings.experiments_campaign_picks
    for send in sends_of(settings, report.campaign):
        picks = [pick["product_id"] for pick in send.picks]
        assert picks == sources.expected_picks(send.customer_id, k)
        assert send.picks[0]["name"] and send.picks[0]["reason"].startswith("popular")
        assert send.links == [{"label": "shop", "url": SHOP_URL}] + [
            {"label": product, "url": PRODUCT_URL.replace("{product_id}", product)}
            for product in picks]


def test_codes_are_random_unique_and_listed_for_the_shop_without_customers(
        settings: Settings, sources: FakeSources) -> None:
    report = plan_campaign(settings, now=NOW, sources=sources.sources())
    sends = sends_of(settings, report.campaign)
    codes = {send.customer_id: send.code for send in sends}
    assert all(CODE.match(code) for code in codes.values())
    assert len(set(codes.values())) == len(codes)  # one code per customer, none shared
    assert len({send.token for send in sends}) == len(sends) and all(
        len(send.token) >= 22 for send in sends)
    path = settings.reports_path / "campaigns" / report.campaign / "codes.csv"
    assert report.codes_file == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert sorted(row["code"] for row in rows) == sorted(codes.values())
    assert set(rows[0]) == {"code", "discount_percent", "valid_from", "valid_until"}
    assert not any(customer in path.read_text() for customer in codes)
    again = plan_campaign(settings, "round-b", now=NOW, sources=sources.sources())
    assert again.added == 0  # everyone was planned a moment ago (cool-down)


def test_planning_again_adds_nobody_twice(settings: Settings, sources: FakeSources) -> None:
    first = plan_campaign(settings, "spring", now=NOW, sources=sources.sources())
    before = sends_of(settings, "spring")
    again = plan_campaign(settings, "spring", now=NOW + timedelta(hours=1),
                          sources=sources.sources())
    assert (again.added, again.mails_added, again.already_planned) == (0, 0, first.added)
    assert sends_of(settings, "spring") == before  # same rows, codes and tokens
    assert len(sources.calls) == 1  # nothing new: no picks asked for
    newcomer = FakeSources(customers=CUSTOMERS[:-1] + (
        CUSTOMERS[-1].__class__("cust-99", 0.99, "late@mailbox.example", "Late Comer"),))
    third = plan_campaign(settings, "spring", now=NOW + timedelta(hours=2),
                          sources=newcomer.sources())
    assert third.added == 1 and newcomer.calls == [["cust-99"]]


def test_opted_out_and_deleted_customers_are_skipped_and_counted(settings: Settings,
                                                                 sources: FakeSources) -> None:
    exclude(settings, [("cust-01", "opted_out"), ("cust-02", "deleted"),
                       ("cust-09", "opted_out")])
    report = plan_campaign(settings, now=NOW, sources=sources.sources())
    planned = {send.customer_id for send in sends_of(settings, report.campaign)}
    assert planned == set(at_risk()) - {"cust-01", "cust-02"}
    assert report.skipped == {"opted_out": 2, "deleted": 1, "recently_mailed": 0}
    assert report.scored == len(CUSTOMERS) - 3


def test_the_cool_down_skips_customers_of_a_recent_campaign(settings: Settings,
                                                            sources: FakeSources) -> None:
    plan_campaign(settings, "week-1", now=NOW, sources=sources.sources())
    next_week = plan_campaign(settings, "week-2", now=NOW + timedelta(days=7),
                              sources=sources.sources())
    assert next_week.added == 0 and next_week.skipped["recently_mailed"] == len(at_risk())
    later = plan_campaign(settings, "week-5", now=NOW + timedelta(days=29),
                          sources=sources.sources())
    assert later.added == len(at_risk())


def test_a_top_share_replaces_the_threshold(settings: Settings, sources: FakeSources) -> None:
    report = plan_campaign(settings.replace(experiments_campaign_top_share=0.3), now=NOW,
                           sources=sources.sources())
    assert report.at_risk == 3 and "top 30%" in report.selection
    assert {send.customer_id for send in sends_of(settings, report.campaign)} == {
        "cust-01", "cust-02", "cust-03"}  # the three highest probabilities


def test_off_without_a_sender_and_bad_input_named(settings: Settings,
                                                  sources: FakeSources) -> None:
    off = plan_campaign(settings.replace(experiments_campaign_sender=""), now=NOW,
                        sources=sources.sources())
    assert off.status == "off" and "campaign_sender" in off.reason and sources.calls == []
    with pytest.raises(InputError, match="experiments.campaign_tracking_url"):
        plan_campaign(settings.replace(experiments_campaign_tracking_url=""), now=NOW,
                      sources=sources.sources())
    with pytest.raises(InputError, match="campaign: 'Spring Sale'"):
        plan_campaign(settings, "Spring Sale", now=NOW, sources=sources.sources())

    def no_champion(settings, as_of):
        raise LookupError("tailor-churn has no champion: run `tailor train` first")

    with pytest.raises(InputError, match="tailor train"):
        plan_campaign(settings, now=NOW, sources=sources.sources().__class__(
            score=no_champion, recommend=sources.recommend))


def test_before_the_experiment_starts_everyone_gets_the_control_timing_and_no_variant(
        tailor_home, smtp: SmtpServer, sources: FakeSources) -> None:
    settings = campaign_settings(tailor_home, smtp.port, started=False)
    store_pii(settings)
    report = plan_campaign(settings, now=NOW, sources=sources.sources())
    assert report.added == len(at_risk()) == report.no_variant and report.variants == {}
    assert report.experiment_status == "not created"
    assert "never started" in report.timing and "control's timing (immediate" in report.timing
    assert "timing: discount-timing was never started" in report.summary()
    sends = sends_of(settings, report.campaign)
    assert len(sends) == report.added  # the control's timing: one mail, the discount in it
    assert all((send.experiment, send.variant, send.mail, send.with_discount)
               == (None, None, 1, True) for send in sends)


def test_each_customers_variant_is_the_servers_for_the_same_id(
        settings: Settings, smtp: SmtpServer) -> None:
    many = tuple(Customer(f"cust-{number:03d}", 0.9, f"p{number}@mailbox.example", None)
                 for number in range(120))
    sources = FakeSources(customers=many)
    with_holdout = settings.replace(experiments_holdout_share=0.25)
    report = plan_campaign(with_holdout, now=NOW, sources=sources.sources())
    watcher = ExperimentWatcher(with_holdout, {}, new_slot=None)  # type: ignore[arg-type]
    watcher.refresh()
    try:
        served = {item.customer_id: watcher.assign("campaign", item.customer_id)
                  for item in many}
    finally:
        watcher.stop()
    held = sum(answer is None for answer in served.values())
    assert 0 < held < len(many) and report.no_variant == held
    assert sum(report.variants.values()) == len(many) - held
    for send in sends_of(settings, report.campaign):
        answer = served[send.customer_id]
        assert (send.experiment, send.variant) == (
            (answer.experiment, answer.variant) if answer else (None, None))
        assert send.discount_delay_days == (
            answer.changes.discount_delay_days if answer else 0)
