"""Settings for every Tailor job, read once per command.

Precedence, lowest first: the defaults below, `tailor.toml` (in the current
directory, or the file named by `TAILOR_CONFIG`), environment variables
`TAILOR_<SECTION>_<KEY>`, then command-line flags such as `--home`.

Every key is declared once in `SETTINGS`; `tailor.toml.example` is generated from
it (and a test keeps the two in step). Nothing here touches the disk or the
network at import time: paths are created by the jobs that write to them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

DEFAULT_HOME = ".tailor"


class ConfigError(ValueError):
    """A setting has a value of the wrong type or out of range; the message names the key."""


@dataclass(frozen=True)
class Setting:
    """One configuration key: where it lives in tailor.toml, its type, default and meaning."""

    section: str  # "" for top-level keys
    key: str
    type: type
    default: Any
    help: str

    @property
    def name(self) -> str:
        """Attribute name on `Settings`, e.g. `quality_max_reject_rate`."""
        return f"{self.section}_{self.key}" if self.section else self.key

    @property
    def env(self) -> str:
        """Environment variable that overrides the key, e.g. `TAILOR_QUALITY_MAX_REJECT_RATE`."""
        return "TAILOR_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("", "home", str, DEFAULT_HOME,
            "Folder for every embedded store, model and report (created on first write)."),
    Setting("", "database_url", str, "",
            "Event store. Empty: SQLite at <home>/events.db. Or postgresql://user@host:5432/db."),
    Setting("", "pii_database_url", str, "",
            "Separate store for e-mail and name. Empty: SQLite at <home>/pii.db."),
    Setting("", "lake_url", str, "",
            "Parquet data lake (any fsspec URL, e.g. s3://bucket/tailor). Empty: <home>/lake."),
    Setting("", "warehouse_path", str, "",
            "DuckDB warehouse file. Empty: <home>/warehouse.duckdb."),
    Setting("", "redis_url", str, "",
            "Online feature store. Empty: Feast's SQLite store under <home>. Or redis://host:6379/0."),
    Setting("", "mlflow_tracking_uri", str, "",
            "MLflow tracking and registry. Empty: sqlite:///<home>/mlflow.db (MLFLOW_TRACKING_URI also works)."),
    Setting("ingest", "chunk_rows", int, 200_000,
            "Rows read, validated and written per chunk; bounds ingest memory."),
    Setting("ingest", "max_future_seconds", int, 300,
            "Timestamps further than this ahead of the receive time are rejected as future_timestamp."),
    Setting("ingest", "retries", int, 3,
            "Times a write to the event store is tried again after its connection dropped "
            "(a server restart or failover); rows are still stored once. 0 = give up at once."),
    Setting("ingest", "retry_backoff_seconds", float, 1.0,
            "Seconds before the first retry of a dropped store connection; each wait doubles."),
    # The import's saved defaults; checked by tailor.events.ingest.options.check_ingest_settings.
    Setting("ingest", "column_map", str, "",
            "Which events-file column is which contract column, as --map: "
            "customer_id=user_id,event_type=event,timestamp=ts (a|b: the first not empty); "
            "entries naming columns a file lacks are skipped for that file."),
    Setting("ingest", "event_types", str, "",
            "Other names of event types, as --event-types: purchase=Order Completed|Checkout "
            "Done,add_to_cart=Added; Segment's e-commerce names are built in."),
    Setting("ingest", "event_types_case_sensitive", bool, False,
            "Match event-type names exactly; by default any case and separator matches."),
    Setting("ingest", "timestamp_format", str, "",
            "strftime format of timestamps that are neither ISO 8601 nor epoch numbers, e.g. "
            "%d/%m/%Y %H:%M (as --timestamp-format). Empty: only those two forms are read."),
    Setting("ingest", "dayfirst", bool, False,
            "Numeric dates are day/month/year (05/01/2026 is 5 January); without it or a "
            "timestamp format such dates are rejected, never guessed."),
    Setting("ingest", "delimiter", str, "",
            "CSV delimiter: a character, or comma, semicolon, tab, pipe. Empty: sniffed among "
            "comma, semicolon and tab."),
    Setting("ingest", "encoding", str, "",
            "Text encoding of CSV and JSON Lines files, e.g. latin-1 or cp1252. Empty: UTF-8, "
            "checked over the whole file."),
    Setting("events", "min_timestamp", str, "2000-01-01T00:00:00Z",
            "Events stamped before this (ISO 8601 with zone) are rejected as "
            "implausible_timestamp, e.g. epoch 0 from an unset clock; by import and collector."),
    Setting("events", "session_gap_minutes", int, 30,
            "Minutes without an event that end a session, for events without a session_id: "
            "the warehouse's sessions, the features, the live session state and the models."),
    Setting("events", "naive_timezone", str, "UTC",
            "IANA zone that zone-less timestamps are read in (e.g. Europe/Berlin); a time in a "
            "DST gap moves forward past the gap, a repeated one takes its first occurrence."),
    Setting("lake", "export_chunk_rows", int, 1_000_000,
            "Events per lake file written by one export step."),
    Setting("quality", "max_reject_rate", float, 0.001,
            "A blocking row rule fails when its rejected share of received rows exceeds this."),
    Setting("quality", "max_duplicate_rate", float, 0.05,
            "Duplicate event ids above this share of received rows raise a warning (they are stored once)."),
    Setting("quality", "volume_min_ratio", float, 0.5,
            "The newest full day's volume below this ratio of the trailing median fails the gate."),
    Setting("quality", "volume_max_ratio", float, 4.0,
            "The newest full day's volume above this ratio of the trailing median fails the gate."),
    Setting("quality", "volume_trailing_days", int, 7,
            "Days before the newest full day that form the volume baseline."),
    Setting("quality", "freshness_max_hours", float, 26.0,
            "The newest event older than this many hours fails the freshness rule."),
    Setting("quality", "freshness_blocking", bool, False,
            "Whether a stale store blocks training (off by default: backfills are stale by design)."),
    Setting("collector", "allowed_origins", str, "",
            "Comma-separated shop origins (https://shop.example) whose pages may send events "
            "with a public key; '*' allows any (development only)."),
    Setting("collector", "max_batch_events", int, 500,
            "Most events one POST /v1/events may carry; larger batches get 413."),
    Setting("collector", "max_batch_bytes", int, 1_048_576,
            "Largest request body in bytes; larger bodies get 413 (read no further)."),
    Setting("collector", "keys_file", str, "",
            "JSON file of key hashes written by `tailor keys create`. "
            "Empty: <home>/collector_keys.json."),
    Setting("collector", "public_key_hashes", str, "",
            "Extra comma-separated sha256 hex hashes of public (browser, write-only) keys."),
    Setting("collector", "secret_key_hashes", str, "",
            "Extra comma-separated sha256 hex hashes of secret (server-to-server) keys."),
    Setting("collector", "demo_shop", bool, False,
            "Serve the demo shop pages under /shop/ (tailor collect --demo-shop turns it on)."),
    Setting("collector", "ingest_run_seconds", int, 60,
            "The collector sums its batches into one ingest_runs row per this many seconds."),
    Setting("collector", "max_header_bytes", int, 16_384,
            "Largest request head (request line and headers) `tailor collect` reads; a larger "
            "one gets 431 and the connection is closed before the rest is read."),
    Setting("collector", "max_header_count", int, 100,
            "Most request headers `tailor collect` accepts in one request; more get 431."),
    Setting("collector", "metrics_without_key", bool, False,
            "Serve GET /metrics without a key (only for a collector whose port only a "
            "Prometheus scraper on a private network can reach); by default it needs a "
            "secret key."),
    Setting("collector", "require_signed_identity", bool, False,
            "Events sent with a public key count as a known customer's only when they carry "
            "a valid identity signature (HMAC-SHA256 of the customer id with the identity "
            "secret); others are stored under an anonymous id (docs/security.md)."),
    Setting("collector", "identity_secret_file", str, "",
            "File holding the shop's identity secret (written by `tailor keys create "
            "identity`, mode 0600; TAILOR_IDENTITY_SECRET overrides it). Empty: "
            "<home>/identity.key."),
    Setting("features", "project", str, "tailor",
            "Feast project name (letters, digits, underscores); Redis keys and the registry use it."),
    Setting("features", "snapshot_hours", int, 24,
            "Cadence of historical feature snapshots in hours, aligned to 00:00 UTC (divides 24)."),
    Setting("features", "batch_ttl_days", int, 365,
            "Customer and product feature rows older than this are stale: served as defaults."),
    Setting("features", "session_ttl_minutes", int, 30,
            "Session features older than this are stale (the session has ended)."),
    Setting("features", "online_timeout_ms", int, 250,
            "Redis socket timeout of the online reader; a slower store is reported as unreachable."),
    Setting("features", "definitions_dir", str, "",
            "Feast definition modules rendered into <home>/feature_repo. Empty: the source tree's "
            "feature_store/ folder."),
    Setting("models", "collaborative_after_purchases", int, 1,
            "Homepage: customers with this many purchases get collaborative filtering; with fewer "
            "(but some views) content-based picks; with no history popular + trending."),
    Setting("models", "diversity", str, "none",
            "Homepage diversity: none, category_cap (at most category_cap per category) or mmr."),
    Setting("models", "category_cap", int, 3,
            "Homepage: most products of one category per list when diversity = category_cap."),
    Setting("models", "mmr_lambda", float, 0.7,
            "Homepage: weight of relevance against novelty when diversity = mmr (1 = none)."),
    Setting("models", "churn_horizon_days", float, 90.0,
            "Churn label: no purchase in this many days after the snapshot (shortened and "
            "reported when the data after the cutoff is shorter)."),
    Setting("models", "churn_threshold", float, 0.7,
            "Customers above this churn probability are high risk and join the retention list."),
    Setting("models", "checkout_threshold", float, 0.5,
            "Carts above this P(abandon) may be offered an incentive."),
    Setting("models", "checkout_margin_rate", float, 0.3,
            "Gross margin as a share of cart value, for the incentive's expected gain."),
    Setting("models", "checkout_shipping_cost", float, 5.99,
            "What free shipping costs the shop per order."),
    Setting("models", "checkout_budget", float, 500.0,
            "Most expected incentive cost per scoring batch (e.g. per day)."),
    Setting("models", "optuna_jobs", int, 0,
            "Optuna worker processes per study; 0 = auto: one per two cores for histories of "
            "2M+ events on machines with more than 2 cores, else one."),
    Setting("models", "optuna_storage", str, "",
            "Optuna study storage, e.g. postgresql://... for workers on several machines; "
            "empty keeps each study in memory."),
    Setting("models", "promotion_lock_seconds", float, 1800.0,
            "Longest a training run waits for another run of the same model to finish its "
            "promotion decision (they are taken one at a time); past it training fails."),
    Setting("alerts", "webhook_url", str, "",
            "POST a JSON alert here when the quality gate fails (Slack-compatible 'text' field)."),
    Setting("alerts", "email_to", str, "",
            "Comma-separated addresses that receive gate-failure alerts by e-mail."),
    Setting("alerts", "email_from", str, "tailor@localhost", "Sender of alert e-mails."),
    Setting("alerts", "smtp_host", str, "localhost", "SMTP server for alert e-mails."),
    Setting("alerts", "smtp_port", int, 25, "SMTP port for alert e-mails."),
    Setting("serving", "host", str, "127.0.0.1",
            "Address `tailor serve` listens on (0.0.0.0 to accept connections from other machines)."),
    Setting("serving", "port", int, 3000, "Port `tailor serve` listens on."),
    Setting("serving", "workers", int, 1,
            "Server worker processes; each loads every model once (memory grows per worker)."),
    Setting("serving", "reload_seconds", float, 30.0,
            "How often the service looks up the model aliases in the registry and loads a "
            "version that moved there (in the background; the old one serves until it is ready)."),
    Setting("serving", "timeout_ms", int, 100,
            "Time budget of one request inside the service; past it the answer is the "
            "popularity fallback (\"fallback\": true, reason \"timeout\")."),
    Setting("serving", "max_request_bytes", int, 65_536,
            "Largest request body in bytes on the model endpoints; larger bodies get 413."),
    Setting("serving", "max_header_bytes", int, 16_384,
            "Largest request head (request line and headers) `tailor serve` reads; a larger "
            "one gets 431 and the connection is closed before the rest is read."),
    Setting("serving", "max_header_count", int, 100,
            "Most request headers `tailor serve` accepts in one request; more get 431."),
    Setting("serving", "metrics_without_key", bool, False,
            "Serve GET /metrics without a key (only for a server whose port only a "
            "Prometheus scraper on a private network can reach); by default it needs a "
            "secret key."),
    Setting("serving", "max_k", int, 100,
            "Most products one request may ask for (k); a larger k is refused with 400."),
    Setting("serving", "adaptive_batching", bool, False,
            "Group concurrent requests into one model call (BentoML adaptive batching); off "
            "by default because on few cores the batching wait costs more than it saves "
            "(see docs/benchmarks.md)."),
    Setting("serving", "max_batch_size", int, 32,
            "Most requests in one adaptive batch."),
    Setting("serving", "max_latency_ms", int, 10,
            "Longest a request may wait for its adaptive batch to fill."),
    Setting("serving", "fallback_size", int, 100,
            "Length of the popularity list served when personalisation is unavailable "
            "(overall and per category)."),
    Setting("serving", "session_share", float, 0.3,
            "Homepage: at least this share of the list comes from the categories the visitor "
            "is browsing now (the session's viewed categories), promoted from the model's "
            "candidates; 0 turns the session re-ranking off."),
    Setting("serving", "threads", int, 8,
            "Worker threads that run requests within the timeout budget (per worker process)."),
    Setting("serving", "switch_interval_ms", float, 0.5,
            "Python's thread switch interval in server processes (sys.setswitchinterval): how "
            "long a thread that wants the interpreter waits before the running one must let "
            "go. Python's 5 ms default lets the event loop and the scoring threads hold each "
            "other up for milliseconds; 0.5 ms gave lower p50 and p99 at the same CPU "
            "(docs/benchmarks.md, Serving)."),
    Setting("serving", "bentoml_home", str, "",
            "BentoML home whose models/ store keeps every served version (imported from the "
            "registry once, the start-up fallback when the registry is down). Empty: "
            "<home>/bentoml. Must be writable by the server."),
    Setting("serving", "homepage_model", str, "champion",
            "Homepage model version to serve: a registry alias (champion, challenger, an "
            "experiment's) or a version number; the answer's variant field reports it."),
    Setting("serving", "cross_sell_model", str, "champion",
            "Cross-sell (also bought) model version to serve: an alias or a version number."),
    Setting("serving", "checkout_model", str, "champion",
            "Checkout model version to serve: an alias or a version number."),
    Setting("serving", "daily_incentive_budget", float, 500.0,
            "Most expected incentive cost the checkout offers may commit per UTC day, over "
            "every worker and server (a ledger in Redis when redis_url is set, else SQLite "
            "under the home); once spent the offer is none. 0 = no incentives."),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def _coerce(setting: Setting, raw: Any, origin: str) -> Any:
    """Convert a raw value from TOML or the environment to the setting's type."""
    expected = setting.type
    try:
        if expected is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if expected is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(str(raw).replace("_", "")) if isinstance(raw, str) else int(raw)
        if expected is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, (str, int, float)):
            raise ValueError(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(
            f"{origin}: {setting.name} must be {expected.__name__}, got {raw!r}"
        ) from None


def _validate(values: dict[str, Any]) -> None:
    for name in ("ingest_chunk_rows", "lake_export_chunk_rows", "quality_volume_trailing_days",
                 "alerts_smtp_port", "collector_max_batch_events", "collector_max_batch_bytes",
                 "collector_ingest_run_seconds", "collector_max_header_bytes",
                 "collector_max_header_count", "events_session_gap_minutes"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {values[name]!r}")
    for name in ("features_batch_ttl_days", "features_session_ttl_minutes",
                 "features_online_timeout_ms"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {values[name]!r}")
    if values["features_snapshot_hours"] not in (1, 2, 3, 4, 6, 8, 12, 24):
        raise ConfigError("features_snapshot_hours must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24), "
                          f"got {values['features_snapshot_hours']!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]*", values["features_project"]):
        raise ConfigError("features_project must be letters, digits and underscores, "
                          f"got {values['features_project']!r}")
    if values["models_diversity"] not in ("none", "category_cap", "mmr"):
        raise ConfigError("models_diversity must be none, category_cap or mmr, "
                          f"got {values['models_diversity']!r}")
    for name in ("models_churn_threshold", "models_checkout_threshold", "models_mmr_lambda",
                 "models_checkout_margin_rate"):
        if not 0.0 <= values[name] <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {values[name]!r}")
    for name in ("models_collaborative_after_purchases", "models_optuna_jobs",
                 "ingest_retries", "ingest_retry_backoff_seconds"):
        if values[name] < 0:
            raise ConfigError(f"{name} must be 0 or more, got {values[name]!r}")
    for name in ("serving_workers", "serving_timeout_ms", "serving_max_request_bytes",
                 "serving_max_k", "serving_max_batch_size", "serving_max_latency_ms",
                 "serving_fallback_size", "serving_threads", "serving_max_header_bytes",
                 "serving_max_header_count"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {values[name]!r}")
    for name in ("serving_max_header_bytes", "collector_max_header_bytes"):
        if values[name] < 1_024:
            raise ConfigError(f"{name} must be at least 1024 (bytes of request line and "
                              f"headers), got {values[name]!r}")
    if not 1 <= values["serving_port"] <= 65_535:
        raise ConfigError(f"serving_port must be between 1 and 65535, got {values['serving_port']!r}")
    if not 0 < values["serving_switch_interval_ms"] <= 1000:
        raise ConfigError("serving_switch_interval_ms must be above 0 and at most 1000, "
                          f"got {values['serving_switch_interval_ms']!r}")
    if values["serving_reload_seconds"] <= 0:
        raise ConfigError("serving_reload_seconds must be positive, "
                          f"got {values['serving_reload_seconds']!r}")
    for name in ("serving_homepage_model", "serving_cross_sell_model",
                 "serving_checkout_model"):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}", values[name]):
            raise ConfigError(f"{name} must be a registry alias (letters, digits, _ and -) or "
                              f"a version number, got {values[name]!r}")
    if values["serving_daily_incentive_budget"] < 0:
        raise ConfigError("serving_daily_incentive_budget must be 0 or more, "
                          f"got {values['serving_daily_incentive_budget']!r}")
    if not 0.0 <= values["serving_session_share"] <= 1.0:
        raise ConfigError("serving_session_share must be between 0 and 1, "
                          f"got {values['serving_session_share']!r}")
    for name in ("models_category_cap", "models_churn_horizon_days",
                 "models_promotion_lock_seconds"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be positive, got {values[name]!r}")
    for name in ("quality_max_reject_rate", "quality_max_duplicate_rate"):
        if not 0.0 <= values[name] <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {values[name]!r}")
    if values["quality_volume_min_ratio"] >= values["quality_volume_max_ratio"]:
        raise ConfigError("quality_volume_min_ratio must be below quality_volume_max_ratio")
    _validate_event_times(values)
    url = values["database_url"]
    if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ConfigError(
            f"database_url must start with postgresql:// or sqlite:///, got {url.split('://')[0]}://…"
        )


def _validate_event_times(values: dict[str, Any]) -> None:
    """events_min_timestamp: an ISO 8601 time (a date alone is midnight UTC);
    events_naive_timezone: an IANA zone name."""
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = values["events_min_timestamp"].strip()
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("events_min_timestamp must be an ISO 8601 time such as "
                          f"2000-01-01T00:00:00Z, got {text!r}") from None
    try:
        ZoneInfo(values["events_naive_timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("events_naive_timezone must be an IANA zone name such as UTC or "
                          f"Europe/Berlin, got {values['events_naive_timezone']!r}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    """Flatten a tailor.toml into setting names; unknown keys are an error (typos matter)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            for inner_key, inner_value in value.items():
                flat[f"{key}_{inner_key}"] = (f"[{key}] {inner_key}", inner_value)
        else:
            flat[key] = (key, value)
    values = {}
    for name, (label, value) in flat.items():
        if name not in _BY_NAME:
            raise ConfigError(f"{path}: unknown key {label!r}")
        values[name] = _coerce(_BY_NAME[name], value, str(path))
    return values


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with `load_settings`; derived paths are properties."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def home_path(self) -> Path:
        return Path(self.values["home"]).expanduser()

    @property
    def event_store_url(self) -> str:
        return self.values["database_url"] or f"sqlite:///{self.home_path / 'events.db'}"

    @property
    def pii_store_url(self) -> str:
        return self.values["pii_database_url"] or f"sqlite:///{self.home_path / 'pii.db'}"

    @property
    def lake_root(self) -> str:
        return self.values["lake_url"] or str(self.home_path / "lake")

    @property
    def warehouse_file(self) -> Path:
        return Path(self.values["warehouse_path"] or self.home_path / "warehouse.duckdb")

    @property
    def reports_path(self) -> Path:
        return self.home_path / "reports"

    @property
    def tracking_uri(self) -> str:
        return (
            self.values["mlflow_tracking_uri"]
            or os.environ.get("MLFLOW_TRACKING_URI", "")
            or f"sqlite:///{self.home_path.resolve() / 'mlflow.db'}"
        )

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with some settings changed (validated like any other source)."""
        values = dict(self.values)
        for name, raw in overrides.items():
            if name not in _BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = _coerce(_BY_NAME[name], raw, "override")
        _validate(values)
        return Settings(values)


def load_settings(
    home: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Resolve settings from defaults, tailor.toml, the environment and an explicit home.

    Args:
        home: `--home` from the command line; wins over everything else.
        env: environment to read (default `os.environ`); tests pass their own.
        config_file: a tailor.toml path; default `TAILOR_CONFIG` or `./tailor.toml` if present.

    Returns:
        The resolved `Settings`.

    Raises:
        ConfigError: a value has the wrong type, is out of range, or a key is unknown.
    """
    env = os.environ if env is None else env
    values = {setting.name: setting.default for setting in SETTINGS}
    path = config_file or env.get("TAILOR_CONFIG") or ""
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"TAILOR_CONFIG: no such file {path}")
        values.update(_read_toml(Path(path)))
    elif Path("tailor.toml").is_file():
        values.update(_read_toml(Path("tailor.toml")))
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = _coerce(setting, env[setting.env], setting.env)
    if home is not None:
        values["home"] = str(home)
    _validate(values)
    return Settings(values)


def example_toml() -> str:
    """The text of tailor.toml.example: every key with its default and a comment."""
    lines = ["# tailor.toml: every key, its default and what it does.",
             "# Environment variables TAILOR_<SECTION>_<KEY> override this file.", ""]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            if section:
                lines += ["", f"[{section}]"]
        lines.append(f"# {setting.help} (env {setting.env})")
        lines.append(f"{setting.key} = {_toml_literal(setting.default)}")
    return "\n".join(lines) + "\n"


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    return repr(value)
