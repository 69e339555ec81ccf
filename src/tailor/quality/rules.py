"""The data-quality rules: what they check, their thresholds, and the report they add up to.

Reads nothing itself: `gather_facts` asks an `EventStore` for aggregates (ingest runs,
dead-letter counts per reason, violations in stored rows, events per day, the newest
event; the stored rows' aggregates come from the lake on the batch engine instead when
`features.engine = spark`, `engine_facts.py`), and `evaluate_rules` turns those facts and the
settings into one `RuleResult` per rule. Row-level facts are counts only: no raw row ever reaches a report.

Statuses: `pass`; `warn` (a warning rule tripped, or a blocking rule saw bad rows but
stayed within its threshold); `fail` (a blocking rule is over its threshold: the gate
fails and training is blocked).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from tailor.config import Settings
from tailor.events.schema import (
    DUPLICATE_EVENT_ID, FUTURE_TIMESTAMP, IMPLAUSIBLE_TIMESTAMP, MALFORMED_ROW, MISSING_CUSTOMER_ID,
    MISSING_PRODUCT_ID, NONPOSITIVE_PRICE, UNKNOWN_PRODUCT, TimestampRules,
)
from tailor.events.store import EventStore
from tailor.urls import redact_url

PASS, WARN, FAIL = "pass", "warn", "fail"
VOLUME_ANOMALY = "volume_anomaly"
FRESHNESS = "freshness"
FIELD_SAMPLE_ROWS = 1000  # newest dead-letter rows whose (reason, field) pairs are tallied

# Row rules in report order (the brief's first); each counts dead-letter rows of its reason
# plus violations found among stored rows.
ROW_RULES: dict[str, str] = {
    MISSING_CUSTOMER_ID: "Every event is attributed to a customer (no null customer_id).",
    NONPOSITIVE_PRICE: "Prices are above 0.",
    FUTURE_TIMESTAMP: "No event timestamp is in the future.",
    IMPLAUSIBLE_TIMESTAMP: "No event timestamp is before events.min_timestamp (e.g. epoch 0).",
    MALFORMED_ROW: "Rows match the contract's columns and types.",
    UNKNOWN_PRODUCT: "Product ids are in the catalogue.",
    MISSING_PRODUCT_ID: "Product events (views, cart, purchases) name their product.",
}
DUPLICATE_DESCRIPTION = "Event ids are unique (duplicates seen at ingest are stored once)."
VOLUME_DESCRIPTION = "The newest full day's event volume is in line with the trailing median."
FRESHNESS_DESCRIPTION = "The newest event is recent."


@dataclass
class RuleResult:
    """The outcome of one rule.

    `count` is the number of offending rows (row rules) or events (volume); `value` is
    the measured figure compared with `threshold` (a share of received rows, a ratio
    to the trailing median, or hours), described by `measure`.
    """

    name: str
    description: str
    blocking: bool
    status: str
    count: int | None = None
    value: float | None = None
    threshold: float | None = None
    measure: str = ""
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {"name": self.name, "description": self.description, "blocking": self.blocking,
                "status": self.status, "count": self.count, "value": self.value,
                "threshold": self.threshold, "measure": self.measure, "details": self.details}


@dataclass
class StoreFacts:
    """Aggregates read from the event store once per gate run (counts only, no rows)."""

    store: str
    received: int
    stored: int
    duplicates: int
    rejected: dict[str, int]
    violations: dict[str, int]
    daily: pd.DataFrame  # columns date (datetime.date), events
    latest_event_time: pd.Timestamp | None
    rejections_by_field: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class EventAggregates:
    """The aggregates over stored events: from the event store, or from the lake on the
    batch engine (`tailor.quality.engine_facts`)."""

    stored: int
    violations: dict[str, int]
    daily: pd.DataFrame  # columns date (datetime.date), events
    latest_event_time: pd.Timestamp | None


def store_aggregates(store: EventStore, now: pd.Timestamp) -> EventAggregates:
    """`EventAggregates` read from the event store."""
    return EventAggregates(
        stored=int(store.count_events()),
        violations={key: int(value) for key, value in store.stored_violations(now).items()},
        daily=store.daily_counts(), latest_event_time=store.latest_event_time())


def gather_facts(store: EventStore, now: pd.Timestamp,
                 events: EventAggregates | None = None) -> StoreFacts:
    """Read every aggregate the rules need from the store (the stored events' from `events`
    when given: the lake's, on the batch engine).

    Received rows are the sum of `received` over ingest runs; a store without runs
    (rows written by other means) falls back to stored events plus dead-letter rows.
    """
    runs = store.ingest_runs()
    rejected = {reason: int(count) for reason, count in store.rejected_counts().items()}
    events = events or store_aggregates(store, now)
    stored = events.stored
    received = int(runs["received"].sum()) if len(runs) else 0
    if received <= 0:
        received = stored + sum(rejected.values())
    return StoreFacts(
        store=redact_url(store.url),
        received=received,
        stored=stored,
        duplicates=int(runs["duplicates"].sum()) if len(runs) else 0,
        rejected=rejected,
        violations=dict(events.violations),
        daily=events.daily,
        latest_event_time=events.latest_event_time,
        rejections_by_field=_rejections_by_field(store),
    )


def _rejections_by_field(store: EventStore) -> dict[str, dict[str, int]]:
    """(reason -> field -> rows) among the newest dead-letter rows; values never leave the store."""
    sample = store.rejected_rows(limit=FIELD_SAMPLE_ROWS)
    if sample.empty or not {"reason", "field"} <= set(sample.columns):
        return {}
    counts = sample.groupby(["reason", "field"], dropna=False).size()
    tally: dict[str, dict[str, int]] = {}
    for (reason, field_name), rows in counts.items():
        tally.setdefault(str(reason), {})[str(field_name)] = int(rows)
    return tally


def as_utc(moment: pd.Timestamp | dt.datetime | str) -> pd.Timestamp:
    """A timezone-aware UTC timestamp (a naive one is taken to be UTC already)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_row_rule(name: str, facts: StoreFacts, max_rate: float) -> RuleResult:
    """A blocking row rule: fails when its share of received rows exceeds `max_rate`."""
    dead_letter = facts.rejected.get(name, 0)
    in_store = facts.violations.get(name, 0)
    count = dead_letter + in_store
    rate = count / facts.received if facts.received else 0.0
    status = FAIL if rate > max_rate else (WARN if count else PASS)
    details = (f"{dead_letter} rejected at ingest, {in_store} among stored events, "
               f"of {facts.received} received rows")
    return RuleResult(name, ROW_RULES[name], True, status, count, rate, max_rate,
                      "share of received rows", details)


def check_duplicates(facts: StoreFacts, max_rate: float) -> RuleResult:
    """A warning rule: duplicates are stored once, so many only hint at a resending client."""
    rate = facts.duplicates / facts.received if facts.received else 0.0
    status = WARN if rate > max_rate else PASS
    details = (f"{facts.duplicates} duplicate event ids seen at ingest (stored once) "
               f"of {facts.received} received rows")
    return RuleResult(DUPLICATE_EVENT_ID, DUPLICATE_DESCRIPTION, False, status, facts.duplicates,
                      rate, max_rate, "share of received rows", details)


def daily_series(daily: pd.DataFrame) -> pd.Series:
    """Events per calendar day from the first to the last day with events, gaps as 0."""
    if daily.empty:
        return pd.Series(dtype="int64")
    counts = pd.Series(daily["events"].to_numpy(dtype="int64"),
                       index=pd.to_datetime(daily["date"]).dt.date).groupby(level=0).sum()
    days = pd.date_range(min(counts.index), max(counts.index), freq="D").date
    return counts.reindex(days, fill_value=0)


def newest_full_day(series: pd.Series, now: pd.Timestamp) -> dt.date | None:
    """The newest day with events that is known to be complete.

    A day is complete when it is before today (by `now`) and events exist on a later day:
    the newest event's day may be cut short (a backfill that ends mid-day, or events still
    arriving), so it never counts. A store that stopped receiving events is the
    freshness rule's concern, not this one's.
    """
    days_with_events = [day for day, events in series.items() if events > 0]
    if not days_with_events:
        return None
    cutoff = min(as_utc(now).date(), max(days_with_events))
    complete = [day for day in days_with_events if day < cutoff]
    return max(complete) if complete else None


def check_volume(facts: StoreFacts, now: pd.Timestamp, settings: Settings) -> RuleResult:
    """Blocking: the newest full day's volume within [min_ratio, max_ratio] of the trailing median.

    The newest full day is the one `newest_full_day` picks; days without events inside
    the history count as 0. Without `quality_volume_trailing_days` days of history
    before it, the rule passes with a note.
    """
    low, high = settings.quality_volume_min_ratio, settings.quality_volume_max_ratio
    result = RuleResult(VOLUME_ANOMALY, VOLUME_DESCRIPTION, True, PASS,
                        threshold=low, measure="ratio to the trailing median")
    series = daily_series(facts.daily)
    day = newest_full_day(series, now)
    if day is None:
        result.details = "not enough history: no full day of events yet"
        return result
    trailing = settings.quality_volume_trailing_days
    window = [day - dt.timedelta(days=offset) for offset in range(1, trailing + 1)]
    available = [d for d in window if d in series.index]
    result.count = int(series[day])
    if len(available) < trailing:
        result.details = (f"not enough history: {len(available)} of {trailing} days before "
                          f"{day.isoformat()}")
        return result
    median = float(series[window].median())
    if median <= 0:
        result.details = f"the trailing {trailing}-day median before {day.isoformat()} is 0"
        return result
    result.value = round(result.count / median, 4)
    result.status = PASS if low <= result.value <= high else FAIL
    result.threshold = high if result.value > high else low
    result.details = (f"{day.isoformat()}: {result.count} events vs trailing {trailing}-day "
                      f"median {median:g} (allowed {low:g}x to {high:g}x)")
    return result


def check_freshness(facts: StoreFacts, now: pd.Timestamp, settings: Settings) -> RuleResult:
    """The newest event's age in hours against `quality_freshness_max_hours`.

    Blocking only when `quality_freshness_blocking`; otherwise a stale store is a warning.
    """
    blocking = settings.quality_freshness_blocking
    limit = settings.quality_freshness_max_hours
    tripped = FAIL if blocking else WARN
    result = RuleResult(FRESHNESS, FRESHNESS_DESCRIPTION, blocking, PASS, threshold=limit,
                        measure="hours since the newest event")
    latest = facts.latest_event_time
    if latest is None:
        result.status, result.details = tripped, "the store has no events"
        return result
    latest = as_utc(latest)
    age_hours = (now - latest).total_seconds() / 3600
    result.value = round(age_hours, 3)
    result.status = tripped if age_hours > limit else PASS
    result.details = f"newest event at {latest.isoformat()}, {age_hours:.1f} h before the check"
    return result


def stored_before(daily: pd.DataFrame, earliest: pd.Timestamp) -> int:
    """Stored events on UTC days before `earliest`'s day (another writer, or rows stored
    before the plausibility window existed); by day, as the store aggregates them."""
    if daily.empty:
        return 0
    days = pd.to_datetime(daily["date"]).dt.date
    return int(daily["events"].to_numpy(dtype="int64")[(days < earliest.date()).to_numpy()].sum())


def evaluate_rules(facts: StoreFacts, now: pd.Timestamp, settings: Settings) -> list[RuleResult]:
    """Every rule, in report order: the brief's four, the other row rules, volume, freshness."""
    earliest = TimestampRules.from_settings(settings).earliest
    facts = replace(facts, violations={
        **facts.violations, IMPLAUSIBLE_TIMESTAMP: stored_before(facts.daily, earliest)})
    max_reject = settings.quality_max_reject_rate
    rules = [check_row_rule(MISSING_CUSTOMER_ID, facts, max_reject),
             check_duplicates(facts, settings.quality_max_duplicate_rate)]
    rules += [check_row_rule(name, facts, max_reject)
              for name in ROW_RULES if name != MISSING_CUSTOMER_ID]
    rules += [check_volume(facts, now, settings), check_freshness(facts, now, settings)]
    return rules


@dataclass
class QualityReport:
    """The outcome of one gate run; `passed` is False when any blocking rule failed."""

    checked_at: pd.Timestamp
    store: str
    received: int
    stored: int
    rules: list[RuleResult]
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejections_by_field: dict[str, dict[str, int]] = field(default_factory=dict)
    report_paths: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True unless a blocking rule failed."""
        return not any(rule.status == FAIL for rule in self.rules)

    @property
    def failed_rules(self) -> list[RuleResult]:
        """The blocking rules that failed."""
        return [rule for rule in self.rules if rule.status == FAIL]

    def rule(self, name: str) -> RuleResult:
        """One rule's result by name.

        Raises:
            KeyError: no rule has that name.
        """
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (the shape of the written JSON file)."""
        return {"passed": self.passed, "checked_at": self.checked_at.isoformat(),
                "store": self.store, "received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "rejected": dict(self.rejected),
                "rejections_by_field": self.rejections_by_field,
                "rules": [rule.to_dict() for rule in self.rules],
                "report_paths": dict(self.report_paths), "alerts": dict(self.alerts)}

    def summary_text(self) -> str:
        """A short table (rule, status, count, value, threshold) ending with the report path."""
        failed = [rule.name for rule in self.failed_rules]
        verdict = "PASSED" if self.passed else f"FAILED ({', '.join(failed)})"
        lines = [f"data-quality gate {verdict}: {self.stored:,} events stored, "
                 f"{self.received:,} rows received",
                 f"{'rule':<22}{'status':<8}{'count':>10}{'value':>12}{'threshold':>12}"]
        for rule in self.rules:
            lines.append(f"{rule.name:<22}{rule.status:<8}{_cell(rule.count):>10}"
                         f"{_cell(rule.value):>12}{_cell(rule.threshold):>12}")
        lines.append(f"report: {self.report_paths.get('html', 'not written')}")
        return "\n".join(lines)


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def build_report(facts: StoreFacts, now: pd.Timestamp, settings: Settings) -> QualityReport:
    """Evaluate every rule on the facts and wrap the results in a `QualityReport`."""
    return QualityReport(checked_at=now, store=facts.store, received=facts.received,
                         stored=facts.stored, rules=evaluate_rules(facts, now, settings),
                         rejected=dict(facts.rejected), duplicates=facts.duplicates,
                         rejections_by_field=facts.rejections_by_field)
