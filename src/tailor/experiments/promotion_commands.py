"""`tailor experiment promote | guardrails`: give an experiment's winner to everyone, and
check the running experiments' guardrails (`register` adds them to the `experiment`
sub-app of `tailor.experiments.commands`).

Reads and writes what `tailor.experiments.promotion` and `tailor.experiments.guardrails`
do: the experiment state and audit, the analysis, the prediction log, the MLflow registry
and tracking store, the alert channels. Like every command: `--home`, `--json` (one JSON
object on stdout); exit 1 when a gate refuses (no winner to promote) or a guardrail stopped
an experiment, 2 on bad input, 3 when the event store or the registry cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from tailor.experiments.command_support import (
    EXIT_GATE_FAILED, HOME_OPTION, JSON_OPTION, NAME_ARGUMENT, actor, emit, job,
)


def register(app: typer.Typer) -> None:
    """Add promote and guardrails to the `experiment` sub-app."""
    app.command("promote")(promote)
    app.command("guardrails")(guardrails)


def promote(
    name: str = NAME_ARGUMENT,
    variant: Optional[str] = typer.Option(None, "--variant", help="The variant to promote "
                                          "(default: the analysis's winner)."),
    reason: Optional[str] = typer.Option(
        None, "--reason", help="Why, for the audit and the MLflow run (default: 'the "
                               "analysis's winner', or 'promoted by hand' with --force)."),
    by: Optional[str] = typer.Option(None, "--by", "--actor",
                                     help="Who promotes (default: the login name)."),
    force: bool = typer.Option(False, "--force", help="Promote --variant although the "
                                                      "analysis names no winner or another."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give the winner to everyone: a winner serving another model version becomes the
    registry's champion; its other changes become the surface's default. Who, when and why
    go to the audit and an MLflow run; a failure changes nothing."""
    with job(home) as settings:
        from tailor.experiments.promotion import promote_experiment

        why = reason or ("promoted by hand" if force else "the analysis's winner")
        promotion = promote_experiment(settings, name, actor=actor(by), reason=why,
                                       variant=variant, force=force)
    emit(promotion.to_dict(), as_json, _promotion_prose(promotion))


def _promotion_prose(promotion: Any) -> str:
    if promotion.already_promoted:
        return (f"{promotion.experiment}: already promoted ({promotion.winner}) by "
                f"{promotion.actor}: nothing changed")
    parts = [f"{promotion.experiment}: promoted {promotion.winner}"
             + (" (forced against the analysis)" if promotion.forced else "")
             + f" by {promotion.actor}"]
    move = promotion.model
    if move is not None:
        parts.append(f"{move.registered_name} champion v{move.previous or 'none'} -> "
                     f"v{move.version}" if move.moved
                     else f"{move.registered_name} champion already v{move.version}")
    if promotion.serves:
        parts.append("everyone now gets " + ", ".join(
            f"{key}={value}" for key, value in sorted(promotion.serves.items())))
    parts.append(f"MLflow run {promotion.run_id}")
    return "; ".join(parts)


def guardrails(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check every running experiment's guardrails once; a breach stops the experiment
    (everyone back to the defaults) and alerts. Exit 1 when one was stopped."""
    with job(home) as settings:
        from tailor.experiments.guardrails import check_all, report_lines

        results = check_all(settings)
    stopped = [result.experiment for result in results if result.stopped]
    emit({"experiments": [result.to_dict() for result in results], "stopped": stopped},
         as_json, "\n".join(report_lines(results)))
    if stopped:
        raise typer.Exit(EXIT_GATE_FAILED)
