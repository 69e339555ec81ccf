"""The training side of the MLflow registry: logging a model as pyfunc, versions, promotion.

Reads and writes the MLflow tracking store and model registry at `settings.tracking_uri`
(SQLite under the Tailor home by default) and, for local stores, artifacts under
`<home>/mlartifacts/<experiment>`. Each model is registered as `tailor-<model>`; a new
version always gets the alias `challenger` and takes `champion` only when it beats the
current champion and the baselines on the same holdout. The decision and its reason are
tags on the version and on the training run. Runs of one model take the decision one at
a time, under the promotion lock of `tailor.training.locks`. Where the store is and the
alias names come from `tailor.registry.tracking`, the pyfunc wrapper from
`tailor.registry.pyfunc` (both shared with serving).
"""

from __future__ import annotations

import logging
import pickle
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema
from mlflow.tracking import MlflowClient

from tailor.config import Settings
from tailor.logs import library_output
from tailor.models.evaluate import BacktestResult
from tailor.registry.pyfunc import PYFUNC_CODE
from tailor.registry.tracking import CHALLENGER, CHAMPION, tracking_store_exists, use_tracking
from tailor.training.locks import promotion_lock

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
KEY_COLUMNS = frozenset({"customer_id", "product_id", "session_key"})
REQUIREMENTS = ("mlflow", "pandas", "numpy", "scipy", "scikit-learn", "xgboost", "implicit",
                "cloudpickle")


def experiment_id(settings: Settings, name: str) -> str:
    """The experiment's id, creating it (with artifacts under the home for local stores)."""
    client = MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        folder = settings.home_path.resolve() / "mlartifacts" / name
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.as_uri()
    return client.create_experiment(name, artifact_location=location)


def _requirements() -> list[str]:
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def _optional_features(signature: ModelSignature) -> ModelSignature:
    """The signature with only the key column required: a missing feature is a missing value
    (the models handle those), so callers may send just what they know."""
    columns = [ColSpec(column.type, column.name, required=column.name in KEY_COLUMNS)
               for column in signature.inputs.inputs]
    return ModelSignature(inputs=Schema(columns), outputs=signature.outputs)


def log_model(fitted: Any, registered_name: str) -> str:
    """Log `fitted` as a pyfunc model in the active run and register it.

    Args:
        fitted: a model from `tailor.models` (it provides `predict_frame` and `input_example`).
        registered_name: e.g. tailor-homepage.

    Returns:
        The new registered version (as a string).
    """
    example = fitted.input_example()
    signature = _optional_features(infer_signature(example, fitted.predict_frame(example)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        with path.open("wb") as handle:
            pickle.dump(fitted, handle, protocol=pickle.HIGHEST_PROTOCOL)
        with library_output("mlflow.output"):  # "Created version ..." goes to the log only
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT, python_model=str(PYFUNC_CODE),
                artifacts={"model": str(path)}, signature=signature, input_example=example,
                pip_requirements=_requirements(), registered_model_name=registered_name)
    return str(info.registered_model_version)


# What the registry answers for a model or an alias it does not have (SQL and REST stores).
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def alias_version(client: MlflowClient, registered_name: str, alias: str) -> Any | None:
    """The model version holding `alias`, or None (no such model or alias).

    Raises:
        MlflowException: any other failure (a registry that is down is not "no champion").
    """
    try:
        return client.get_model_version_by_alias(registered_name, alias)
    except MlflowException as error:
        if error.error_code in _NOT_FOUND:
            return None
        raise


def logged_params(client: MlflowClient, version: Any) -> dict[str, str]:
    """The parameters logged by the run that produced `version`."""
    return dict(client.get_run(version.run_id).data.params)


@dataclass(frozen=True)
class Promotion:
    """What happened to a new version (and the champion it was compared with, if any)."""

    version: str
    promoted: bool
    reason: str
    previous_champion: str | None
    champion: BacktestResult | None = None


# The current champion backtested on the challenger's holdout, and its version (None, None
# without a champion).
ChampionOnHoldout = tuple[BacktestResult | None, str | None]


def decide_promotion(challenger: BacktestResult, champion: BacktestResult | None,
                     champion_version: str | None) -> tuple[bool, str]:
    """Whether the challenger should become champion, and why (same holdout for both)."""
    beats, why = challenger.beats_baselines()
    if not beats:
        return False, f"not promoted: {why}"
    if champion is None:
        return True, f"promoted: no champion yet and {why}"
    name = challenger.primary_metric
    if challenger.primary > champion.primary:
        return True, (f"promoted: {name} {challenger.primary:.4f} beats champion v"
                      f"{champion_version} ({champion.primary:.4f}) on the same holdout and "
                      "every baseline")
    return False, (f"not promoted: {name} {challenger.primary:.4f} does not beat champion v"
                   f"{champion_version} ({champion.primary:.4f}) on the same holdout")


def apply_aliases(client: MlflowClient, registered_name: str, version: str, promoted: bool,
                  reason: str, champion_version: str | None) -> Promotion:
    """Give `version` the challenger alias, and the champion alias when promoted; tag why."""
    client.set_registered_model_alias(registered_name, CHALLENGER, version)
    if promoted:
        client.set_registered_model_alias(registered_name, CHAMPION, version)
    client.set_model_version_tag(registered_name, version, "promotion", reason)
    log.info("%s v%s: %s", registered_name, version, reason)
    return Promotion(version, promoted, reason, champion_version)


def promote(settings: Settings, client: MlflowClient, registered_name: str, version: str,
            challenger: BacktestResult, measured: ChampionOnHoldout,
            measure_champion: Callable[[], ChampionOnHoldout]) -> Promotion:
    """Decide whether `version` becomes champion, holding the model's promotion lock.

    Runs of one model decide one at a time (`tailor.training.locks`). Under the lock the
    champion alias is read again: when another run moved it after `measured` was taken, the
    new champion is measured on the same holdout (`measure_champion`) and the decision is
    made against it, so two runs started together never both promote "with no champion".

    Args:
        settings: the tracking URI and `models.promotion_lock_seconds`.
        client: the registry client.
        registered_name, version: the new version.
        challenger: its holdout backtest.
        measured: the champion on the same holdout as read before the lock.
        measure_champion: measures the current champion again.

    Returns:
        The `Promotion` (aliases and the `promotion` tag are set).

    Raises:
        PromotionLockTimeout: another run held the lock past the setting.
    """
    with promotion_lock(settings, registered_name):
        champion, champion_version = measured
        current = alias_version(client, registered_name, CHAMPION)
        current_version = None if current is None else str(current.version)
        if current_version != champion_version:
            log.info("%s: the champion moved from %s to %s during training; comparing v%s "
                     "with the new champion", registered_name, champion_version or "none",
                     current_version or "none", version)
            champion, champion_version = measure_champion()
        promoted, reason = decide_promotion(challenger, champion, champion_version)
        promotion = apply_aliases(client, registered_name, version, promoted, reason,
                                  champion_version)
    return Promotion(promotion.version, promotion.promoted, promotion.reason,
                     promotion.previous_champion, champion)


def load_champion(settings: Settings, registered_name: str) -> tuple[Any, str]:
    """The champion's fitted model object and its version.

    Raises:
        LookupError: nothing is registered under `registered_name` with a champion alias.
    """
    if not tracking_store_exists(settings):
        raise LookupError(f"no {registered_name} model yet: run `tailor train` first")
    use_tracking(settings)
    version = alias_version(MlflowClient(), registered_name, CHAMPION)
    if version is None:
        raise LookupError(f"{registered_name} has no champion: run `tailor train` first "
                          "(a version only becomes champion when it beats the baselines)")
    loaded = mlflow.pyfunc.load_model(f"models:/{registered_name}@{CHAMPION}")
    return loaded.unwrap_python_model().model, str(version.version)


ANY_CHAMPION = "<any>"  # `move_champion`'s default `if_current`: move whatever holds it


def move_champion(settings: Settings, client: MlflowClient, registered_name: str,
                  version: str | None, reason: str, *,
                  if_current: str | None = ANY_CHAMPION) -> str | None:
    """Give `version` the champion alias under the model's promotion lock, tagged why.

    The champion is read again under the lock, so a training run deciding at the same time
    never interleaves with the move (`promote` holds the same lock). `version` None removes
    the alias (undoing a move onto a model that had no champion). With `if_current` the move
    happens only when the champion is that version (None: when there is none): putting an
    alias back never undoes a move someone else made since.

    Returns:
        The version that held the alias before (None: none did).

    Raises:
        PromotionLockTimeout: another run held the lock past `models.promotion_lock_seconds`.
        MlflowException: the registry failed.
    """
    with promotion_lock(settings, registered_name):
        current = alias_version(client, registered_name, CHAMPION)
        previous = None if current is None else str(current.version)
        if if_current != ANY_CHAMPION and previous != if_current:
            log.info("%s: champion is v%s, not v%s: left as it is (%s)", registered_name,
                     previous or "none", if_current or "none", reason)
            return previous
        if version is None:
            if previous is not None:
                client.delete_registered_model_alias(registered_name, CHAMPION)
        elif previous != str(version):
            client.set_registered_model_alias(registered_name, CHAMPION, str(version))
            client.set_model_version_tag(registered_name, str(version), "promotion", reason)
    log.info("%s: champion v%s -> %s: %s", registered_name, previous or "none",
             f"v{version}" if version else "none", reason)
    return previous
