"""Promoting an experiment's winner to everyone (`tailor experiment promote`).

Reads the experiment's row in `experiment_state` (the definition as started), the analysis
(`tailor.experiments.analysis`, when it is installed: its verdict names the winner) and the
MLflow registry (what the winner's `model` alias or version is now). Writes, in this order
(the MLflow side through `tailor.experiments.promotion_registry`):

1. a run in the MLflow experiment `tailor-experiments` (params and tags: experiment, winner,
   by, reason, forced, the champion before and after; the analysis as `analysis.json`),
   open until the promotion is done;
2. for a winner that serves another model version: the champion alias of `tailor-<model>`
   onto that version, under the model's promotion lock (`move_champion`, the lock training
   and monitoring move aliases under);
3. the experiment's row (promoted, with the winner) and its `experiment_audit` row, in one
   transaction (`tailor.experiments.state`): from the server's next refresh nobody is
   assigned and the winner's other changes (layout, diversity, ...) are everyone's default.

Nothing is half done: a step that fails undoes the steps before it (the alias goes back to
the champion it had, the run ends FAILED with the error) and the state stays as it was. A
promotion killed between steps 2 and 3 leaves the alias moved and the experiment unpromoted;
running it again completes it (the alias is already in place). Promoting a promoted
experiment again with the same winner changes nothing; with another winner it is refused.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from tailor.config import Settings
from tailor.errors import GateRefused, InputError
from tailor.experiments import promotion_registry as registry
from tailor.experiments.definition import Definition
from tailor.experiments.promotion_registry import (
    MLFLOW_EXPERIMENT, ModelMove, RegistryUnavailable,
)
from tailor.experiments.state import (
    PROMOTED, STOPPED, TRANSITIONS, ExperimentRecord, open_store,
)
from tailor.experiments.state import promote as record_promotion

log = logging.getLogger(__name__)

__all__ = ["GUARDRAIL_ACTOR", "MLFLOW_EXPERIMENT", "ModelMove", "Promotion",
           "RegistryUnavailable", "default_analysis", "promote_experiment"]

GUARDRAIL_ACTOR = "tailor-guardrails"  # who stops an experiment whose guardrail broke

# The analysis of an experiment by name, or None when there is none to be had (not
# installed, no exposures yet); the default asks `tailor.experiments.analysis`.
Analyze = Callable[[Settings, str], Any]


@dataclass(frozen=True)
class Promotion:
    """What `promote_experiment` did (or found done)."""

    experiment: str
    surface: str
    winner: str
    actor: str
    reason: str
    forced: bool
    analysis_decision: str | None   # the analysis verdict's decision (None: no analysis)
    analysis_winner: str | None
    serves: dict[str, Any]           # the winner's changes other than `model`
    model: ModelMove | None
    run_id: str | None
    already_promoted: bool = False
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["model"] = None if self.model is None else {**asdict(self.model),
                                                             "moved": self.model.moved}
        payload["notes"] = list(self.notes)
        return payload


def default_analysis(settings: Settings, name: str) -> Any:
    """The experiment's analysis, or None when the analysis module is not installed or the
    experiment has no exposures yet (other failures, a database down, raise)."""
    try:
        from tailor.experiments.analysis import NoExposures, analyze_experiment
    except ImportError:
        log.info("%s: no analysis module installed; promoting needs --variant and --force",
                 name)
        return None
    try:
        return analyze_experiment(settings, name)
    except NoExposures as error:
        log.info("%s: no analysis: %s", name, error)
        return None


def promote_experiment(settings: Settings, name: str, *, actor: str, reason: str,
                       variant: str | None = None, force: bool = False,
                       analyze: Analyze = default_analysis) -> Promotion:
    """Promote the winner of experiment `name` (see the module docstring for the steps).

    Args:
        settings: the event store, the registry and the home.
        name: the experiment.
        actor, reason: who promotes and why (the audit, the MLflow run).
        variant: the winner; default the analysis's winner.
        force: promote `variant` although the analysis names no winner or another one.
        analyze: returns the analysis (tests give their own).

    Returns:
        The `Promotion`.

    Raises:
        GateRefused: the analysis has no winner (or another one) and `force` is not given.
        InputError: no such experiment, a draft, an unknown variant, a promoted experiment
            with another winner, a winner whose model the registry does not hold.
        RegistryUnavailable: the registry failed (everything was put back as it was).
    """
    record = _record(settings, name)
    definition = record.definition()
    if variant is not None:
        definition.variant(variant)  # an unknown variant names those there are
    if record.status == PROMOTED:
        return _already_promoted(record, definition, variant)
    sources, _ = TRANSITIONS["promote"]
    if record.status not in sources:
        raise InputError(f"{name}: cannot promote a {record.status} experiment (promote "
                         f"needs {' or '.join(sorted(sources))}); start it first")
    if force and variant is None:
        raise InputError("--force needs --variant: name the variant to promote")
    analysis, notes = _analysis(settings, name, analyze, force)
    decision, analysis_winner = _verdict(analysis)
    winner, forced = _winner(name, variant, force, analysis, decision, analysis_winner)
    _check_guardrail_stop(record, definition, winner, force)
    move = registry.planned_move(settings, definition, winner)
    promotion = Promotion(
        experiment=name, surface=definition.surface, winner=winner, actor=actor,
        reason=reason, forced=forced, analysis_decision=decision,
        analysis_winner=analysis_winner, serves=_served_changes(definition, winner),
        model=move, run_id=None,
        notes=notes)
    return _carry_out(settings, promotion, analysis)


def _analysis(settings: Settings, name: str, analyze: Analyze, force: bool
              ) -> tuple[Any, tuple[str, ...]]:
    """The analysis and a note when there is none; with --force an analysis that refuses
    (bad input, no exposures) does not stand in the way."""
    try:
        analysis = analyze(settings, name)
    except InputError as error:
        if not force:
            raise
        return None, (f"no analysis: {error}",)
    return analysis, () if analysis is not None else ("no analysis was available",)


def _record(settings: Settings, name: str) -> ExperimentRecord:
    with open_store(settings) as store:
        record = store.record(name)
    if record is None:
        raise InputError(f"{name}: no such experiment (never created or started; "
                         "`tailor experiment status` lists them)")
    return record


def _already_promoted(record: ExperimentRecord, definition: Definition,
                      variant: str | None) -> Promotion:
    """The promotion as it was done (same winner), or a refusal (another winner)."""
    if variant is not None and variant != record.winner:
        raise InputError(f"{record.name}: already promoted with winner {record.winner!r} by "
                         f"{record.actor} ({record.reason}); a promotion is not undone: start "
                         "a new experiment to compare again")
    winner = record.winner or ""
    return Promotion(experiment=record.name, surface=definition.surface, winner=winner,
                     actor=record.actor, reason=record.reason, forced=False,
                     analysis_decision=None, analysis_winner=None,
                     serves=_served_changes(definition, winner), model=None, run_id=None,
                     already_promoted=True,
                     notes=(f"already promoted at {record.stopped_at}: nothing changed",))


def _verdict(analysis: Any) -> tuple[str | None, str | None]:
    """The analysis verdict's decision and winner (None, None without an analysis)."""
    if analysis is None:
        return None, None
    verdict = analysis.verdict
    winner = verdict.winner if verdict.decision == "winner" else None
    return verdict.decision, winner


def _winner(name: str, variant: str | None, force: bool, analysis: Any,
            decision: str | None, analysis_winner: str | None) -> tuple[str, bool]:
    """The variant to promote and whether it was forced.

    Raises:
        GateRefused: the analysis does not back the promotion and `force` is not given.
    """
    if variant is None:
        if analysis_winner is None:
            raise GateRefused(f"{name}: {_why_no_winner(analysis, decision)}; nothing was "
                              "promoted (pass --variant V --force to promote V anyway)")
        return analysis_winner, False
    if variant == analysis_winner:
        return variant, False
    if not force:
        found = (f"the analysis's winner is {analysis_winner!r}" if analysis_winner
                 else _why_no_winner(analysis, decision))
        raise GateRefused(f"{name}: {found}, not {variant!r}; nothing was promoted (add "
                          f"--force to promote {variant!r} anyway)")
    return variant, True


def _check_guardrail_stop(record: ExperimentRecord, definition: Definition, winner: str,
                          force: bool) -> None:
    """A treatment of an experiment a guardrail stopped is promoted only with --force.

    Raises:
        GateRefused: the guardrails stopped it, `winner` is not the control, no --force.
    """
    if record.status != STOPPED or record.actor != GUARDRAIL_ACTOR or force \
            or winner == definition.control:
        return
    raise GateRefused(f"{record.name}: the guardrails stopped it at {record.stopped_at} "
                      f"({record.reason}); nothing was promoted (add --variant {winner} "
                      "--force to promote it anyway)")


def _why_no_winner(analysis: Any, decision: str | None) -> str:
    if analysis is None:
        return "no analysis is available (no exposures yet, or no analysis module)"
    reasons = "; ".join(getattr(analysis.verdict, "reasons", ()) or ())
    return f"the analysis has no winner ({decision}{': ' + reasons if reasons else ''})"


def _served_changes(definition: Definition, winner: str) -> dict[str, Any]:
    changes = definition.variant(winner).changes.set()
    changes.pop("model", None)
    return changes


def _audit_reason(promotion: Promotion, run_id: str | None) -> str:
    """The audit row's reason: the person's, then what the promotion rested on and did."""
    basis = ("forced against the analysis" if promotion.forced
             else "the analysis's winner" if promotion.analysis_winner else "no analysis")
    parts = [promotion.reason, f"winner {promotion.winner} ({basis})"]
    move = promotion.model
    if move is not None:
        parts.append(f"{move.registered_name} champion v{move.previous or 'none'} -> "
                     f"v{move.version}" if move.moved else
                     f"{move.registered_name} champion already v{move.version}")
    if run_id:
        parts.append(f"MLflow run {run_id}")
    return "; ".join(parts)


def _run_tags(promotion: Promotion) -> dict[str, str]:
    tags = {"experiment": promotion.experiment, "winner": promotion.winner,
            "by": promotion.actor, "reason": promotion.reason[:5000],
            "forced": str(promotion.forced).lower(), "surface": promotion.surface,
            "analysis_decision": promotion.analysis_decision or "none",
            "analysis_winner": promotion.analysis_winner or "none"}
    move = promotion.model
    if move is not None:
        tags.update(model=move.registered_name, model_reference=move.reference,
                    previous_champion=move.previous or "none", new_champion=move.version)
    return tags


def _carry_out(settings: Settings, promotion: Promotion, analysis: Any) -> Promotion:
    """Steps 1 to 3 of the module docstring, each undone when a later one fails."""
    client = registry.client_for(settings)
    artifacts = {"promotion.json": promotion.to_dict()}
    if analysis is not None:
        artifacts["analysis.json"] = analysis.to_dict()
    run_id = registry.start_run(settings, client, promotion.experiment, _run_tags(promotion),
                                artifacts)
    promotion = replace(promotion, run_id=run_id)
    move = promotion.model
    moved_from = None
    if move is not None:
        try:
            moved_from = registry.move(settings, client, move, (
                f"promoted by experiment {promotion.experiment} (winner {promotion.winner}) "
                f"by {promotion.actor}: {promotion.reason}"))
        except BaseException as error:
            registry.end_run(client, run_id, "FAILED",
                             f"the champion alias could not be moved: {error}")
            raise

    def undo(outcome: str) -> None:
        if move is not None:
            registry.put_back(settings, client, move, moved_from,
                              f"put back: promoting experiment {promotion.experiment} failed")
        registry.end_run(client, run_id, "FAILED", outcome + "; the champion alias was put back")

    try:
        record_promotion(settings, promotion.experiment, promotion.winner, promotion.actor,
                         _audit_reason(promotion, run_id))
    except InputError as error:
        now = _record(settings, promotion.experiment)
        if now.status == PROMOTED and now.winner == promotion.winner:  # a twin got there first
            registry.end_run(client, run_id, "FINISHED", f"already promoted by {now.actor}")
            return replace(promotion, already_promoted=True,
                           notes=(f"promoted meanwhile by {now.actor}: nothing more done",))
        undo(f"refused: {error}")
        raise
    except BaseException as error:
        undo(f"the experiment state could not be written: {error}")
        raise
    registry.end_run(client, run_id, "FINISHED", "promoted")
    log.info("%s: promoted %s by %s (%s)", promotion.experiment, promotion.winner,
             promotion.actor, promotion.reason)
    return promotion
