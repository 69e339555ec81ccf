"""The weekly churn scoring through `mlflow.pyfunc.spark_udf` on the registry's champion
equals in-process scoring: the same customers, probabilities, risk flags and reasons, and the
same retention list.

One small simulated shop and one churn trial (the cheapest home with a churn champion; no
shared fixture trains churn alone), scored in process and on the shared Spark session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from registry_homes import registry_settings
from shop_homes import build_shop_home

from tailor.config import Settings
from tailor.training.jobs import score_churn, write_retention_list

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def churn_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from tailor.models.data import load_shop_data
    from tailor.training import excluded_customer_ids, train_model

    folder = tmp_path_factory.mktemp("spark-scoring")
    home = folder / "home"
    settings = registry_settings(home)
    build_shop_home(settings, folder / "shop", customers=200, products=40, days=60, seed=5,
                    ends_days_ago=3)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    result = train_model(settings, "churn", trials=1, data=data, jobs=1)
    assert result.status == "trained", result.reason
    if not result.promoted:  # this test judges the scoring path, not the promotion rule
        MlflowClient(settings.tracking_uri, settings.tracking_uri) \
            .set_registered_model_alias("tailor-churn", "champion", result.version)
    return settings


def test_spark_udf_scores_equal_in_process_scores(churn_home: Settings, spark_session) -> None:
    local = score_churn(churn_home)
    spark = score_churn(churn_home.replace(features_engine="spark"))
    assert spark.version == local.version and spark.as_of == local.as_of
    assert len(local.scores) > 20
    order = ["customer_id"]
    left = local.scores.sort_values(order).reset_index(drop=True)
    right = spark.scores.sort_values(order).reset_index(drop=True)
    assert right["customer_id"].tolist() == left["customer_id"].tolist()
    np.testing.assert_allclose(right["churn_probability"], left["churn_probability"],
                               rtol=0, atol=1e-12)
    assert right["high_risk"].tolist() == left["high_risk"].tolist()
    assert right["top_features"].tolist() == left["top_features"].tolist()
    assert left["churn_probability"].nunique() > 5  # a model that tells customers apart


def test_the_retention_list_is_the_same_on_spark(churn_home: Settings, spark_session) -> None:
    local = write_retention_list(churn_home)
    local_rows = pd.read_csv(local.path)
    spark = write_retention_list(churn_home.replace(features_engine="spark"))
    assert Path(spark.path) == Path(local.path)
    pd.testing.assert_frame_equal(pd.read_csv(spark.path), local_rows)
    assert (spark.customers_scored, spark.high_risk) == (local.customers_scored, local.high_risk)
