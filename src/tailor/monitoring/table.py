"""A monitoring round as a rich table (`tailor monitor` and the demo print it).

Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailor.monitoring.rounds import ModelRound


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def round_table(rounds: Sequence[ModelRound]) -> Any:
    """One row per model (its metric under its name): version, baseline, now, change, drifted
    columns per comparison and the decision; every reason follows as the caption."""
    from rich import box
    from rich.table import Table

    table = Table(title="Monitoring round", box=box.SIMPLE_HEAD, caption_justify="left")
    for column in ("model", "ver", "base", "now", "change", "drift", "decision"):
        table.add_column(column, justify="right" if column in ("base", "now", "change")
                         else "left", no_wrap=True)
    notes = []
    for result in rounds:
        drop = result.drop
        change = "-" if drop is None else f"{-drop:+.1%}"
        drift = " ".join(f"{len(d.drifted)}/{d.columns}" for d in result.drift) or "-"
        style = "red" if result.below_threshold or result.decision == "failed" else (
            "yellow" if result.decision in ("promoted", "rolled_back", "experiment_started",
                                            "experiment_running") else "green")
        table.add_row(f"{result.model}\n[dim]{result.metric or ''}[/]",
                      f"v{result.champion_version}" if result.champion_version else "-",
                      _figure(result.baseline), _figure(result.current), change, drift,
                      f"[{style}]{result.decision.replace('_', ' ')}[/]")
        notes.append(f"{result.model}: {result.reason}")
    table.caption = "drift: drifted/compared columns of the customer profiles, then of what "\
        "the model scored\n" + "\n".join(notes)
    return table
