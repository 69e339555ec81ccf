"""Renders a quality report as JSON and as an HTML page with plots, and writes both.

Reads: a `QualityReport` and the `StoreFacts` behind it (counts only).
Writes: `<reports>/quality/<timestamp>.json` and `.html`, then copies them to
`latest.json` / `latest.html`. Plots are drawn with matplotlib's Agg backend (no
display needed) and embedded as base64 PNG, so the HTML is one self-contained file.
No raw rows are rendered: reasons, fields and counts only (rejected rows may hold PII).
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tailor.config import Settings
from tailor.quality.rules import (
    ROW_RULES, QualityReport, RuleResult, StoreFacts, daily_series, newest_full_day,
)

STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}


def figure_to_base64(figure: Figure) -> str:
    """A matplotlib figure as base64-encoded PNG text."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_rejections(report: QualityReport) -> Figure:
    """Bar chart of offending rows per row rule, failing rules in red."""
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    rules = [report.rule(name) for name in ROW_RULES]
    counts = [rule.count or 0 for rule in rules]
    colours = [STATUS_COLOURS[rule.status] for rule in rules]
    bars = axes.barh([rule.name for rule in rules], counts, color=colours)
    axes.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=3, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("rows (rejected at ingest + found in the store)")
    axes.set_title("Rejected rows by reason")
    axes.margins(x=0.15)
    return figure


def plot_volume(facts: StoreFacts, report: QualityReport, settings: Settings) -> Figure:
    """Daily events with the trailing median and the allowed band around it."""
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    series = daily_series(facts.daily)
    if series.empty:
        axes.text(0.5, 0.5, "no events yet", ha="center", va="center", transform=axes.transAxes)
        return figure
    days = pd.to_datetime(pd.Series(series.index))
    trailing = settings.quality_volume_trailing_days
    median = series.rolling(trailing, min_periods=trailing).median().shift(1)
    axes.fill_between(days, median * settings.quality_volume_min_ratio,
                      median * settings.quality_volume_max_ratio, color="#90caf9", alpha=0.4,
                      label="allowed band")
    axes.plot(days, median.to_numpy(), color="#1565c0", linestyle="--", linewidth=1,
              label=f"trailing {trailing}-day median")
    axes.plot(days, series.to_numpy(), color="#212121", marker=".", linewidth=1, label="events")
    checked = newest_full_day(series, report.checked_at)
    if checked is not None:
        colour = STATUS_COLOURS[report.rule("volume_anomaly").status]
        axes.scatter([pd.Timestamp(checked)], [series[checked]], color=colour, zorder=3, s=40,
                     label="checked day")
    # The band's top (max_ratio x median) would flatten the line; keep the data in view.
    highest = max(float(series.max()), float(median.fillna(0).max()))
    axes.set_ylim(0, highest * 1.4 if highest > 0 else 1)
    axes.set_title("Events per day (UTC)")
    axes.legend(fontsize=7, loc="upper left")
    figure.autofmt_xdate()
    return figure


def render_html(report: QualityReport, facts: StoreFacts, settings: Settings) -> str:
    """The self-contained HTML page: verdict, rule table, the two plots, field breakdown."""
    verdict = "passed" if report.passed else "FAILED"
    rows = "\n".join(_rule_row(rule) for rule in report.rules)
    rejections = _img(figure_to_base64(plot_rejections(report)), "Rejected rows by reason")
    volume = _img(figure_to_base64(plot_volume(facts, report, settings)), "Events per day")
    return _PAGE.format(
        verdict=verdict, colour=STATUS_COLOURS["pass" if report.passed else "fail"],
        checked_at=html.escape(report.checked_at.isoformat()), store=html.escape(report.store),
        received=f"{report.received:,}", stored=f"{report.stored:,}",
        duplicates=f"{report.duplicates:,}", rows=rows, rejections=rejections, volume=volume,
        fields=_field_table(report.rejections_by_field))


def _rule_row(rule: RuleResult) -> str:
    cells = [rule.name, rule.status, "blocking" if rule.blocking else "warning",
             "-" if rule.count is None else f"{rule.count:,}",
             "-" if rule.value is None else f"{rule.value:.4g}",
             "-" if rule.threshold is None else f"{rule.threshold:.4g}", rule.measure,
             rule.details]
    style = f' style="color:{STATUS_COLOURS[rule.status]};font-weight:bold"'
    tds = "".join(f"<td{style if index == 1 else ''}>{html.escape(str(cell))}</td>"
                  for index, cell in enumerate(cells))
    return f'<tr title="{html.escape(rule.description)}">{tds}</tr>'


def _img(png_base64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">'


def _field_table(by_field: dict[str, dict[str, int]]) -> str:
    if not by_field:
        return "<p>No rejected rows.</p>"
    rows = "".join(f"<tr><td>{html.escape(reason)}</td><td>{html.escape(name)}</td>"
                   f"<td>{count:,}</td></tr>"
                   for reason, fields in sorted(by_field.items())
                   for name, count in sorted(fields.items(), key=lambda item: -item[1]))
    return ("<table><tr><th>reason</th><th>field</th><th>rows</th></tr>" + rows + "</table>")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tailor data-quality report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #212121; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; font-size: 14px; text-align: left; }}
th {{ background: #f5f5f5; }}
</style></head><body>
<h1>Data-quality gate: <span style="color:{colour}">{verdict}</span></h1>
<p>Checked at {checked_at} on {store}: {stored} events stored, {received} rows received,
{duplicates} duplicate event ids seen at ingest.</p>
<table><tr><th>rule</th><th>status</th><th>kind</th><th>count</th><th>value</th>
<th>threshold</th><th>measure</th><th>details</th></tr>
{rows}
</table>
<h2>Rejected rows</h2>
{rejections}
<h3>Fields of the newest rejected rows</h3>
{fields}
<h2>Volume</h2>
{volume}
</body></html>
"""


def write_report_files(report: QualityReport, facts: StoreFacts, settings: Settings) -> None:
    """Write `<reports>/quality/<timestamp>.json|html` and `latest.*` to the paths already in
    `report.report_paths` (see `plan_report_paths`)."""
    paths = report.report_paths
    Path(paths["json"]).parent.mkdir(parents=True, exist_ok=True)
    Path(paths["html"]).write_text(render_html(report, facts, settings), encoding="utf-8")
    Path(paths["json"]).write_text(json.dumps(report.to_dict(), indent=2, default=str),
                                   encoding="utf-8")
    shutil.copyfile(paths["html"], paths["latest_html"])
    shutil.copyfile(paths["json"], paths["latest_json"])


def plan_report_paths(settings: Settings) -> dict[str, str]:
    """Fresh file paths for this run (wall-clock stamp to the microsecond) and the latest copies."""
    folder = settings.reports_path / "quality"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return {"json": str(folder / f"{stamp}.json"), "html": str(folder / f"{stamp}.html"),
            "latest_json": str(folder / "latest.json"), "latest_html": str(folder / "latest.html")}
