"""Each campaign customer's discount timing, from the experiments' lifecycle and assignment.

Reads, in the event store's database (`tailor.experiments.state`), the row of the experiment
`experiments.campaign_experiment` names and every running and promoted experiment, and its
definition: as it was started once it ran; before that the home's
`experiments/<name>.yaml`, else the source tree's shipped one (`tailor.experiments.definition`
parses and checks it). Writes nothing.

A customer's timing is what the `Assigner` the server builds gives their customer id on
surface `campaign` (`tailor.experiments.assignment`), so the global holdout, the layer's
slices and the lifecycle hold for the mails as they do for the server's answers:

- in a running experiment: its variant's `discount_delay_days`; the mail is recorded with
  the experiment and the variant (an exposure);
- in none (the holdout, outside every slice, the experiment a draft, stopped or never
  created): the control's `discount_delay_days`, recorded with no experiment and no variant
  (not an exposure); outside the holdout a promoted winner's timing replaces the control's
  (the surface's new default), still with no variant.

A variant or control that sets no `discount_delay_days` serves the default, 0: the discount
in the first mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments.assignment import Assigner
from tailor.experiments.definition import (Definition, Metrics, load_definition,
                                           shipped_definitions_dir)
from tailor.experiments.state import (DRAFT, PROMOTED, RUNNING, STOPPED, ExperimentRecord,
                                      assigner_from, definition_path, open_store)

CAMPAIGN_SURFACE = "campaign"
DEFAULT_DELAY_DAYS = 0  # no experiment at all: the discount in the first mail
DEFAULT_ATTRIBUTION_HOURS: float = Metrics.model_fields["attribution_window_hours"].default
NOT_CREATED = "not created"


@dataclass(frozen=True)
class Timing:
    """One customer's mails: the experiment and variant they are exposed to (both None when
    they are in none) and how many days the discount waits (0 = in the first mail)."""

    experiment: str | None
    variant: str | None
    discount_delay_days: int


@dataclass(frozen=True)
class CampaignExperiment:
    """The campaign's experiment as it stands now, and the assignment that applies to it.

    Attributes:
        definition: the definition (as started, once it ran).
        status: draft | running | stopped | promoted, or `not created` (no state row).
        winner: the promoted variant.
        source: where the definition was read (`experiment_state` or a file).
        assigner: the running and promoted experiments' assignment, as the server's.
        running: the running experiments on the campaign surface (this one or others of
            its layer).
    """

    definition: Definition
    status: str
    winner: str | None
    source: str
    assigner: Assigner
    running: tuple[str, ...] = ()
    _control: Timing = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_control", Timing(None, None, self.control_delay_days))

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def control_delay_days(self) -> int:
        """The control's timing: what a customer in no experiment gets."""
        delay = self.definition.variant(self.definition.control).changes.discount_delay_days
        return DEFAULT_DELAY_DAYS if delay is None else delay

    @property
    def attribution_window_hours(self) -> float:
        return self.definition.metrics.attribution_window_hours

    def timing(self, customer_id: str) -> Timing:
        """The customer's experiment, variant and delay (see the module docstring)."""
        assignment = self.assigner.assign(CAMPAIGN_SURFACE, customer_id)
        if assignment is None:
            return self._control
        delay = assignment.changes.discount_delay_days
        return Timing(assignment.experiment, assignment.variant,
                      self.control_delay_days if delay is None else delay)

    def note(self) -> str:
        """What the timing of this plan is, in one sentence (for the plan's report)."""
        control = (f"the control's timing ({self.definition.control}: "
                   f"{_delay_text(self.control_delay_days)})")
        holdout = (f"; the holdout ({self.assigner.holdout_share:.0%}) gets {control}, "
                   "no variant"
                   if self.assigner.holdout_share else "")
        if self.running:
            outside = "" if self.status == RUNNING and self.definition.traffic >= 1 else \
                f"; customers outside {', '.join(self.running)} get {control}, no variant"
            return (f"{', '.join(self.running)} running: each customer gets their variant's "
                    f"timing{outside}{holdout}")
        if self.status == PROMOTED:
            winner = self.definition.variant(self.winner or self.definition.control)
            delay = winner.changes.discount_delay_days
            return (f"{self.name} was promoted ({winner.name}): everyone gets its timing ("
                    f"{_delay_text(self.control_delay_days if delay is None else delay)}), "
                    f"no variant{holdout}")
        why = {STOPPED: "is stopped", DRAFT: "is a draft, not started"}.get(
            self.status, "was never started")
        return (f"{self.name} {why}: everyone gets {control} and no variant; "
                f"`tailor experiment start {self.name}` starts it")


def _delay_text(days: int) -> str:
    return "discount in the first mail" if days == 0 else f"discount {days} days later"


def load_campaign_experiment(settings: Settings) -> CampaignExperiment:
    """The experiment `experiments.campaign_experiment` names, with the current assignment.

    Raises:
        InputError: it has no definition anywhere, its definition breaks a rule (the file
            and the field named), or it runs on another surface than `campaign`.
    """
    name = settings.experiments_campaign_experiment
    with open_store(settings) as store:
        record = store.record(name)
        active = store.records((RUNNING, PROMOTED))
    definition, source = _definition(settings, name, record)
    if definition.surface != CAMPAIGN_SURFACE:
        raise InputError(f"experiments.campaign_experiment: {name} runs on surface "
                         f"{definition.surface}, not {CAMPAIGN_SURFACE} ({source})")
    running = tuple(item.name for item in active
                    if item.status == RUNNING and item.surface == CAMPAIGN_SURFACE)
    return CampaignExperiment(
        definition=definition, status=record.status if record else NOT_CREATED,
        winner=record.winner if record else None, source=source,
        assigner=assigner_from(active, settings.experiments_holdout_share), running=running)


def _definition(settings: Settings, name: str, record: ExperimentRecord | None
                ) -> tuple[Definition, str]:
    """The definition as started once it ran; else the home's file, the shipped one, or a
    draft's stored copy."""
    if record is not None and record.status != DRAFT:
        return record.definition(), f"experiment_state ({record.status})"
    candidates: list[Path] = [definition_path(settings, name),
                              shipped_definitions_dir() / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            return load_definition(path), str(path)
    if record is not None:
        return record.definition(), "experiment_state (draft)"
    raise InputError(f"experiments.campaign_experiment: no experiment {name!r}: no "
                     f"{candidates[0]}, no {candidates[1]}, and none in experiment_state; "
                     f"`tailor experiment create {name}` writes one")
