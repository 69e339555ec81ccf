"""The lifecycle of experiments: which are drafts, running, stopped or promoted, and who did what.

Reads and writes two tables in the event store's database (`database_url`: SQLite
`<home>/events.db` by default, PostgreSQL when the URL says so), beside the prediction log
whose rows are the experiments' exposures:

- `experiment_state`: one row per experiment: its status (draft | running | stopped |
  promoted), its surface, layer, traffic and the slice of the layer it owns while running,
  when it was created, started and stopped, the winner once promoted, who made the last
  change and why, and the definition as it was started (canonical JSON and its sha256), so
  the server needs no definition files;
- `experiment_audit`: one row per change (when, who, the action, from and to which status,
  why).

Also reads the shop's definition files (`<home>/experiments/NAME.yaml`,
`tailor.experiments.definition`) and, to start an experiment, the MLflow registry (every
variant's `model` alias or version must exist as `tailor-<model>`).

Transitions: draft -> running (`start`), running -> stopped (`stop`), running or stopped ->
promoted (`promote`: the analysis decides after the stop too). Anything else is an
`InputError` that says why. Each transition is one transaction (SQLite `BEGIN IMMEDIATE`,
PostgreSQL an advisory lock), so two commands never both start experiments into the same
free slice and a refused start leaves nothing behind. SQL is parameterized.

Layers: a running experiment owns the slice [slice_start, slice_start + traffic) of its
layer's units (`tailor.experiments.assignment` routes by the layer's hash). `start` gives
it the first free slice at least that wide, and keeps it for the experiment's life, so
stopping one experiment never moves another's units. Experiments of one surface must share
one layer: each answer is the exposure of at most one experiment.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from tailor.config import Settings
from tailor.errors import InputError
from tailor.experiments.assignment import Assigner, PromotedExperiment, RunningExperiment
from tailor.experiments.definition import Definition, load_definition, parse_definition

DRAFT, RUNNING, STOPPED, PROMOTED = "draft", "running", "stopped", "promoted"
STATUSES: tuple[str, ...] = (DRAFT, RUNNING, STOPPED, PROMOTED)
# action: (the statuses it may leave, the status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({DRAFT}), RUNNING),
    "stop": (frozenset({RUNNING}), STOPPED),
    "promote": (frozenset({RUNNING, STOPPED}), PROMOTED),
}
SLICE_TOLERANCE = 1e-9  # traffic shares are decimals: 0.4 + 0.3 + 0.3 is not exactly 1

_STATE_COLUMNS: tuple[str, ...] = (
    "name", "status", "surface", "layer", "traffic", "slice_start", "created_at",
    "started_at", "stopped_at", "winner", "actor", "reason", "definition_sha256", "definition")
_AUDIT_COLUMNS: tuple[str, ...] = ("at", "name", "actor", "action", "from_status",
                                   "to_status", "reason")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiment_state (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,               -- draft | running | stopped | promoted
    surface TEXT NOT NULL,
    layer TEXT NOT NULL,
    traffic {real} NOT NULL,
    slice_start {real},                 -- its slice of the layer: [slice_start, +traffic)
    created_at TEXT NOT NULL,           -- ISO 8601, UTC
    started_at TEXT,
    stopped_at TEXT,
    winner TEXT,                        -- the promoted variant
    actor TEXT NOT NULL,                -- who made the last change
    reason TEXT NOT NULL,
    definition_sha256 TEXT NOT NULL,
    definition TEXT NOT NULL            -- canonical JSON of the definition as started
);
CREATE TABLE IF NOT EXISTS experiment_audit (
    id {identity},
    at TEXT NOT NULL,
    name TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,               -- create | start | stop | promote
    from_status TEXT,
    to_status TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiment_audit_name ON experiment_audit (name, id)
"""
_SQLITE_SCHEMA = _SCHEMA.format(real="REAL", identity="INTEGER PRIMARY KEY AUTOINCREMENT")
_POSTGRES_SCHEMA = _SCHEMA.format(real="DOUBLE PRECISION",
                                  identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
_POSTGRES_LOCK = ("SELECT pg_advisory_xact_lock("
                  "hashtext(current_schema() || '.tailor.experiments'))")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class ExperimentRecord:
    """One row of `experiment_state`."""

    name: str
    status: str
    surface: str
    layer: str
    traffic: float
    slice_start: float | None
    created_at: str
    started_at: str | None
    stopped_at: str | None
    winner: str | None
    actor: str
    reason: str
    definition_sha256: str
    definition_json: str

    def definition(self) -> Definition:
        """The definition as it was started (or created, for a draft)."""
        return parse_definition(json.loads(self.definition_json),
                                f"experiment_state {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the definition as an object)."""
        payload = asdict(self)
        payload["definition"] = json.loads(payload.pop("definition_json"))
        return payload


@dataclass(frozen=True)
class AuditEntry:
    """One row of `experiment_audit`."""

    at: str
    name: str
    actor: str
    action: str
    from_status: str | None
    to_status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExperimentStore:
    """The two tables in one database, over one connection (opened on first use).

    Args:
        url: the event store's URL, `sqlite:///...` or `postgresql://...`.
        read_only: only read (the server): a database or tables that do not exist yet hold
            no experiments, and nothing is created.
    """

    def __init__(self, url: str, read_only: bool = False) -> None:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise InputError(f"database_url: unsupported scheme in {url.split('://')[0]!r}; "
                             "use sqlite:/// or postgresql://")
        self.url = url
        self.read_only = read_only
        self.postgres = not url.startswith("sqlite:///")
        self.mark = "%s" if self.postgres else "?"
        self._connection: Any = None
        self._lock = threading.RLock()

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._connection is not None and not getattr(self._connection, "closed", False):
            return self._connection
        connection: Any
        if self.postgres:
            import psycopg

            connection = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            if not self.read_only:
                with connection.transaction():
                    connection.execute(_POSTGRES_LOCK)
                    for statement in _statements(_POSTGRES_SCHEMA):
                        connection.execute(statement)
        else:
            path = self._sqlite_path()
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, timeout=60.0,
                                         check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=60000")
            if not self.read_only:
                connection.executescript(_SQLITE_SCHEMA)
        self._connection = connection
        return connection

    def _sqlite_path(self) -> str:
        from tailor.events.store import sqlite_path

        return sqlite_path(self.url)

    def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self.read_only and not self.postgres and self._sqlite_path() != ":memory:" \
                    and not Path(self._sqlite_path()).expanduser().is_file():
                return []  # no event store yet: no experiments (and none is created)
            try:
                return list(self._connect().execute(sql, tuple(parameters)).fetchall())
            except Exception as error:
                if self.read_only and _missing_table(error):
                    return []
                raise

    def close(self) -> None:
        """Release the connection (a later call opens it again)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

    def __enter__(self) -> "ExperimentStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------

    def records(self, statuses: Iterable[str] | None = None) -> list[ExperimentRecord]:
        """Experiments (of some statuses, or all), oldest start (then creation) first."""
        sql = f"SELECT {', '.join(_STATE_COLUMNS)} FROM experiment_state"
        wanted = tuple(statuses) if statuses is not None else ()
        if statuses is not None:
            sql += f" WHERE status IN ({', '.join([self.mark] * len(wanted))})" if wanted \
                else " WHERE 1 = 0"
        rows = self._rows(sql + " ORDER BY COALESCE(started_at, created_at), name", wanted)
        return [ExperimentRecord(*row) for row in rows]

    def record(self, name: str) -> ExperimentRecord | None:
        """The experiment called `name`, if it has a row."""
        rows = self._rows(f"SELECT {', '.join(_STATE_COLUMNS)} FROM experiment_state "
                          f"WHERE name = {self.mark}", (name,))
        return ExperimentRecord(*rows[0]) if rows else None

    def audit(self, name: str | None = None) -> list[AuditEntry]:
        """The changes, oldest first (of one experiment, or all)."""
        sql = f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM experiment_audit"
        parameters: tuple = ()
        if name is not None:
            sql, parameters = sql + f" WHERE name = {self.mark}", (name,)
        return [AuditEntry(*row) for row in self._rows(sql + " ORDER BY id", parameters)]

    def exposures(self, name: str) -> dict[str, dict[str, int]]:
        """Per variant: answers served in the experiment and distinct customers, from the
        prediction log's rows still in the store (an empty dict when there are none)."""
        from tailor.events.prediction_store import open_prediction_store

        open_prediction_store(self.url).close()  # the table exists, even before any answer
        rows = self._rows("SELECT experiment_variant, COUNT(*), COUNT(DISTINCT customer_id) "
                          f"FROM predictions WHERE experiment = {self.mark} "
                          "GROUP BY experiment_variant ORDER BY experiment_variant", (name,))
        return {str(variant): {"answers": int(answers), "customers": int(customers)}
                for variant, answers, customers in rows}

    # -- changes ---------------------------------------------------------------------------

    def _transaction(self, work: Any) -> Any:
        """`work(connection)` in one exclusive transaction: one change at a time."""
        if self.read_only:
            raise RuntimeError(f"{self.url}: the experiment store was opened read-only")
        with self._lock:
            connection = self._connect()
            if self.postgres:
                with connection.transaction():
                    connection.execute(_POSTGRES_LOCK)
                    return work(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
                connection.execute("COMMIT")
                return result
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def _current(self, connection: Any, name: str) -> ExperimentRecord | None:
        row = connection.execute(f"SELECT {', '.join(_STATE_COLUMNS)} FROM experiment_state "
                                 f"WHERE name = {self.mark}", (name,)).fetchone()
        return ExperimentRecord(*row) if row else None

    def _write(self, connection: Any, record: ExperimentRecord, action: str,
               previous: str | None) -> None:
        values = (record.name, record.status, record.surface, record.layer, record.traffic,
                  record.slice_start, record.created_at, record.started_at, record.stopped_at,
                  record.winner, record.actor, record.reason, record.definition_sha256,
                  record.definition_json)
        marks = ", ".join([self.mark] * len(values))
        connection.execute(f"DELETE FROM experiment_state WHERE name = {self.mark}",
                           (record.name,))
        connection.execute(f"INSERT INTO experiment_state ({', '.join(_STATE_COLUMNS)}) "
                           f"VALUES ({marks})", values)
        audit = (_now(), record.name, record.actor, action, previous, record.status,
                 record.reason)
        connection.execute(f"INSERT INTO experiment_audit ({', '.join(_AUDIT_COLUMNS)}) "
                           f"VALUES ({', '.join([self.mark] * len(audit))})", audit)

    def create(self, definition: Definition, actor: str, reason: str = "created"
               ) -> ExperimentRecord:
        """Record a draft (or refresh a draft's definition).

        Raises:
            InputError: the experiment exists and is no longer a draft.
        """
        def work(connection: Any) -> ExperimentRecord:
            current = self._current(connection, definition.name)
            if current is not None and current.status != DRAFT:
                raise InputError(f"{definition.name}: already {_described(current)}; a new "
                                 "experiment needs a new name")
            record = _draft(definition, actor, reason,
                            current.created_at if current else _now())
            self._write(connection, record, "create", current.status if current else None)
            return record

        return self._transaction(work)

    def start(self, definition: Definition, actor: str, reason: str) -> ExperimentRecord:
        """Start `definition` (a draft, or an experiment with no row yet) in the first free
        slice of its layer; the registry is checked by the module's `start` before this.

        Raises:
            InputError: it is not a draft; an experiment of its surface runs in another
                layer; its layer has no free slice as wide as its traffic.
        """
        def work(connection: Any) -> ExperimentRecord:
            current = self._current(connection, definition.name)
            if current is not None:
                _check_transition(current, "start")
            running = [ExperimentRecord(*row) for row in connection.execute(
                f"SELECT {', '.join(_STATE_COLUMNS)} FROM experiment_state "
                f"WHERE status = {self.mark} ORDER BY started_at, name", (RUNNING,)).fetchall()]
            slice_start = free_slice(definition, running)
            now = _now()
            record = _draft(definition, actor, reason,
                            current.created_at if current else now)
            record = _replaced(record, status=RUNNING, started_at=now, slice_start=slice_start)
            self._write(connection, record, "start", current.status if current else None)
            return record

        return self._transaction(work)

    def stop(self, name: str, actor: str, reason: str) -> ExperimentRecord:
        """Stop a running experiment: from now on it assigns nobody.

        Raises:
            InputError: no such experiment, or it is not running.
        """
        def work(connection: Any) -> ExperimentRecord:
            current = _existing(self._current(connection, name), name)
            _check_transition(current, "stop")
            record = _replaced(current, status=STOPPED, stopped_at=_now(), slice_start=None,
                               actor=actor, reason=reason)
            self._write(connection, record, "stop", current.status)
            return record

        return self._transaction(work)

    def promote(self, name: str, winner: str, actor: str, reason: str) -> ExperimentRecord:
        """Mark a running or stopped experiment promoted with `winner` (its changes become
        the surface's default, `tailor.experiments.assignment`).

        Raises:
            InputError: no such experiment, it cannot be promoted now, or `winner` is not
                one of its variants.
        """
        def work(connection: Any) -> ExperimentRecord:
            current = _existing(self._current(connection, name), name)
            _check_transition(current, "promote")
            current.definition().variant(winner)  # an unknown variant says which exist
            record = _replaced(current, status=PROMOTED, winner=winner, slice_start=None,
                               stopped_at=current.stopped_at or _now(), actor=actor,
                               reason=reason)
            self._write(connection, record, "promote", current.status)
            return record

        return self._transaction(work)


def _missing_table(error: BaseException) -> bool:
    """The tables do not exist yet (nothing was ever created or started)."""
    return type(error).__name__ == "UndefinedTable" or "no such table" in str(error)


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def _draft(definition: Definition, actor: str, reason: str, created_at: str
           ) -> ExperimentRecord:
    return ExperimentRecord(
        name=definition.name, status=DRAFT, surface=definition.surface, layer=definition.layer,
        traffic=definition.traffic, slice_start=None, created_at=created_at, started_at=None,
        stopped_at=None, winner=None, actor=actor, reason=reason,
        definition_sha256=definition.sha256(), definition_json=definition.canonical_json())


def _replaced(record: ExperimentRecord, **changes: Any) -> ExperimentRecord:
    return ExperimentRecord(**{**asdict(record), **changes})


def _existing(record: ExperimentRecord | None, name: str) -> ExperimentRecord:
    if record is None:
        raise InputError(f"{name}: no such experiment (never created or started; "
                         "`tailor experiment status` lists them)")
    return record


def _described(record: ExperimentRecord) -> str:
    """`running since ...`, `stopped at ...`: the status with its moment."""
    if record.status == RUNNING:
        return f"running since {record.started_at}"
    if record.status == STOPPED:
        return f"stopped at {record.stopped_at} by {record.actor} ({record.reason})"
    if record.status == PROMOTED:
        return f"promoted ({record.winner}) by {record.actor} ({record.reason})"
    return "a draft"


def _check_transition(record: ExperimentRecord, action: str) -> None:
    """Refuse an action the record's status does not allow, saying why."""
    sources, _ = TRANSITIONS[action]
    if record.status in sources:
        return
    if action == "start" and record.status in (STOPPED, PROMOTED):
        raise InputError(f"{record.name}: cannot start: it is {_described(record)}; an "
                         "experiment is never restarted (the exposures before and after "
                         "would mix): create one under a new name")
    raise InputError(f"{record.name}: cannot {action}: it is {_described(record)} "
                     f"({action} needs {' or '.join(sorted(sources))})")


def free_slice(definition: Definition, running: Sequence[ExperimentRecord]) -> float:
    """Where `definition` starts in its layer: the first gap among the running experiments'
    slices at least as wide as its traffic.

    Raises:
        InputError: another running experiment has its name, runs on its surface in another
            layer, or the layer has no room (naming the experiments that fill it).
    """
    for other in running:
        if other.name == definition.name:
            raise InputError(f"{definition.name}: already running since {other.started_at}")
        if other.surface == definition.surface and other.layer != definition.layer:
            raise InputError(
                f"{definition.name}: layer: {other.name} runs on surface {other.surface} in "
                f"layer {other.layer!r}; experiments of one surface must share one layer (each "
                f"answer is one experiment's exposure): put {definition.name} in layer "
                f"{other.layer!r} or stop {other.name}")
    taken = sorted((other.slice_start or 0.0, other.traffic, other.name) for other in running
                   if other.layer == definition.layer)
    position = 0.0
    for start, traffic, _ in taken:
        if start - position >= definition.traffic - SLICE_TOLERANCE:
            return position
        position = max(position, start + traffic)
    if 1.0 - position >= definition.traffic - SLICE_TOLERANCE:
        return position
    total = definition.traffic + sum(traffic for _, traffic, _ in taken)
    holders = ", ".join(f"{name} (traffic {traffic:g}, slice [{start:g}, {start + traffic:g}))"
                        for start, traffic, name in taken)
    why = (f"the layer's traffic would sum to {total:g} > 1" if total > 1 + SLICE_TOLERANCE
           else "no free slice that wide is left between them")
    raise InputError(f"{definition.name}: traffic: {definition.traffic:g} of layer "
                     f"{definition.layer!r} overlaps the running {holders}: {why}; stop one "
                     "of them or lower the traffic")


# -- the commands' entry points -----------------------------------------------------------


def experiments_dir(settings: Settings) -> Path:
    """Where a shop's definitions live: `<home>/experiments/`."""
    return settings.home_path / "experiments"


def definition_path(settings: Settings, name: str) -> Path:
    return experiments_dir(settings) / f"{name}.yaml"


def open_store(settings: Settings) -> ExperimentStore:
    """The experiment tables of the settings' event store."""
    return ExperimentStore(settings.event_store_url)


def start(settings: Settings, name: str, actor: str, reason: str = "started",
          definition: Definition | None = None) -> ExperimentRecord:
    """Start an experiment: its definition loads (`<home>/experiments/NAME.yaml` unless
    given), every variant's model alias or version exists in the registry, and its layer
    has room; then it runs, the server picks it up within `experiments.refresh_seconds`.

    Raises:
        InputError: any of those checks failed (nothing is recorded then).
    """
    if definition is None:
        path = definition_path(settings, name)
        if not path.is_file():
            raise InputError(f"{path}: no such experiment definition; "
                             f"`tailor experiment create {name}` writes one")
        definition = load_definition(path)
    if definition.name != name:
        raise InputError(f"name: the definition is {definition.name!r}, not {name!r}")
    check_models(settings, definition)
    with open_store(settings) as store:
        return store.start(definition, actor, reason)


def stop(settings: Settings, name: str, actor: str, reason: str) -> ExperimentRecord:
    """Stop a running experiment (who and why go to the audit)."""
    with open_store(settings) as store:
        return store.stop(name, actor, reason)


def promote(settings: Settings, name: str, winner: str, actor: str, reason: str
            ) -> ExperimentRecord:
    """Record the promotion of `winner` (what it does to the registry is the caller's)."""
    with open_store(settings) as store:
        return store.promote(name, winner, actor, reason)


def check_models(settings: Settings, definition: Definition) -> None:
    """Every variant's `model` change names an alias or version of the surface's registered
    model (`tailor-<model>`).

    Raises:
        InputError: one names nothing (the field, the registry and what it has).
    """
    wanted = [(index, variant.changes.model) for index, variant in
              enumerate(definition.variants) if variant.changes.model is not None]
    if not wanted:
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from tailor.registry.tracking import tracking_store_exists, use_tracking

    registered = f"tailor-{definition.model}"
    if not tracking_store_exists(settings):
        raise InputError(f"variants.{wanted[0][0]}.changes.model: no model registry yet at "
                         f"{settings.tracking_uri}: run `tailor train {definition.model}` first")
    uri = use_tracking(settings)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for index, reference in wanted:
        try:
            if reference.isdigit():
                client.get_model_version(registered, reference)
            else:
                client.get_model_version_by_alias(registered, reference)
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            raise InputError(
                f"variants.{index}.changes.model: {registered} has no "
                f"{'version' if reference.isdigit() else 'alias'} {reference!r} in the "
                f"registry at {uri} ({_registry_has(client, registered)})") from None


def _registry_has(client: Any, registered: str) -> str:
    """What the registry holds of a model, for an error message."""
    try:
        versions = sorted((int(v.version) for v in
                           client.search_model_versions(f"name = '{registered}'")), reverse=True)
        aliases = client.get_registered_model(registered).aliases if versions else {}
    except Exception:  # the message is a hint; its own failure must not hide the real one
        return "its versions could not be listed"
    if not versions:
        return "no versions registered"
    shown = ", ".join(str(v) for v in versions[:10]) + (", ..." if len(versions) > 10 else "")
    named = ", ".join(f"{alias}={version}" for alias, version in sorted(aliases.items()))
    return f"versions {shown}" + (f"; aliases {named}" if named else "; no aliases")


def assigner_from(records: Iterable[ExperimentRecord], holdout_share: float) -> Assigner:
    """The `Assigner` of the running experiments among `records` (with their slices) and
    the promoted ones (their winners as defaults, in the order they stopped)."""
    records = list(records)
    running = [RunningExperiment(record.definition(), record.slice_start or 0.0)
               for record in records if record.status == RUNNING]
    promoted = [PromotedExperiment(record.definition(), record.winner or "")
                for record in sorted(records, key=lambda r: (r.stopped_at or "", r.name))
                if record.status == PROMOTED and record.winner]
    return Assigner(running, holdout_share, promoted)


def current_assigner(settings: Settings) -> Assigner:
    """The assignment as it stands now (the campaign job asks it per customer, the server
    keeps one refreshed, `tailor.serving.experiment_watcher`)."""
    with open_store(settings) as store:
        records = store.records((RUNNING, PROMOTED))
    return assigner_from(records, settings.experiments_holdout_share)
