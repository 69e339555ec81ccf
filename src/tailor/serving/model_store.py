"""The BentoML model store that served versions pass through, under the Tailor home.

Reads and writes `<serving.bentoml_home>/models` (default `<home>/bentoml/models`):
BentoML's own layout, so `BENTOML_HOME=<home>/bentoml bentoml models list` shows it and `bentoml build` can pack its
models into a Bento (bentofile.yaml `models:`). Reads, for the start-up fallback only,
BentoML's configured store too: a built Bento's own models when it is being served.

A version is imported once, as `tailor-<model>:v<version>` (the pyfunc model downloaded
from the MLflow registry, saved the way `bentoml.mlflow.import_model` saves it, so
`bentoml.mlflow.load_model` reads it), labelled with its registered name, version, run id
and the alias it was loaded for. Imports take a file lock: worker processes of one server
that load the same version at once import it once, and never read a half-written copy.
The server's own BENTOML_HOME (`tailor.server`) is a private temporary folder for its
Prometheus files only; it holds no models.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tailor.config import Settings
from tailor.file_lock import exclusive_lock
from tailor.serving.bentoml_internals import (
    configured_model_store, model_store_at, store_path,
)

STORE_FOLDER = "bentoml"  # <home>/bentoml is a BENTOML_HOME; its models/ is the store
MLFLOW_MODULE = "bentoml.mlflow"  # what bentoml.mlflow.load_model checks
MLFLOW_FOLDER = "mlflow_model"  # where bentoml.mlflow keeps the MLflow model in a Bento model
LOCK_FILE = ".tailor-import.lock"


def bentoml_home(settings: Settings) -> Path:
    """The BentoML home that holds Tailor's model store: `serving.bentoml_home`, by
    default `<home>/bentoml`."""
    if settings.serving_bentoml_home:
        return Path(settings.serving_bentoml_home).expanduser().resolve()
    return settings.home_path.resolve() / STORE_FOLDER


def tag_of(registered_name: str, version: str) -> str:
    """`tailor-homepage`, "3" -> `tailor-homepage:v3`."""
    return f"{registered_name}:v{version}"


@dataclass(frozen=True)
class StoredVersion:
    """One version in a BentoML model store.

    Attributes:
        tag: e.g. `tailor-homepage:v3`.
        version: the registry version it was imported from.
        labels: registered_name, version, run_id and alias (when it was loaded by alias).
        store: the store's folder.
    """

    tag: str
    version: str
    labels: dict[str, str]
    store: Path


class TailorModelStore:
    """Imports registry versions into the store and loads them from it.

    Args:
        settings: the Tailor home (the store is `<home>/bentoml/models`).
    """

    def __init__(self, settings: Settings) -> None:
        self.path = bentoml_home(settings) / "models"

    def _store(self) -> Any:
        self.path.mkdir(parents=True, exist_ok=True)
        return model_store_at(self.path)

    @contextmanager
    def _import_lock(self) -> Iterator[None]:
        with exclusive_lock(self.path / LOCK_FILE):
            yield

    def ensure(self, registered_name: str, version: str, *, run_id: str | None,
               alias: str | None) -> tuple[StoredVersion, bool]:
        """The version in the store, imported from the registry unless it is there already.

        Expects the MLflow tracking and registry URIs set (`use_tracking`).

        Returns:
            the stored version and whether this call imported it.
        """
        tag = tag_of(registered_name, version)
        with self._import_lock():
            store = self._store()
            imported = not store.list(tag)
            if imported:
                labels = {"registered_name": registered_name, "version": str(version),
                          "run_id": run_id or ""}
                if alias:
                    labels["alias"] = alias
                self._import(store, tag, f"models:/{registered_name}/{version}", labels)
        return self._stored(store.get(tag)), imported

    @staticmethod
    def _import(store: Any, tag: str, model_uri: str, labels: dict[str, str]) -> None:
        """Save the MLflow model at `model_uri` as `tag`, as `bentoml.mlflow` lays it out."""
        import bentoml
        import mlflow
        from bentoml.types import ModelSignature
        from mlflow.artifacts import download_artifacts

        context = bentoml.models.ModelContext(framework_name="mlflow",
                                              framework_versions={"mlflow": mlflow.__version__})
        with bentoml.models.create(tag, labels=labels, metadata=dict(labels, source=model_uri),
                                   module=MLFLOW_MODULE, api_version="v1",
                                   signatures={"predict": ModelSignature()},
                                   context=context, _model_store=store) as model:
            download = tempfile.mkdtemp(dir=model.path)
            shutil.move(download_artifacts(artifact_uri=model_uri, dst_path=download),
                        model.path_of(MLFLOW_FOLDER))
            if os.path.exists(download):
                shutil.rmtree(download)
            if not os.path.isfile(os.path.join(model.path_of(MLFLOW_FOLDER), "MLmodel")):
                raise FileNotFoundError(f"{model_uri} holds no MLflow model (no MLmodel file)")

    @staticmethod
    def _stored(model: Any) -> StoredVersion:
        labels = dict(model.info.labels)
        return StoredVersion(str(model.tag), labels.get("version") or
                             str(model.tag.version).removeprefix("v"), labels,
                             Path(model.path).parent.parent)

    def load(self, stored: StoredVersion) -> Any:
        """The fitted Tailor object of a stored version (the pyfunc model unwrapped)."""
        import bentoml

        model = model_store_at(stored.store).get(stored.tag)
        return bentoml.mlflow.load_model(model).unwrap_python_model().model

    def newest(self, registered_name: str, reference: str) -> StoredVersion | None:
        """The version to serve without the registry: for a version number that version,
        for an alias the newest imported under it, else the newest of any alias; from this
        store, else from BentoML's configured one (a served Bento's). None: nothing there."""
        for store in self._stores():
            found = self._pick(self._versions(store, registered_name), reference)
            if found is not None:
                return found
        return None

    def _stores(self) -> list[Any]:
        stores = [self._store()]
        configured = configured_model_store()
        if store_path(configured).resolve() != self.path.resolve():
            stores.append(configured)
        return stores

    def _versions(self, store: Any, registered_name: str) -> list[tuple[Any, StoredVersion]]:
        from bentoml.exceptions import NotFound

        try:
            models = store.list(registered_name)
        except NotFound:
            return []
        return [(model.creation_time, self._stored(model)) for model in models
                if model.info.module == MLFLOW_MODULE]

    @staticmethod
    def _pick(versions: list[tuple[Any, StoredVersion]], reference: str
              ) -> StoredVersion | None:
        if reference.isdigit():
            pinned = [stored for _, stored in versions if stored.version == reference]
            return pinned[0] if pinned else None
        newest = sorted(versions, key=lambda pair: pair[0], reverse=True)
        by_alias = [stored for _, stored in newest if stored.labels.get("alias") == reference]
        chosen = by_alias or [stored for _, stored in newest]
        return chosen[0] if chosen else None
