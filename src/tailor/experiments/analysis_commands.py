"""`tailor experiment analyze NAME`: the analysis of one experiment, printed and written as a
page; `tailor experiment simulate --out DIR`: the proof on the simulated shop (`register` adds
both to the `experiment` sub-app of `tailor.experiments.commands`).

Reads what `tailor.experiments.analysis.analyze_experiment` reads (the experiment's state
row, its exposures and the events after them, from the lake and the event store). Writes the
HTML page and JSON under `<home>/reports/experiments/<name>/`
(`tailor.experiments.analysis_report`). `--json` prints one JSON object on stdout (the
analysis, plus `report`: the page's path); otherwise a table per metric on stderr, the
verdict and where the page went. Exit 0 with a result (whatever the verdict), 2 on bad input
(an unknown experiment, one without exposures, a bad `--as-of`), 3 when the event store
cannot be reached. `simulate` writes only into the new folder `--out`
(`tailor.experiments.simulation`).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from tailor.errors import InputError
from tailor.experiments.command_support import console as stderr_console
from tailor.experiments.command_support import failures, job

if TYPE_CHECKING:
    from tailor.experiments.analysis import ExperimentAnalysis, MetricResult



def register(app: typer.Typer) -> None:
    """Add `analyze` and `simulate` to the `experiment` sub-app."""
    app.command("analyze")(analyze)
    app.command("simulate")(simulate)


def parse_as_of(text: Optional[str]) -> datetime | None:
    """`--as-of` as a UTC datetime (ISO 8601; a date means its midnight UTC)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not an ISO 8601 time (e.g. 2026-03-16 or "
                         "2026-03-16T12:00:00+00:00)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def analyze(
    name: str = typer.Argument(..., help="The experiment's name."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Analyse what was known at this "
                                        "UTC time (ISO 8601; default: now, or the stop)."),
    home: Optional[Path] = typer.Option(None, "--home", help="Tailor home folder (default: "
                                        "TAILOR_HOME or ./.tailor)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout "
                                 "instead of prose."),
) -> None:
    """Analyse an experiment: per metric and variant the lift with its interval, p-values
    (sequential, corrected), CUPED, the probability to beat the control; guardrails, the
    sample-ratio check and a verdict. Writes an HTML page with plots under
    <home>/reports/experiments/NAME/."""
    with job(home) as settings:
        from tailor.experiments.analysis import analyze_experiment
        from tailor.experiments.analysis_report import write_analysis_report

        moment = parse_as_of(as_of)
        with _progress(enabled=not as_json) as step:
            result = analyze_experiment(settings, name, as_of=moment, progress=step)
            step("writing the report")
            page = write_analysis_report(settings, result)
    if as_json:
        sys.stdout.write(json.dumps({**result.to_dict(), "report": str(page)}) + "\n")
        return
    console = stderr_console()
    for metric in result.metrics:
        console.print(_metric_table(result, metric))
    console.print(_verdict_line(result), highlight=False, soft_wrap=True)
    console.print(f"report: {page}", highlight=False, soft_wrap=True)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich status line naming the step under way (nothing with --json)."""
    if not enabled:
        yield lambda _line: None
        return
    with stderr_console().status("analysing") as status:
        yield lambda line: status.update(f"{line} ...")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}%"


def _metric_table(result: ExperimentAnalysis, metric: MetricResult) -> Any:
    from rich.table import Table

    table = Table(title=f"{metric.metric} ({metric.role})", title_justify="left")
    for header in ("variant", "units", "value", "lift", "95% interval", "p (seq.)",
                   "adj. p", "P(beat)"):
        table.add_column(header, justify="left" if header == "variant" else "right")
    if metric.analysis is None:
        table.add_row(f"not analysed: {metric.problem}", *[""] * 7)
        return table
    money = metric.metric in ("revenue_per_visitor", "aov")
    for row in metric.analysis.variants:
        value = f"{row.value:,.2f}" if money else f"{100 * row.value:.2f}%"
        if row.lift is None:
            table.add_row(row.variant, f"{row.units:,}", value, "control", "", "", "", "")
            continue
        p_value = metric.decision_p_values.get(row.variant)
        table.add_row(
            row.variant, f"{row.units:,}", value, _percent(row.lift.relative),
            f"[{_percent(row.lift.relative_lower)}, {_percent(row.lift.relative_upper)}]",
            "–" if p_value is None else f"{p_value:.3g}",
            f"{metric.adjusted_p_values.get(row.variant, float('nan')):.3g}",
            "–" if row.probability_to_beat_control is None
            else f"{row.probability_to_beat_control:.1%}")
    return table


def _verdict_line(result: ExperimentAnalysis) -> str:
    verdict = result.verdict
    head = verdict.decision.replace("_", " ") + (f": {verdict.winner}" if verdict.winner else "")
    return f"{result.experiment}: {head} ({'; '.join(verdict.reasons)})"


def simulate(
    out: Path = typer.Option(..., "--out", help="A new folder: the simulated shop and two "
                             "homes of its own (ab-home, aa-home) go there."),
    customers: int = typer.Option(6_000, min=100, help="Customers of the simulated shop."),
    history_days: int = typer.Option(60, min=14, help="Days of history before the "
                                     "experiment (the model is fitted on them)."),
    days: int = typer.Option(14, min=1, max=90, help="Days the experiments run."),
    seed: int = typer.Option(7, help="Seed of the shop and of the shoppers' days."),
    oracle: bool = typer.Option(False, "--oracle", help="Also run the shoppers' hidden tastes "
                                "against bestsellers: the upper bound of a homepage here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout "
                                 "instead of prose."),
) -> None:
    """Run the personalised homepage against the bestsellers (A/B), and the bestsellers
    against themselves (A/A), on a simulated shop through the real assignment, prediction
    log and events, then analyse both."""
    with failures():
        from tailor.experiments.simulation import simulate_ab_and_aa

        with _progress(enabled=not as_json) as step:
            runs = simulate_ab_and_aa(out, customers=customers, history_days=history_days,
                                      days=days, seed=seed, oracle=oracle,
                                      progress=step)
    if as_json:
        sys.stdout.write(json.dumps({name: run.to_dict() for name, run in runs.items()})
                         + "\n")
        return
    console = stderr_console()
    for label, run in runs.items():
        console.print(lift_table(label, run.analysis), highlight=False)
        console.print(_verdict_line(run.analysis), highlight=False, soft_wrap=True)
        console.print(f"report: {run.report}", highlight=False, soft_wrap=True)
    console.print(_arms_table(runs["ab"]), highlight=False)


def lift_table(label: str, result: ExperimentAnalysis) -> Any:
    """The headline metrics of a two-variant analysis: each arm's value, the lift with its
    interval and the decision p-value (what `simulate` and the demo print)."""
    from rich.table import Table

    from tailor.experiments.analysis_metrics import treatment_rows

    treatment = [name for name in result.variants if name != result.control][0]
    table = Table(title=f"{label.upper()}: {treatment} against {result.control} "
                        f"({result.units[result.control]:,} and {result.units[treatment]:,} "
                        "customers)", title_justify="left")
    for header in ("metric", result.control, treatment, "lift", "95% interval", "p (seq.)"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for metric in result.metrics:
        if metric.metric not in ("conversion", "aov", "revenue_per_visitor") \
                or metric.analysis is None:
            continue
        _, lift = treatment_rows(metric.analysis)[0]
        money = metric.metric != "conversion"
        shown = [f"{value or 0.0:,.2f}" if money else f"{100 * (value or 0.0):.2f}%"
                 for value in (metric.values[result.control], metric.values[treatment])]
        table.add_row(metric.metric, *shown, _percent(lift.relative),
                      f"[{_percent(lift.relative_lower)}, {_percent(lift.relative_upper)}]",
                      f"{metric.decision_p_values[treatment]:.3g}")
    return table


def _arms_table(run: Any) -> Any:
    """Each arm's shop figures by session beside the brief's "before" column."""
    from rich.table import Table

    from tailor.experiments.simulation import BRIEF_BEFORE

    table = Table(title="By session, the A/B's arms beside the brief's 'before'",
                  title_justify="left")
    table.add_column("figure")
    table.add_column("brief: before", justify="right")
    for name in run.arms:
        table.add_column(name, justify="right")
    for figure in ("conversion", "aov", "cart_abandonment", "bounce_rate"):
        cells = [f"{value:,.2f}" if figure == "aov" else f"{100 * value:.1f}%"
                 for value in [BRIEF_BEFORE[figure]]
                 + [run.arms[name][figure] or 0.0 for name in run.arms]]
        table.add_row(figure, *cells)
    return table
