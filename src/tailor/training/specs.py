"""What training needs to know about each model: parameters, search space, settings, final fit.

Reads and writes nothing. One `ModelSpec` per model; `SPECS` maps names to them. Business
settings from tailor.toml (the homepage's tiers and diversity, the churn horizon, the
checkout economics) always override tuned values: they are decisions, not hyper-parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import optuna

from tailor.config import Settings
from tailor.errors import InputError
from tailor.models.checkout import CheckoutParams, fit_checkout
from tailor.models.churn import ChurnParams, Horizon, fit_churn
from tailor.models.cross_sell import CrossSellParams, fit_cross_sell
from tailor.models.data import ShopData
from tailor.models.evaluate import BacktestResult
from tailor.models.homepage import HomepageParams, fit_homepage

Suggest = Callable[[optuna.Trial], dict[str, Any]]


def _suggest_homepage(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_int("factors", 8, 128, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 1.0, log=True),
        "alpha": trial.suggest_float("alpha", 1.0, 50.0, log=True),
        "iterations": trial.suggest_int("iterations", 6, 30),
        "cart_weight": trial.suggest_float("cart_weight", 1.0, 10.0, log=True),
        "purchase_weight": trial.suggest_float("purchase_weight", 2.0, 40.0, log=True),
        "half_life_days": trial.suggest_float("half_life_days", 7.0, 365.0, log=True),
        "blend_shrink": trial.suggest_float("blend_shrink", 0.3, 30.0, log=True),
        "trending_weight": trial.suggest_float("trending_weight", 0.0, 1.0),
    }


def _suggest_cross_sell(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "min_pair_count": trial.suggest_int("min_pair_count", 1, 5),
        "use_cart_sessions": trial.suggest_categorical("use_cart_sessions", [True, False]),
        "factors": trial.suggest_int("factors", 8, 128, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 1.0, log=True),
        "alpha": trial.suggest_float("alpha", 1.0, 50.0, log=True),
        "half_life_days": trial.suggest_float("half_life_days", 7.0, 365.0, log=True),
    }


def _suggest_boosting(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 7),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 30.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-2, 20.0, log=True),
    }


def _homepage_settings(settings: Settings) -> dict[str, Any]:
    return {"collaborative_after_purchases": settings.models_collaborative_after_purchases,
            "diversity": settings.models_diversity, "category_cap": settings.models_category_cap,
            "mmr_lambda": settings.models_mmr_lambda}


def _churn_settings(settings: Settings) -> dict[str, Any]:
    return {"horizon_days": settings.models_churn_horizon_days,
            "threshold": settings.models_churn_threshold}


def _checkout_settings(settings: Settings) -> dict[str, Any]:
    return {"threshold": settings.models_checkout_threshold,
            "margin_rate": settings.models_checkout_margin_rate,
            "shipping_cost": settings.models_checkout_shipping_cost,
            "budget": settings.models_checkout_budget}


def _fit_homepage(data: ShopData, params: HomepageParams, holdout: BacktestResult) -> Any:
    return fit_homepage(data, params)


def _fit_cross_sell(data: ShopData, params: CrossSellParams, holdout: BacktestResult) -> Any:
    return fit_cross_sell(data, params)


def _fit_churn(data: ShopData, params: ChurnParams, holdout: BacktestResult) -> Any:
    # Label the production model like the evaluated one, so its holdout numbers describe it.
    horizon: Horizon = holdout.fitted.horizon
    return fit_churn(data, params, end=data.end, horizon=horizon)


def _fit_checkout(data: ShopData, params: CheckoutParams, holdout: BacktestResult) -> Any:
    return fit_checkout(data, params)


@dataclass(frozen=True)
class ModelSpec:
    """How to build, tune, configure and finally fit one model."""

    name: str
    params_type: type
    suggest: Suggest
    serving_settings: Callable[[Settings], dict[str, Any]]
    fit_final: Callable[[ShopData, Any, BacktestResult], Any]

    @property
    def registered_name(self) -> str:
        """The MLflow registered model name."""
        return f"tailor-{self.name}"

    def default_params(self, settings: Settings) -> Any:
        """Defaults with the business settings applied."""
        return self.with_settings(self.params_type(), settings)

    def with_settings(self, params: Any, settings: Settings) -> Any:
        """`params` with the business settings from tailor.toml applied."""
        return replace(params, **self.serving_settings(settings))

    def from_values(self, values: dict[str, Any], settings: Settings) -> Any:
        """Params from logged or suggested values (unknown keys ignored), settings applied."""
        return self.with_settings(self.params_type.from_dict(values), settings)


SPECS: dict[str, ModelSpec] = {
    "homepage": ModelSpec("homepage", HomepageParams, _suggest_homepage, _homepage_settings,
                          _fit_homepage),
    "cross_sell": ModelSpec("cross_sell", CrossSellParams, _suggest_cross_sell,
                            lambda settings: {}, _fit_cross_sell),
    "churn": ModelSpec("churn", ChurnParams, _suggest_boosting, _churn_settings, _fit_churn),
    "checkout": ModelSpec("checkout", CheckoutParams, _suggest_boosting, _checkout_settings,
                          _fit_checkout),
}


def get_spec(model: str) -> ModelSpec:
    """The spec of `model`.

    Raises:
        InputError: an unknown model name (the message lists the known ones).
    """
    if model not in SPECS:
        raise InputError(f"model: must be one of {', '.join(SPECS)} or all, got {model!r}")
    return SPECS[model]
