"""What the Feast definition modules (`feature_store/*.py`) need from Tailor.

The definitions run inside Feast (`feast plan`, `feast apply`) and inside `tailor
features`; they call `definition_context` to find the Tailor home and the manifest of
the last computation, and `feast_schema` to turn the feature catalogue into Feast
fields. Reads `<home>/features/manifest.json` and, in a rendered repo,
`tailor_home.json`; creates `<home>/feature_repo/data/` when missing (Feast writes its
registry there but creates only the last folder of the path).

The offline sources follow the repo's `feature_store.yaml`: its `offline_store.type` (duckdb
or spark, `tailor.features.offline_store`) makes `DefinitionContext.parquet_source` a Feast
`FileSource` or a `SparkSource` over the same Parquet file.

Home resolution: a repo rendered by `tailor features` (`<home>/feature_repo/`) carries
`tailor_home.json` naming its home (relative to the repo: ".."); the repo in git
(`feature_store/`) uses the `TAILOR_HOME` environment variable (an absolute path: Feast
changes directory).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

from tailor.config import SETTINGS
from tailor.features import specs as catalogue
from tailor.features.compute import FEATURES_DIR, read_manifest
from tailor.features.offline_store import DUCKDB, SPARK

HOME_MARKER = "tailor_home.json"
REPO_CONFIG = "feature_store.yaml"
REPO_DATA_DIR = "feature_repo/data"  # registry and SQLite online store, inside the home
OWNER = "ml-platform@tailor.local"
# Tags every object carries; the PII test also reads `contains_pii`.
BASE_TAGS: dict[str, str] = {"system": "tailor", "contains_pii": "false"}
_DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


@dataclass(frozen=True)
class DefinitionContext:
    """The home, the shop's categories, the TTLs and the offline store the definitions are
    built with."""

    home: Path
    categories: tuple[str, ...] = ()
    batch_ttl: timedelta = timedelta(days=_DEFAULTS["features_batch_ttl_days"])
    session_ttl: timedelta = timedelta(minutes=_DEFAULTS["features_session_ttl_minutes"])
    manifest: dict[str, Any] = field(default_factory=dict)
    offline_store: str = DUCKDB

    def source_path(self, table: str) -> str:
        """Absolute path of an offline feature file, e.g. customer_features."""
        return str(self.home / FEATURES_DIR / f"{table}.parquet")

    def parquet_source(self, table: str, **fields: Any) -> Any:
        """The Feast data source of an offline feature file, for the repo's offline store.

        Args:
            table: the file's stem (customer_features, ...).
            fields: the source's name, timestamp_field, description, owner and tags.

        Returns:
            A `FileSource` (DuckDB offline store) or a `SparkSource` reading the same file
            as Parquet (Spark offline store).
        """
        if self.offline_store != SPARK:
            from feast import FileSource

            return FileSource(path=self.source_path(table), **fields)
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource,
        )

        with warnings.catch_warnings():  # "experimental": known, docs/features.md
            warnings.filterwarnings("ignore", message="The spark data source API is an "
                                    "experimental", category=RuntimeWarning)
            return SparkSource(path=self.source_path(table), file_format="parquet", **fields)


def repo_home(repo_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """The Tailor home a Feast repo belongs to (see the module docstring).

    Raises:
        RuntimeError: the repo is not a rendered one and TAILOR_HOME is not set.
    """
    marker = repo_dir / HOME_MARKER
    if marker.is_file():
        # ".." (relative to the repo) since copied homes exist; older markers are absolute.
        return (repo_dir / json.loads(marker.read_text(encoding="utf-8"))["home"]).resolve()
    variables = os.environ if env is None else env
    if not variables.get("TAILOR_HOME"):
        raise RuntimeError(
            f"{repo_dir}: set TAILOR_HOME to the absolute path of a Tailor home before running "
            "feast on this repo (feature_store.yaml and the data sources point into it)")
    return Path(variables["TAILOR_HOME"]).expanduser().resolve()


def repo_offline_store(repo_dir: Path) -> str:
    """The offline store type the repo's feature_store.yaml names (duckdb without one).

    Raises:
        RuntimeError: a store other than duckdb or spark.
    """
    import yaml

    config_file = repo_dir / REPO_CONFIG
    if not config_file.is_file():
        return DUCKDB
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    kind = str((config.get("offline_store") or {}).get("type", DUCKDB))
    if kind not in (DUCKDB, SPARK):
        raise RuntimeError(f"{config_file}: offline_store.type {kind!r}: Tailor's definitions "
                           f"read their files with {DUCKDB} or {SPARK}")
    return kind


def definition_context(module_file: str | Path) -> DefinitionContext:
    """The context for the definition module at `module_file` (pass `__file__`).

    Before the first `tailor features` run there is no manifest: no category columns and
    the default TTLs, so the definitions still apply on a clean home.
    """
    repo_dir = Path(module_file).resolve().parent
    home = repo_home(repo_dir)
    # Feast creates only the last folder of the registry path; on a clean home the
    # definitions (which Feast imports first) make the rest.
    (home / REPO_DATA_DIR).mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(home) or {}
    ttl = manifest.get("ttl", {})
    return DefinitionContext(
        home=home,
        categories=tuple(manifest.get("categories", ())),
        batch_ttl=timedelta(days=ttl.get("batch_days", _DEFAULTS["features_batch_ttl_days"])),
        session_ttl=timedelta(
            minutes=ttl.get("session_minutes", _DEFAULTS["features_session_ttl_minutes"])),
        manifest=manifest,
        offline_store=repo_offline_store(repo_dir),
    )


def feast_type(dtype: str) -> Any:
    """The Feast type of a catalogue dtype."""
    from feast.types import Array, Bool, Float64, Int64, String, UnixTimestamp

    return {"int64": Int64, "float64": Float64, "string": String, "bool": Bool,
            "timestamp": UnixTimestamp, "string_list": Array(String)}[dtype]


def feast_schema(view: str, categories: Sequence[str] = (), describe: bool = True) -> list[Any]:
    """Feast `Field`s of a view from the catalogue.

    Args:
        view: the view's name.
        categories: the shop's categories (for customer_categories).
        describe: attach each feature's description. On-demand views pass False: Feast
            checks their declared fields for equality with fields it infers by running the
            function, and inferred fields have no description.
    """
    from feast import Field

    return [Field(name=spec.name, dtype=feast_type(spec.dtype),
                  description=spec.description if describe else "")
            for spec in catalogue.specs_for_view(view, categories)]


def model_features(view: str, categories: Sequence[str] = ()) -> list[str]:
    """A view's features that models consume: all but raw timestamps and the session id.

    Raw timestamps stay in the views as inputs of the request-time features
    (days since last purchase, ...), which are what the feature services serve.
    """
    return [spec.name for spec in catalogue.specs_for_view(view, categories)
            if spec.dtype != "timestamp" and spec.name != "session_id"]


def tags(**extra: str) -> dict[str, str]:
    """BASE_TAGS plus object-specific tags."""
    return {**BASE_TAGS, **extra}
