"""How a campaign did, per variant: mails planned and sent, opens, clicks, CTR, conversions.

Reads `campaign_sends` and, from the event store, the campaign customers' `email_open` and
`email_click` events (properties `campaign`, `mail`, as the collector's tracking routes write
them) and `purchase` events since the campaign was planned; the attribution window from the
discount-timing experiment's definition (`tailor.experiments.campaign_variants`). Writes
nothing. Counts only: no customer id leaves. Customers the assignment put in no experiment
(stored with no variant) are counted apart, under `no_variant`, and in the total.

Definitions (per variant):
  * `ctr`: mails clicked / mails sent (the contract's `email_ctr`); `open_rate` likewise.
  * `conversions`: customers with a purchase after their first click on a mail of the
    campaign, within `attribution_window_hours` of that click; `conversion_rate` =
    conversions / customers mailed.
Opens and clicks count once per mail, however often the pixel loads or a link is followed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.campaign_store import (FAILED, PENDING, SENDING, SENT, SKIPPED, CampaignSend,
                                          open_campaign_store)
from tailor.events.prediction_store import micros_to_datetime
from tailor.experiments.campaign_variants import (DEFAULT_ATTRIBUTION_HOURS,
                                                  load_campaign_experiment)

HOUR_MICROS = 3_600_000_000
NO_VARIANT, TOTAL = "no_variant", "total"  # not variant names: those match [a-z0-9][a-z0-9_-]*


@dataclass
class VariantFigures:
    """One variant's figures (or the campaign's total)."""

    customers: int = 0
    customers_mailed: int = 0  # with at least one mail sent
    mails_planned: int = 0
    mails_sent: int = 0
    mails_pending: int = 0
    mails_uncertain: int = 0
    mails_failed: int = 0
    mails_skipped: int = 0
    mails_opened: int = 0
    mails_clicked: int = 0
    customers_clicked: int = 0
    conversions: int = 0
    open_rate: float | None = None
    ctr: float | None = None
    conversion_rate: float | None = None

    def finish(self) -> "VariantFigures":
        self.open_rate = _share(self.mails_opened, self.mails_sent)
        self.ctr = _share(self.mails_clicked, self.mails_sent)
        self.conversion_rate = _share(self.conversions, self.customers_mailed)
        return self


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Responses:
    """What the events say about a campaign's mails."""

    opened: set[tuple[str, int]]  # (customer, mail)
    clicked: set[tuple[str, int]]
    first_click: dict[str, int]  # customer -> micros
    converted: set[str]


def campaign_status(settings: Settings, campaign: str | None = None) -> dict[str, Any]:
    """The figures of one campaign (default: the newest), per variant, for the customers in
    no experiment (`no_variant`), and in total.

    Raises:
        InputError: no campaign is planned yet, or `campaign` is not one.
    """
    from tailor.events.store import open_event_store

    open_event_store(settings.event_store_url).close()  # the events table exists
    hours, experiment_name = _attribution_hours(settings)
    store = open_campaign_store(settings.event_store_url)
    try:
        known = store.campaigns()
        if not known:
            raise InputError("no campaign planned yet: run `tailor experiment campaign plan`")
        names = [name for name, _ in known]
        campaign = campaign or names[0]
        if campaign not in names:
            raise InputError(f"campaign: no campaign {campaign!r}; planned: "
                             + ", ".join(names[:10]))
        sends = store.sends(campaign)
        started = min(send.planned_at for send in sends)
        events = store.campaign_events(campaign, started,
                                       ("email_open", "email_click", "purchase"))
    finally:
        store.close()
    responses = read_responses(campaign, events, hours)
    variants = figures_by_variant(sends, responses)
    return {"campaign": campaign, "planned_at": micros_to_datetime(started).isoformat(),
            "experiment": experiment_name, "attribution_window_hours": hours,
            "variants": {name: asdict(figures) for name, figures in sorted(variants.items())
                         if name not in (NO_VARIANT, TOTAL)},
            NO_VARIANT: asdict(variants[NO_VARIANT]), TOTAL: asdict(variants[TOTAL]),
            "campaigns": names}


def _attribution_hours(settings: Settings) -> tuple[float, str]:
    """The discount-timing experiment's attribution window, or the contract's default when
    its definition is gone."""
    try:
        experiment = load_campaign_experiment(settings)
    except InputError:
        return DEFAULT_ATTRIBUTION_HOURS, settings.experiments_campaign_experiment
    return experiment.attribution_window_hours, experiment.name


def read_responses(campaign: str, events: list[tuple[str, str, int, str | None]],
                   window_hours: float) -> Responses:
    """Opens and clicks of this campaign's mails, and the customers who bought within the
    window after their first click (events oldest first)."""
    opened, clicked = set(), set()
    first_click: dict[str, int] = {}
    purchases: dict[str, list[int]] = defaultdict(list)
    for customer, kind, moment, properties in events:
        if kind == "purchase":
            purchases[customer].append(moment)
            continue
        values = _properties(properties)
        if values.get("campaign") != campaign:
            continue
        key = (customer, int(values.get("mail") or 1))
        if kind == "email_open":
            opened.add(key)
        else:
            clicked.add(key)
            first_click.setdefault(customer, moment)
    window = int(window_hours * HOUR_MICROS)
    converted = {customer for customer, click in first_click.items()
                 if any(click < moment <= click + window for moment in purchases[customer])}
    return Responses(opened, clicked, first_click, converted)


def _properties(text: str | None) -> dict[str, Any]:
    try:
        values = json.loads(text) if text else {}
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}


def figures_by_variant(sends: list[CampaignSend], responses: Responses
                       ) -> dict[str, VariantFigures]:
    """Each variant's figures, `no_variant`'s (the customers in no experiment) and the
    `total`."""
    figures: dict[str, VariantFigures] = defaultdict(VariantFigures)
    customers: dict[str, set[str]] = defaultdict(set)
    mailed: dict[str, set[str]] = defaultdict(set)
    for send in sends:
        for name in (send.variant or NO_VARIANT, TOTAL):
            row = figures[name]
            customers[name].add(send.customer_id)
            row.mails_planned += 1
            row.mails_sent += send.status == SENT
            row.mails_pending += send.status == PENDING
            row.mails_uncertain += send.status == SENDING
            row.mails_failed += send.status == FAILED
            row.mails_skipped += send.status == SKIPPED
            if send.status == SENT:
                mailed[name].add(send.customer_id)
                key = (send.customer_id, send.mail)
                row.mails_opened += key in responses.opened or key in responses.clicked
                row.mails_clicked += key in responses.clicked
    for name, row in figures.items():
        row.customers = len(customers[name])
        row.customers_mailed = len(mailed[name])
        row.customers_clicked = len(mailed[name] & set(responses.first_click))
        row.conversions = len(mailed[name] & responses.converted)
        row.finish()
    figures.setdefault(NO_VARIANT, VariantFigures())
    figures.setdefault(TOTAL, VariantFigures())
    return dict(figures)


def status_lines(status: dict[str, Any]) -> list[str]:
    """The figures as lines for a terminal."""
    lines = [f"campaign {status['campaign']} (planned {status['planned_at']}; experiment "
             f"{status['experiment']}; conversions within "
             f"{status['attribution_window_hours']:g} h of a click)"]
    rows = [*status["variants"].items()]
    if status[NO_VARIANT]["customers"]:
        rows.append(("no variant", status[NO_VARIANT]))
    rows.append((TOTAL, status[TOTAL]))
    for name, row in rows:
        lines.append(
            f"  {name:<14} {row['customers']:>6,} customers  {row['mails_sent']:>6,}/"
            f"{row['mails_planned']:,} mails sent  {row['mails_pending']:,} pending  "
            f"opened {row['mails_opened']:,}  clicked {row['mails_clicked']:,}  CTR "
            f"{_percent(row['ctr'])}  conversions {row['conversions']:,} "
            f"({_percent(row['conversion_rate'])})"
            + (f"  uncertain {row['mails_uncertain']:,}" if row["mails_uncertain"] else ""))
    return lines


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
