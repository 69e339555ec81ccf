"""MLflow runs, Optuna tuning and registry aliases shared by all models; the jobs around them."""

from tailor.training.jobs import evaluate_model, recommend_for_customer, write_retention_list
from tailor.training.privacy import excluded_customer_ids
from tailor.training.run import TrainResult, train_model, train_models

__all__ = ["TrainResult", "evaluate_model", "excluded_customer_ids", "recommend_for_customer",
           "train_model", "train_models", "write_retention_list"]
