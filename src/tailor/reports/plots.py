"""The daily report's plots, drawn with matplotlib as SVG text to put inline in the page.

Reads the report's figures; writes nothing. matplotlib is imported inside the functions (the
serving app and the CLI import this package's light modules without it). Text stays text in
the SVG (`svg.fonttype = none`) and each plot gets its own id salt, so several plots share
one page without clashing ids, and the same figures draw the same bytes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Sequence

from tailor.pages.charts import COLOURS, svg
from tailor.reports.model_figures import AccuracyPoint
from tailor.reports.server_metrics import EndpointServing
from tailor.reports.shop_figures import AnswersDay, ShopDay, VariantDay


def _figure(rows: int = 1, height: float = 3.0) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height * rows))
    axes = figure.subplots(rows, 1, sharex=rows > 1, squeeze=False)[:, 0]
    return figure, list(axes)


def _empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes,
              color="#616161")
    axes.set_xticks([])
    axes.set_yticks([])


def _days_axis(axes: Any, days: Sequence[date | datetime]) -> None:
    """Ticks on whole days (at most about eight), labelled month-day, half a day of margin."""
    from matplotlib.dates import DateFormatter, DayLocator

    moments = [day if isinstance(day, datetime) else datetime.combine(day, time())
               for day in days]
    if moments:
        first, last = min(moments), max(moments)
        span = (last - first).days + 1
        axes.xaxis.set_major_locator(DayLocator(interval=max(1, -(-span // 8))))
        axes.set_xlim(first - timedelta(hours=12), last + timedelta(hours=12))
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d"))
    for label in axes.get_xticklabels():
        label.set_rotation(45)


def plot_shop(days: Sequence[ShopDay]) -> str:
    """Revenue (bars) and AOV by day above, conversion by day below."""
    figure, (money, conversion) = _figure(2, 2.4)
    dates = [row.day for row in days]
    money.bar(dates, [row.revenue for row in days], color="#90caf9", label="revenue")
    money.set_ylabel("revenue")
    aov = money.twinx()
    aov.plot(dates, [row.aov if row.aov is not None else float("nan") for row in days],
             color=COLOURS[1], marker=".", label="AOV")
    aov.set_ylabel("AOV")
    money.set_title("Revenue (bars) and average order value (line) by day, UTC")
    conversion.plot(dates, [100 * row.conversion if row.conversion is not None
                            else float("nan") for row in days], color=COLOURS[0], marker=".")
    conversion.set_ylabel("conversion %")
    conversion.set_title("Sessions with a purchase / sessions")
    conversion.set_ylim(bottom=0)
    _days_axis(conversion, dates)
    return svg(figure, "shop")


def plot_variants(variants: Sequence[VariantDay]) -> str:
    """Conversion by day of each model's variants."""
    figure, (axes,) = _figure(1, 3.0)
    series: dict[tuple[str, str], list[VariantDay]] = {}
    for row in variants:
        series.setdefault((row.model, row.variant), []).append(row)
    for number, ((model, variant), rows) in enumerate(sorted(series.items())):
        axes.plot([row.day for row in rows],
                  [100 * row.conversion if row.conversion is not None else float("nan")
                   for row in rows], marker=".", color=COLOURS[number % len(COLOURS)],
                  label=f"{model} {variant}")
    axes.set_ylabel("conversion %")
    axes.set_ylim(bottom=0)
    axes.set_title("Conversion of the sessions each variant was served in")
    axes.legend(fontsize=8)
    _days_axis(axes, sorted({row.day for row in variants}))
    return svg(figure, "variants")


def plot_accuracy(points: Sequence[AccuracyPoint], max_drop: float) -> str:
    """Each champion's metric on its newest window against its baseline, round by round."""
    figure, (axes,) = _figure(1, 3.0)
    by_model: dict[str, list[AccuracyPoint]] = {}
    for point in points:
        by_model.setdefault(point.model, []).append(point)
    for number, (model, rows) in enumerate(sorted(by_model.items())):
        axes.plot([_moment(row.decided_at) for row in rows],
                  [100 * row.change for row in rows], marker="o",
                  color=COLOURS[number % len(COLOURS)], label=f"{model} ({rows[-1].metric})")
    axes.axhline(-100 * max_drop, color=COLOURS[4], linestyle="--", linewidth=1,
                 label=f"alert: {100 * max_drop:.0f}% below baseline")
    axes.axhline(0, color="#9e9e9e", linewidth=0.8)
    axes.set_ylabel("% against baseline")
    axes.set_title("Model accuracy on the newest window against its baseline, per round")
    axes.legend(fontsize=8)
    _days_axis(axes, [_moment(point.decided_at) for point in points])
    return svg(figure, "accuracy")


def _moment(text: str) -> datetime:
    """An audit time as a naive UTC datetime (what the date axis plots)."""
    from datetime import timezone

    moment = datetime.fromisoformat(text)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def plot_serving(answers: Sequence[AnswersDay] | None, endpoints: Sequence[EndpointServing]
                 ) -> str:
    """Fallback rate by day from the prediction log (left), latency percentiles from the
    server's metrics (right)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.0))
    rates, latency = figure.subplots(1, 2)
    if answers:
        for number, endpoint in enumerate(sorted({row.endpoint for row in answers})):
            rows = [row for row in answers if row.endpoint == endpoint]
            rates.plot([row.day for row in rows],
                       [100 * (row.fallback_rate or 0.0) for row in rows], marker=".",
                       color=COLOURS[number % len(COLOURS)], label=endpoint)
        rates.legend(fontsize=8)
        rates.set_ylabel("fallbacks %")
        _days_axis(rates, sorted({row.day for row in answers}))
    else:
        _empty(rates, "no prediction log")
    rates.set_title("Fallback answers (prediction log)", fontsize=10)
    measured = [row for row in endpoints if row.p50 is not None]
    if measured:
        width = 0.25
        for offset, (name, colour) in enumerate((("p50", COLOURS[0]), ("p95", COLOURS[1]),
                                                 ("p99", COLOURS[4]))):
            latency.bar([number + (offset - 1) * width for number in range(len(measured))],
                        [1000 * getattr(row, name) for row in measured], width, color=colour,
                        label=name)
        latency.set_xticks(range(len(measured)), [row.endpoint for row in measured], fontsize=8)
        latency.set_ylabel("ms")
        latency.legend(fontsize=8)
    else:
        _empty(latency, "no latency reading")
    latency.set_title("Latency in the pipeline (server metrics)", fontsize=10)
    return svg(figure, "serving")
