"""Promotion through an experiment (`monitoring.promote_through = "experiment"`): a
challenger that beat a dropped champion on the window goes in front of visitors against it
before it serves everyone; a later round promotes the experiment's winner.

The brief's lesson: offline metrics are not enough ("the model seemed good in evaluation
metrics, but A/B test showed only 5% lift"). With this setting the monitoring round does not
move the champion alias itself when the model serves a surface (homepage, also-bought,
checkout offer); it writes and starts `monitor-<model>-v<challenger>`, the same
champion-vs-challenger definition as `tailor experiment create NAME --challenger MODEL`
(`tailor.experiments.challenger_template`), and each later round looks at it:

- the analysis names the challenger winner: the experiment is promoted (the challenger
  becomes champion through `tailor.experiments.promotion`, with its audit and MLflow run);
- it names the champion, or ends without a winner (stopped, or past its maximum duration):
  the experiment is closed (promoted to the control, nothing moves) and the round escalates:
  the challenger did not prove itself in front of customers;
- otherwise (too few visitors yet, a sample-ratio mismatch): the round waits, and trains no
  new challenger while the experiment runs.

Reads and writes the experiment tables and definitions of the home
(`tailor.experiments.state`) and, when promoting, the registry. The churn model serves no
visitor: its challenger is promoted in the registry as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tailor.config import Settings
from tailor.errors import GateRefused, InputError

log = logging.getLogger(__name__)

ACTOR = "tailor-monitoring"  # who starts and promotes the experiments of this module
PREFIX = "monitor-"


@dataclass(frozen=True)
class Outcome:
    """What a round found of its model's experiment: a decision for the round's table."""

    experiment: str
    decision: str  # promoted | escalated | experiment_running
    reason: str
    new_champion: str | None = None


def wanted(settings: Settings, model: str) -> bool:
    """Whether a challenger of `model` goes through an experiment (the setting, and a model
    that serves visitors)."""
    from tailor.experiments.challenger_template import MODEL_SURFACES

    return settings.monitoring_promote_through == "experiment" and model in MODEL_SURFACES


def experiment_name(model: str, version: str) -> str:
    """`monitor-<model>-v<version>`, in the experiment names' alphabet."""
    return f"{PREFIX}{model.replace('_', '-')}-v{version}"


def open_experiment(settings: Settings, model: str) -> str | None:
    """The name of the newest running, or stopped but not promoted, experiment a round
    started for `model` (None: none)."""
    from tailor.experiments.state import RUNNING, STOPPED, open_store

    head = f"{PREFIX}{model.replace('_', '-')}-v"
    with open_store(settings) as store:
        records = [record for record in store.records((RUNNING, STOPPED))
                   if record.name.startswith(head)]
    return records[-1].name if records else None


def start(settings: Settings, model: str, challenger: str, why: str) -> str:
    """Write and start the champion-vs-challenger experiment of `model`; returns its name.

    Raises:
        InputError: the definition could not be written or started (its layer is full, the
            registry lacks the versions); nothing runs then.
    """
    from tailor.experiments.challenger_template import challenger_definition
    from tailor.experiments.definition import load_definition
    from tailor.experiments.state import definition_path, open_store
    from tailor.experiments.state import start as start_experiment

    name = experiment_name(model, challenger)
    target = definition_path(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(challenger_definition(settings, name, model, ACTOR), encoding="utf-8")
    partial.replace(target)
    definition = load_definition(target)
    with open_store(settings) as store:
        if store.record(name) is None:
            store.create(definition, ACTOR, why)
    start_experiment(settings, name, ACTOR, why, definition=definition)
    return name


def follow(settings: Settings, name: str,
           analyze: Callable[[Settings, str], Any] | None = None) -> Outcome:
    """Look at an open experiment of this module and act on its analysis (the module
    docstring says how); `analyze` returns the analysis (default: the experiments' own,
    from the prediction log and the events).

    Raises:
        RegistryUnavailable: the promotion could not reach the registry (nothing moved).
    """
    from tailor.experiments.promotion import default_analysis, promote_experiment
    from tailor.experiments.state import open_store

    with open_store(settings) as store:
        record = store.record(name)
    if record is None:
        raise InputError(f"{name}: no such experiment")
    definition = record.definition()
    analyze = analyze or default_analysis
    analysis = analyze(settings, name)
    verdict = getattr(analysis, "verdict", None)
    if verdict is None or verdict.decision not in ("winner", "no_winner"):
        why = "no exposures yet" if verdict is None else \
            f"{verdict.decision}: {'; '.join(verdict.reasons) or 'no reason given'}"
        return Outcome(name, "experiment_running",
                       f"experiment {name} is running ({why}); it decides the promotion")
    if verdict.decision == "winner" and verdict.winner != definition.control:
        try:
            promotion = promote_experiment(settings, name, actor=ACTOR, analyze=analyze,
                                           reason="the experiment's analysis named the "
                                                  "challenger winner")
        except GateRefused as error:  # the guardrails stopped it: closed, a person decides
            _close(settings, name, definition.control, "the guardrails stopped the challenger",
                   analyze)
            return Outcome(name, "escalated", f"experiment {name}: {error}; closed with the "
                                              "champion kept")
        version = promotion.model.version if promotion.model is not None else None
        return Outcome(name, "promoted",
                       f"experiment {name}: the challenger won in front of visitors "
                       f"({'; '.join(verdict.reasons)}) and v{version} is champion",
                       new_champion=version)
    _close(settings, name, definition.control, "the challenger did not win", analyze)
    found = "the champion won" if verdict.decision == "winner" else "it ended with no winner"
    return Outcome(name, "escalated",
                   f"experiment {name}: {found} ({'; '.join(verdict.reasons)}); the champion "
                   "stays and needs a person")


def _close(settings: Settings, name: str, control: str, why: str,
           analyze: Callable[[Settings, str], Any]) -> None:
    """End the experiment with its control as the winner: the champion stays (no alias
    moves) and the round stops following it."""
    from tailor.experiments.promotion import promote_experiment

    promote_experiment(settings, name, actor=ACTOR, variant=control, force=True,
                       analyze=analyze, reason=f"closed by monitoring: {why}")
