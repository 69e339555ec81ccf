"""The analysis of an experiment as one self-contained HTML page with its plots, and where
it is written.

Reads an `ExperimentAnalysis` (`tailor.experiments.analysis`). Writes
`<home>/reports/experiments/<name>/<as_of, UTC, YYYY-MM-DDTHHMM>.html` and `.json`, then
`latest.html` and `latest.json` beside them (each through a temporary file renamed into
place, `tailor.pages.files.write_atomically`). The page is built like the daily report
(`tailor.reports.page`: the same style, cells with stable ids holding the exact value in
`data-value`; plots as inline SVG by `tailor.reports.plots.svg`): the verdict, the cumulative
relative lift of each metric with its interval at each daily look, the metrics per variant by
day, a table per metric, the guardrail figures and the sample-ratio check.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailor.pages import formats
from tailor.pages.charts import COLOURS, svg
from tailor.pages.files import write_atomically
from tailor.pages.markup import STYLE, cell, element_id, note, table, text_cell

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.experiments.analysis import ExperimentAnalysis, MetricResult

REPORT_FOLDER = "experiments"
MONEY_METRICS = ("revenue_per_visitor", "aov")


def report_folder(settings: Settings, name: str) -> Path:
    """`<home>/reports/experiments/<name>`."""
    return settings.reports_path / REPORT_FOLDER / name


def write_analysis_report(settings: Settings, analysis: ExperimentAnalysis) -> Path:
    """Write the page and its JSON (and the `latest` copies); returns the page's path."""
    folder = report_folder(settings, analysis.experiment)
    stamp = datetime.fromisoformat(analysis.as_of).strftime("%Y-%m-%dT%H%M")
    page, payload = render_analysis_page(analysis), json.dumps(analysis.to_dict(), indent=1)
    for stem in (stamp, "latest"):
        write_atomically(folder / f"{stem}.json", payload + "\n")
        write_atomically(folder / f"{stem}.html", page)
    return folder / f"{stamp}.html"


def _value(metric: str, value: float | None) -> str:
    if metric in MONEY_METRICS:
        return formats.money(value)
    return formats.percent(value)


def _dates(daily: list[dict[str, Any]]) -> list[datetime]:
    return sorted({datetime.fromisoformat(row["date"]) for row in daily})


def plot_lift(analysis: ExperimentAnalysis) -> str:
    """Per metric, each treatment's cumulative relative lift with its 95% interval by day."""
    from matplotlib.figure import Figure

    metrics = [result.metric for result in analysis.metrics]
    figure = Figure(figsize=(8, 2.2 * len(metrics)))
    axes_list = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    treatments = [name for name in analysis.variants if name != analysis.control]
    for axes, metric in zip(axes_list, metrics):
        for number, name in enumerate(treatments):
            rows = [row for row in analysis.daily
                    if row["variant"] == name and row.get(f"{metric}_lift")
                    and row[f"{metric}_lift"][0] is not None]
            days = [datetime.fromisoformat(row["date"]) for row in rows]
            middle, lower, upper = ([100 * row[f"{metric}_lift"][i] for row in rows]
                                    for i in range(3))
            colour = COLOURS[(number + 1) % len(COLOURS)]
            axes.plot(days, middle, marker=".", color=colour, label=name)
            axes.fill_between(days, lower, upper, color=colour, alpha=0.2)
        axes.axhline(0, color="#9e9e9e", linewidth=0.8)
        axes.set_ylabel("lift %")
        axes.set_title(f"{metric}: cumulative lift over {analysis.control} (95% interval at "
                       "each look)", fontsize=10)
        if treatments:
            axes.legend(fontsize=8)
    _date_ticks(axes_list[-1], _dates(analysis.daily))
    return svg(figure, f"{analysis.experiment}-lift")


def plot_daily(analysis: ExperimentAnalysis) -> str:
    """Conversion and revenue per visitor of each variant, cumulative by day."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.4))
    conversion, revenue = figure.subplots(2, 1, sharex=True)
    for number, name in enumerate(analysis.variants):
        rows = [row for row in analysis.daily if row["variant"] == name]
        days = [datetime.fromisoformat(row["date"]) for row in rows]
        colour = COLOURS[number % len(COLOURS)]
        conversion.plot(days, [100 * (row.get("conversion") or 0.0) for row in rows],
                        marker=".", color=colour, label=name)
        revenue.plot(days, [row.get("revenue_per_visitor") or 0.0 for row in rows],
                     marker=".", color=colour, label=name)
    conversion.set_ylabel("conversion %")
    conversion.set_title("Conversion of the units exposed so far, by day", fontsize=10)
    conversion.legend(fontsize=8)
    revenue.set_ylabel("revenue / visitor")
    revenue.set_title("Revenue per visitor of the units exposed so far, by day", fontsize=10)
    _date_ticks(revenue, _dates(analysis.daily))
    return svg(figure, f"{analysis.experiment}-daily")


def _date_ticks(axes: Any, days: list[datetime]) -> None:
    """Whole days as ticks (at most about eight), half a day of margin on each side."""
    from datetime import timedelta

    from matplotlib.dates import DateFormatter, DayLocator

    if days:
        span = (max(days) - min(days)).days + 1
        axes.xaxis.set_major_locator(DayLocator(interval=max(1, -(-span // 8))))
        axes.set_xlim(min(days) - timedelta(hours=12), max(days) + timedelta(hours=12))
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d"))


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    return f"[{100 * low:+.1f}%, {100 * high:+.1f}%]"


def metric_section(analysis: ExperimentAnalysis, result: MetricResult) -> str:
    """A table of one metric: a row per variant (the control first)."""
    heading = (f'<h3 id="{element_id("metric", result.metric)}">{html.escape(result.metric)} '
               f"({html.escape(result.role)}, {html.escape(result.kind)}"
               f"{'' if result.higher_is_better else ', lower is better'})</h3>\n")
    if result.analysis is None:
        return heading + note(f"not analysed: {result.problem}")
    rows = []
    for row in result.analysis.variants:
        parts = [text_cell(row.variant),
                 cell(element_id(result.metric, row.variant, "units"), row.units,
                      formats.count(row.units)),
                 cell(element_id(result.metric, row.variant, "value"), row.value,
                      _value(result.metric, row.value))]
        lift = row.lift
        if lift is None:
            parts += [text_cell("control", "text")] + ["<td></td>"] * 6
        else:
            sequential = row.sequential.p_value if row.sequential else None
            cuped = row.cuped.lift.relative if row.cuped else None
            parts += [
                cell(element_id(result.metric, row.variant, "lift"), lift.relative,
                     "–" if lift.relative is None else f"{100 * lift.relative:+.2f}%"),
                text_cell(_interval(lift.relative_lower, lift.relative_upper)),
                cell(element_id(result.metric, row.variant, "p"), lift.p_value,
                     f"{lift.p_value:.3g}"),
                cell(element_id(result.metric, row.variant, "sequential-p"), sequential,
                     "–" if sequential is None else f"{sequential:.3g}"),
                cell(element_id(result.metric, row.variant, "adjusted-p"),
                     result.adjusted_p_values.get(row.variant),
                     f"{result.adjusted_p_values.get(row.variant, float('nan')):.3g}"),
                cell(element_id(result.metric, row.variant, "beat"),
                     row.probability_to_beat_control,
                     formats.percent(row.probability_to_beat_control, 1)),
                cell(element_id(result.metric, row.variant, "cuped"), cuped,
                     "–" if cuped is None else f"{100 * cuped:+.2f}%")]
        parts.append(text_cell(", ".join(row.flags)))
        rows.append("".join(parts))
    return heading + table(element_id("metric-table", result.metric), [
        "variant", "units", "value", "relative lift", "95% interval", "p", "sequential p",
        "adjusted p", "P(beats control)", "CUPED lift", "flags"], rows)


def guardrail_section(analysis: ExperimentAnalysis) -> str:
    rows = []
    for name, figures in analysis.guardrails.items():
        rows.append(text_cell(name)
                    + cell(element_id("guard", name, "answers"), figures.answers,
                           formats.count(figures.answers))
                    + cell(element_id("guard", name, "fallback"), figures.fallback_rate,
                           formats.percent(figures.fallback_rate))
                    + cell(element_id("guard", name, "bounce"), figures.bounce_rate,
                           formats.percent(figures.bounce_rate))
                    + cell(element_id("guard", name, "latency"), figures.latency_p99_ms,
                           "not logged" if figures.latency_p99_ms is None
                           else f"{figures.latency_p99_ms:.0f} ms")
                    + text_cell("; ".join(analysis.guardrail_breaches.get(name, [])) or
                                ("control" if name == analysis.control else "none")))
    srm = analysis.srm
    return ("<h2>Guardrails and the split</h2>\n"
            + table("guardrails", ["variant", "exposures", "fallback rate", "bounce rate",
                                   "latency p99", "breaches"], rows)
            + note(f"Sample-ratio check: p = {srm['p_value']:.3g} (flagged below "
                   f"{srm['threshold']:g}); units {srm['observed']}."))


def render_analysis_page(analysis: ExperimentAnalysis) -> str:
    """The whole page (no script, nothing loaded from elsewhere)."""
    verdict = analysis.verdict
    css = "ok" if verdict.decision == "winner" else "flag" if verdict.decision == "srm" \
        else "changed"
    title = f"Experiment {analysis.experiment}: analysis as of {analysis.as_of}"
    summary = (f'<p>Verdict: <span id="verdict" class="{css}" data-value="{verdict.decision}">'
               f"{html.escape(verdict.decision.replace('_', ' '))}"
               f"{'' if not verdict.winner else ' – ' + html.escape(verdict.winner)}</span></p>\n"
               + "".join(f"<p>{html.escape(reason)}</p>" for reason in verdict.reasons)
               + note(f"{analysis.surface} experiment, {analysis.status}, started "
                      f"{analysis.started_at or '–'} (day {analysis.days_running or 0:g}); "
                      f"control {analysis.control}; attribution window "
                      f"{analysis.window_hours:g} h; pre-period {analysis.pre_period_days:g} "
                      "days; units: " + ", ".join(f"{name} {count:,}" for name, count
                                                  in analysis.units.items()) + "."))
    sections = [f"<h1>{html.escape(title)}</h1>", summary,
                "<h2>Lift over time</h2>", plot_lift(analysis),
                "<h2>By day</h2>", plot_daily(analysis), "<h2>Metrics</h2>"]
    sections += [metric_section(analysis, result) for result in analysis.metrics]
    sections.append(guardrail_section(analysis))
    sections += ["<h2>Notes</h2>"] + [note(text) for text in analysis.notes]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")
