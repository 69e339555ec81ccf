"""`tailor experiment ...`: the experiment commands (a Typer sub-app that `tailor.cli`
registers as `experiment`).

The lifecycle commands (create, start, status, stop) live in
`tailor.experiments.lifecycle_commands`, `analyze` in `tailor.experiments.analysis_commands`,
promote and guardrails in `tailor.experiments.promotion_commands`; `validate` reads and
writes nothing: it runs
`tailor.experiments.validation`. Heavy libraries are imported inside the commands so
that `tailor --help` stays fast; like the other commands, `--json` prints one JSON
object on stdout and prose goes to stderr; exit 0 when the checks hold, 1 when a gate
failed, 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tailor.errors import InputError
from tailor.experiments.analysis_commands import register as register_analysis
from tailor.experiments.lifecycle_commands import register as register_lifecycle
from tailor.experiments.promotion_commands import register as register_promotion

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2

experiment_app = typer.Typer(
    help="A/B tests: definitions, assignment, analysis, promotion; the statistics' checks.",
    no_args_is_help=True,
)
register_lifecycle(experiment_app)
register_analysis(experiment_app)
register_promotion(experiment_app)

HOME_OPTION = typer.Option(None, "--home",
                           help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json",
                           help="Print one JSON object on stdout instead of prose.")


def _stderr(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False)


def _validation_prose(report: dict[str, Any]) -> str:
    null, power, coverage = report["false_positive_rate"], report["power"], report["coverage"]
    cuped = report["cuped"]["correlated"]
    return "\n".join([
        f"{report['runs']:,} simulated experiments per scenario (seed {report['seed']}, "
        f"alpha {report['alpha']}, {report['design']['days']} daily looks):",
        f"  A/A false-positive rate: fixed horizon {null['fixed_horizon']:.1%}, sequential "
        f"peeking daily {null['sequential_daily']:.1%}, naive daily peeking "
        f"{null['naive_daily_peeking']:.1%} (what the sequential test prevents)",
        f"  +{report['design']['injected_relative_lift']:.0%} conversion: power "
        f"{power['fixed_horizon']:.1%} fixed, {power['sequential_daily']:.1%} sequential; "
        f"intervals cover the true lift in {coverage['absolute_interval_coverage']:.1%} "
        f"(absolute), {coverage['relative_interval_coverage']:.1%} (relative)",
        f"  CUPED interval width ratio {cuped['a_a']['interval_width_ratio']:.3f} "
        f"(pre-period correlation {cuped['correlation']}, theory "
        f"{cuped['expected_width_ratio']:.3f}); independent pre-period "
        f"{report['cuped']['independent']['interval_width_ratio']:.3f}",
        ("passed" if report["passed"] else
         "FAILED: " + ", ".join(name for name, ok in report["gates"].items() if not ok))
        + f" in {report['seconds']:.1f} s",
    ])


@experiment_app.command()
def validate(
    runs: int = typer.Option(1_000, min=10, help="Simulated experiments per scenario."),
    seed: int = typer.Option(13, help="Random seed: the same seed gives the same report."),
    alpha: float = typer.Option(0.05, min=0.0001, max=0.5, help="Significance level."),
    days: int = typer.Option(14, min=1, help="Daily looks: the fixed horizon and the "
                                             "sequential plan."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the statistics on simulated A/A and A/B tests: false-positive rates (fixed
    horizon, daily peeking), power, interval coverage, CUPED's interval width."""
    from tailor.experiments.validation import validate_statistics

    del home  # reads nothing from the home; taken like every command's
    try:
        report = validate_statistics(runs=runs, seed=seed, alpha=alpha, days=days)
    except InputError as error:
        _stderr(f"[bold red]error:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        _stderr(_validation_prose(report))
    if not report["passed"]:
        raise typer.Exit(EXIT_GATE_FAILED)
