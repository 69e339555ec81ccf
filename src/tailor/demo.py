"""`tailor demo`: the whole loop on a simulated shop, on embedded defaults.

Reads nothing but its settings; writes the simulated shop under `<home>/shop`, the
event store, lake, warehouse, features (Feast repo and online store), reports, the
MLflow store (runs, registered models), a demo secret key, the server's log
(`<home>/server.log`) and the demo's own log (`<home>/logs/demo.log`, the libraries' lines
included) under `<home>`. Each step says where its output went. The last step starts the
BentoML server, asks it for a known buyer, a new visitor and a cart, prints the answers with
their reasons, and stops it; a monitoring round measures each champion against its
baseline (`tailor monitor`) and prints its table; last, a week of the personalised homepage
against bestsellers runs as an experiment on the simulated shop, in a home of its own
(`<home>/experiment`), and its analysis is printed (`tailor.experiments.simulation`). The
demo ends with the demo shop's URL and the command that serves it (`tailor demo --serve`
starts it at once: `tailor serve --demo-shop`).
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
    """Simulate a shop, ingest, check, export, build the warehouse and features, train, serve.

    Args:
        settings: resolved settings; every output goes under `settings.home_path`.
        customers, products, days, seed: size and seed of the simulated shop.

    Returns:
        True when every step passed (the quality gate included, and every served answer 200).
    """
    from tailor.events.ingest.job import ingest_files
    from tailor.events.lake import export_lake
    from tailor.quality import run_quality_gate
    from tailor.simulate import ShopConfig, simulate_shop
    from tailor.warehouse import query_warehouse, refresh_warehouse

    from tailor.logs import setup_logging

    log_file = settings.home_path / "logs" / "demo.log"
    setup_logging(tailor_level=logging.WARNING, log_file=log_file)  # the steps say the rest
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

    def features_step() -> str:
        from tailor.features.build import run_features

        summary = run_features(settings, show_progress=False)
        return (f"{summary.features} features -> {summary.online_store} "
                f"(materialized until {summary.materialized_until})")

    def train_step() -> str:
        return _train_models(settings, state)

    def serve_step() -> str:
        return _serve_and_ask(settings, state)

    def monitor_step() -> str:
        from collections import Counter

        from tailor.monitoring.rounds import run_round

        rounds = run_round(settings)
        state["monitoring"] = rounds
        counts = Counter(result.decision.replace("_", " ") for result in rounds)
        return (", ".join(f"{decision} {n}" for decision, n in counts.items())
                + f" -> decisions in {settings.event_store_url} (monitoring_decisions), "
                f"Evidently workspace {settings.home_path / 'evidently'}")

    def experiment_step() -> str:
        return _run_experiment(settings, shop_dir, state)

    steps = [("simulate", simulate_step), ("ingest", ingest_step), ("validate", validate_step),
             ("export", export_step), ("warehouse", warehouse_step),
             ("features", features_step), ("train", train_step), ("serve", serve_step),
             ("monitor", monitor_step), ("experiment", experiment_step)]
    results = [_timed(name, step, console) for name, step in steps]
    _print_summary(console, results, state)
    _print_model_metrics(console, state)
    _print_answers(console, state)
    if state.get("monitoring"):
        from tailor.monitoring.table import round_table

        console.print(round_table(state["monitoring"]))  # type: ignore[arg-type]
    _print_experiment(console, state)
    console.print(f"every step's log, the libraries' lines included: {log_file}", highlight=False)
    _print_shop_invitation(console, settings)
    return all(bool(state.get(flag)) for flag in ("gate_passed", "trained", "served"))


def shop_command(settings: Settings) -> str:
    """The command that serves this home with its demo shop."""
    return f"tailor serve --demo-shop --home {settings.home_path}"


def shop_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.serving_host in ("0.0.0.0", "::", "") else \
        settings.serving_host
    return f"http://{host}:{settings.serving_port}/shop/"


def _print_shop_invitation(console: Console, settings: Settings) -> None:
    """Where to watch the models at work in a browser, and the command that serves it."""
    console.rule("[bold]see it in a browser")
    console.print(f"the demo shop on this home's catalogue: {shop_url(settings)}\n"
                  f"  start it (Ctrl-C stops): {shop_command(settings)}\n"
                  "  (make shop does the same for make demo's home; tailor demo --serve keeps "
                  "the server running right after the demo)",
                  highlight=False, soft_wrap=True)


DEMO_EXPERIMENT_DAYS = 7


def _run_experiment(settings: Settings, shop_dir: object, state: dict[str, object]) -> str:
    """A week of the personalised homepage against bestsellers on the simulated shop, in a
    home of its own (`<home>/experiment`, rebuilt each run: the demo's event store keeps
    only what the steps above wrote), analysed (`tailor.experiments.simulation`)."""
    import shutil
    from pathlib import Path

    from tailor.config import load_settings
    from tailor.experiments.simulation import run_simulated_experiment

    home = settings.home_path / "experiment"
    shutil.rmtree(home, ignore_errors=True)
    run = run_simulated_experiment(load_settings(home=home, env={}), Path(str(shop_dir)),
                                   "personalised-homepage", days=DEMO_EXPERIMENT_DAYS, seed=1)
    state["experiment"] = run.analysis
    verdict = run.analysis.verdict
    return (f"{sum(run.analysis.units.values()):,} customers for {DEMO_EXPERIMENT_DAYS} days: "
            f"{verdict.decision.replace('_', ' ')}"
            f"{' (' + verdict.winner + ')' if verdict.winner else ''} -> {run.report}")


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


DEMO_K = 5  # products per answer shown by the serve step
BUYER_SQL = "SELECT customer_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
TOP_PRODUCTS_SQL = """
SELECT e.product_id, max(p.price) AS price
FROM events e JOIN products p USING (product_id)
WHERE e.event_type = 'purchase'
GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3
"""


@dataclass
class ServedAnswer:
    """One demo call to the server: who asked, where, and what came back."""

    label: str
    path: str
    status: int
    body: dict


def _demo_calls(settings: Settings) -> list[tuple[str, str, dict]]:
    """(label, path, JSON body) for a known buyer, a new visitor, a product and a cart."""
    from tailor.warehouse import query_warehouse

    buyer = str(query_warehouse(settings, BUYER_SQL).customer_id.iloc[0])
    top = query_warehouse(settings, TOP_PRODUCTS_SQL)
    cart = [{"product_id": str(row.product_id), "quantity": 1, "price": float(row.price)}
            for row in top.itertuples()]
    return [
        (f"known buyer {buyer}", "/homepage", {"customer_id": buyer, "k": DEMO_K}),
        ("new visitor", "/homepage", {"customer_id": "demo-new-visitor", "k": DEMO_K}),
        (f"product {cart[0]['product_id']}", "/also_bought",
         {"product_id": cart[0]["product_id"], "k": DEMO_K}),
        (f"cart of {buyer}", "/checkout_offer",
         {"customer_id": buyer, "session_id": "demo-checkout", "cart": cart}),
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(url: str, key: str, label: str, path: str, body: dict) -> ServedAnswer:
    """POST one demo request with the secret key."""
    import httpx

    response = httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {key}"},
                          timeout=30.0)
    return ServedAnswer(label, path, response.status_code, response.json())


def _serve_and_ask(settings: Settings, state: dict[str, object]) -> str:
    """Start the server (as `tailor serve` does), call each endpoint once, stop it."""
    from tailor.events.keys import create_key, hash_key, key_id, keys_file_path, revoke_key
    from tailor.server import start_server

    keys_file = keys_file_path(settings)
    key = create_key("secret", keys_file, label="demo")
    calls = _demo_calls(settings)
    log_path = settings.home_path / "server.log"
    with log_path.open("ab") as log:
        server = start_server(settings, host="127.0.0.1", port=_free_port(), log=log)
    try:
        if not server.wait_ready(timeout=180):
            state["served"] = False
            return f"the server did not become ready; its log: {log_path}"
        answers = [_call(server.url, key, *call) for call in calls]
    finally:
        server.stop()
        revoke_key(keys_file, key_id(hash_key(key)))  # its plain value is gone with this run
    state["answers"] = answers
    state["served"] = all(answer.status == 200 for answer in answers)
    return (f"{len(answers)} answers from {server.url} (bentoml serve bentos.service:Tailor), "
            f"statuses {sorted({answer.status for answer in answers})}; log: {log_path}")


def _print_experiment(console: Console, state: dict[str, object]) -> None:
    """The experiment step's analysis: each arm's conversion, AOV and revenue per visitor with
    the lift, its interval and the decision p-value (nothing when the step did not run)."""
    if state.get("experiment"):
        from tailor.experiments.analysis_commands import lift_table

        console.print(lift_table("experiment", state["experiment"]))  # type: ignore[arg-type]


def _print_answers(console: Console, state: dict[str, object]) -> None:
    """Each served answer as a table: the products and their reasons, or the offer."""
    for answer in state.get("answers") or []:
        body = answer.body
        title = (f"POST {answer.path} for {answer.label}: status {answer.status}, "
                 f"model v{body.get('model_version') or '-'}"
                 + (f", fallback ({body.get('fallback_reason')})" if body.get("fallback") else ""))
        if answer.status != 200:
            console.print(f"{title}: {body}", highlight=False)
        else:
            console.print(_answer_table(title, body))


def _answer_table(title: str, body: dict) -> Table:
    """A product list with scores and reasons, or a checkout offer with its reason."""
    table = Table(title=title)
    if "items" in body:
        for column in ("#", "product", "score", "reason"):
            table.add_column(column, justify="right" if column in ("#", "score") else "left")
        for rank, item in enumerate(body["items"], start=1):
            table.add_row(str(rank), item["product_id"], f"{item['score']:.3f}", item["reason"])
        return table
    for column in ("P(abandon)", "offer", "reason"):
        table.add_column(column)
    p_abandon = body["p_abandon"]
    table.add_row("-" if p_abandon is None else f"{p_abandon:.2f}", body["offer"], body["reason"])
    return table


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

