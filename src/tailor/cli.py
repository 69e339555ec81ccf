"""The `tailor` command line: one command per job.

Every command takes `--home` (or `TAILOR_HOME`); commands that report take `--json`
and then print exactly one JSON object on stdout (progress and prose go to stderr).
Exit codes: 0 success, 1 a gate failed, 2 bad usage or input, 3 a service failed (a
database, Redis or the registry unreachable or dropping the connection: one line on stderr,
no traceback; running the command again once the service is back is safe). Bad input is an
`InputError` (or a `ConfigError`, a missing file): one line and exit 2. Any other exception is
a bug and ends with its traceback (exit 1).

Heavy libraries (pandas, pyarrow, duckdb, mlflow, ...) are imported inside the
commands so that `tailor --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from tailor.deploy.sizing import REQUESTS_PER_WORKER
from tailor.errors import InputError
from tailor.events.key_commands import keys_app
from tailor.experiments.campaign_commands import campaign_app
from tailor.experiments.commands import experiment_app
from tailor.privacy.commands import register as register_privacy_commands

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.server import ServerProcess

app = typer.Typer(
    name="tailor",
    help="Self-hosted ML personalization for online shops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

HOME_OPTION = typer.Option(None, "--home", help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout instead of prose.")

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE_FAILED = 3

log = logging.getLogger("tailor")


def _stderr_console():
    """Prose for people on stderr; long lines are not broken (a path stays one word to copy)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _setup_logging() -> None:
    from tailor.logs import setup_logging

    setup_logging()


@contextmanager
def _job(home: Optional[Path]) -> Iterator[Settings]:
    """Load settings; bad input exits 2 and failed services 3, each with one line.

    Bad input is an `InputError` (a `ContractError` is one), a `ConfigError` (a setting) or a
    missing file. Any other `ValueError` is a bug, not the user's input: it propagates with
    its traceback.
    """
    _setup_logging()
    from tailor.config import ConfigError, load_settings  # pydantic: only once a job runs

    try:
        yield load_settings(home=home)
    except (InputError, ConfigError, FileNotFoundError, IsADirectoryError) as error:
        _stderr_console().print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as error:
        if type(error).__name__ == "ExportInProgress":  # another export holds the lock
            _stderr_console().print(f"[bold red]error:[/] {type(error).__name__}: {error}",
                                    highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if not _is_failed_service(error):
            raise
        message = " ".join(str(error).split())  # drivers put server detail on more lines
        _stderr_console().print(f"[bold red]service failed:[/] {type(error).__name__}: "
                                f"{message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SERVICE_FAILED) from None


def _is_failed_service(error: Exception) -> bool:
    """A store or server that cannot be reached or dropped the connection (PostgreSQL,
    Redis, the MLflow registry's lock): a one-line message and exit 3, not a traceback."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    for kind in type(error).__mro__:
        module = kind.__module__
        if module.startswith("psycopg") and kind.__name__ in {"OperationalError",
                                                              "InterfaceError"}:
            return True
        if module.startswith("redis") and kind.__name__ in {"ConnectionError", "TimeoutError"}:
            return True
    return False


def _emit(payload: dict[str, Any], as_json: bool, human: object) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        _stderr_console().print(human, highlight=False)


@app.command()
def simulate(
    customers: int = typer.Option(2_000, min=1, help="Number of customers."),
    products: int = typer.Option(300, min=1, help="Number of products."),
    days: int = typer.Option(60, min=1, help="Days of history."),
    seed: int = typer.Option(7, help="Random seed: the same seed writes the same shop."),
    faults: float = typer.Option(0.0, min=0.0, max=0.5, help="Share of event rows to corrupt, spread over the fault kinds."),
    start: str = typer.Option("2026-01-05", help="First simulated day (ISO date, UTC)."),
    shift_at_day: Optional[int] = typer.Option(
        None, "--shift-at-day", help="Day (0-based) a seasonal shift in tastes and a catalogue "
                                     "turnover happens (what monitoring must catch)."),
    out: Path = typer.Option(..., "--out", help="Folder for events.parquet, products.csv, customers.csv, ground_truth/."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a synthetic shop: events, catalogue, customers and the ground truth behind them."""
    with _job(home):
        from tailor.simulate import ShopConfig, simulate_shop

        config = ShopConfig(n_customers=customers, n_products=products, n_days=days, seed=seed,
                            fault_rate=faults, start=start, shift_at_day=shift_at_day)
        summary = simulate_shop(config, out)
    _emit(summary.to_dict(), as_json,
          f"simulated {summary.n_events:,} events from {summary.n_customers:,} customers "
          f"over {summary.n_days} days; wrote {out}")


@app.command()
def ingest(
    events: str = typer.Argument(..., help="Events file: CSV, JSON Lines or Parquet, plain or "
                                 "gzipped; a path or a URL (s3://, any fsspec URL)."),
    products: Optional[str] = typer.Option(
        None, help="Products file (CSV or Parquet); an empty value means none."),
    customers: Optional[str] = typer.Option(
        None, help="Customers file; PII columns go to the PII store only. Empty: none."),
    column_map: Optional[str] = typer.Option(
        None, "--map", help="Which column is which: customer_id=user_id,event_type=event,"
        "timestamp=ts (a|b: the first not empty). Default: ingest.column_map."),
    event_types: Optional[str] = typer.Option(
        None, "--event-types", help="Other names of event types: purchase=Order Completed|"
        "Checkout Done,... (Segment's e-commerce names are built in). Default: "
        "ingest.event_types."),
    case_sensitive_event_types: Optional[bool] = typer.Option(
        None, "--case-sensitive-event-types/--case-insensitive-event-types",
        help="Match event-type names exactly (default: any case and separator)."),
    timestamp_format: Optional[str] = typer.Option(
        None, "--timestamp-format", help="strftime format of timestamps that are not ISO 8601 "
        "or epoch numbers, e.g. '%d/%m/%Y %H:%M'. Default: ingest.timestamp_format."),
    dayfirst: Optional[bool] = typer.Option(
        None, "--dayfirst/--no-dayfirst", help="Numeric dates are day/month/year (05/01/2026 "
        "is 5 January). Without it or a format such dates are rejected."),
    timezone: Optional[str] = typer.Option(
        None, "--timezone", help="IANA zone of zone-less timestamps (default: "
        "events.naive_timezone, UTC)."),
    delimiter: Optional[str] = typer.Option(
        None, "--delimiter", help="CSV delimiter: a character or comma, semicolon, tab, pipe "
        "(default: sniffed among comma, semicolon and tab)."),
    encoding: Optional[str] = typer.Option(
        None, "--encoding", help="Text encoding of CSV and JSON Lines files, e.g. latin-1, "
        "cp1252 (default: UTF-8, checked)."),
    file_format: Optional[str] = typer.Option(
        None, "--format", help="csv, jsonl or parquet when the file name does not say."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Load events (and optionally products and customers) into the event store."""
    with _job(home) as settings:
        from tailor.events.ingest.job import ingest_files
        from tailor.events.ingest.options import ImportFlags

        flags = ImportFlags(column_map=column_map, event_types=event_types,
                            event_types_case_sensitive=case_sensitive_event_types,
                            timestamp_format=timestamp_format, dayfirst=dayfirst,
                            timezone=timezone, delimiter=delimiter, encoding=encoding,
                            file_format=file_format)
        # An empty value (the MLflow project's default) means the file was not given.
        report = ingest_files(settings, events, products_path=products or None,
                              customers_path=customers or None, flags=flags)
    if as_json:
        _emit(report.to_dict(), as_json, "")
    else:
        from tailor.events.ingest.summary import render_report

        _stderr_console().print(render_report(report, settings.event_store_url))


@app.command()
def validate(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the data-quality rules; exit 1 when a blocking rule fails (training then refuses to start)."""
    with _job(home) as settings:
        from tailor.quality import run_quality_gate

        report = run_quality_gate(settings)
    _emit(report.to_dict(), as_json, report.summary_text())
    if not report.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def export(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Export new events and predictions to the Parquet lake (date/hour partitions); run it hourly, re-runs add nothing."""
    with _job(home) as settings:
        from tailor.events.lake import export_lake

        summary = export_lake(settings)
    _emit(summary.to_dict(), as_json,
          f"exported {summary.events:,} events in {summary.files} files and "
          f"{summary.predictions:,} predictions in {summary.prediction_files} files; "
          f"lake: {summary.lake_root}")


@app.command()
def warehouse(
    sql: Optional[str] = typer.Argument(None, help="A SQL query over events, customers, products, predictions, orders, sessions."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Refresh the DuckDB warehouse over the lake; with SQL, run a query and print the result."""
    with _job(home) as settings:
        from tailor.warehouse import refresh_warehouse, query_warehouse

        tables = refresh_warehouse(settings)
        result = query_warehouse(settings, sql) if sql else None
    if result is not None:
        _emit({"rows": json.loads(result.to_json(orient="records", date_format="iso"))}, as_json,
              result.to_string(index=False))
    else:
        _emit({"tables": tables, "path": str(settings.warehouse_file)}, as_json,
              "warehouse " + str(settings.warehouse_file) + ": "
              + ", ".join(f"{name} {rows:,} rows" for name, rows in tables.items()))


@app.command("config")
def show_config(
    example: bool = typer.Option(False, "--example", help="Print tailor.toml.example (every key and default)."),
    keys: bool = typer.Option(False, "--keys",
                              help="List every key: its variable, type, default, limits and meaning."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the resolved settings (after tailor.toml and TAILOR_* variables)."""
    from tailor.config import SETTINGS, example_toml

    if example:
        sys.stdout.write(example_toml())
        return
    if keys:
        rows = [{"key": f"{s.section}.{s.key}" if s.section else s.key, "env": s.env,
                 "type": s.type.__name__, "default": s.default, "must_be": s.rule, "help": s.help}
                for s in SETTINGS]
        _emit({"keys": rows}, as_json, _keys_table(rows))
        return
    with _job(home) as settings:
        payload = dict(settings.values)
    _emit(payload, as_json, "\n".join(f"{key} = {value!r}" for key, value in payload.items()))


def _keys_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("key", "type", "default", "must be", "meaning", title="tailor.toml keys "
                  "(environment: TAILOR_<SECTION>_<KEY>)", show_lines=False)
    for row in rows:
        table.add_row(row["key"], row["type"], repr(row["default"]), row["must_be"], row["help"])
    return table


@app.command()
def demo(
    customers: int = typer.Option(2_000, min=50, help="Customers in the demo shop."),
    products: int = typer.Option(300, min=20, help="Products in the demo shop."),
    days: int = typer.Option(60, min=14, help="Days of history."),
    seed: int = typer.Option(7, help="Random seed."),
    serve_shop: bool = typer.Option(False, "--serve",
                                    help="Then keep serving the home with its demo shop at "
                                         "/shop/ (tailor serve --demo-shop) until Ctrl-C."),
    home: Optional[Path] = HOME_OPTION,
) -> None:
    """The whole loop on a simulated shop, end to end, on embedded defaults (no services)."""
    with _job(home) as settings:
        from tailor.demo import run_demo

        passed = run_demo(settings, customers=customers, products=products, days=days, seed=seed)
    if not passed:
        raise typer.Exit(EXIT_GATE_FAILED)
    if serve_shop:
        serve(host=None, port=None, workers=None, demo_shop=True, home=home)


# -- feature store --------------------------------------------------------------------------------


@app.command()
def features(
    full: bool = typer.Option(False, "--full",
                              help="Reload every view's whole TTL window into the online store "
                                   "(after it lost its data), not only what changed."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compute features from the warehouse, `feast apply` them, materialize the online store."""
    with _job(home) as settings:
        from tailor.features.build import run_features

        summary = run_features(settings, show_progress=not as_json, full=full)
    _emit(summary.to_dict(), as_json, summary.summary_text())


# -- models --------------------------------------------------------------------------------------


@app.command()
def train(
    model: str = typer.Argument(..., help="homepage, cross_sell, churn, checkout or all."),
    trials: int = typer.Option(20, min=1, help="Optuna trials per model (1 = the defaults only)."),
    force: bool = typer.Option(False, "--force",
                               help="Train even though the data-quality gate fails."),
    jobs: Optional[int] = typer.Option(None, min=1,
                                       help="Parallel trials (default: models.optuna_jobs)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Tune (Optuna), evaluate on the holdout, register in MLflow; promote only a better model."""
    with _job(home) as settings:
        from tailor.quality import QualityGateFailed
        from tailor.training import train_models

        try:  # NotEnoughData is an InputError: exit 2
            results = train_models(settings, model, trials=trials, force=force, jobs=jobs)
        except QualityGateFailed as error:
            _stderr_console().print(f"[bold red]refused:[/] {error}", highlight=False)
            raise typer.Exit(EXIT_GATE_FAILED) from None
    lines = [f"{result.model}: {result.status}"
             + (f" v{result.version}, {result.reason}" if result.version else f" ({result.reason})")
             for result in results]
    _emit({"models": [result.to_dict() for result in results],
           "tracking_uri": settings.tracking_uri}, as_json,
          "\n".join(lines) + f"\nMLflow: {settings.tracking_uri}")


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="homepage, cross_sell, churn or checkout."),
    cutoff: Optional[str] = typer.Option(
        None, help="Split time (ISO 8601); default: the last 20% of the time range."),
    split: str = typer.Option(
        "time", help="time (one cutoff) or user (each customer's last 20% of events)."),
    k: int = typer.Option(10, min=1, help="List length for the ranking metrics."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Backtest: fit with the champion's (or default) settings before the split, score after it."""
    with _job(home) as settings:
        from tailor.training import evaluate_model

        # NotEnoughData is an InputError: exit 2
        payload = evaluate_model(settings, model, cutoff=cutoff, split=split, k=k)
    rows = [f"{name:<14} " + "  ".join(f"{key} {value:.4f}" for key, value in values.items()
                                       if isinstance(value, float))
            for name, values in [("model", payload["metrics"]), *payload["baselines"].items()]]
    _emit(payload, as_json, f"{model} v{payload['version'] or '-'} ({payload['split']} split at "
          f"{payload['cutoff']}, {payload['n_evaluated']:,} evaluated)\n" + "\n".join(rows)
          + "".join(f"\nnote: {note}" for note in payload["notes"]))


@app.command()
def monitor(
    model: Optional[str] = typer.Option(None, "--model",
                                        help="homepage, cross_sell, churn or checkout "
                                             "(default: all four)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Measure and report; train, promote and record nothing."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One monitoring round: each champion on the newest window against its baseline, drift,
    and the decision (keep, retrain and promote, roll back, or escalate). Exit 1 when a model
    is still below its threshold after the round, or could not be checked (e.g. the registry
    is down)."""
    with _job(home) as settings:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from tailor.monitoring.rounds import run_round
        from tailor.monitoring.table import round_table

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=_stderr_console(), transient=True, disable=as_json) as progress:
            task = progress.add_task("monitoring", total=None)
            rounds = run_round(settings, [model] if model else None, dry_run=dry_run,
                               progress=lambda name: progress.update(
                                   task, description=f"monitoring {name}"))
    where = {"workspace": str(settings.home_path / "evidently"),
             "reports": str(settings.reports_path / "monitoring")}
    _emit({"models": [result.to_dict() for result in rounds], **where}, as_json,
          round_table(rounds))
    if not as_json:
        _stderr_console().print(f"Evidently workspace: {where['workspace']} (evidently ui "
                                f"--workspace {where['workspace']}); reports: "
                                f"{where['reports']}", highlight=False)
    if any(result.below_threshold or result.decision == "failed" for result in rounds):
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def report(
    mail: bool = typer.Option(False, "--mail",
                              help="Mail the summary with the page attached to mail.recipients "
                                   "(it waits in the outbox while the SMTP server is down)."),
    day: Optional[str] = typer.Option(None, "--date",
                                      help="The UTC day to report (YYYY-MM-DD); default "
                                           "yesterday."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The daily report and dashboard: conversion, AOV and revenue by day and variant, the
    models against their baselines, drift flags, latency and fallbacks; written to
    reports/daily/ (latest.html is what /dashboard serves) and, with --mail, sent to the team."""
    with _job(home) as settings:
        from datetime import date

        from tailor.reports.job import run_daily_report

        try:
            wanted = date.fromisoformat(day) if day is not None else None
        except ValueError:
            raise InputError(f"--date must be a day as YYYY-MM-DD, got {day!r}") from None
        run = run_daily_report(settings, wanted, mail=mail)
    _emit(run.to_dict(), as_json, run.summary_line())


@app.command()
def recommend(
    customer: str = typer.Argument(..., help="The customer id."),
    k: int = typer.Option(10, min=1, help="Number of products."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The champion homepage model's products for one customer, each with its reason."""
    with _job(home) as settings:
        from tailor.training import recommend_for_customer

        try:
            payload = recommend_for_customer(settings, customer, k=k)
        except LookupError as error:
            raise InputError(str(error.args[0])) from None
    lines = [f"{item['rank']:>2}. {item['product_id']}  {item['reason']}"
             for item in payload["items"]]
    _emit(payload, as_json, f"{customer} (homepage v{payload['version']}):\n" + "\n".join(lines))


@app.command()
def retention(
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Score at this time (ISO 8601 date or time); default just after "
                              "the newest event."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score every customer with the churn champion; write the high-risk ones (above
    models.churn_threshold) to reports/retention/ for the retention campaign."""
    with _job(home) as settings:
        from tailor.training import write_retention_list

        try:
            summary = write_retention_list(settings, as_of=as_of)
        except LookupError as error:  # no churn champion yet (NotEnoughData is an InputError)
            raise InputError(str(error.args[0] if error.args else error)) from None
    _emit(summary.to_dict(), as_json,
          f"retention list: {summary.high_risk:,} of {summary.customers_scored:,} customers "
          f"above {summary.threshold:.2f} (churn v{summary.model_version}, as of "
          f"{summary.as_of}) -> {summary.path}")


# -- serving -------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Optional[str] = typer.Option(
        None, help="Interface to listen on (default serving.host; 0.0.0.0 for every one)."),
    port: Optional[int] = typer.Option(None, min=1, max=65535,
                                       help="TCP port (default serving.port)."),
    workers: Optional[int] = typer.Option(None, min=1,
                                          help="Worker processes (default serving.workers)."),
    demo_shop: bool = typer.Option(False, "--demo-shop",
                                   help="Also serve the demo shop at /shop/ (serving.demo_shop):"
                                        " for demo homes only."),
    home: Optional[Path] = HOME_OPTION,
) -> None:
    """Serve recommendations, offers and the event collector (bentoml serve) until stopped."""
    with _job(home) as settings:
        from tailor.server import start_server, stop_on_termination

        if demo_shop:
            settings = settings.replace(serving_demo_shop="true")
        has_secret_key = _has_secret_key(settings)
        stop_on_termination()
        server = start_server(settings, host=host, port=port, workers=workers)
    try:
        _announce_server(settings, server, workers, has_secret_key)
        if server.wait_ready():
            _stderr_console().print(f"ready: {server.url}/readyz answers 200 (Ctrl-C stops)",
                                    highlight=False)
        elif server.process.poll() is not None:
            _stderr_console().print(f"[bold red]error:[/] the server exited (code "
                                    f"{server.process.poll()}) before it was ready; its log "
                                    "is above", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        else:  # running but not ready (e.g. models that fail to load): keep it, say why
            _stderr_console().print(f"[bold yellow]warning:[/] {server.url}/readyz still "
                                    "answers 503; the log above says why (a model that fails "
                                    "to load, an event store that refuses writes). Serving "
                                    "on; it turns ready once the fault clears (Ctrl-C stops)",
                                    highlight=False)
        code = server.process.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
    raise typer.Exit(code)


def _has_secret_key(settings: Settings) -> bool:
    """Whether any usable key may call the serving API (recommendations:read; raises
    InputError on a malformed keys file)."""
    from tailor.events.keys import RECOMMENDATIONS_READ, list_keys

    return any(RECOMMENDATIONS_READ in info.scopes and info.status() == "active"
               for info in list_keys(settings))


def _announce_server(settings: Settings, server: ServerProcess, workers: Optional[int],
                     has_secret_key: bool) -> None:
    """Where the server listens, how to get a key, and its endpoints."""
    from tailor.server import ENDPOINTS

    console = _stderr_console()
    batching = "on" if settings.serving_adaptive_batching else "off"
    console.print(f"Tailor serving on {server.url} (workers {workers or settings.serving_workers}"
                  f", adaptive batching {batching}), home {settings.home_path.resolve()}",
                  highlight=False, soft_wrap=True)
    if has_secret_key:
        console.print("API calls need a secret key: header 'Authorization: Bearer <key>' or "
                      "'X-Tailor-Key: <key>'", highlight=False, soft_wrap=True)
    else:
        console.print("no secret key yet: create one with `tailor keys create secret --home "
                      f"{settings.home_path}` and send it as 'Authorization: Bearer <key>'",
                      highlight=False, soft_wrap=True)
    for endpoint, meaning in ENDPOINTS:
        console.print(f"  {endpoint:<30} {meaning}", highlight=False, soft_wrap=True)
    if settings.serving_demo_shop:
        console.print(f"demo shop: {server.url}/shop/ (its pages may ask for any customer's "
                      "list and sign in as any customer: for demo homes only)",
                      highlight=False, soft_wrap=True)


# -- event collection ----------------------------------------------------------------------------


@app.command()
def collect(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every one)."),
    port: int = typer.Option(8700, min=1, max=65535, help="TCP port."),
    demo_shop: bool = typer.Option(False, "--demo-shop",
                                   help="Also serve the demo shop at /shop/."),
    home: Optional[Path] = HOME_OPTION,
) -> None:
    """Run the event collector (POST /v1/events, /tailor.js, /healthz, /metrics) until stopped."""
    with _job(home) as settings:
        from tailor.events.collector.app import serve_collector
        from tailor.features.collector_hook import session_feature_hook
        from tailor.privacy.opt_out_list import OptOutList

        serve_collector(settings, host=host, port=port, opt_outs=OptOutList(settings),
                        demo_shop=demo_shop or None, commit_hook=session_feature_hook(settings))


app.add_typer(keys_app, name="keys")  # tailor.events.key_commands: create | list | revoke


# -- deploy --------------------------------------------------------------------------------------

deploy_app = typer.Typer(help="The Kubernetes deployment and the serving sizing behind it.",
                         no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")


def _sizing_inputs(events_per_day: float, peak_to_mean: float, surge: float,
                   requests_per_worker: float, workers: int) -> Any:
    from tailor.deploy.sizing import SizingInputs

    return SizingInputs(events_per_day=events_per_day, peak_to_mean=peak_to_mean, surge=surge,
                        requests_per_worker=requests_per_worker, workers_per_pod=workers)


EVENTS_OPTION = typer.Option(10_000_000, "--events-per-day", min=1,
                             help="Events a day at normal traffic (the brief: about 10M).")
PEAK_OPTION = typer.Option(3.0, "--peak-to-mean", min=1.0,
                           help="Busiest hour of a normal day over the day's mean (assumed 3).")
SURGE_OPTION = typer.Option(10.0, "--surge", min=1.0,
                            help="Surge over the normal peak to absorb (the brief: 10x).")
CAPACITY_OPTION = typer.Option(REQUESTS_PER_WORKER, "--requests-per-worker", min=1.0,
                               help="/homepage requests/s one worker on one core answers flat "
                                    "out (measured: docs/benchmarks.md, Serving capacity).")
WORKERS_OPTION = typer.Option(2, "--workers", min=1,
                              help="Server workers (and CPU cores) per pod.")
MANIFESTS_FOLDER = typer.Argument(Path("deploy") / "kubernetes",
                                  help="Folder for the manifests (default deploy/kubernetes).")


@deploy_app.command("sizing")
def deploy_sizing(
    events_per_day: float = EVENTS_OPTION, peak_to_mean: float = PEAK_OPTION,
    surge: float = SURGE_OPTION, requests_per_worker: float = CAPACITY_OPTION,
    workers: int = WORKERS_OPTION, as_json: bool = JSON_OPTION,
) -> None:
    """The serving pods for normal traffic and for a surge, from the measured capacity per
    worker: the HorizontalPodAutoscaler's minReplicas and maxReplicas, step by step."""
    _setup_logging()
    from tailor.deploy.sizing import size_serving, sizing_lines

    try:
        sizing = size_serving(_sizing_inputs(events_per_day, peak_to_mean, surge,
                                             requests_per_worker, workers))
    except ValueError as error:
        _stderr_console().print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _emit(sizing.to_dict(), as_json, "\n".join(sizing_lines(sizing)))


@deploy_app.command("kubernetes")
def deploy_kubernetes(
    folder: Path = MANIFESTS_FOLDER,
    events_per_day: float = EVENTS_OPTION, peak_to_mean: float = PEAK_OPTION,
    surge: float = SURGE_OPTION, requests_per_worker: float = CAPACITY_OPTION,
    workers: int = WORKERS_OPTION, home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the Kubernetes manifests: the serving Deployment, Service, HPA (bounds from
    `tailor deploy sizing`) and PodDisruptionBudget, the scheduled jobs as CronJobs,
    PostgreSQL, Redis and MLflow, the settings ConfigMap and a kustomization.yaml."""
    with _job(home) as settings:
        from tailor.deploy.kubernetes import write_kubernetes
        from tailor.deploy.sizing import size_serving
        from tailor.scheduler.jobs import job_table

        try:
            sizing = size_serving(_sizing_inputs(events_per_day, peak_to_mean, surge,
                                                 requests_per_worker, workers))
        except ValueError as error:
            raise InputError(str(error)) from None
        paths = write_kubernetes(settings, job_table(settings), folder, sizing)
        _emit({"files": [str(path) for path in paths], "sizing": sizing.to_dict()}, as_json,
              f"wrote {len(paths)} files into {folder}: {sizing.min_replicas}-"
              f"{sizing.max_replicas} serving pods")


# -- schedule ------------------------------------------------------------------------------------


@app.command()
def schedule(
    once: bool = typer.Option(False, "--once",
                              help="Run whatever is due now, one job after another, then exit "
                                   "(exit 1 when a job failed)."),
    status: bool = typer.Option(False, "--status",
                                help="Each job's last run, outcome, duration and next slot."),
    export_kind: Optional[str] = typer.Option(
        None, "--export", metavar="cron|kubernetes",
        help="Write the job table as cron lines, or as Kubernetes CronJobs with the rest of "
             "the deployment (as `tailor deploy kubernetes`), into FOLDER."),
    folder: Optional[Path] = typer.Argument(
        None, help="Folder for --export (default deploy/cron or deploy/kubernetes)."),
    now: Optional[str] = typer.Option(
        None, "--now", help="Take this ISO 8601 time as now, for --once and --status (a dry "
                            "run of a given hour; tests)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the jobs on their cadence (hourly export, mail flush, campaign send and experiment
    guardrails; daily validate, features, monitor, report, data retention; weekly retention and
    campaign plan), each as a `tailor` command under its own lock; without options, until
    stopped (SIGTERM), touching <home>/scheduler.heartbeat every minute."""
    with _job(home) as settings:
        from tailor.scheduler.jobs import job_table

        jobs = job_table(settings)
        moment = _parse_now(now)
        if export_kind is not None:
            target = folder or Path("deploy") / export_kind
            if export_kind == "kubernetes":  # the CronJobs with the rest of the deployment
                from tailor.deploy.kubernetes import write_kubernetes

                paths = write_kubernetes(settings, jobs, target)
            else:
                from tailor.scheduler.deploy_files import write_deploy_files

                paths = write_deploy_files(settings, jobs, export_kind, target)
            _emit({"files": [str(path) for path in paths]}, as_json,
                  "wrote " + ", ".join(str(path) for path in paths))
            return
        if folder is not None:
            raise InputError("FOLDER is for --export only")
        if status:
            from tailor.scheduler.status import schedule_status, status_lines

            payload = schedule_status(settings, jobs, moment)
            if as_json:
                _emit(payload, True, "")
            else:
                _stderr_console().print("\n".join(status_lines(payload)), highlight=False,
                                        soft_wrap=True)
            return
        if once:
            from tailor.scheduler.runner import beat, run_due

            beat(settings)
            report = run_due(settings, moment, jobs)
        else:
            if now is not None:
                raise InputError("--now is for --once and --status only")
            from tailor.scheduler.service import run_forever

            run_forever(settings, jobs)
            return
    _emit(report.to_dict(), as_json, "\n".join(
        f"{run.job}: {run.outcome}" + (f" in {run.duration_seconds:.1f} s"
                                       if run.duration_seconds is not None else "")
        + (f" ({run.error})" if run.error else "") for run in report.runs) or "nothing due")
    if not report.ok:
        raise typer.Exit(EXIT_GATE_FAILED)


def _parse_now(text: Optional[str]):
    """`--now` as an aware UTC datetime (naive text is UTC); the clock when not given."""
    from datetime import datetime, timezone

    if text is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InputError(f"--now: {error}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(
        timezone.utc)


# -- experiments ---------------------------------------------------------------------------------


experiment_app.add_typer(campaign_app, name="campaign")
app.add_typer(experiment_app, name="experiment")


# -- privacy -------------------------------------------------------------------------------------


register_privacy_commands(app)  # tailor forget, opt-out, opt-in, data-retention


# -- mail ----------------------------------------------------------------------------------------


mail_app = typer.Typer(help="The team's mail ([mail] settings) and its outbox under the home.",
                       no_args_is_help=True)
app.add_typer(mail_app, name="mail")


def _service_failed(message: str) -> typer.Exit:
    _stderr_console().print(f"[bold red]service failed:[/] {message}", highlight=False,
                            soft_wrap=True)
    return typer.Exit(EXIT_SERVICE_FAILED)


@mail_app.command("test")
def mail_test(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a test message to mail.recipients; exit 3 when the server did not take it (it then
    waits in the outbox), 2 when no recipients are set."""
    with _job(home) as settings:
        import socket

        from tailor.mail import send

        delivery = send(settings, "[tailor] test message",
                        f"A test message from Tailor on {socket.gethostname()} (home "
                        f"{settings.home_path.resolve()}). Mail works.\n")
        if delivery.status == "not configured":
            raise InputError("mail.recipients is empty (TAILOR_MAIL_RECIPIENTS): nobody to mail")
    _emit(delivery.to_dict(), as_json, f"test message {delivery.status}"
          + (f": {delivery.error}" if delivery.error else ""))
    if delivery.status != "sent":
        raise _service_failed(f"mail: {delivery.error} (the message waits in the outbox; "
                              "`tailor mail flush` retries it)")


@mail_app.command("flush")
def mail_flush(
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Retry the messages waiting in the outbox whose time has come; exit 3 when a delivery
    failed (they wait for the next flush; after mail.max_attempts they move to outbox/failed/)."""
    with _job(home) as settings:
        from tailor.mail import flush_outbox

        report = flush_outbox(settings)
    failed = "".join(f"\ngiven up after {item['attempts']} attempts: {item['subject']!r} "
                     f"({item['file']}): {item['error']}" for item in report.failed)
    _emit(report.to_dict(), as_json,
          f"mail via {report.server}: {len(report.sent)} sent, {report.waiting} waiting, "
          f"{report.failed_total} given up in all" + failed)
    if not report.ok:
        raise _service_failed("mail: " + "; ".join(report.errors or ["messages given up"]))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
