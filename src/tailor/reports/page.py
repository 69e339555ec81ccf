"""The daily report as one self-contained HTML page (the file under `reports/daily/`, the
mail's attachment and what `/dashboard` serves).

Reads a `DailyReport`; writes nothing. The page loads nothing: no script, no external style
sheet or font, the plots inline SVG. Every number in a table sits in a cell with a stable id
(`shop-2026-03-01-conversion`, `variant-homepage-champion-revenue`, `accuracy-churn-current`,
`latency-homepage-p95`, ...) holding the exact value in `data-value` and the rounded one as
its text, so a browser test (or a scraper) can read the figures back.
"""

from __future__ import annotations

import html
from typing import Any, Callable, Sequence

from tailor.pages import formats
from tailor.pages.markup import STYLE, cell, element_id, exact, note, table, text_cell
from tailor.reports.daily import DailyReport
from tailor.reports.plots import plot_accuracy, plot_serving, plot_shop, plot_variants
from tailor.reports.server_metrics import EndpointServing

# (field, header, formatter) of the shop's figures, by day and by variant
SHOP_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("sessions", "sessions", formats.count),
    ("converted_sessions", "with a purchase", formats.count),
    ("conversion", "conversion", formats.percent),
    ("orders", "orders", formats.count),
    ("revenue", "revenue", formats.money),
    ("aov", "AOV", formats.money),
)


def summary_cards(report: DailyReport) -> str:
    """The report day's key figures with their change against the day before."""
    today, before = report.today, report.previous
    cards = []
    for field, label, formatter in SHOP_FIELDS:
        value = getattr(today, field)
        earlier = getattr(before, field) if before is not None else None
        cards.append(
            f'<div class="card"><span class="label">{html.escape(label)}</span>'
            f'<span class="value" id="day-{field}" data-value="{html.escape(exact(value))}">'
            f"{html.escape(formatter(value))}</span>"
            f'<span class="change">{html.escape(formats.change(value, earlier))} on the day '
            "before</span></div>")
    return f'<div class="cards" id="summary">{"".join(cards)}</div>'


def field_cells(row: Any, fields: Sequence[tuple[str, str, Callable[[Any], str]]],
                *id_parts: object) -> str:
    """One row's cells of `fields` (name, header, formatter), with ids `<id_parts>-<name>`."""
    return "".join(cell(element_id(*id_parts, name), getattr(row, name),
                        formatter(getattr(row, name))) for name, _, formatter in fields)


def headers(fields: Sequence[tuple[str, str, Callable[[Any], str]]]) -> list[str]:
    return [header for _, header, _ in fields]


def shop_section(report: DailyReport) -> str:
    rows = (text_cell(row.day.isoformat()) + field_cells(row, SHOP_FIELDS, "shop", row.day)
            for row in reversed(report.shop.days))
    return ("<h2>The shop by day</h2>\n" + plot_shop(report.shop.days) + "\n"
            + table("shop-by-day", ["day (UTC)", *headers(SHOP_FIELDS)], rows)
            + note("Sessions are counted on the day they started; conversion is sessions with "
                   "a purchase over sessions; orders, revenue and AOV on the day the order was "
                   "placed (warehouse tables sessions and orders)."))


def variants_section(report: DailyReport) -> str:
    heading = "<h2>By variant</h2>\n"
    if report.shop.variants is None:
        return heading + note(report.shop.note)
    rows = [text_cell(row.model) + text_cell(row.variant or "(none)")
            + field_cells(row, SHOP_FIELDS, "variant", row.model, row.variant)
            for row in report.variants_today()]
    return (heading + table("by-variant", ["model", "variant", *headers(SHOP_FIELDS)], rows)
            + ("" if rows else note(f"No session on {report.day} was served a logged answer."))
            + (plot_variants(report.shop.variants) if report.shop.variants else "")
            + note(f"{report.day} (UTC). A session's variant for a model is the variant of the "
                   "first answer of that model it was served (prediction log, matched by "
                   "session id, else by customer and time); its orders are those placed in it. "
                   "A session served several models counts once for each."))


# Decisions after which someone should look (red), and those that moved an alias (orange).
ALARMING = frozenset({"escalated", "retrain_blocked", "would_retrain", "failed"})
CHANGED = frozenset({"promoted", "rolled_back", "experiment_started", "experiment_running"})


def models_section(report: DailyReport) -> str:
    rows = []
    for status in report.models:
        flag = "flag" if status.decision in ALARMING else (
            "changed" if status.decision in CHANGED else "ok")
        rows.append(
            text_cell(status.model) + text_cell(f"v{status.champion_version}"
                                                if status.champion_version else formats.DASH)
            + text_cell(status.metric or formats.DASH)
            + cell(element_id("accuracy", status.model, "baseline"), status.baseline,
                   formats.metric(status.baseline))
            + cell(element_id("accuracy", status.model, "current"), status.current,
                   formats.metric(status.current))
            + cell(element_id("accuracy", status.model, "drop"), status.drop,
                   formats.DASH if status.drop is None else f"{-100 * status.drop:+.1f}%")
            + cell(element_id("accuracy", status.model, "z"), status.z,
                   formats.DASH if status.z is None else f"{status.z:.2f}")
            + cell(element_id("accuracy", status.model, "served"), status.served,
                   formats.metric(status.served) + (f" ({status.served_answers:,} answers)"
                                                    if status.served_answers else ""))
            + text_cell(status.decision or "no round", flag if status.decision else "text")
            + text_cell(status.decided_at or formats.DASH) + text_cell(status.reason))
    return ("<h2>Models against their baselines</h2>\n"
            + table("accuracy", ["model", "champion", "metric", "baseline", "now", "change",
                                 "std. errors below", "as served", "decision", "decided at",
                                 "reason"], rows)
            + (plot_accuracy(report.accuracy, report.max_drop) if report.accuracy else "")
            + note(f"The newest monitoring round of each model decided by "
                   f"{report.decisions_cutoff.isoformat()} (`tailor monitor`, table "
                   "monitoring_decisions): the champion's primary metric on the newest window "
                   f"against its holdout baseline; a drop past {report.max_drop:.0%} that is "
                   "also beyond sampling noise (standard errors below the baseline, "
                   "monitoring.significance) alerts. \"As served\": the same metric of the "
                   "answers the server gave, once their labels matured (prediction log)."))


def drift_section(report: DailyReport) -> str:
    rows = []
    for status in report.models:
        for flag in status.drift:
            shown = ", ".join(flag.drifted[:8]) + (" …" if len(flag.drifted) > 8 else "")
            rows.append(
                text_cell(status.model) + text_cell(flag.dataset)
                + cell(element_id("drift", status.model, flag.dataset), len(flag.drifted),
                       f"{len(flag.drifted)}/{flag.columns}")
                + text_cell("drift" if flag.flagged else "none",
                            "flag" if flag.flagged else "ok")
                + text_cell(shown or formats.DASH) + text_cell(flag.html or formats.DASH))
    return ("<h2>Drift</h2>\n"
            + (table("drift-flags", ["model", "compared", "columns drifted", "flag",
                                     "columns", "Evidently report"], rows)
               if rows else note("No drift report in the newest rounds."))
            + note("Evidently's per-column tests in the newest round of each model: profile = "
                   "the shoppers' behaviour, scored = the model's inputs and outputs, against "
                   "the version's reference (`evidently ui --workspace <home>/evidently`)."))


ANSWER_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("answers", "answers", formats.count),
    ("fallbacks", "fallbacks", formats.count),
    ("fallback_rate", "fallback rate", formats.percent),
    ("stale", "stale features", formats.count),
)
RATE_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("fallback_rate", "fallback rate", formats.percent),
    ("error_rate", "error rate", formats.percent),
)
PERCENTILES = ("p50", "p95", "p99")


def latency_row(row: EndpointServing) -> str:
    """One endpoint's requests, percentiles (`≥` past the top bucket), rates and reasons."""
    percentiles = "".join(
        cell(element_id("latency", row.endpoint, name), getattr(row, name),
             ("≥ " if name in row.beyond_buckets else "")
             + formats.milliseconds(getattr(row, name))) for name in PERCENTILES)
    reasons = ", ".join(f"{reason} {value:,.0f}" for reason, value in row.fallback_reasons.items())
    return (text_cell(row.endpoint)
            + cell(element_id("latency", row.endpoint, "requests"), row.requests,
                   formats.count(row.requests))
            + percentiles + field_cells(row, RATE_FIELDS, "latency", row.endpoint)
            + text_cell(reasons or formats.DASH))


def serving_section(report: DailyReport) -> str:
    server = report.server
    log_part = (note(report.shop.note) if report.shop.answers is None else
                table("answers", ["endpoint", *headers(ANSWER_FIELDS)],
                      [text_cell(row.endpoint) + field_cells(row, ANSWER_FIELDS, "answers",
                                                             row.endpoint)
                       for row in report.answers_today()])
                + note(f"{report.day} (UTC), from the prediction log in the warehouse."))
    server_part = (table("latency", ["endpoint", "requests", *PERCENTILES,
                                     *headers(RATE_FIELDS), "fallbacks by reason"],
                         [latency_row(row) for row in server.endpoints])
                   if server.status == "read" else "")
    measured = report.shop.answers or any(row.p50 is not None for row in server.endpoints)
    return ("<h2>Serving</h2>\n<h3>Answers served (prediction log)</h3>\n" + log_part
            + "<h3>Latency and errors (the server's metrics)</h3>\n" + server_part
            + note(f"{server.status}: {server.url} — {server.note}. Latency is the time a "
                   "request spent in the serving pipeline (tailor_request_seconds, percentiles "
                   "estimated inside its buckets); errors are unexpected pipeline errors plus "
                   "5xx answers of the endpoint's routes.")
            + (plot_serving(report.shop.answers, server.endpoints) if measured else ""))


def render_page(report: DailyReport) -> str:
    """The whole page."""
    title = f"Tailor daily report {report.day.isoformat()}"
    sections = [summary_cards(report), shop_section(report), variants_section(report),
                models_section(report), drift_section(report), serving_section(report)]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)} (UTC)</h1>\n"
            + note(f"{report.first_day} to {report.day}; built {report.built_at.isoformat()}. "
                   "Figures only: no customer appears in this report.")
            + "\n" + "\n".join(f"<section>{section}</section>" for section in sections)
            + "\n</body></html>\n")
