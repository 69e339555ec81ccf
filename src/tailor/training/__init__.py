"""MLflow runs, Optuna tuning and registry aliases shared by all models; the jobs around them.

The names below are imported on first use (PEP 562): importing the package, as an old
model version's pyfunc entry does (`tailor.training.pyfunc`), loads neither Optuna nor
matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names' types for checkers; at run time __getattr__ imports them
    from tailor.privacy.excluded_customers import excluded_customer_ids
    from tailor.training.jobs import evaluate_model, recommend_for_customer, write_retention_list
    from tailor.training.run import TrainResult, train_model, train_models

_EXPORTS = {"TrainResult": "tailor.training.run", "train_model": "tailor.training.run",
            "train_models": "tailor.training.run", "evaluate_model": "tailor.training.jobs",
            "recommend_for_customer": "tailor.training.jobs",
            "write_retention_list": "tailor.training.jobs",
            "excluded_customer_ids": "tailor.privacy.excluded_customers"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The exported name from its module, imported now (AttributeError for any other)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tailor.training' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
