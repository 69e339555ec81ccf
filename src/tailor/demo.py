"""`tailor demo`: the whole loop on a simulated shop, on embedded defaults.

Reads nothing but its settings; writes the simulated shop under `<home>/shop`, the
event store, lake, warehouse, reports and the MLflow store (runs, registered models)
under `<home>`. Each step says where its output went. Later issues add features,
training, serving and experiments here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.table import Table

from tailor.config import Settings

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """One demo step: its name, what it said, and how long it took."""

    name: str
    message: str
    seconds: float


def _timed(name: str, step: Callable[[], str], console: Console) -> StepResult:
    console.rule(f"[bold]{name}")
    started = time.perf_counter()
    message = step()
    result = StepResult(name, message, time.perf_counter() - started)
    console.print(f"{message}  [dim]({result.seconds:.1f} s)[/]", highlight=False)
    return result


def run_demo(settings: Settings, *, customers: int, products: int, days: int, seed: int) -> bool:
    """Simulate a shop, ingest it, check its quality, export the lake and summarise the warehouse.

    Args:
        settings: resolved settings; every output goes under `settings.home_path`.
        customers, products, days, seed: size and seed of the simulated shop.

    Returns:
        True when every step passed (the quality gate included).
    """
    from tailor.events.ingest import ingest_files
    from tailor.events.lake import export_lake
    from tailor.quality import run_quality_gate
    from tailor.simulate import ShopConfig, simulate_shop
    from tailor.warehouse import query_warehouse, refresh_warehouse

    console = Console(stderr=True)
    shop_dir = settings.home_path / "shop"
    state: dict[str, object] = {}

    def simulate_step() -> str:
        config = ShopConfig(n_customers=customers, n_products=products, n_days=days, seed=seed)
        summary = simulate_shop(config, shop_dir)
        return f"{summary.n_events:,} events, {summary.n_customers:,} customers -> {shop_dir}"

    def ingest_step() -> str:
        report = ingest_files(settings, shop_dir / "events.parquet",
                              products_path=shop_dir / "products.csv",
                              customers_path=shop_dir / "customers.csv")
        return (f"accepted {report.accepted:,}, duplicates {report.duplicates:,}, "
                f"rejected {sum(report.rejected.values()):,} -> {settings.event_store_url}")

    def validate_step() -> str:
        report = run_quality_gate(settings)
        state["gate_passed"] = report.passed
        return report.summary_text()

    def export_step() -> str:
        summary = export_lake(settings)
        return f"{summary.events:,} events in {summary.files} files -> {summary.lake_root}"

    def warehouse_step() -> str:
        tables = refresh_warehouse(settings)
        state["funnel"] = query_warehouse(settings, FUNNEL_SQL)
        return ", ".join(f"{name} {rows:,}" for name, rows in tables.items()) + \
            f" -> {settings.warehouse_file}"

    def train_step() -> str:
        return _train_models(settings, state)

    steps = [("simulate", simulate_step), ("ingest", ingest_step), ("validate", validate_step),
             ("export", export_step), ("warehouse", warehouse_step)]
    steps.append(("train", train_step))
    results = [_timed(name, step, console) for name, step in steps]
    _print_summary(console, results, state)
    _print_model_metrics(console, state)
    return bool(state.get("gate_passed")) and bool(state.get("trained"))


DEMO_TRIALS = 3  # Optuna trials per model: enough to show tuning, small enough for the demo
# The metric shown per model and where its baselines are read from.
DEMO_METRICS: dict[str, tuple[str, ...]] = {
    "homepage": ("precision@10", "recall@10", "coverage"), "cross_sell": ("hit_rate@10",),
    "churn": ("roc_auc", "precision", "recall"), "checkout": ("roc_auc",),
}


def _train_models(settings: Settings, state: dict[str, object]) -> str:
    """Train and register all four models; their results go into `state["training"]`."""
    from tailor.quality import QualityGateFailed
    from tailor.training import train_models

    try:
        results = train_models(settings, "all", trials=DEMO_TRIALS)
    except QualityGateFailed as error:
        state["trained"] = False
        return f"refused: {error}"
    state["training"] = results
    state["tracking_uri"] = settings.tracking_uri
    state["trained"] = all(result.status == "trained" for result in results)
    return ", ".join(f"{result.model} v{result.version}"
                     + (" (champion)" if result.promoted else "")
                     if result.status == "trained" else f"{result.model} skipped"
                     for result in results) + f" -> {settings.tracking_uri}"


def _print_model_metrics(console: Console, state: dict[str, object]) -> None:
    """The holdout metrics of every trained model beside its baselines."""
    results = state.get("training") or []
    if not results:
        return
    table = Table(title="Models on the holdout (last 20% of the history)")
    for column in ("model", "metric", "value", "popularity", "random", "recency"):
        table.add_column(column, justify="left" if column in ("model", "metric") else "right")
    for result in results:
        for metric in DEMO_METRICS.get(result.model, ()):
            if metric not in result.metrics:
                continue
            baselines = [result.baselines.get(name, {}).get(metric)
                         for name in ("popularity", "random", "recency")]
            table.add_row(result.model, metric, f"{result.metrics[metric]:.4f}",
                          *("-" if value is None else f"{value:.4f}" for value in baselines))
    console.print(table)
    for result in results:
        console.print(f"{result.model}: {result.reason}", highlight=False)
    console.print("browse the runs, registered models and aliases with: "
                  f"mlflow ui --backend-store-uri {state.get('tracking_uri', '<tracking uri>')}")


FUNNEL_SQL = """
SELECT count(*)                                            AS sessions,
       avg(CASE WHEN added_to_cart THEN 1 ELSE 0 END)      AS cart_rate,
       avg(CASE WHEN purchased THEN 1 ELSE 0 END)          AS conversion_rate,
       sum(CASE WHEN added_to_cart AND NOT purchased THEN 1 ELSE 0 END)
         / greatest(sum(CASE WHEN added_to_cart THEN 1 ELSE 0 END), 1) AS cart_abandonment,
       (SELECT count(*) FROM orders)                       AS orders,
       (SELECT avg(revenue) FROM orders)                   AS average_order_value
FROM sessions
"""


def _print_summary(console: Console, results: list[StepResult], state: dict[str, object]) -> None:
    table = Table(title="Tailor demo")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.name, f"{result.seconds:.1f}")
    console.print(table)
    funnel = state.get("funnel")
    if funnel is not None and len(funnel):
        row = funnel.iloc[0]
        shop = Table(title="The simulated shop (from the warehouse)")
        for column in ("sessions", "conversion", "cart abandonment", "orders", "AOV"):
            shop.add_column(column, justify="right")
        shop.add_row(f"{int(row.sessions):,}", f"{row.conversion_rate:.2%}",
                     f"{row.cart_abandonment:.1%}", f"{int(row.orders):,}",
                     f"{row.average_order_value:,.2f}")
        console.print(shop)
    verdict = "[green]passed" if state.get("gate_passed") else "[red]failed (training would be blocked)"
    console.print(f"quality gate: {verdict}")

