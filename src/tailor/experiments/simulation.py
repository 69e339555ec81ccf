"""An experiment run on the simulated shop through the real assignment, prediction log and
events, then analysed: the proof that the analysis finds an effect that is there (the
personalised homepage against bestsellers) and none where there is none (an A/A run).

Reads a shop `tailor simulate` wrote (`<shop>/events.parquet`, `products.csv`,
`customers.csv`, `ground_truth/`). Writes into a home of its own (never a shop's real one):
the experiment's state rows, the shop's last `experiments.pre_period_days` of history (the
pre-period CUPED reads), every answer as a prediction-log row (`predictions`), the shoppers'
events (`events`), then the analysis's page (`tailor.experiments.analysis_report`).

The loop (`tailor.simulate.run_closed_loop`) asks `ExperimentShopper.recommend` for each
session's homepage slate: it assigns the customer with the home's `Assigner`
(`tailor.experiments.state.current_assigner`, as the server does), asks the variant's policy
for the slate and records the answer with its experiment and variant. The personalised
variant is the homepage model (`tailor.models.homepage.fit_homepage`, default parameters)
fitted on the shop's history before the experiment; the control is the bestsellers list
(`PopularityPolicy`), the shop before personalisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from tailor.config import Settings
    from tailor.experiments.analysis import ExperimentAnalysis
    from tailor.experiments.assignment import Assigner
    from tailor.simulate import ShopperPolicy
    from tailor.simulate.world import ShopState

SURFACE = "homepage"


class ExperimentShopper:
    """A `ShopperPolicy` that serves each customer their variant's slate and logs the answer.

    Args:
        assigner: the home's assignment.
        experiment: the experiment's name; policies: {variant: the policy it serves};
            control: the variant of a customer in no experiment (the holdout).
    """

    def __init__(self, assigner: Assigner, experiment: str,
                 policies: dict[str, ShopperPolicy], control: str) -> None:
        self.assigner, self.experiment = assigner, experiment
        self.policies, self.control = policies, control
        self.rows: list[dict[str, Any]] = []

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        arm = self.assigner.assign(SURFACE, customer_id)
        variant = arm.variant if arm is not None and arm.experiment == self.experiment \
            else None
        slate = list(self.policies[variant or self.control].recommend(customer_id, context, k))
        self.rows.append({
            "served_at": datetime.fromisoformat(context["timestamp"]),
            "request_id": f"sim-{context['session_id']}-{len(self.rows)}",
            "customer_id": customer_id, "session_id": context["session_id"],
            "endpoint": SURFACE, "model": SURFACE, "variant": variant or "default",
            "items": json.dumps([{"product_id": product, "score": None, "reason": "simulated"}
                                 for product in slate]),
            "k": k, "fallback": False, "stale": False, "personalised": variant is not None,
            "experiment": variant and self.experiment, "experiment_variant": variant})
        return slate

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return None


class ModelPolicy:
    """The homepage model's list for each customer, computed for everyone once per simulated
    day (as the nightly batch would), then served from memory."""

    def __init__(self, model: Any, state: ShopState) -> None:
        self.model, self.state = model, state
        self._day = -1
        self._lists: dict[str, list[str]] = {}

    def recommend(self, customer_id: str, context: dict[str, Any], k: int) -> list[str]:
        if self._day != self.state.day:
            ids = [str(each) for each in self.state.customers.customer_ids]
            picks = self.model.recommend(ids, k=k, with_reasons=False)
            self._lists = picks.groupby("customer_id", sort=False)["product_id"].agg(list) \
                .to_dict()
            self._day = self.state.day
        return self._lists.get(customer_id, [])[:k]

    def offer(self, customer_id: str, session: dict[str, Any]) -> str | None:
        return None


def fit_personalised_policy(shop: Path, state: ShopState) -> ModelPolicy:
    """The homepage model fitted on the shop's history (`tailor simulate`'s files)."""
    import pandas as pd

    from tailor.models.data import build_shop_data
    from tailor.models.homepage import fit_homepage

    data = build_shop_data(pd.read_parquet(shop / "events.parquet"),
                           pd.read_csv(shop / "products.csv"), pd.read_csv(shop / "customers.csv"))
    return ModelPolicy(fit_homepage(data), state)


def definition_data(name: str, variants: list[str], days: int) -> dict[str, Any]:
    """A 50/50 homepage experiment judged on conversion (its own layer: one per home)."""
    return {
        "name": name, "owner": "simulation", "surface": SURFACE, "layer": name, "traffic": 1.0,
        "hypothesis": "The personalised homepage converts better than the bestsellers "
                      "everyone sees (brief: +28% conversion, +19% AOV).",
        "variants": [{"name": variant, "weight": 0.5} for variant in variants],
        "control": variants[0],
        "metrics": {"primary": "conversion",
                    "secondary": ["aov", "revenue_per_visitor", "click_through", "bounce_rate"],
                    "attribution_window_hours": 24},
        "guardrails": [], "minimum_sample": 100, "max_duration_days": days,
    }


@dataclass
class SimulatedExperiment:
    """A simulated run: its analysis, the page, and each arm's shop figures by session."""

    analysis: ExperimentAnalysis
    report: Path
    arms: dict[str, dict[str, float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {"analysis": self.analysis.to_dict(), "report": str(self.report),
                "arms": self.arms}


def run_simulated_experiment(settings: Settings, shop: Path, name: str,
                             policies: dict[str, ShopperPolicy] | None = None, *,
                             days: int = 14, seed: int = 1, state: ShopState | None = None
                             ) -> SimulatedExperiment:
    """Start experiment `name` in the (fresh) home, run `days` of the shop with it, store the
    answers and events, analyse and write the page.

    Args:
        settings: a home of its own (its event store gets the simulated rows).
        shop: the folder `tailor simulate` wrote.
        name: the experiment's name.
        policies: {variant: policy}, the control first; default: `bestsellers` against
            `personalised` (the homepage model fitted on the shop's history).
        days: days to simulate (also the experiment's planned length).
        seed: the days' randomness.
        state: the shop to continue (default: loaded from `shop`).
    """
    from tailor.events.prediction_store import PREDICTION_COLUMNS, datetime_to_micros
    from tailor.experiments.analysis import analyze_experiment
    from tailor.experiments.analysis_report import write_analysis_report
    from tailor.experiments.definition import parse_definition
    from tailor.experiments.state import current_assigner, open_store
    from tailor.simulate import PopularityPolicy, load_shop_state, run_closed_loop

    state = state or load_shop_state(shop)
    if policies is None:
        policies = {"bestsellers": PopularityPolicy(state),
                    "personalised": fit_personalised_policy(shop, state)}
    definition = parse_definition(definition_data(name, list(policies), days), name)
    with open_store(settings) as store:
        store.create(definition, "simulation")
        store.start(definition, "simulation", "simulated experiment")
    shopper = ExperimentShopper(current_assigner(settings), name, policies, definition.control)
    first_day = state.config.start_date + timedelta(days=state.day)
    start = datetime.combine(first_day, datetime.min.time(), timezone.utc)
    _store_history(settings, shop, start - timedelta(days=settings.experiments_pre_period_days))
    events = run_closed_loop(state, shopper, days=days, seed=seed)
    rows = [tuple({**row, "served_at": datetime_to_micros(row["served_at"])}.get(column)
                  for column in PREDICTION_COLUMNS) for row in shopper.rows]
    _store(settings, rows, events)
    end = start + timedelta(days=days)
    analysis = analyze_experiment(settings, name, as_of=end)
    return SimulatedExperiment(analysis, write_analysis_report(settings, analysis),
                               arm_figures(events, shopper.rows))


def _store_history(settings: Settings, shop: Path, since: datetime) -> None:
    """The shop's events from `since` on (the units' pre-period, CUPED's covariate) into
    the home's event store."""
    import pandas as pd

    from tailor.events.store import open_event_store

    history = pd.read_parquet(shop / "events.parquet")
    history = history[history["timestamp"] >= pd.Timestamp(since)]
    store = open_event_store(settings.event_store_url)
    try:
        store.insert_events(history, batch_id="simulated-history")
    finally:
        store.close()


def _store(settings: Settings, rows: list[tuple], events: pd.DataFrame) -> None:
    from tailor.events.prediction_store import open_prediction_store
    from tailor.events.store import open_event_store

    predictions = open_prediction_store(settings.event_store_url)
    try:
        predictions.insert_predictions(rows)
    finally:
        predictions.close()
    store = open_event_store(settings.event_store_url)
    try:
        store.insert_events(events, batch_id="simulated-experiment")
    finally:
        store.close()


def arm_figures(events: pd.DataFrame, rows: list[dict[str, Any]]) -> dict[str, dict]:
    """Each variant's shop figures by session, as the brief counts them: conversion
    (sessions with a purchase / sessions), AOV, cart abandonment (carted sessions without a
    purchase / carted sessions) and bounce (sessions with one event / sessions)."""
    import pandas as pd

    variant_of = {row["customer_id"]: row["experiment_variant"] for row in rows
                  if row["experiment_variant"]}
    frame = events.assign(variant=events["customer_id"].map(variant_of)).dropna(
        subset=["variant", "session_id"])
    figures = {}
    for variant, group in frame.groupby("variant"):
        sessions = group.groupby("session_id")["event_type"].agg(
            purchased=lambda kinds: (kinds == "purchase").any(),
            carted=lambda kinds: (kinds == "add_to_cart").any(), events="size")
        purchases = group[group["event_type"] == "purchase"]
        revenue = (purchases["price"] * purchases["quantity"].fillna(1)).sum()
        orders = purchases["order_id"].nunique()
        carted = sessions[sessions["carted"]]
        figures[str(variant)] = {
            "sessions": int(len(sessions)),
            "conversion": float(sessions["purchased"].mean()) if len(sessions) else None,
            "aov": float(revenue / orders) if orders else None,
            "cart_abandonment": float(1 - carted["purchased"].mean()) if len(carted) else None,
            "bounce_rate": float((sessions["events"] == 1).mean()) if len(sessions) else None,
        }
    del pd
    return figures


# The brief's "before" column (its phase 1) and what personalisation should bring (phase 5).
BRIEF_BEFORE = {"conversion": 0.021, "aov": 75.0, "cart_abandonment": 0.72,
                "bounce_rate": 0.48, "email_ctr": 0.02}
BRIEF_LIFT = {"conversion": 0.28, "aov": 0.19}


def simulate_ab_and_aa(out: Path, *, customers: int = 6_000, products: int = 300,
                       history_days: int = 60, days: int = 14, seed: int = 7,
                       oracle: bool = False, progress: Any = None
                       ) -> dict[str, SimulatedExperiment]:
    """Simulate a shop into `out/shop`, then run the personalised homepage against the
    bestsellers (`out/ab-home`) and the bestsellers against themselves (`out/aa-home`), each
    from the same starting day with the same shoppers' randomness; with `oracle`, also the
    bestsellers against the simulator's hidden tastes (`TrueAffinityPolicy`, `out/oracle-home`:
    the upper bound of what a homepage can do in this shop).

    Raises:
        InputError: `out` exists and is not empty (a run never writes into a used folder).
    """
    from tailor.config import load_settings
    from tailor.errors import InputError
    from tailor.simulate import PopularityPolicy, ShopConfig, load_shop_state, simulate_shop

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"--out: {out} is not empty; the simulation writes homes of its own "
                         "into a new folder")
    say = progress or (lambda _line: None)
    say(f"simulating {history_days} days of a shop of {customers:,} customers")
    simulate_shop(ShopConfig(n_customers=customers, n_products=products, n_days=history_days,
                             seed=seed), out / "shop")
    say("A/B: personalised homepage against bestsellers")
    ab = run_simulated_experiment(load_settings(home=out / "ab-home", env={}), out / "shop",
                                  "personalised-homepage", days=days, seed=seed)
    say("A/A: bestsellers against bestsellers")
    state = load_shop_state(out / "shop")
    aa = run_simulated_experiment(
        load_settings(home=out / "aa-home", env={}), out / "shop", "a-a-bestsellers",
        {"bestsellers-a": PopularityPolicy(state), "bestsellers-b": PopularityPolicy(state)},
        days=days, seed=seed, state=state)
    runs = {"ab": ab, "aa": aa}
    if oracle:
        from tailor.simulate import TrueAffinityPolicy

        say("upper bound: the shoppers' hidden tastes against bestsellers")
        state = load_shop_state(out / "shop")
        runs["oracle"] = run_simulated_experiment(
            load_settings(home=out / "oracle-home", env={}), out / "shop", "oracle-homepage",
            {"bestsellers": PopularityPolicy(state), "oracle": TrueAffinityPolicy(state)},
            days=days, seed=seed, state=state)
    return runs
