"""Plan a re-engagement campaign: churn scores -> the customers at risk -> their mails.

Reads: the churn and homepage champions (through `tailor.training.jobs`: the warehouse minus
the excluded customers), the exclusion list, the discount-timing experiment's state and the
current assignment (`tailor.experiments.campaign_variants`) and `campaign_sends`. Writes: new
rows of `campaign_sends` in the event store (`tailor.events.campaign_store`; ids, experiment
and variant, code, picks, links, never an address or a name), and
`<home>/reports/campaigns/<campaign>/codes.csv` (mode 0600): the codes the shop's checkout
must accept, with their discount and validity, and no customer id.

Per customer at risk: one mail when their timing's `discount_delay_days` is 0 (picks and the
discount), else two: the picks now, and the discount that many days after the first mail
went. The timing is the variant the experiment's assignment gives the customer id; a
customer in no experiment (the holdout, outside its slice, or the experiment not running)
gets the control's timing and is stored with no variant. While the experiment is not
started every customer is planned that way, and the report's `timing` says so. Planning is
idempotent: planning a campaign id again adds only customers it does not hold yet.
`tailor.experiments.campaign_send` sends what is due.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import secrets
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from tailor.config import Settings
from tailor.errors import InputError
from tailor.events.campaign_store import CampaignSend, CampaignStore, open_campaign_store
from tailor.events.prediction_store import datetime_to_micros, micros_to_datetime
from tailor.experiments.campaign_variants import CampaignExperiment, load_campaign_experiment
from tailor.privacy.excluded_customers import exclusion_reasons

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CAMPAIGN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen
CODE_GROUPS, CODE_GROUP_LENGTH = 3, 4  # 12 symbols of 32: 60 random bits
TOKEN_BYTES = 16  # 128 random bits per mail: its tracking token
INSERT_ATTEMPTS = 3  # a taken code or token (about never) draws new ones
SHOP_LINK = "shop"


@dataclass(frozen=True)
class PlanSources:
    """Where a plan's numbers come from; the defaults read the champions (tests pass their
    own).

    Attributes:
        score: (settings, as_of) -> an object with `scores` (customer_id, churn_probability),
            `version`, `as_of` (a timestamp) and `products` (product_id, name, price).
        recommend: (settings, customer_ids, k) -> (customer_id, product_id, rank, reason
            frame; the homepage version), one batch for every customer.
    """

    score: Callable[[Settings, str | None], Any]
    recommend: Callable[[Settings, list[str], int], tuple["pd.DataFrame", str]]


def champion_sources() -> PlanSources:
    """The churn and homepage champions of the home's registry."""
    from tailor.training.jobs import recommend_for_customers, score_churn

    return PlanSources(score=score_churn, recommend=recommend_for_customers)


@dataclass
class PlanReport:
    """What one plan did; counts only (no customer id)."""

    campaign: str
    status: str  # planned | off
    reason: str = ""  # why it is off
    planned_at: str = ""
    as_of: str = ""
    churn_version: str = ""
    homepage_version: str = ""
    experiment: str = ""
    experiment_status: str = ""  # draft | running | stopped | promoted | not created
    timing: str = ""  # how the plan timed the discounts (the experiment running or not)
    selection: str = ""
    scored: int = 0
    at_risk: int = 0
    added: int = 0  # customers new to the campaign
    mails_added: int = 0
    already_planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # opted_out, deleted, recently_mailed
    variants: dict[str, int] = field(default_factory=dict)  # customers added per variant
    no_variant: int = 0  # customers added in no experiment (the control's or winner's timing)
    codes_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.status == "off":
            return f"campaign {self.campaign}: off ({self.reason})"
        skipped = ", ".join(f"{count:,} {reason.replace('_', ' ')}"
                            for reason, count in sorted(self.skipped.items()) if count)
        groups = sorted(self.variants.items()) + \
            ([("no variant", self.no_variant)] if self.no_variant else [])
        variants = ", ".join(f"{name} {count:,}" for name, count in groups)
        return (f"campaign {self.campaign}: {self.at_risk:,} of {self.scored:,} customers at "
                f"risk ({self.selection}); {self.added:,} added ({self.mails_added:,} mails"
                f"{'; customers: ' + variants if variants else ''}), {self.already_planned:,} "
                f"already planned; skipped: {skipped or 'none'}; timing: {self.timing}; "
                f"codes: {self.codes_file}")


def campaign_is_off(settings: Settings) -> str:
    """Why campaigns are off ("" when they are on)."""
    if not settings.experiments_campaign_sender:
        return "experiments.campaign_sender is empty (TAILOR_EXPERIMENTS_CAMPAIGN_SENDER)"
    return ""


def check_campaign_settings(settings: Settings) -> None:
    """The settings a campaign mail needs besides the sender.

    Raises:
        InputError: one is empty (the message names each).
    """
    missing = [name for name in ("experiments_campaign_tracking_url",
                                 "experiments_campaign_shop_url",
                                 "experiments_campaign_product_url")
               if not getattr(settings, name)]
    if missing:
        raise InputError("campaigns need " + ", ".join(
            name.replace("experiments_", "experiments.") for name in missing)
            + " (the mail's links); set them in tailor.toml [experiments]")


def default_campaign_id(now: datetime) -> str:
    """The week's campaign: `reengage-<ISO year>-w<ISO week>` (weekly runs share it)."""
    year, week, _ = now.isocalendar()
    return f"reengage-{year}-w{week:02d}"


def plan_campaign(settings: Settings, campaign: str | None = None, *, as_of: str | None = None,
                  now: datetime | None = None, sources: PlanSources | None = None
                  ) -> PlanReport:
    """Plan the week's mails to the customers most at risk of churning.

    Args:
        settings: the `[experiments]` campaign settings, `models.churn_threshold`, the home.
        campaign: the campaign id (default: this ISO week's, `default_campaign_id`).
        as_of: score churn at this ISO time (default: just after the newest event).
        now: the plan's time (tests); mails without a delay are due from it.
        sources: where scores and picks come from (default: the champions).

    Returns:
        The `PlanReport` (status "off", and nothing done, while campaigns are off).

    Raises:
        InputError: a bad campaign id, a missing setting or definition, no champion yet.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    campaign = campaign or default_campaign_id(now)
    if not CAMPAIGN_ID.match(campaign):
        raise InputError(f"campaign: {campaign!r} must be lower-case letters, digits and '-' "
                         "(at most 63), starting with a letter or digit")
    off = campaign_is_off(settings)
    if off:
        return PlanReport(campaign, "off", reason=off)
    check_campaign_settings(settings)
    experiment = load_campaign_experiment(settings)
    sources = sources or champion_sources()
    try:
        churn = sources.score(settings, as_of)
    except LookupError as error:  # no churn champion yet
        raise InputError(str(error.args[0] if error.args else error)) from None
    reasons = exclusion_reasons(settings)
    scores = churn.scores[~churn.scores["customer_id"].astype(str).isin(reasons)]
    at_risk, selection = select_at_risk(scores, settings.models_churn_threshold,
                                        settings.experiments_campaign_top_share)
    store = open_campaign_store(settings.event_store_url)
    try:
        report = _plan_into(settings, store, campaign, experiment, churn, sources,
                            at_risk, now)
        report.codes_file = str(write_codes(settings, store, campaign))
    finally:
        store.close()
    report.skipped = {**Counter(reasons.values()), **report.skipped}
    report.scored, report.selection = len(scores), selection
    report.as_of = churn.as_of.isoformat()
    report.churn_version = str(churn.version)
    log.info("%s", report.summary())
    return report


def select_at_risk(scores: "pd.DataFrame", threshold: float, top_share: float
                   ) -> tuple[list[str], str]:
    """The customers to mail, highest risk first, and the rule that chose them: above the
    churn threshold, or (top_share > 0) that share of the scored customers."""
    ordered = scores.sort_values(["churn_probability", "customer_id"],
                                 ascending=[False, True], kind="stable")
    if top_share > 0:
        count = math.ceil(top_share * len(ordered))
        return ordered["customer_id"].astype(str).head(count).tolist(), \
            f"the top {top_share:.0%} by churn probability"
    above = ordered[ordered["churn_probability"] > threshold]
    return above["customer_id"].astype(str).tolist(), f"churn probability above {threshold:.2f}"


def _plan_into(settings: Settings, store: CampaignStore, campaign: str,
               experiment: CampaignExperiment, churn: Any, sources: PlanSources,
               at_risk: list[str], now: datetime) -> PlanReport:
    """Add the customers at risk the campaign does not hold yet; returns the report's core."""
    report = PlanReport(campaign, "planned", planned_at=now.isoformat(),
                        experiment=experiment.name, experiment_status=experiment.status,
                        timing=experiment.note(), at_risk=len(at_risk))
    cooldown = settings.experiments_campaign_cooldown_days
    recent = store.recently_planned(datetime_to_micros(now - timedelta(days=cooldown)),
                                    campaign) if cooldown else set()
    for attempt in range(INSERT_ATTEMPTS):
        held = store.planned_customers(campaign)
        new = [customer for customer in at_risk if customer not in held and customer not in recent]
        report.already_planned = sum(customer in held for customer in at_risk)
        report.skipped = {"recently_mailed": sum(customer in recent and customer not in held
                                                 for customer in at_risk)}
        if not new:
            return report
        if attempt == 0:
            try:
                picks, report.homepage_version = sources.recommend(
                    settings, new, settings.experiments_campaign_picks)
            except LookupError as error:  # no homepage champion yet
                raise InputError(str(error.args[0] if error.args else error)) from None
            by_customer = picks_by_customer(picks, churn.products)
        rows, variants = plan_rows(settings, experiment, campaign, new, by_customer, now)
        try:
            report.mails_added = store.insert_sends(rows)
        except Exception as error:  # a code or token already taken, or a planner racing us
            if "unique" not in str(error).lower() or attempt == INSERT_ATTEMPTS - 1:
                raise
            log.warning("campaign %s: a code or token was taken; drawing new ones", campaign)
            continue
        report.no_variant = sum(variant is None for variant in variants)
        report.added = len(new)
        report.variants = dict(Counter(variant for variant in variants if variant is not None))
        return report
    return report


def picks_by_customer(picks: "pd.DataFrame", products: "pd.DataFrame"
                      ) -> dict[str, list[dict[str, Any]]]:
    """Each customer's picks in rank order, with the product's name and price."""
    catalogue = products.set_index(products["product_id"].astype(str))
    names = catalogue["name"].to_dict() if "name" in catalogue else {}
    prices = catalogue["price"].to_dict() if "price" in catalogue else {}
    result: dict[str, list[dict[str, Any]]] = {}
    for row in picks.sort_values(["customer_id", "rank"]).itertuples(index=False):
        product = str(row.product_id)
        name, price = names.get(product), prices.get(product)
        result.setdefault(str(row.customer_id), []).append({
            "product_id": product,
            "name": str(name) if isinstance(name, str) and name else product,
            "price": float(price) if price is not None and math.isfinite(float(price)) else None,
            "reason": str(getattr(row, "reason", "") or "")})
    return result


def plan_rows(settings: Settings, experiment: CampaignExperiment, campaign: str,
              customers: list[str], picks: dict[str, list[dict[str, Any]]], now: datetime
              ) -> tuple[list[tuple], list[str | None]]:
    """The `campaign_sends` rows of new customers (`PLAN_COLUMNS` order) and each one's
    variant (None: in no experiment)."""
    planned = datetime_to_micros(now)
    rows, variants = [], []
    for customer in customers:
        timing = experiment.timing(customer)
        variants.append(timing.variant)
        chosen = picks.get(customer, [])
        code, delay = new_code(), timing.discount_delay_days
        mails = [(1, planned, delay == 0)]
        if delay > 0:
            mails.append((2, datetime_to_micros(now + timedelta(days=delay)), True))
        for mail, due, with_discount in mails:
            rows.append((campaign, customer, mail, timing.experiment, timing.variant, delay,
                         int(with_discount), code, json.dumps(chosen),
                         json.dumps(mail_links(settings, chosen)),
                         secrets.token_urlsafe(TOKEN_BYTES), planned, due))
    return rows, variants


def mail_links(settings: Settings, picks: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every link target of a mail, in link-number order: the shop, then each pick."""
    template = settings.experiments_campaign_product_url
    return [{"label": SHOP_LINK, "url": settings.experiments_campaign_shop_url}] + [
        {"label": pick["product_id"],
         "url": template.replace("{product_id}", quote(pick["product_id"], safe=""))}
        for pick in picks]


def new_code() -> str:
    """A random discount code, e.g. `K7QX-2MZD-RW4P` (60 bits from the system's CSPRNG)."""
    symbols = "".join(secrets.choice(CODE_ALPHABET)
                      for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH))
    return "-".join(symbols[start:start + CODE_GROUP_LENGTH]
                    for start in range(0, len(symbols), CODE_GROUP_LENGTH))


def write_codes(settings: Settings, store: CampaignStore, campaign: str) -> Path:
    """`codes.csv` of a campaign, rewritten whole from the table (code, discount_percent,
    valid_from, valid_until; mode 0600: a code is worth money)."""
    folder = settings.reports_path / "campaigns" / campaign
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "codes.csv"
    temporary = folder / ".codes.csv.tmp"
    valid_days = timedelta(days=settings.experiments_campaign_discount_valid_days)
    offers: list[CampaignSend] = [send for send in store.sends(campaign) if send.with_discount]
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "discount_percent", "valid_from", "valid_until"])
        for send in sorted(offers, key=lambda item: item.code):
            valid_from = micros_to_datetime(send.due_at)
            writer.writerow([send.code, settings.experiments_campaign_discount_percent,
                             valid_from.isoformat(), (valid_from + valid_days).isoformat()])
    os.replace(temporary, path)
    return path
