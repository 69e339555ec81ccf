"""Settings for every Tailor job, read once per command.

Precedence, lowest first: the defaults below, `tailor.toml` (in the current
directory, or the file named by `TAILOR_CONFIG`), environment variables
`TAILOR_<SECTION>_<KEY>`, then command-line flags such as `--home`.

Every key is one typed field of `Settings` (a pydantic model): its tailor.toml
section, default, help text and limits are declared together, `tailor.toml.example`
is generated from them (a test keeps the two in step), and a value of the wrong
type or out of range is a `ConfigError` that names the key, where it came from and
what it must be. Nothing here touches the disk or the network at import time: paths
are created by the jobs that write to them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_HOME = ".tailor"

# A registry alias (champion, challenger, an experiment's) or a version number.
_MODEL_REF = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$"
_MODEL_REF_RULE = "a registry alias (letters, digits, _ and -) or a version number"

# The jobs of `tailor schedule`, in the order a round runs them (tailor.scheduler.jobs says
# what each runs and when).
SCHEDULE_JOBS = ("export", "mail_flush", "validate", "features", "monitor", "report", "retention",
                 "campaign_plan", "campaign_send", "data_retention",
                 "experiment_guardrails")

# Keys that moved: an old key in tailor.toml or the environment is an error naming the new one.
RENAMED = {
    "alerts_email_to": "mail_recipients",
    "alerts_email_from": "mail_sender",
    "alerts_smtp_host": "mail_host",
    "alerts_smtp_port": "mail_port",
}
MAIL_PASSWORD_ENV = "TAILOR_MAIL_PASSWORD"
# The secret key the daily report reads the server's /metrics with (never a setting: keys
# are stored hashed, so the plain key comes from the environment like the mail password).
REPORT_METRICS_KEY_ENV = "TAILOR_REPORT_METRICS_KEY"
_ADDRESS = re.compile(r'^[^@\s<>,;:"()\[\]]+@[^@\s<>,;:"()\[\]]+$')


class ConfigError(ValueError):
    """A setting has a value of the wrong type or out of range; the message names the key."""


def is_mail_address(text: str) -> bool:
    """Whether `text` is one e-mail address, bare or as `Name <address>`."""
    from email.utils import parseaddr

    text = text.strip()
    _, address = parseaddr(text)
    if not address or not _ADDRESS.match(address):
        return False
    return text == address or text.endswith(f"<{address}>")


def _setting(section: str, default: Any, help: str, *, rule: str = "", **limits: Any) -> Any:
    """One key: its tailor.toml section ("" for top level), default, help text and limits
    (pydantic's gt/ge/le/pattern); `rule` says in words what a value must be when the
    limits alone don't (a check in a validator below)."""
    return Field(default, description=help, json_schema_extra={"section": section, "rule": rule},
                 **limits)


class Settings(BaseModel):
    """Resolved settings. Build with `load_settings`; derived paths are properties."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True,
                              allow_inf_nan=False)

    # -- stores and paths ----------------------------------------------------------------
    home: str = _setting(
        "", DEFAULT_HOME,
        "Folder for every embedded store, model and report (created on first write).")
    database_url: str = _setting(
        "", "",
        "Event store. Empty: SQLite at <home>/events.db. Or postgresql://user@host:5432/db.",
        rule="empty, postgresql://... or sqlite:///...")
    pii_database_url: str = _setting(
        "", "",
        "Separate store for e-mail and name. Empty: SQLite at <home>/pii.db.")
    lake_url: str = _setting(
        "", "",
        "Parquet data lake (any fsspec URL, e.g. s3://bucket/tailor). Empty: <home>/lake.")
    warehouse_path: str = _setting(
        "", "",
        "DuckDB warehouse file. Empty: <home>/warehouse.duckdb.")
    redis_url: str = _setting(
        "", "",
        "Online feature store. Empty: Feast's SQLite store under <home>. Or redis://host:6379/0.")
    mlflow_tracking_uri: str = _setting(
        "", "",
        "MLflow tracking and registry. Empty: sqlite:///<home>/mlflow.db (MLFLOW_TRACKING_URI also works).")

    # -- ingest --------------------------------------------------------------------------
    ingest_chunk_rows: int = _setting(
        "ingest", 200_000,
        "Rows read, validated and written per chunk; bounds ingest memory.",
        gt=0)
    ingest_max_future_seconds: int = _setting(
        "ingest", 300,
        "Timestamps further than this ahead of the receive time are rejected as future_timestamp.",
        ge=0)
    ingest_retries: int = _setting(
        "ingest", 3,
        "Times a write to the event store is tried again after its connection dropped "
        "(a server restart or failover); rows are still stored once. 0 = give up at once.",
        ge=0)
    ingest_retry_backoff_seconds: float = _setting(
        "ingest", 1.0,
        "Seconds before the first retry of a dropped store connection; each wait doubles.",
        ge=0)
    # The import's saved defaults, each overridden by its flag of `tailor ingest`. Their
    # syntax is checked when an import starts (tailor.events.ingest.options.
    # check_ingest_settings), which keeps pandas out of loading the settings.
    ingest_column_map: str = _setting(
        "ingest", "",
        "Which events-file column is which contract column, as --map: "
        "customer_id=user_id,event_type=event,timestamp=ts (a|b: the first not empty); "
        "entries naming columns a file lacks are skipped for that file.")
    ingest_event_types: str = _setting(
        "ingest", "",
        "Other names of event types, as --event-types: purchase=Order Completed|Checkout "
        "Done,add_to_cart=Added; Segment's e-commerce names are built in.")
    ingest_event_types_case_sensitive: bool = _setting(
        "ingest", False,
        "Match event-type names exactly; by default any case and separator matches.")
    ingest_timestamp_format: str = _setting(
        "ingest", "",
        "strftime format of timestamps that are neither ISO 8601 nor epoch numbers, e.g. "
        "%d/%m/%Y %H:%M (as --timestamp-format). Empty: only those two forms are read.")
    ingest_dayfirst: bool = _setting(
        "ingest", False,
        "Numeric dates are day/month/year (05/01/2026 is 5 January); without it or a "
        "timestamp format such dates are rejected, never guessed.")
    ingest_delimiter: str = _setting(
        "ingest", "",
        "CSV delimiter: a character, or comma, semicolon, tab, pipe. Empty: sniffed among "
        "comma, semicolon and tab.")
    ingest_encoding: str = _setting(
        "ingest", "",
        "Text encoding of CSV and JSON Lines files, e.g. latin-1 or cp1252. Empty: UTF-8, "
        "checked over the whole file.")

    # -- events --------------------------------------------------------------------------
    events_min_timestamp: str = _setting(
        "events", "2000-01-01T00:00:00Z",
        "Events stamped before this (ISO 8601 with zone) are rejected as "
        "implausible_timestamp, e.g. epoch 0 from an unset clock; by import and collector.",
        rule="an ISO 8601 time such as 2000-01-01T00:00:00Z")
    events_session_gap_minutes: int = _setting(
        "events", 30,
        "Minutes without an event that end a session, for events without a session_id: "
        "the warehouse's sessions, the features, the live session state and the models.",
        gt=0)
    events_naive_timezone: str = _setting(
        "events", "UTC",
        "IANA zone that zone-less timestamps are read in (e.g. Europe/Berlin); a time in a "
        "DST gap moves forward past the gap, a repeated one takes its first occurrence.",
        rule="an IANA zone name such as UTC or Europe/Berlin")

    # -- lake ----------------------------------------------------------------------------
    lake_export_chunk_rows: int = _setting(
        "lake", 1_000_000,
        "Events per lake file written by one export step.",
        gt=0)

    # -- quality -------------------------------------------------------------------------
    quality_max_reject_rate: float = _setting(
        "quality", 0.001,
        "A blocking row rule fails when its rejected share of received rows exceeds this.",
        ge=0, le=1)
    quality_max_duplicate_rate: float = _setting(
        "quality", 0.05,
        "Duplicate event ids above this share of received rows raise a warning (they are stored once).",
        ge=0, le=1)
    quality_volume_min_ratio: float = _setting(
        "quality", 0.5,
        "The newest full day's volume below this ratio of the trailing median fails the gate.",
        ge=0)
    quality_volume_max_ratio: float = _setting(
        "quality", 4.0,
        "The newest full day's volume above this ratio of the trailing median fails the gate.",
        gt=0)
    quality_volume_trailing_days: int = _setting(
        "quality", 7,
        "Days before the newest full day that form the volume baseline.",
        gt=0)
    quality_freshness_max_hours: float = _setting(
        "quality", 26.0,
        "The newest event older than this many hours fails the freshness rule.",
        gt=0)
    quality_freshness_blocking: bool = _setting(
        "quality", False,
        "Whether a stale store blocks training (off by default: backfills are stale by design).")

    # -- collector -----------------------------------------------------------------------
    collector_allowed_origins: str = _setting(
        "collector", "",
        "Comma-separated shop origins (https://shop.example) whose pages may send events "
        "with a public key; '*' allows any (development only).")
    collector_max_batch_events: int = _setting(
        "collector", 500,
        "Most events one POST /v1/events may carry; larger batches get 413.",
        gt=0)
    collector_max_batch_bytes: int = _setting(
        "collector", 1_048_576,
        "Largest request body in bytes; larger bodies get 413 (read no further).",
        gt=0)
    collector_keys_file: str = _setting(
        "collector", "",
        "JSON file of key hashes written by `tailor keys create`. "
        "Empty: <home>/collector_keys.json.")
    collector_public_key_hashes: str = _setting(
        "collector", "",
        "Extra comma-separated sha256 hex hashes of public (browser, write-only) keys.")
    collector_secret_key_hashes: str = _setting(
        "collector", "",
        "Extra comma-separated sha256 hex hashes of secret (server-to-server) keys.")
    collector_admin_key_hashes: str = _setting(
        "collector", "",
        "Extra comma-separated sha256 hex hashes of admin keys (scope admin only: the "
        "privacy endpoints); set from the environment, never in a committed file.")
    collector_rate_limit_per_second: float = _setting(
        "collector", 1_000.0,
        "Requests per second one key may make to the collector (a token bucket per key and "
        "process; a public key is shared by all of a shop's browsers); over it: 429 with "
        "Retry-After. 0 turns the limit off.",
        ge=0)
    collector_rate_limit_burst: int = _setting(
        "collector", 2_000,
        "Requests one key may make at once after a quiet spell (the token bucket's size).",
        gt=0)
    collector_hsts_max_age_seconds: int = _setting(
        "collector", 0,
        "Send Strict-Transport-Security with this max-age on every answer (only behind "
        "HTTPS); 0 sends none.",
        ge=0)
    collector_read_timeout_seconds: float = _setting(
        "collector", 10.0,
        "A request whose head or body stops arriving for this long (a slow-loris client "
        "that sends half a request and stalls) gets 408 and its connection is closed; "
        "nothing from it is stored.",
        gt=0)
    collector_demo_shop: bool = _setting(
        "collector", False,
        "Serve the demo shop pages under /shop/ (tailor collect --demo-shop turns it on).")
    collector_ingest_run_seconds: int = _setting(
        "collector", 60,
        "The collector sums its batches into one ingest_runs row per this many seconds.",
        gt=0)
    collector_max_header_bytes: int = _setting(
        "collector", 16_384,
        "Largest request head (request line and headers) `tailor collect` reads; a larger "
        "one gets 431 and the connection is closed before the rest is read.",
        ge=1_024)
    collector_max_header_count: int = _setting(
        "collector", 100,
        "Most request headers `tailor collect` accepts in one request; more get 431.",
        gt=0)
    collector_metrics_without_key: bool = _setting(
        "collector", False,
        "Serve GET /metrics without a key (only for a collector whose port only a "
        "Prometheus scraper on a private network can reach); by default it needs a "
        "secret key.")
    collector_require_signed_identity: bool = _setting(
        "collector", False,
        "Events sent with a public key count as a known customer's only when they carry "
        "a valid identity signature (HMAC-SHA256 of the customer id with the identity "
        "secret); others are stored under an anonymous id (docs/security.md).")
    collector_identity_secret_file: str = _setting(
        "collector", "",
        "File holding the shop's identity secret (written by `tailor keys create "
        "identity`, mode 0600; TAILOR_IDENTITY_SECRET overrides it). Empty: "
        "<home>/identity.key.")
    collector_segment_consent_categories: str = _setting(
        "collector", "Personalization",
        "Comma-separated consent category ids Tailor belongs to for Segment / RudderStack "
        "calls: a call whose context.consent.categoryPreferences does not set each of them "
        "true, or whose context.consentManagement.deniedConsentIds holds one, is not stored. "
        "Calls without a consent object are stored. Empty: the consent object is ignored.")

    # -- features ------------------------------------------------------------------------
    features_project: str = _setting(
        "features", "tailor",
        "Feast project name (letters, digits, underscores); Redis keys and the registry use it.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$",
        rule="letters, digits and underscores")
    features_snapshot_hours: int = _setting(
        "features", 24,
        "Cadence of historical feature snapshots in hours, aligned to 00:00 UTC (divides 24).",
        rule="a divisor of 24 (1, 2, 3, 4, 6, 8, 12 or 24)")
    features_batch_ttl_days: int = _setting(
        "features", 365,
        "Customer and product feature rows older than this are stale: served as defaults.",
        gt=0)
    features_session_ttl_minutes: int = _setting(
        "features", 30,
        "Session features older than this are stale (the session has ended).",
        gt=0)
    features_online_timeout_ms: int = _setting(
        "features", 250,
        "Redis socket timeout of the online reader (on SQLite: how long a read waits for a "
        "writer's lock); a slower store is reported as unreachable.",
        gt=0)
    features_engine: Literal["duckdb", "spark"] = _setting(
        "features", "duckdb",
        "Batch engine of the features, the training sets (Feast's offline store), the quality "
        "gate's aggregates and the weekly churn scoring: duckdb (the warehouse, one machine) or "
        "spark (the same lake; needs tailor[spark] and Java 17+).",
        rule="duckdb or spark")
    features_spark_master: str = _setting(
        "features", "local[*]",
        "Spark master URL when features.engine = spark: local[N] or a cluster's "
        "(spark://host:7077, k8s://https://host, yarn).")
    features_spark_driver_memory: str = _setting(
        "features", "2g",
        "Spark driver memory (JVM size, e.g. 512m, 2g); in local mode the whole job's memory.",
        pattern=r"^[0-9]+[kmgt]?$", rule="a JVM size such as 512m or 2g")
    features_spark_shuffle_partitions: int = _setting(
        "features", 8,
        "Spark SQL shuffle partitions: a few per core of the cluster, and enough that one "
        "partition (the lake's size in memory / partitions) stays well under a quarter of the "
        "driver's or an executor's memory (10M events on a 512m driver: 64).",
        gt=0)
    features_definitions_dir: str = _setting(
        "features", "",
        "Feast definition modules rendered into <home>/feature_repo. Empty: the source tree's "
        "feature_store/ folder.")

    # -- models --------------------------------------------------------------------------
    models_collaborative_after_purchases: int = _setting(
        "models", 1,
        "Homepage: customers with this many purchases get collaborative filtering; with fewer "
        "(but some views) content-based picks; with no history popular + trending.",
        ge=0)
    models_diversity: Literal["none", "category_cap", "mmr"] = _setting(
        "models", "none",
        "Homepage diversity: none, category_cap (at most category_cap per category) or mmr.",
        rule="none, category_cap or mmr")
    models_category_cap: int = _setting(
        "models", 3,
        "Homepage: most products of one category per list when diversity = category_cap.",
        gt=0)
    models_mmr_lambda: float = _setting(
        "models", 0.7,
        "Homepage: weight of relevance against novelty when diversity = mmr (1 = none).",
        ge=0, le=1)
    models_churn_horizon_days: float = _setting(
        "models", 90.0,
        "Churn label: no purchase in this many days after the snapshot (shortened and "
        "reported when the data after the cutoff is shorter).",
        gt=0)
    models_churn_threshold: float = _setting(
        "models", 0.7,
        "Customers above this churn probability are high risk and join the retention list.",
        ge=0, le=1)
    models_checkout_threshold: float = _setting(
        "models", 0.5,
        "Carts above this P(abandon) may be offered an incentive.",
        ge=0, le=1)
    models_checkout_margin_rate: float = _setting(
        "models", 0.3,
        "Gross margin as a share of cart value, for the incentive's expected gain.",
        ge=0, le=1)
    models_checkout_shipping_cost: float = _setting(
        "models", 5.99,
        "What free shipping costs the shop per order.",
        ge=0)
    models_checkout_budget: float = _setting(
        "models", 500.0,
        "Most expected incentive cost per scoring batch (e.g. per day).",
        ge=0)
    models_optuna_jobs: int = _setting(
        "models", 0,
        "Optuna worker processes per study; 0 = auto: one per two cores for histories of "
        "2M+ events on machines with more than 2 cores, else one.",
        ge=0)
    models_optuna_storage: str = _setting(
        "models", "",
        "Optuna study storage, e.g. postgresql://...: `tailor train` on several machines then "
        "joins one study per model and data snapshot; empty keeps each run's study local.")
    models_promotion_lock_seconds: float = _setting(
        "models", 1800.0,
        "Longest a training run waits for another run of the same model to finish its "
        "promotion decision (they are taken one at a time); past it training fails.",
        gt=0)

    # -- monitoring ----------------------------------------------------------------------
    monitoring_prediction_log: bool = _setting(
        "monitoring", True,
        "Record every answer the server gives (homepage, also bought, checkout offer) in the "
        "predictions table beside the events, off the request path; the monitoring and "
        "experiment jobs read it.")
    monitoring_prediction_queue_size: int = _setting(
        "monitoring", 10_000,
        "Answers waiting to be written per server worker; when the queue is full an answer "
        "is not recorded (counted in tailor_predictions_dropped_total), never waited for.",
        gt=0)
    monitoring_prediction_batch_rows: int = _setting(
        "monitoring", 500,
        "Most answers the prediction log writes in one transaction.",
        gt=0)
    monitoring_prediction_flush_seconds: float = _setting(
        "monitoring", 0.5,
        "Longest an answer waits in the queue before the prediction log writes it.",
        gt=0, le=60)
    monitoring_prediction_retention_days: int = _setting(
        "monitoring", 0,
        "`tailor export` deletes predictions older than this many days from the event store "
        "once they are in the lake (the lake keeps them). 0 = keep every row.",
        ge=0)
    monitoring_max_drop: float = _setting(
        "monitoring", 0.05,
        "A champion whose primary metric on the newest window falls more than this share "
        "below its baseline (its holdout metric) raises an alert and a retraining.",
        gt=0, le=1)
    monitoring_significance: float = _setting(
        "monitoring", 0.05,
        "A drop past max_drop counts only when sampling noise explains it with less than this "
        "probability (one-sided test on the two samples' standard errors).",
        gt=0, lt=0.5)
    monitoring_label_days: float = _setting(
        "monitoring", 7.0,
        "Days after an answer is served in which a purchase counts for it: the served "
        "answers' accuracy scores only answers at least this old (their labels matured).",
        gt=0)
    monitoring_window_days: float = _setting(
        "monitoring", 0.0,
        "Days of newest data a round measures each champion on; 0 = as long as the "
        "champion's own holdout, so the measurement repeats the one its baseline came from.",
        ge=0)
    monitoring_retrain_trials: int = _setting(
        "monitoring", 10,
        "Optuna trials of the challenger a round trains when a champion dropped.",
        gt=0)
    monitoring_promote_through: Literal["registry", "experiment"] = _setting(
        "monitoring", "registry",
        "How a round promotes a challenger that beat a dropped champion on the window: "
        "registry (move the champion alias at once) or experiment (start a champion-vs-"
        "challenger A/B test on the model's surface; a later round promotes its winner). "
        "The churn model serves no visitors and is always promoted in the registry.",
        rule="registry or experiment")

    # -- alerts --------------------------------------------------------------------------
    alerts_webhook_url: str = _setting(
        "alerts", "",
        "POST a JSON alert here when the quality gate fails (Slack-compatible 'text' field). "
        "Alerts also go by e-mail to mail.recipients.")

    # -- mail ----------------------------------------------------------------------------
    mail_host: str = _setting(
        "mail", "localhost",
        "SMTP server for every mail Tailor sends (alerts, reports). The password is read from "
        "the TAILOR_MAIL_PASSWORD environment variable only, never from this file.",
        min_length=1, rule="a host name or address")
    mail_port: int = _setting(
        "mail", 0,
        "SMTP port. 0: the security's standard port (25 for none, 587 for starttls, 465 for tls).",
        ge=0, le=65_535)
    mail_security: Literal["none", "starttls", "tls"] = _setting(
        "mail", "none",
        "How the connection is encrypted: none (a relay on this machine or network), starttls "
        "(upgrade after connecting, usually port 587) or tls (encrypted from the start, 465). "
        "Certificates are checked.",
        rule="none, starttls or tls")
    mail_user: str = _setting(
        "mail", "",
        "SMTP login; empty: no login. Its password comes from TAILOR_MAIL_PASSWORD. Needs "
        "security starttls or tls unless the host is this machine.")
    mail_ca_file: str = _setting(
        "mail", "",
        "PEM file of certificate authorities trusted for the SMTP server besides the system's "
        "(a private relay's own CA). Empty: the system's only.")
    mail_sender: str = _setting(
        "mail", "tailor@localhost",
        "From address of every mail (an address, or a name and <address>).",
        rule="an e-mail address")
    mail_recipients: str = _setting(
        "mail", "",
        "Comma-separated addresses of the team that receives alerts and reports. Empty: no "
        "mail is sent (alerts are still logged and posted to alerts.webhook_url).",
        rule="comma-separated e-mail addresses")
    mail_timeout_seconds: float = _setting(
        "mail", 10.0,
        "Longest wait for the SMTP server on connect and on each command.",
        gt=0)
    mail_max_attempts: int = _setting(
        "mail", 8,
        "Delivery attempts of one message before it moves to <home>/outbox/failed/ and is "
        "reported by `tailor mail flush`.",
        gt=0)
    mail_retry_backoff_seconds: float = _setting(
        "mail", 300.0,
        "Wait before retrying a message that could not be delivered; each further wait doubles "
        "(8 attempts span about 10.6 hours at the default).",
        ge=0)
    mail_keep_sent_days: float = _setting(
        "mail", 7.0,
        "Days a delivered message is kept in <home>/outbox/sent/; 0 deletes it once delivered.",
        ge=0)

    # -- report --------------------------------------------------------------------------
    report_days: int = _setting(
        "report", 14,
        "Days the daily report and /dashboard show, ending with the report's day (UTC).",
        ge=1, le=366)
    report_metrics_url: str = _setting(
        "report", "",
        "The Tailor server's Prometheus endpoint the daily report reads latency and error "
        "rates from. Empty: http://<serving.host>:<serving.port>/metrics. Its secret key comes "
        f"from the {REPORT_METRICS_KEY_ENV} environment variable (or set "
        "serving.metrics_without_key).",
        rule="empty or an http:// or https:// URL", pattern=r"^(|https?://\S+)$")

    # -- serving -------------------------------------------------------------------------
    serving_host: str = _setting(
        "serving", "127.0.0.1",
        "Address `tailor serve` listens on (0.0.0.0 to accept connections from other machines).")
    serving_port: int = _setting(
        "serving", 3000,
        "Port `tailor serve` listens on.",
        ge=1, le=65_535)
    serving_workers: int = _setting(
        "serving", 1,
        "Server worker processes; each loads every model once (memory grows per worker).",
        gt=0)
    serving_reload_seconds: float = _setting(
        "serving", 30.0,
        "How often the service looks up the model aliases in the registry and loads a "
        "version that moved there (in the background; the old one serves until it is ready).",
        gt=0)
    serving_timeout_ms: int = _setting(
        "serving", 100,
        "Time budget of one request inside the service; past it the answer is the "
        "popularity fallback (\"fallback\": true, reason \"timeout\").",
        gt=0)
    serving_max_request_bytes: int = _setting(
        "serving", 65_536,
        "Largest request body in bytes on the model endpoints; larger bodies get 413.",
        gt=0)
    serving_max_header_bytes: int = _setting(
        "serving", 16_384,
        "Largest request head (request line and headers) `tailor serve` reads; a larger "
        "one gets 431 and the connection is closed before the rest is read.",
        ge=1_024)
    serving_max_header_count: int = _setting(
        "serving", 100,
        "Most request headers `tailor serve` accepts in one request; more get 431.",
        gt=0)
    serving_demo_shop: bool = _setting(
        "serving", False,
        "Serve the demo shop at /shop/ (`tailor serve --demo-shop`): the home's catalogue "
        "with its live recommendations, for showing Tailor. Its pages may ask for any "
        "customer's list and sign in as any customer: for demo homes only.")
    serving_demo_shop_rate_per_second: float = _setting(
        "serving", 50.0,
        "Requests per second the demo shop's keyless /shop/api routes answer in one worker, "
        "all visitors together (a token bucket twice this size); over it: 429 with "
        "Retry-After, so the demo never eats the capacity of the real API. 0 turns it off.",
        ge=0)
    serving_metrics_without_key: bool = _setting(
        "serving", False,
        "Serve GET /metrics without a key (only for a server whose port only a "
        "Prometheus scraper on a private network can reach); by default it needs a "
        "secret key.")
    serving_rate_limit_per_second: float = _setting(
        "serving", 1_000.0,
        "Requests per second one key may make to the serving API (a token bucket per key "
        "and worker); over it: 429 with Retry-After. 0 turns the limit off.",
        ge=0)
    serving_rate_limit_burst: int = _setting(
        "serving", 2_000,
        "Requests one key may make at once after a quiet spell (the token bucket's size).",
        gt=0)
    serving_hsts_max_age_seconds: int = _setting(
        "serving", 0,
        "Send Strict-Transport-Security with this max-age on every answer (only behind "
        "HTTPS); 0 sends none.",
        ge=0)
    serving_read_timeout_seconds: float = _setting(
        "serving", 10.0,
        "A request whose head or body stops arriving for this long (a slow-loris client "
        "that sends half a request and stalls) gets 408 and its connection is closed; "
        "nothing from it is stored.",
        gt=0)
    serving_max_k: int = _setting(
        "serving", 100,
        "Most products one request may ask for (k); a larger k is refused with 400.",
        gt=0)
    serving_adaptive_batching: bool = _setting(
        "serving", False,
        "Group concurrent requests into one model call (BentoML adaptive batching); off "
        "by default because on few cores the batching wait costs more than it saves "
        "(see docs/benchmarks.md).")
    serving_max_batch_size: int = _setting(
        "serving", 32,
        "Most requests in one adaptive batch.",
        gt=0)
    serving_max_latency_ms: int = _setting(
        "serving", 10,
        "Longest a request may wait for its adaptive batch to fill.",
        gt=0)
    serving_fallback_size: int = _setting(
        "serving", 100,
        "Length of the popularity list served when personalisation is unavailable "
        "(overall and per category).",
        gt=0)
    serving_session_share: float = _setting(
        "serving", 0.3,
        "Homepage: at least this share of the list comes from the categories the visitor "
        "is browsing now (the session's viewed categories), promoted from the model's "
        "candidates; 0 turns the session re-ranking off.",
        ge=0, le=1)
    serving_tracing: bool = _setting(
        "serving", False,
        "BentoML's OpenTelemetry span around every request (sent only where BentoML's "
        "tracing exporter is configured). Off, the server skips it: about a tenth of its "
        "CPU per answer; Tailor's own Prometheus metrics count every request either way.")
    serving_precomputed_customers: int = _setting(
        "serving", 2_000_000,
        "Homepage: when a model version is loaded, the best products of this many of its most "
        "active customers are found ahead on a background thread (32 candidates each; about "
        "0.1-0.4 ms of one core per customer on a 100k-product catalogue, 148 bytes per "
        "customer in each worker), so their requests without a browsed category or a "
        "diversity rule score those candidates instead of the whole catalogue; the same "
        "products, order and reasons as ranking at request time. 0 ranks every request "
        "through the model.",
        ge=0)
    serving_precomputed_lists: int = _setting(
        "serving", 100_000,
        "Homepage: the most active of those customers (this many) also keep their finished "
        "list of 20 (products, scores, reasons: 320 bytes per customer in each worker, about "
        "0.1 ms each to make), so a request of theirs asking for up to 20 costs a lookup.",
        ge=0)
    serving_threads: int = _setting(
        "serving", 8,
        "Worker threads that run requests within the timeout budget (per worker process).",
        gt=0)
    serving_switch_interval_ms: float = _setting(
        "serving", 0.5,
        "Python's thread switch interval in server processes (sys.setswitchinterval): how "
        "long a thread that wants the interpreter waits before the running one must let "
        "go. Python's 5 ms default lets the event loop and the scoring threads hold each "
        "other up for milliseconds; 0.5 ms gave lower p50 and p99 at the same CPU "
        "(docs/benchmarks.md, Serving).",
        gt=0, le=1_000)
    serving_bentoml_home: str = _setting(
        "serving", "",
        "BentoML home whose models/ store keeps every served version (imported from the "
        "registry once, the start-up fallback when the registry is down). Empty: "
        "<home>/bentoml. Must be writable by the server.")
    serving_homepage_model: str = _setting(
        "serving", "champion",
        "Homepage model version to serve: a registry alias (champion, challenger, an "
        "experiment's) or a version number; the answer's variant field reports it.",
        pattern=_MODEL_REF, rule=_MODEL_REF_RULE)
    serving_cross_sell_model: str = _setting(
        "serving", "champion",
        "Cross-sell (also bought) model version to serve: an alias or a version number.",
        pattern=_MODEL_REF, rule=_MODEL_REF_RULE)
    serving_checkout_model: str = _setting(
        "serving", "champion",
        "Checkout model version to serve: an alias or a version number.",
        pattern=_MODEL_REF, rule=_MODEL_REF_RULE)
    serving_daily_incentive_budget: float = _setting(
        "serving", 500.0,
        "Most expected incentive cost the checkout offers may commit per UTC day, over "
        "every worker and server (a ledger in Redis when redis_url is set, else SQLite "
        "under the home); once spent the offer is none. 0 = no incentives.",
        ge=0)
    serving_incentive_lease: float = _setting(
        "serving", 0.01,
        "Share of the daily incentive budget each worker reserves in the ledger at a time and "
        "grants offers from in memory (one ledger write per slice, not per offer; a killed "
        "worker's unused slice stays counted for the day). 0 = every offer to the ledger.",
        ge=0, le=0.1)

    # -- experiments (tailor experiment, the server's assignment) -------------------------
    experiments_holdout_share: float = _setting(
        "experiments", 0.0,
        "Share of visitors in no experiment at all (a global holdout, hashed on their id): "
        "they get the settings' defaults, without the changes of promoted winners, and are "
        "logged with no experiment.",
        ge=0, le=0.5)
    experiments_refresh_seconds: float = _setting(
        "experiments", 5.0,
        "How often the server reads which experiments run (started and stopped ones are "
        "served without a restart; a failed read keeps the last assignment).",
        gt=0)
    experiments_guardrail_min_units: int = _setting(
        "experiments", 200,
        "Customers a variant (and, for a max_increase guardrail, its control) must have been "
        "served before `tailor experiment guardrails` judges its guardrails; fewer: waiting.",
        ge=1)
    experiments_guardrail_max_error_increase: float = _setting(
        "experiments", 0.01,
        "Every served experiment's implicit guardrail: a variant whose error rate (answers "
        "whose model or pipeline failed) exceeds its control's by more than this is stopped; "
        "a definition's own error_rate guardrail replaces it.",
        ge=0, le=1)

    experiments_attribution_window_hours: float = _setting(
        "experiments", 0.0,
        "How long after an exposure a unit's events count for the analysis (tailor "
        "experiment analyze), in hours. 0: each experiment's own "
        "metrics.attribution_window_hours (default 24); above 0: this window for every "
        "experiment instead.",
        ge=0, le=1440)
    experiments_pre_period_days: float = _setting(
        "experiments", 28.0,
        "Days before a unit's first exposure whose purchases are its pre-period (CUPED's "
        "covariate for conversion and revenue per visitor). 0: no CUPED.",
        ge=0, le=366)

    # -- experiments: re-engagement campaigns (tailor experiment campaign) ---------------
    experiments_campaign_sender: str = _setting(
        "experiments", "",
        "From address of the re-engagement mails to customers (an address, or a name and "
        "<address>); sent through the [mail] SMTP server. Empty: campaigns are off (plan "
        "and send do nothing).",
        rule="empty or an e-mail address")
    experiments_campaign_tracking_url: str = _setting(
        "experiments", "",
        "Public base URL of the event collector as customers' mail clients reach it "
        "(https://t.shop.example for `tailor collect`, https://api.shop.example/collect "
        "under `tailor serve`); the open pixel and the click links point here.",
        rule="empty or an http(s):// URL")
    experiments_campaign_shop_url: str = _setting(
        "experiments", "",
        "The shop's home page: the main link of every campaign mail.",
        rule="empty or an http(s):// URL")
    experiments_campaign_product_url: str = _setting(
        "experiments", "",
        "A product page's URL with {product_id} in it, e.g. "
        "https://shop.example/p/{product_id}: the links of the picks.",
        rule="empty or an http(s):// URL holding {product_id}")
    experiments_campaign_experiment: str = _setting(
        "experiments", "discount-timing",
        "The experiment (experiments/<name>.yaml) whose variants set each mail's "
        "discount_delay_days: 0 = the discount in the first mail, N = a second mail with "
        "the discount N days later.",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", rule="an experiment name ([a-z0-9-])")
    experiments_campaign_top_share: float = _setting(
        "experiments", 0.0,
        "0: a campaign mails every customer above models.churn_threshold; above 0: the "
        "highest-risk share of the scored customers instead (e.g. 0.1).",
        ge=0, le=1)
    experiments_campaign_picks: int = _setting(
        "experiments", 4,
        "Products from the homepage model in each campaign mail.",
        gt=0, le=20)
    experiments_campaign_discount_percent: int = _setting(
        "experiments", 10,
        "The discount each campaign code gives, in percent.",
        gt=0, le=90)
    experiments_campaign_discount_valid_days: int = _setting(
        "experiments", 14,
        "Days a campaign code stays valid after the mail that offers it is due.",
        gt=0)
    experiments_campaign_cooldown_days: int = _setting(
        "experiments", 28,
        "A customer planned into a campaign is not planned into another one for this many "
        "days. 0 = every week they are at risk.",
        ge=0)
    experiments_campaign_subject: str = _setting(
        "experiments", "We picked a few things for you",
        "Subject of the campaign mails (the discount mail adds the discount to it).",
        min_length=1, rule="text")

    # -- privacy -------------------------------------------------------------------------
    privacy_event_retention_days: int = _setting(
        "privacy", 0,
        "`tailor data-retention --apply` (daily in the schedule) deletes raw events older than "
        "this many days from the event store (with dead letters) and the lake. 0 = keep every "
        "event. Training learns from what is left: below models.churn_horizon_days + 90 days "
        "(the longest feature window) the churn model gets shorter histories (docs/security.md).",
        ge=0)

    # -- schedule (tailor schedule, deploy/cron, deploy/kubernetes) -----------------------
    schedule_jobs: str = _setting(
        "schedule", ",".join(SCHEDULE_JOBS),
        "Comma-separated jobs that `tailor schedule` runs and --export writes out "
        "(docs/operations.md, Scheduler).",
        rule="comma-separated names from " + ", ".join(SCHEDULE_JOBS))
    schedule_timezone: str = _setting(
        "schedule", "UTC",
        "IANA zone the schedule's times are read in (e.g. Europe/Berlin).",
        rule="an IANA zone name such as UTC or Europe/Berlin")
    schedule_hourly_minute: int = _setting(
        "schedule", 5,
        "Minute past each hour when the hourly jobs start (export; mail_flush 30 minutes later).",
        ge=0, le=59)
    schedule_daily_at: str = _setting(
        "schedule", "02:00",
        "Time (HH:MM) the daily jobs start: validate, then features (+15 min), monitor "
        "(+45), report (+75) and data_retention (+120).",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", rule="a time HH:MM such as 02:00")
    schedule_weekly_on: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = _setting(
        "schedule", "mon",
        "Day of the weekly jobs (retention 90 minutes after daily_at, campaign_plan 105).",
        rule="mon, tue, wed, thu, fri, sat or sun")
    schedule_job_timeout_minutes: float = _setting(
        "schedule", 240.0,
        "A job still running after this many minutes is stopped (SIGTERM, then SIGKILL) and "
        "recorded as timed out.",
        gt=0)

    # -- checks beyond types and limits -------------------------------------------------

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: Any) -> Any:
        """A bool is not a number (TOML `true` for a count is a mistake); an empty
        environment variable turns a switch off."""
        kind = cls.model_fields[info.field_name].annotation
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError("a bool is not a number")
        if kind is bool and isinstance(value, str) and not value.strip():
            return False
        return value

    @field_validator("features_snapshot_hours")
    @classmethod
    def _divides_day(cls, hours: int) -> int:
        if hours <= 0 or 24 % hours:
            raise ValueError("does not divide 24")
        return hours

    @field_validator("database_url")
    @classmethod
    def _event_store_scheme(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("unsupported scheme")
        return url

    @field_validator("events_min_timestamp")
    @classmethod
    def _iso_time(cls, text: str) -> str:
        datetime.fromisoformat(text.strip().replace("Z", "+00:00"))  # ValueError names it
        return text

    @field_validator("mail_sender")
    @classmethod
    def _one_address(cls, text: str) -> str:
        if not is_mail_address(text):
            raise ValueError("not an e-mail address")
        return text

    @field_validator("mail_recipients")
    @classmethod
    def _addresses(cls, text: str) -> str:
        if text.strip() and not all(map(is_mail_address, text.split(","))):
            raise ValueError("not a list of e-mail addresses")
        return text

    @field_validator("experiments_campaign_sender")
    @classmethod
    def _sender_address(cls, text: str) -> str:
        if text.strip() and not is_mail_address(text):
            raise ValueError("not an e-mail address")
        return text.strip()

    @field_validator("experiments_campaign_tracking_url", "experiments_campaign_shop_url",
                     "experiments_campaign_product_url")
    @classmethod
    def _web_address(cls, text: str, info: Any) -> str:
        text = text.strip()
        if text and not re.match(r"^https?://[^\s/?#]+[^\s]*$", text):
            raise ValueError("not an http(s) URL")
        if text and info.field_name == "experiments_campaign_product_url" \
                and "{product_id}" not in text:
            raise ValueError("holds no {product_id}")
        return text

    @field_validator("schedule_jobs")
    @classmethod
    def _job_names(cls, text: str) -> str:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not set(names) <= set(SCHEDULE_JOBS):
            raise ValueError("unknown job")
        return ",".join(names)

    @field_validator("events_naive_timezone", "schedule_timezone")
    @classmethod
    def _zone_name(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown zone") from None
        return name

    @model_validator(mode="after")
    def _volume_band(self) -> "Settings":
        if self.quality_volume_min_ratio >= self.quality_volume_max_ratio:
            raise ValueError("quality_volume_min_ratio must be below quality_volume_max_ratio")
        return self

    @model_validator(mode="after")
    def _login_encrypted(self) -> "Settings":
        """A password never crosses the network in clear text."""
        local = self.mail_host in {"localhost", "127.0.0.1", "::1"}
        if self.mail_user and self.mail_security == "none" and not local:
            raise ValueError("mail_security must be starttls or tls when mail_user is set "
                             f"(the password would cross the network to {self.mail_host} "
                             "in clear text)")
        return self

    # -- derived paths ------------------------------------------------------------------

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by name, e.g. to pass the resolved settings to a worker process."""
        return self.model_dump()

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def event_store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'events.db'}"

    @property
    def pii_store_url(self) -> str:
        return self.pii_database_url or f"sqlite:///{self.home_path / 'pii.db'}"

    @property
    def lake_root(self) -> str:
        return self.lake_url or str(self.home_path / "lake")

    @property
    def warehouse_file(self) -> Path:
        return Path(self.warehouse_path or self.home_path / "warehouse.duckdb")

    @property
    def reports_path(self) -> Path:
        return self.home_path / "reports"

    @property
    def tracking_uri(self) -> str:
        return (
            self.mlflow_tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI", "")
            or f"sqlite:///{self.home_path.resolve() / 'mlflow.db'}"
        )

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with some settings changed (validated like any other source)."""
        unknown = sorted(set(overrides) - set(type(self).model_fields))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}")
        return _validated({**self.values, **overrides}, dict.fromkeys(overrides, "override"))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "Settings":
        """Settings from a mapping of every name to its value (a worker's copy of its parent's)."""
        return _validated(values, {})


@dataclass(frozen=True)
class Setting:
    """One key as the help table, the example file and the environment see it."""

    section: str  # "" for top-level keys
    key: str
    type: type
    default: Any
    help: str
    rule: str  # what a value must be, in words ("" when any value of the type will do)

    @property
    def name(self) -> str:
        """Attribute name on `Settings`, e.g. `quality_max_reject_rate`."""
        return f"{self.section}_{self.key}" if self.section else self.key

    @property
    def env(self) -> str:
        """Environment variable that overrides the key, e.g. `TAILOR_QUALITY_MAX_REJECT_RATE`."""
        return "TAILOR_" + self.name.upper()


def _describe(name: str, field: Any) -> Setting:
    extra = field.json_schema_extra
    section = extra["section"]
    kind = str if field.annotation not in (int, float, bool) else field.annotation
    return Setting(section, name.removeprefix(f"{section}_") if section else name, kind,
                   field.default, field.description, extra["rule"] or _limits_rule(field))


def _limits_rule(field: Any) -> str:
    """`gt=0` on an int reads "a positive integer", `ge=0, le=1` "between 0 and 1"."""
    limits = {name: getattr(item, name.lower()) for item in field.metadata
              for name in ("Gt", "Ge", "Lt", "Le") if hasattr(item, name.lower())}
    if "Ge" in limits and "Le" in limits:
        return f"between {limits['Ge']} and {limits['Le']}"
    if "Gt" in limits and "Le" in limits:
        return f"above {limits['Gt']} and at most {limits['Le']}"
    if "Gt" in limits and "Lt" in limits:
        return f"above {limits['Gt']} and below {limits['Lt']}"
    if limits.get("Gt") == 0:
        return "a positive integer" if field.annotation is int else "positive"
    if limits.get("Ge") == 0:
        return "0 or more"
    if "Ge" in limits:
        return f"at least {limits['Ge']}"
    return ""


SETTINGS: tuple[Setting, ...] = tuple(
    _describe(name, field) for name, field in Settings.model_fields.items())
_BY_NAME = {setting.name: setting for setting in SETTINGS}

# pydantic error types that mean "not a value of this type" rather than "out of range"
_TYPE_ERRORS = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type",
                "bool_parsing", "bool_type", "string_type"}


def _validated(values: Mapping[str, Any], origins: Mapping[str, str]) -> Settings:
    """`Settings` from raw values, or a `ConfigError` naming the first bad key, where its
    value came from (a file, a variable) and what it must be."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise _config_error(error.errors()[0], origins) from None


def _config_error(problem: Mapping[str, Any], origins: Mapping[str, str]) -> ConfigError:
    if not problem["loc"]:  # a rule across keys (model validator): its message says it all
        return ConfigError(str(problem["ctx"]["error"]) if "ctx" in problem else problem["msg"])
    name = str(problem["loc"][0])
    origin = f"{origins[name]}: " if name in origins else ""
    setting = _BY_NAME[name]
    wrong_bool = isinstance(problem["input"], bool) and setting.type is not bool
    if problem["type"] in _TYPE_ERRORS or wrong_bool:
        expected = setting.type.__name__
    elif problem["type"] == "finite_number":
        expected = "a finite number"
    else:
        expected = setting.rule or problem["msg"]
    return ConfigError(f"{origin}{name} must be {expected}, got {problem['input']!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    """Flatten a tailor.toml into setting names; unknown keys are an error (typos matter)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    values: dict[str, Any] = {}
    for key, value in document.items():
        inner = value.items() if isinstance(value, dict) else [(None, value)]
        for inner_key, inner_value in inner:
            name = f"{key}_{inner_key}" if inner_key is not None else key
            label = f"[{key}] {inner_key}" if inner_key is not None else key
            if name in RENAMED:
                raise ConfigError(f"{path}: {label} was replaced by {_toml_label(RENAMED[name])} "
                                  "(one SMTP setup for every mail Tailor sends)")
            if name == "mail_password":
                raise ConfigError(f"{path}: {label} is not read from a file: put the SMTP "
                                  f"password in the {MAIL_PASSWORD_ENV} environment variable")
            if name not in _BY_NAME:
                raise ConfigError(f"{path}: unknown key {label!r}")
            values[name] = inner_value
    return values


def _toml_label(name: str) -> str:
    """`mail_recipients` as tailor.toml spells it: `[mail] recipients`."""
    setting = _BY_NAME[name]
    return f"[{setting.section}] {setting.key}" if setting.section else setting.key


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
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path = Path(config_file or env.get("TAILOR_CONFIG") or "tailor.toml")
    if config_file or env.get("TAILOR_CONFIG"):
        if not path.is_file():
            raise ConfigError(f"TAILOR_CONFIG: no such file {path}")
    if path.is_file():
        values.update(_read_toml(path))
        origins.update(dict.fromkeys(values, str(path)))
    for old_name, new_name in RENAMED.items():
        if f"TAILOR_{old_name.upper()}" in env:
            raise ConfigError(f"TAILOR_{old_name.upper()} was replaced by "
                              f"{_BY_NAME[new_name].env} (one SMTP setup for every mail)")
    for setting in SETTINGS:
        if setting.env in env:
            values[setting.name] = env[setting.env]
            origins[setting.name] = setting.env
    if home is not None:
        values["home"] = str(home)
        origins["home"] = "--home"
    return _validated(values, origins)


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
        rule = f" Must be {setting.rule}." if setting.rule else ""
        lines.append(f"# {setting.help}{rule} (env {setting.env})")
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
