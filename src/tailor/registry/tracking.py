"""Where the MLflow tracking store and model registry are, and the aliases Tailor gives versions.

Reads `settings.tracking_uri` (SQLite under the Tailor home by default). Writes MLflow's
tracking and registry URIs (process state, the environment put back as it was) and, for a
copied home, its own SQLite store's artifact locations (`tailor.registry.relocation`).
Training registers and promotes through it; serving resolves aliases through it.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from tailor.config import Settings
from tailor.registry.relocation import rehome_artifacts

CHAMPION = "champion"
CHALLENGER = "challenger"


def use_tracking(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the settings' store; returns the URI.

    A copied home's own store is first pointed at its own artifacts (`rehome_artifacts`):
    its runs never write into, and its models never load from, the home it was copied from.
    """
    rehome_artifacts(settings)
    uri = settings.tracking_uri
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow also exports the URI to the environment, where the next Settings (another home
    # in the same process) would pick it up; put the environment back as it was.
    if exported is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = exported
    return uri


def tracking_store_exists(settings: Settings) -> bool:
    """False for a local SQLite store that was never created (nothing registered yet)."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).is_file()
    return True
