"""The MLflow pyfunc wrapper every Tailor model is logged with (BentoML imports it as is).

Reads, when MLflow loads a logged model: the `model` artifact, a pickle of the fitted
model object from `tailor.models`. Writes nothing. `predict` hands the input frame to the
model's own `predict_frame`, so the request and response columns are the model's:
homepage customer_id[, k] -> ranked products with reasons; cross_sell product_id[, k] ->
companions with confidence and lift; churn customer_id + churn features -> probability;
checkout session_key + cart features -> P(abandon) and the incentive. Loading it needs the
`tailor` package installed (it is in the serving image).

New versions are logged from `PYFUNC_CODE` (this folder's `pyfunc_entry.py`); MLflow copies
that file into each version and runs the copy on load. Versions logged before the wrapper
moved here carry a copy that imports `tailor.training.pyfunc`, which re-exports this class.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

PYFUNC_CODE = Path(__file__).with_name("pyfunc_entry.py")  # MLflow "model from code" file


class TailorModel(mlflow.pyfunc.PythonModel):
    """Loads the pickled Tailor model and forwards predictions to it."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["model"], "rb") as handle:
            self.model = pickle.load(handle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        return self.model.predict_frame(model_input)
