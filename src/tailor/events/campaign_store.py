"""The campaign mails' table, `campaign_sends`, beside the events (SQLite or PostgreSQL).

Reads and writes the database the event store's URL names (`database_url`, default
`<home>/events.db`): one row per planned mail of a re-engagement campaign, written by
`tailor experiment campaign plan` (`tailor.experiments.campaigns`), claimed and marked by
`... send` (`tailor.experiments.campaign_send`), and read by the collector's tracking routes
(`tailor.events.collector.tracking`: which mail a token names, and where its links lead) and
by `... status`. It lives in the event layer because the collector reads it.

A row holds pseudonymous ids, the experiment and variant, the discount code, the picks and
the mail's link targets; never an e-mail address or a name (those are joined from the PII
store at send time only). Times are epoch microseconds, UTC, in both dialects.

A sent mail with an experiment is that experiment's exposure; `experiment` and `variant` are
NULL for a customer the assignment put in no experiment (the holdout, outside the slices, no
experiment running), who got the control's or a promoted winner's timing. Databases created
before these columns allowed NULL are migrated when the table is opened (`initialize`): on
SQLite the table is rebuilt with its rows, on PostgreSQL the columns are altered; rows from
before have a variant but no experiment (they were hashed without the lifecycle) and count
as no exposure.

Statuses: `pending` (waits for its time), `sending` (claimed by a sender that is talking to
the SMTP server; a row left here by a crash is "uncertain": the server may have taken it, so
it is never sent again on its own), `sent`, `failed` (given up: refused for good, or
`mail.max_attempts` attempts), `skipped` (opted out or deleted since the plan, no address, or
its first mail never went). Every change is its own committed transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from tailor.errors import InputError
from tailor.events.store import connect_sqlite, sqlite_path

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
STATUSES: tuple[str, ...] = (PENDING, SENDING, SENT, FAILED, SKIPPED)

# The columns a plan writes, in the order `insert_sends` takes them.
PLAN_COLUMNS: tuple[str, ...] = (
    "campaign",             # campaign id, e.g. reengage-2026-w10
    "customer_id",          # pseudonymous id, as in the events
    "mail",                 # 1: the first mail; 2: the discount mail of a delayed variant
    "experiment",           # the experiment the customer is exposed to; NULL: none
    "variant",              # its variant; NULL with the experiment
    "discount_delay_days",  # the variant's delay: mail 2 goes this long after mail 1
    "with_discount",        # 1 when this mail offers the code
    "code",                 # the customer's discount code (both mails hold the same one)
    "picks",                # JSON list of {product_id, name, price, reason}
    "links",                # JSON list of {label, url}: every link target of the mail
    "token",                # random, unguessable: names the mail in tracking URLs
    "planned_at",           # epoch microseconds
    "due_at",               # epoch microseconds: not sent before
)
_STATE_COLUMNS = ("id", "status", "message_id", "attempted_at", "sent_at", "attempts",
                  "last_error")
SEND_COLUMNS: tuple[str, ...] = _STATE_COLUMNS[:1] + PLAN_COLUMNS + _STATE_COLUMNS[1:]

TABLE = "campaign_sends"
_MIGRATING = "campaign_sends_migrating"
_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS {table} (
    id {id_type},
    campaign TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    mail INTEGER NOT NULL,
    experiment TEXT,
    variant TEXT,
    discount_delay_days INTEGER NOT NULL,
    with_discount INTEGER NOT NULL,
    code TEXT NOT NULL,
    picks TEXT NOT NULL,
    links TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    planned_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    message_id TEXT,
    attempted_at BIGINT,
    sent_at BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (campaign, customer_id, mail),
    UNIQUE (code, mail)
)"""
_INDEX_SQL = """
CREATE INDEX IF NOT EXISTS campaign_sends_due ON campaign_sends (status, due_at);
CREATE INDEX IF NOT EXISTS campaign_sends_customer ON campaign_sends (customer_id)
"""
_POSTGRES_MIGRATION = ("ALTER TABLE campaign_sends ADD COLUMN IF NOT EXISTS experiment TEXT",
                       "ALTER TABLE campaign_sends ALTER COLUMN variant DROP NOT NULL")
_SQLITE_ID = "INTEGER PRIMARY KEY AUTOINCREMENT"
_POSTGRES_ID = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
_POSTGRES_INIT_LOCK = ("SELECT pg_advisory_xact_lock(hashtext(current_schema() || "
                       "'.tailor.init'))")


@dataclass(frozen=True)
class CampaignSend:
    """One row of `campaign_sends` (JSON columns decoded)."""

    id: int
    campaign: str
    customer_id: str
    mail: int
    experiment: str | None
    variant: str | None
    discount_delay_days: int
    with_discount: bool
    code: str
    picks: list[dict[str, Any]]
    links: list[dict[str, str]]
    token: str
    planned_at: int
    due_at: int
    status: str
    message_id: str | None
    attempted_at: int | None
    sent_at: int | None
    attempts: int
    last_error: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "CampaignSend":
        values = dict(zip(SEND_COLUMNS, row))
        values["picks"] = json.loads(values["picks"])
        values["links"] = json.loads(values["links"])
        values["with_discount"] = bool(values["with_discount"])
        return cls(**values)


class CampaignStore:
    """`campaign_sends` in a SQLite file (WAL) or a PostgreSQL database (autocommit)."""

    def __init__(self, url: str) -> None:
        """Open the table of the event store a URL names (`sqlite:///…` or `postgresql://…`).

        Raises:
            InputError: the URL's scheme is not supported.
        """
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise InputError(f"database_url: unsupported scheme in {url.split('://')[0]!r}; "
                             "use sqlite:/// or postgresql://")
        self.url = url
        self._is_sqlite = url.startswith("sqlite:///")
        self._lock = threading.RLock()
        self._connection: Any = None

    # -- connection and SQL plumbing ---------------------------------------------------------

    def _connect(self) -> Any:
        if self._is_sqlite:
            if self._connection is None:
                # synchronous=FULL: a sent mark must survive a power cut
                self._connection = connect_sqlite(sqlite_path(self.url), synchronous="FULL")
            return self._connection
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.url, autocommit=True)
        return self._connection

    def _sql(self, sql: str) -> str:
        return sql if self._is_sqlite else sql.replace("?", "%s")

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._is_sqlite:
                return self._connect().execute(sql, tuple(parameters)).fetchall()
            with self._connect().cursor() as cursor:
                cursor.execute(self._sql(sql), tuple(parameters))
                return cursor.fetchall()

    def _write(self, statements: Sequence[tuple[str, Any]]) -> list[int]:
        """Run statements in one transaction (parameters: a tuple, or a list of tuples for
        executemany); returns each one's row count."""
        with self._lock:
            connection = self._connect()
            counts = []
            if self._is_sqlite:
                before = connection.total_changes
                connection.execute("BEGIN IMMEDIATE")
                try:
                    for sql, parameters in statements:
                        if isinstance(parameters, list):
                            connection.executemany(sql, parameters)
                        else:
                            connection.execute(sql, parameters or ())
                        counts.append(connection.total_changes - before)
                        before = connection.total_changes
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                return counts
            with connection.transaction(), connection.cursor() as cursor:
                for sql, parameters in statements:
                    if isinstance(parameters, list):
                        cursor.executemany(self._sql(sql), parameters)
                    else:
                        cursor.execute(self._sql(sql), parameters)
                    counts.append(max(cursor.rowcount, 0))
            return counts

    def initialize(self) -> None:
        """Create the table and its indexes if they do not exist, and migrate a table from
        before the `experiment` column and NULL variants (idempotent)."""
        table = _TABLE_SQL.format(table=TABLE, id_type=_SQLITE_ID if self._is_sqlite
                                  else _POSTGRES_ID)
        indexes = _statements(_INDEX_SQL)
        if self._is_sqlite:
            with self._lock:
                self._connect().executescript(";".join([table, *indexes]))
                if self._outdated():
                    self._rebuild_sqlite(indexes)
            return
        self._write([(_POSTGRES_INIT_LOCK, None), (table, None),
                     *((sql, None) for sql in indexes)])
        if self._outdated():
            self._write([(_POSTGRES_INIT_LOCK, None),
                         *((sql, None) for sql in _POSTGRES_MIGRATION)])

    def _outdated(self) -> bool:
        """The table lacks the `experiment` column or holds `variant` NOT NULL."""
        if self._is_sqlite:
            nullable = {str(row[1]): not row[3]
                        for row in self._read(f"PRAGMA table_info({TABLE})")}
        else:
            nullable = {str(name): is_nullable == "YES" for name, is_nullable in self._read(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?", (TABLE,))}
        return "experiment" not in nullable or not nullable.get("variant", True)

    def _rebuild_sqlite(self, indexes: list[str]) -> None:
        """SQLite cannot drop a NOT NULL: copy the rows into a table of today's shape, in
        one transaction (ids, and so AUTOINCREMENT's sequence, are kept)."""
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")
        try:
            if self._outdated():  # another process may have migrated it meanwhile
                kept = ", ".join(str(row[1]) for row in connection.execute(
                    f"PRAGMA table_info({TABLE})") if row[1] in SEND_COLUMNS)
                connection.execute(_TABLE_SQL.format(table=_MIGRATING, id_type=_SQLITE_ID))
                connection.execute(f"INSERT INTO {_MIGRATING} ({kept}) "
                                   f"SELECT {kept} FROM {TABLE}")
                connection.execute(f"DROP TABLE {TABLE}")
                connection.execute(f"ALTER TABLE {_MIGRATING} RENAME TO {TABLE}")
                for sql in indexes:
                    connection.execute(sql)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Release the connection (a later call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- planning ----------------------------------------------------------------------------

    def planned_customers(self, campaign: str) -> set[str]:
        """Customers the campaign already holds."""
        return {row[0] for row in self._read(
            "SELECT DISTINCT customer_id FROM campaign_sends WHERE campaign = ?", (campaign,))}

    def recently_planned(self, since_micros: int, other_than: str) -> set[str]:
        """Customers planned into another campaign at or after `since_micros`."""
        return {row[0] for row in self._read(
            "SELECT DISTINCT customer_id FROM campaign_sends WHERE campaign <> ? "
            "AND planned_at >= ?", (other_than, int(since_micros)))}

    def insert_sends(self, rows: Iterable[Sequence[Any]]) -> int:
        """Store planned mails (`PLAN_COLUMNS` order) in one transaction; a mail the campaign
        already holds for that customer is left as it is. Returns how many were new.

        Raises:
            sqlite3.IntegrityError, psycopg.errors.UniqueViolation: a code or token is taken
                (the caller draws new ones); nothing was stored.
        """
        rows = [tuple(row) for row in rows]
        if not rows:
            return 0
        marks = ", ".join("?" * len(PLAN_COLUMNS))
        sql = (f"INSERT INTO campaign_sends ({', '.join(PLAN_COLUMNS)}) VALUES ({marks}) "
               "ON CONFLICT (campaign, customer_id, mail) DO NOTHING")
        return self._write([(sql, rows)])[0]

    # -- sending -----------------------------------------------------------------------------

    def pending_due(self, now_micros: int, campaign: str | None = None
                    ) -> list[tuple[CampaignSend, CampaignSend | None]]:
        """Pending mails whose `due_at` has come, oldest first, each with the customer's
        first mail of the same campaign when it is a later one (the caller checks that the
        first mail went, and long enough ago)."""
        sql = (f"SELECT {', '.join(SEND_COLUMNS)} FROM campaign_sends "
               "WHERE status = ? AND due_at <= ?")
        parameters: list[Any] = [PENDING, int(now_micros)]
        if campaign is not None:
            sql += " AND campaign = ?"
            parameters.append(campaign)
        due = [CampaignSend.from_row(row) for row in self._read(sql + " ORDER BY due_at, id",
                                                                 parameters)]
        later = sorted({(send.campaign, send.customer_id) for send in due if send.mail > 1})
        firsts = self._first_mails(later)
        return [(send, firsts.get((send.campaign, send.customer_id)) if send.mail > 1 else None)
                for send in due]

    def _first_mails(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], CampaignSend]:
        found: dict[tuple[str, str], CampaignSend] = {}
        for campaign in sorted({campaign for campaign, _ in keys}):
            for row in self._read(f"SELECT {', '.join(SEND_COLUMNS)} FROM campaign_sends "
                                  "WHERE campaign = ? AND mail = 1", (campaign,)):
                send = CampaignSend.from_row(row)
                found[(send.campaign, send.customer_id)] = send
        return {key: found[key] for key in keys if key in found}

    def claim(self, send_id: int, message_id: str, now_micros: int) -> bool:
        """Take a pending mail for sending (committed before the SMTP conversation starts):
        counts the attempt and records the Message-ID. False when it is no longer pending
        (another sender has it)."""
        counts = self._write([(
            "UPDATE campaign_sends SET status = ?, message_id = ?, attempted_at = ?, "
            "attempts = attempts + 1 WHERE id = ? AND status = ?",
            (SENDING, message_id, int(now_micros), int(send_id), PENDING))])
        return counts[0] == 1

    def mark_sent(self, send_id: int, now_micros: int) -> None:
        """The SMTP server took the claimed mail."""
        self._write([("UPDATE campaign_sends SET status = ?, sent_at = ?, last_error = NULL "
                      "WHERE id = ? AND status = ?", (SENT, int(now_micros), int(send_id),
                                                      SENDING))])

    def release(self, send_id: int, error: str, give_up: bool) -> None:
        """The SMTP server did not take the claimed mail: pending again (tried later), or
        `failed` when `give_up`. `error` must hold no address (the caller masks it)."""
        self._write([("UPDATE campaign_sends SET status = ?, last_error = ? "
                      "WHERE id = ? AND status = ?",
                      (FAILED if give_up else PENDING, error[:500], int(send_id), SENDING))])

    def skip(self, send_id: int, reason: str) -> None:
        """Leave a pending mail unsent for good (`reason` names why, never the person)."""
        self._write([("UPDATE campaign_sends SET status = ?, last_error = ? "
                      "WHERE id = ? AND status = ?", (SKIPPED, reason, int(send_id), PENDING))])

    def requeue_uncertain(self, claimed_before_micros: int, campaign: str | None = None) -> int:
        """Put mails left `sending` (claimed before the given time: their sender is gone)
        back to pending; returns how many. Only for an operator who checked that the SMTP
        server did not take them."""
        sql = ("UPDATE campaign_sends SET status = ?, last_error = ? "
               "WHERE status = ? AND attempted_at < ?")
        parameters: tuple = (PENDING, "requeued after an interrupted send", SENDING,
                             int(claimed_before_micros))
        if campaign is not None:
            sql += " AND campaign = ?"
            parameters += (campaign,)
        return self._write([(sql, parameters)])[0]

    # -- tracking and reporting ----------------------------------------------------------------

    def by_token(self, token: str) -> CampaignSend | None:
        """The mail a tracking token names, or None."""
        rows = self._read(f"SELECT {', '.join(SEND_COLUMNS)} FROM campaign_sends "
                          "WHERE token = ?", (token,))
        return CampaignSend.from_row(rows[0]) if rows else None

    def sends(self, campaign: str) -> list[CampaignSend]:
        """Every mail of a campaign, by customer and mail number."""
        return [CampaignSend.from_row(row) for row in self._read(
            f"SELECT {', '.join(SEND_COLUMNS)} FROM campaign_sends WHERE campaign = ? "
            "ORDER BY customer_id, mail", (campaign,))]

    def campaigns(self) -> list[tuple[str, int]]:
        """Every campaign and when it was first planned, newest first."""
        return [(str(row[0]), int(row[1])) for row in self._read(
            "SELECT campaign, MIN(planned_at) AS first FROM campaign_sends GROUP BY campaign "
            "ORDER BY first DESC, campaign")]

    def status_counts(self, now_micros: int, campaign: str | None = None
                      ) -> dict[tuple[str, bool], int]:
        """Mails per (status, due by `now_micros`), of one campaign or all."""
        sql = ("SELECT status, CASE WHEN due_at <= ? THEN 1 ELSE 0 END, COUNT(*) "
               "FROM campaign_sends")
        parameters: list[Any] = [int(now_micros)]
        if campaign is not None:
            sql += " WHERE campaign = ?"
            parameters.append(campaign)
        return {(str(status), bool(due)): int(count) for status, due, count in
                self._read(sql + " GROUP BY 1, 2", parameters)}

    def campaign_events(self, campaign: str, since_micros: int,
                        event_types: Sequence[str]) -> list[tuple[str, str, int, str | None]]:
        """Events of the campaign's customers from `since_micros` on, of the given types:
        (customer_id, event_type, timestamp micros, properties JSON text), oldest first.
        Reads the event store's `events` table (it must exist)."""
        types = ", ".join("?" * len(event_types))
        since: Any = int(since_micros)
        time_column = bound = "e.timestamp"
        if not self._is_sqlite:  # TIMESTAMPTZ there: bind a datetime, read micros back
            from tailor.events.prediction_store import micros_to_datetime

            bound = 'e."timestamp"'
            time_column = f"(EXTRACT(EPOCH FROM {bound}) * 1000000)::BIGINT"
            since = micros_to_datetime(since_micros)
        rows = self._read(
            f"SELECT e.customer_id, e.event_type, {time_column}, e.properties FROM events e "
            f"WHERE {bound} >= ? AND e.event_type IN ({types}) AND e.customer_id IN "
            f"(SELECT customer_id FROM campaign_sends WHERE campaign = ?) ORDER BY 3",
            (since, *event_types, campaign))
        return [(str(customer), str(kind), int(moment), properties)
                for customer, kind, moment, properties in rows]

    def exposure_counts(self, experiment: str) -> dict[str, dict[str, int]]:
        """Per variant of an experiment: mails sent in it and distinct customers mailed (its
        exposures over every campaign; an empty dict when there are none)."""
        return {str(variant): {"mails": int(mails), "customers": int(customers)}
                for variant, mails, customers in self._read(
                    "SELECT variant, COUNT(*), COUNT(DISTINCT customer_id) FROM campaign_sends "
                    "WHERE experiment = ? AND status = ? GROUP BY variant ORDER BY variant",
                    (experiment, SENT))}

    def delete_customer(self, customer_id: str) -> int:
        """Remove a customer's mails (right to be forgotten); returns how many. On SQLite
        the rows' bytes are overwritten (`secure_delete`) and the write-ahead log emptied."""
        with self._lock:
            if self._is_sqlite:
                self._connect().execute("PRAGMA secure_delete=ON")
            try:
                removed = self._write([("DELETE FROM campaign_sends WHERE customer_id = ?",
                                        (customer_id,))])[0]
            finally:
                if self._is_sqlite:
                    self._connect().execute("PRAGMA secure_delete=OFF")
            if self._is_sqlite:
                self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return removed


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def open_campaign_store(url: str) -> CampaignStore:
    """Open (and initialise) `campaign_sends` in the event store a URL names.

    Raises:
        InputError: the URL's scheme is not supported.
    """
    store = CampaignStore(url)
    store.initialize()
    return store


def campaign_exposures(store: CampaignStore, campaign: str
                       ) -> list[tuple[str, str, str, int, int]]:
    """A campaign's exposures for the experiment analysis: (customer_id, experiment, variant,
    mail, sent_at micros) of every mail the SMTP server took that was sent in an experiment
    (a customer in none, with the control's or a winner's timing, is not an exposure)."""
    return [(send.customer_id, send.experiment, send.variant, send.mail, int(send.sent_at))
            for send in store.sends(campaign)
            if send.status == SENT and send.sent_at and send.experiment and send.variant]
