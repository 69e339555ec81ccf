"""Which files under the home `tailor forget` sweeps, area by area.

Reads the folder tree of the home (and of the BentoML home when it is elsewhere); each file
is cleaned by `tailor.privacy.forget_files.scrub_file`. The areas, each a step of the job:

    offline_features   <home>/features/ (the offline store's Parquet files)
    mlflow_artifacts   <home>/mlartifacts/, <home>/mlruns/ (reference samples, scored
                       holdouts, input examples, the pickled models)
    bentoml_store      <serving.bentoml_home>/models/ (default <home>/bentoml/models/)
    evidently          <home>/evidently/ (snapshots of the drift reports)
    reports            <home>/reports/ (retention lists and their scores, daily and
                       quality reports)
    logs               <home>/logs/ and *.log files directly under the home
    other_files        everything else under the home

Left out, because a step of their own cleans them or they cannot hold a customer: the lake
(when it is under the home), the event store, PII store and warehouse files, key files and
`<home>/privacy/`. Other databases under the home (MLflow's tracking database, Feast's
registry and SQLite online store) are only read: one still holding a value is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from tailor.config import Settings
from tailor.privacy.forget_files import FileScrub, scrub_file

FILE_AREAS: tuple[str, ...] = ("offline_features", "mlflow_artifacts", "bentoml_store",
                               "evidently", "reports", "logs", "other_files")
_AREA_FOLDERS: dict[str, tuple[str, ...]] = {
    "offline_features": ("features",),
    "mlflow_artifacts": ("mlartifacts", "mlruns"),
    "evidently": ("evidently",),
    "reports": ("reports",),
    "logs": ("logs",),
}
# Under the home, never swept: their own steps clean them (the event and PII stores can be
# gigabytes: their rows are deleted with `secure_delete`), or they hold no customer. Other
# databases (MLflow's, Feast's registry and online store) are read: one that still holds
# the customer is reported in `left`, never rewritten.
_SKIPPED_FOLDERS = ("privacy", "bentoml")
_SKIPPED_NAMES = frozenset({"events.db", "pii.db", "warehouse.duckdb"})
_SKIPPED_SUFFIXES = (".key", ".lock", "-wal", "-shm", ".forget-tmp", ".tmp")


def bentoml_models_folder(settings: Settings) -> Path:
    """The BentoML model store's folder (the same rule as `tailor.serving.model_store`)."""
    home = (Path(settings.serving_bentoml_home).expanduser().resolve()
            if settings.serving_bentoml_home else settings.home_path.resolve() / "bentoml")
    return home / "models"


def _skipped(path: Path, settings: Settings) -> bool:
    name = path.name
    return (name in _SKIPPED_NAMES or name.endswith(_SKIPPED_SUFFIXES)
            or name == Path(settings.warehouse_file).name)


def _files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from (path for path in sorted(folder.rglob("*"))
                    if path.is_file() and not path.is_symlink())


def _lake_folder(settings: Settings) -> Path | None:
    root = settings.lake_root
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://")).expanduser().resolve()


def area_files(settings: Settings, area: str) -> list[Path]:
    """The files of one area (see the module docstring)."""
    home = settings.home_path.resolve()
    if area == "bentoml_store":
        candidates = list(_files(bentoml_models_folder(settings)))
    elif area == "other_files":
        claimed = {home / folder for folders in _AREA_FOLDERS.values() for folder in folders}
        claimed |= {home / folder for folder in _SKIPPED_FOLDERS}
        lake = _lake_folder(settings)
        candidates = [path for path in _files(home)
                      if not any(parent in claimed or parent == lake
                                 for parent in path.parents)
                      and not (path.parent == home and path.suffix == ".log")]
    else:
        candidates = [path for folder in _AREA_FOLDERS[area] for path in _files(home / folder)]
        if area == "logs":
            candidates += sorted(home.glob("*.log"))
    return [path for path in candidates if not _skipped(path, settings)]


def sweep_area(settings: Settings, area: str, customer_id: str, values: list[str],
               advance: Callable[[int], None] = lambda _n: None) -> FileScrub:
    """Clean every file of one area of the customer; returns what was removed and the
    files still holding a value."""
    result = FileScrub()
    for path in area_files(settings, area):
        result.add(scrub_file(path, customer_id, values))
        advance(1)
    return result
