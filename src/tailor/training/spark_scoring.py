"""Batch scoring on Spark: a registered model's pyfunc as a Spark UDF (`mlflow.pyfunc.spark_udf`).

Reads the registry (the version asked for) and the frame of feature rows it is given;
writes nothing. Used by the weekly churn scoring when `features.engine = spark`: the rows
are spread over the Spark session's executors (`features.spark_master`), each loads the
champion once and scores its partition with the same pyfunc the server loads, so the
probabilities equal in-process scoring (`tests/integration/test_spark_scoring.py`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailor.config import Settings
from tailor.registry.tracking import use_tracking

# What the churn pyfunc returns per row (`ChurnModel.predict_frame`).
CHURN_RESULT = "customer_id string, churn_probability double, high_risk boolean"


def spark_churn_probabilities(settings: Settings, registered_name: str, version: str,
                              features: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """P(churn) of each row of `features`, in its order, scored on Spark (float32, as the
    model gives them in process).

    Args:
        settings: the registry (`mlflow_tracking_uri`) and the Spark settings.
        registered_name, version: the model version to score with (the champion's).
        features: customer_id plus the model's features, one row per customer.
        feature_names: the model's feature columns (missing ones are NaN, as in process).

    Raises:
        RuntimeError: pyspark or Java is missing.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions

    from tailor.batch.spark_session import spark_session
    from tailor.models.classifier import feature_matrix

    session = spark_session(settings)
    use_tracking(settings)
    rows = pd.DataFrame(feature_matrix(features, feature_names), columns=feature_names)
    rows.insert(0, "customer_id", features["customer_id"].astype(str).to_numpy())
    rows.insert(0, "row_number", np.arange(len(rows), dtype=np.int64))
    model = mlflow.pyfunc.spark_udf(session, f"models:/{registered_name}/{version}",
                                    result_type=CHURN_RESULT, env_manager="local")
    frame = session.createDataFrame(rows)
    inputs = [functions.col(name) for name in ["customer_id", *feature_names]]
    scored = (frame.withColumn("scored", model(functions.struct(*inputs)))
              .select("row_number", "scored.churn_probability").toPandas())
    # The booster's probabilities are float32; Spark widened them to double, exactly.
    return scored.sort_values("row_number")["churn_probability"].to_numpy(dtype=np.float32)
