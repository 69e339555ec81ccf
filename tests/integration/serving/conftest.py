"""A trained, featurised Tailor home shared by the serving tests of this folder, and a
pipeline over it.

The home is built once per session the way production builds it: a simulated shop of 600
customers and 100 products over 60 days ending ten days ago, ingested into the event
store, exported to the lake, the warehouse refreshed, Feast features materialized to the
SQLite online store, and the homepage, cross-sell and checkout models trained with one
Optuna trial each into the home's MLflow registry. A model the promotion rule did not
promote is given the champion alias here: these tests judge serving, not promotion.
The fixtures that need no trained home live in `tests/serving_fixtures.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import prometheus_client  # noqa: F401  (before Feast: see below)
import pytest

from serving_fixtures import (  # noqa: F401  (fixtures offered to this folder's tests)
    configured_bentoml_store, empty_bentoml_store, ledger_factory, pipeline_factory,
)
from registry_homes import registry_settings
from shop_homes import build_shop_home
from tailor.config import Settings

# Importing Feast sets PROMETHEUS_MULTIPROC_DIR, and prometheus_client chooses its value
# storage when it is first imported: imported after Feast, every same-named series in the
# process would share one value, and each pipeline's metrics could not be read on their own.

SERVED_MODELS = ("homepage", "cross_sell", "checkout")
SHOP_DAYS = 60


@dataclass
class ServedHome:
    """The home's settings, the simulator's folder and the trained versions."""

    settings: Settings
    shop: Path
    versions: dict[str, str]

    def events(self) -> pd.DataFrame:
        return pd.read_parquet(self.shop / "events.parquet")

    def products(self) -> pd.DataFrame:
        return pd.read_csv(self.shop / "products.csv")


def _train(settings: Settings) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    from tailor.models.data import load_shop_data
    from tailor.training import excluded_customer_ids, train_model

    data = load_shop_data(settings, excluded_customer_ids(settings))
    versions = {}
    for model in SERVED_MODELS:
        result = train_model(settings, model, trials=1, data=data, jobs=1)
        assert result.status == "trained", result.reason
        if not result.promoted:
            MlflowClient(settings.tracking_uri, settings.tracking_uri) \
                .set_registered_model_alias(f"tailor-{model}", "champion", result.version)
        versions[model] = result.version
    return versions


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    from tailor.features.build import run_features

    folder = tmp_path_factory.mktemp("serving")
    home = folder / "home"
    settings = registry_settings(home)
    shop = build_shop_home(settings, folder / "shop", customers=600, products=100,
                           days=SHOP_DAYS, seed=3, ends_days_ago=10)
    run_features(settings, show_progress=False)
    return ServedHome(settings, shop, _train(settings))


@pytest.fixture(scope="session")
def pipeline(served_home: ServedHome, pipeline_factory):  # noqa: F811 (the fixture)
    """The pipeline over the served home (shared: tests must not change its state)."""
    return pipeline_factory(served_home.settings)
