"""A monitoring round as a rich table (`tailor monitor` and the demo print it).

Reads and writes nothing.
"""

from __future__ import annotations

from typing import Any, Sequence

from tailor.monitoring.rounds import ModelRound


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def round_table(rounds: Sequence[ModelRound]) -> Any:
    """One row per model: champion, metric against baseline, drift and decision; the reasons
    of every decision but "ok" follow as a caption."""
    from rich.table import Table

    table = Table(title="Monitoring round")
    for column in ("model", "champion", "metric", "baseline", "now", "change", "drift",
                   "decision"):
        table.add_column(column, justify="right" if column in ("baseline", "now", "change")
                         else "left", no_wrap=column != "drift",
                         min_width=9 if column == "drift" else None)
    notes = []
    for result in rounds:
        drop = result.drop
        change = "-" if drop is None else f"{-drop:+.1%}"
        drift = " ".join(f"{d.dataset} {len(d.drifted)}/{d.columns}" for d in result.drift) \
            or "-"
        style = "red" if result.below_threshold or result.decision == "failed" else (
            "yellow" if result.decision in ("promoted", "rolled_back") else "green")
        table.add_row(result.model, f"v{result.champion_version}" if result.champion_version
                      else "-", result.metric or "-", _figure(result.baseline),
                      _figure(result.current), change, drift,
                      f"[{style}]{result.decision.replace('_', ' ')}[/]")
        notes.append(f"{result.model}: {result.reason}")
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table
