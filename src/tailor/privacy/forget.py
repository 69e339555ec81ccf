"""`tailor forget`: the right to be forgotten, as a resumable job over every store.

Reads and writes, for one customer id, every place Tailor keeps data about a customer, in
this order (`STEPS`): the tombstone (`<home>/privacy/tombstones.csv`, first, so serving,
the collector, file import and feature runs stop at once), the event store (events, dead
letters, the customer row, the prediction log's ids), the campaign mails, the lake
(partitions rewritten), the warehouse, the offline feature files, the online feature store,
then the other files under the home (MLflow artifacts, the BentoML model store, Evidently's
workspace, reports and retention lists, logs, anything else), the PII store, the exclusion
list's rows (under the list's writers' lock), and last the audit entry
(`tailor.privacy.forget_audit`; a run that stops on an error is audited too). Before the
event store step it waits until running servers and collectors have seen the tombstone and
flushed what they answered before it (their 2 s recheck plus the prediction log's flush
interval), so no row of the customer is written after the step that deletes them.

The job's progress lives in `<home>/privacy/forget-jobs/<tombstone>.json`: written when a
run starts, then each finished step with its counts after the step, and the step and error
type of a run that stops (`stopped`, dropped when a run resumes). A run that stops (a
crash, a service down) leaves the file; `resume=True` skips the steps it lists, and the
answer adds their counts.
Every step is idempotent, so a full run again is also safe. The file is removed when the job
ends; nothing in it names the customer (the tombstone is a keyed hash). One job runs per
home at a time (`<home>/privacy/forget.lock`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from tailor.config import Settings
from tailor.events.forget_jobs import job_state_path
from tailor.events.tombstones import RECHECK_SECONDS as TOMBSTONE_RECHECK_SECONDS
from tailor.events.tombstones import (
    add_tombstone,
    checked_customer_id,
    load_tombstone_key,
    tombstone_of,
)
from tailor.file_lock import exclusive_lock
from tailor.privacy.forget_audit import record_forget, record_stopped
from tailor.privacy.forget_sweep import FILE_AREAS, sweep_area

log = logging.getLogger(__name__)

LOCK_FILE = "privacy/forget.lock"
LAKE_LOCK_WAIT_SECONDS = 300.0  # an hourly export holds the lake's lock for its run
SETTLE_MARGIN_SECONDS = 1.0


@dataclass
class ForgetContext:
    """What the steps share: the settings, the id, its tombstone, the values to look for in
    files (the id and its PII, read before the PII store forgets them), and progress."""

    settings: Settings
    customer_id: str
    tombstone: str
    values: list[str]
    left: list[str] = field(default_factory=list)  # files still holding a value
    tombstoned_at: float | None = None  # monotonic time this run wrote the tombstone
    advance: Callable[[int], None] = lambda _n: None
    set_total: Callable[[int], None] = lambda _n: None


@dataclass
class ForgetResult:
    """What a forget did: counts per step (store), the files still holding a value, which
    steps an earlier run had done, and how long it took."""

    tombstone: str
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    resumed_steps: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # this run's steps
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Rows, keys, records and values removed, over every store (the tombstone aside)."""
        return sum(count for step, counts in self.removed.items() if step != "tombstone"
                   for count in counts.values())

    @property
    def complete(self) -> bool:
        """True when no file was left holding the customer."""
        return not self.left

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["total"] = self.total
        payload["complete"] = self.complete
        return payload


def _step_tombstone(context: ForgetContext) -> dict[str, int]:
    added = add_tombstone(context.settings.home_path, context.tombstone)
    context.tombstoned_at = time.monotonic()
    return {"added": int(added)}


def _settle(context: ForgetContext) -> None:
    """Wait until every running server and collector has seen the new tombstone and written
    what it answered before (their recheck, the prediction log's flush, a margin), so no
    row of the customer lands in the event store after the step that deletes them."""
    if context.tombstoned_at is None:
        return
    settle = TOMBSTONE_RECHECK_SECONDS + context.settings.monitoring_prediction_flush_seconds \
        + SETTLE_MARGIN_SECONDS
    time.sleep(max(0.0, context.tombstoned_at + settle - time.monotonic()))


def _step_online_store(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.forget_stores import forget_online_features

    return forget_online_features(context.settings, context.customer_id)


def _step_event_store(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.forget_stores import forget_in_event_store

    _settle(context)
    return forget_in_event_store(context.settings, context.customer_id)


def _step_campaign_mails(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.forget_stores import forget_campaign_mails

    return forget_campaign_mails(context.settings, context.customer_id)


def _step_lake(context: ForgetContext) -> dict[str, int]:
    from tailor.events.lake import EXPORT_LOCK_FILE
    from tailor.events.lake_files import ExportInProgress, Lake, export_lock
    from tailor.privacy.forget_files import forget_in_lake, lake_partition_count
    from tailor.privacy.forget_stores import wait_for

    lake = Lake(context.settings.lake_root)
    context.set_total(lake_partition_count(lake))
    with ExitStack() as held:  # the export's lock: no export writes partitions meanwhile
        lock_file = context.settings.home_path / EXPORT_LOCK_FILE
        wait_for(lambda: held.enter_context(export_lock(lock_file)), (ExportInProgress,),
                 LAKE_LOCK_WAIT_SECONDS)
        return forget_in_lake(lake, context.customer_id, context.advance)


def _step_warehouse(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.forget_stores import forget_in_warehouse

    return forget_in_warehouse(context.settings, context.customer_id)


def _area_step(area: str) -> Callable[[ForgetContext], dict[str, int]]:
    def step(context: ForgetContext) -> dict[str, int]:
        scrub = sweep_area(context.settings, area, context.customer_id, context.values,
                           context.advance)
        context.left.extend(scrub.left)
        return {"files": len(scrub.removed), "values": scrub.total}
    return step


def _step_pii(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.forget_stores import forget_pii

    return forget_pii(context.settings, context.customer_id)


def _step_exclusion_list(context: ForgetContext) -> dict[str, int]:
    from tailor.privacy.excluded_customers import drop_customer

    return {"rows": drop_customer(context.settings, context.customer_id)}


STEPS: tuple[tuple[str, Callable[[ForgetContext], dict[str, int]]], ...] = (
    ("tombstone", _step_tombstone),
    ("event_store", _step_event_store),
    ("campaign_mails", _step_campaign_mails),
    ("lake", _step_lake),
    ("warehouse", _step_warehouse),
    *((area, _area_step(area)) for area in FILE_AREAS[:1]),  # the offline feature files
    # After the offline files: a feature run from before the warehouse was cleaned can no
    # longer write the customer back once this has run (later runs drop tombstoned ids).
    ("online_store", _step_online_store),
    *((area, _area_step(area)) for area in FILE_AREAS[1:]),
    ("pii_store", _step_pii),
    ("exclusion_list", _step_exclusion_list),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in STEPS)


def job_path(settings: Settings, tombstone: str) -> Path:
    """The state file of the forget job of one tombstone."""
    return job_state_path(settings.home_path, tombstone)


def _read_job(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        log.warning("forget: job file %s is unreadable; every step runs again", path)
        return {}


def _write_job(path: Path, job: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(job, indent=2), encoding="utf-8")
    os.replace(staging, path)


@contextmanager
def _home_lock(settings: Settings) -> Iterator[None]:
    """One forget job per home at a time (a second one waits for the first)."""
    with exclusive_lock(settings.home_path / LOCK_FILE):
        yield


def customer_tombstone(settings: Settings, customer_id: str) -> str:
    """The tombstone of a customer id under the home's key."""
    return tombstone_of(load_tombstone_key(settings.home_path), checked_customer_id(customer_id))


def forget_customer(settings: Settings, customer_id: str, *, resume: bool = False,
                    actor: str = "", progress: bool = False) -> ForgetResult:
    """Remove one customer from every store; see the module docstring.

    Args:
        settings: the home and the stores' settings.
        customer_id: the id to forget.
        resume: skip the steps an unfinished job of the same customer already did.
        actor: who asked (kept in the audit entry; default the login name).
        progress: show a progress display on stderr.

    Returns:
        The counts per store; `left` lists files that still hold the id or its PII.

    Raises:
        InputError: the id is empty, too long, holds a NUL or is not Unicode.
    """
    customer_id = checked_customer_id(customer_id)
    started = time.perf_counter()
    tombstone = customer_tombstone(settings, customer_id)
    with _home_lock(settings):
        path = job_path(settings, tombstone)
        job = _read_job(path) if resume else {}
        done: dict[str, dict[str, int]] = job.get("steps", {})
        result = ForgetResult(tombstone=tombstone, resumed_steps=[s for s in STEP_NAMES
                                                                  if s in done],
                              left=list(job.get("left", [])))
        job = {"tombstone": tombstone, "started_at": job.get("started_at") or _now(),
               "steps": done, "left": result.left}  # files an earlier run could not clean
        _write_job(path, job)  # a run in progress: `tailor.events.forget_jobs` says running
        context = ForgetContext(settings, customer_id, tombstone, _values(settings, customer_id),
                                left=result.left)
        with _progress(progress) as show:
            for name, step in STEPS:
                if name in done:
                    result.removed[name] = done[name]
                    continue
                show(name, context)
                step_started = time.perf_counter()
                try:
                    counts = step(context)
                except BaseException as error:  # audited, then raised (SIGKILL leaves the job file)
                    record_stopped(settings, tombstone, actor=actor, step=name,
                                   steps_done=list(done), error=error)
                    _write_job(path, {**job, "stopped": {"step": name, "at": _now(),
                                                         "error": type(error).__name__}})
                    raise
                result.step_seconds[name] = round(time.perf_counter() - step_started, 3)
                result.removed[name] = done[name] = counts
                _write_job(path, job)
        result.seconds = round(time.perf_counter() - started, 3)
        record_forget(settings, result, actor=actor)
        path.unlink(missing_ok=True)
    log.info("forget: %s removed %d rows/values in %.1f s", tombstone[:12], result.total,
             result.seconds)
    return result


def _values(settings: Settings, customer_id: str) -> list[str]:
    """The id and its PII values (empty PII once the PII step has run)."""
    from tailor.privacy.forget_stores import pii_values

    return [customer_id, *pii_values(settings, customer_id)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, ForgetContext], None]]:
    """Yields `show(step, context)`: the overall bar moves to the step, and the context's
    `set_total`/`advance` drive a bar of the step's own work (files)."""
    if not enabled:
        yield lambda _name, _context: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        overall = bar.add_task("forget", total=len(STEPS))
        current: dict[str, Any] = {}

        def show(name: str, context: ForgetContext) -> None:
            if "task" in current:
                bar.update(current["task"], visible=False)
            bar.update(overall, description=f"forget: {name}",
                       completed=STEP_NAMES.index(name))
            task = current["task"] = bar.add_task(f"  {name}", total=None)
            context.set_total = lambda total: bar.update(task, total=total)
            context.advance = lambda count: bar.advance(task, count)

        yield show
        if "task" in current:
            bar.update(current["task"], visible=False)
        bar.update(overall, completed=len(STEPS), description="forget: done")
