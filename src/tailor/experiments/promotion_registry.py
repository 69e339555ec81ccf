"""What a promotion reads and writes in MLflow: the champion move a model winner needs (planned,
made, put back) and the run in the experiment `tailor-experiments` that records it.

Reads the model registry (the version a winner's alias or number names, the champion).
Writes the champion alias of `tailor-<model>` and its version's `promotion` tag (through
`tailor.training.registration.move_champion`, under the model's promotion lock), and one run
with params, tags and JSON artifacts. Every registry failure is raised as
`RegistryUnavailable`, so the command tells it apart (exit 3). `tailor.experiments.promotion`
decides what to promote and in which order these happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments.definition import Definition

log = logging.getLogger(__name__)

MLFLOW_EXPERIMENT = "tailor-experiments"
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class RegistryUnavailable(ConnectionError):
    """The MLflow tracking store or registry failed during a promotion."""


@dataclass(frozen=True)
class ModelMove:
    """What the promotion does to the registry for a winner that serves a model."""

    registered_name: str
    reference: str                 # what the winner's `model` names: an alias or a version
    version: str                   # the version that is now (or becomes) champion
    previous: str | None           # the champion before (None: there was none)

    @property
    def moved(self) -> bool:
        return self.previous != self.version


def registry_call(what: str, call: Callable[[], Any]) -> Any:
    """`call()`, a registry failure raised as `RegistryUnavailable` naming `what`."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except (MlflowException, OSError) as error:
        raise RegistryUnavailable(f"model registry: {what} failed: "
                                  f"{' '.join(str(error).split())[:500]}") from error


def client_for(settings: Settings) -> Any:
    """A registry client for the settings' tracking store."""
    from mlflow.tracking import MlflowClient

    from tailor.registry.tracking import use_tracking

    return MlflowClient(use_tracking(settings))


def planned_move(settings: Settings, definition: Definition, winner: str) -> ModelMove | None:
    """The champion move a winner serving a model needs (None: it serves no other model).

    Raises:
        InputError: the registry has no such alias or version (any more).
        RegistryUnavailable: the registry cannot be read.
    """
    reference = definition.variant(winner).changes.model
    if reference is None or definition.model is None:
        return None
    from tailor.registry.tracking import CHAMPION, tracking_store_exists
    from tailor.training.registration import alias_version

    registered = f"tailor-{definition.model}"
    if not tracking_store_exists(settings):
        raise InputError(f"{definition.name}: no model registry at {settings.tracking_uri}, "
                         f"so {registered} {reference!r} cannot become champion")
    client = client_for(settings)

    def resolve() -> tuple[Any, Any]:
        if reference.isdigit():
            target = _version_or_none(client, registered, reference)
        else:
            target = alias_version(client, registered, reference)
        return target, alias_version(client, registered, CHAMPION)

    target, champion = registry_call(f"reading {registered}", resolve)
    if target is None:
        kind = "version" if reference.isdigit() else "alias"
        raise InputError(f"{definition.name}: winner {winner!r} serves {registered} "
                         f"{kind} {reference!r}, which the registry no longer has")
    return ModelMove(registered, reference, str(target.version),
                     None if champion is None else str(champion.version))


def _version_or_none(client: Any, registered: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(registered, version)
    except MlflowException as error:
        if error.error_code in _NOT_FOUND:
            return None
        raise


def start_run(settings: Settings, client: Any, name: str, tags: dict[str, str],
              artifacts: dict[str, dict[str, Any]]) -> str:
    """A run `promote-<name>` in `tailor-experiments` with `tags` (also as params) and JSON
    `artifacts` (file name -> content), left RUNNING until `end_run`."""
    from tailor.training.registration import experiment_id

    def create() -> str:
        run = client.create_run(experiment_id(settings, MLFLOW_EXPERIMENT),
                                run_name=f"promote-{name}", tags=tags)
        run_id = run.info.run_id
        for key, value in tags.items():
            client.log_param(run_id, key, value[:500])
        for file_name, content in artifacts.items():
            client.log_dict(run_id, content, file_name)
        return str(run_id)

    return registry_call("starting the MLflow run", create)


def end_run(client: Any, run_id: str, status: str, outcome: str) -> None:
    """Close the run with its outcome; a failure here is logged (the state holds the truth)."""
    try:
        client.set_tag(run_id, "outcome", outcome[:5000])
        client.set_terminated(run_id, status)
    except Exception as error:  # the state and audit hold the promotion already
        log.warning("MLflow run %s could not be closed as %s: %s", run_id, status, error)


def move(settings: Settings, client: Any, planned: ModelMove, why: str) -> str | None:
    """Make `planned.version` champion; returns the champion before the move."""
    from tailor.training.registration import move_champion

    return registry_call(
        f"moving the champion alias of {planned.registered_name} to v{planned.version}",
        lambda: move_champion(settings, client, planned.registered_name, planned.version,
                              why))


def put_back(settings: Settings, client: Any, planned: ModelMove, moved_from: str | None,
             why: str) -> None:
    """Give the champion alias back to `moved_from`, unless someone moved it since the move
    to `planned.version` (logged loudly when the registry fails)."""
    if moved_from == planned.version:
        return
    from tailor.training.registration import move_champion

    try:
        move_champion(settings, client, planned.registered_name, moved_from, why,
                      if_current=planned.version)
    except Exception as error:
        log.error("%s: %s, but the champion alias could not be put back to v%s (%s); move it "
                  "by hand", planned.registered_name, why, moved_from or "none", error)
