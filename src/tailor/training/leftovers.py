"""What a killed `tailor train` left in MLflow, found and marked by the next training run.

Reads the model's experiment (runs still `RUNNING`, with the `tailor.pid`, `tailor.host` and
`tailor.pid_started` tags every training run carries) and its registered versions. Writes:
  * runs whose process is gone (same host, the pid not alive or alive since another time):
    `set_terminated(run, "KILLED")` and a `tailor.cleanup` tag saying why, and the same
    for their trial runs still `RUNNING` (and for trials whose training run has ended);
  * versions made by `tailor train` with neither a promotion decision nor an alias whose
    run no longer runs (a kill between "Created version" and the decision):
    `tailor.status = orphaned` and a `promotion` tag "not promoted: orphaned ...", so nobody
    mistakes them for candidates.
Runs of other hosts are left alone (their processes cannot be checked from here), as are
runs without the pid tags (older versions, or runs not started by `tailor train`).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

log = logging.getLogger(__name__)

PID_TAG = "tailor.pid"
HOST_TAG = "tailor.host"
STARTED_TAG = "tailor.pid_started"  # the process's start time in clock ticks since boot
CLEANUP_TAG = "tailor.cleanup"
STATUS_TAG = "tailor.status"
ORPHANED = "orphaned"
PROMOTION_TAG = "promotion"


@dataclass
class Leftovers:
    """What `clean_up_leftovers` marked."""

    killed_runs: list[str] = field(default_factory=list)
    orphaned_versions: list[str] = field(default_factory=list)


def process_started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc), or "" unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat(5), after pid and comm


def process_tags() -> dict[str, str]:
    """The tags naming this process, for the training run it opens."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(),
            STARTED_TAG: process_started(os.getpid())}


def process_alive(pid: int, started: str) -> bool:
    """Whether process `pid` of this host runs and is the one that started at `started`
    (a pid reused by a newer process does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now_started = process_started(pid)
    return not (started and now_started and now_started != started)


def _is_dead(run: Run, host: str) -> bool:
    tags = run.data.tags
    if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
        return False
    return not process_alive(int(tags[PID_TAG]), tags.get(STARTED_TAG, ""))


def _running_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """Every run of the experiment whose status is still RUNNING (all pages)."""
    found: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], "attributes.status = 'RUNNING'",
                                  max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def kill_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark the RUNNING runs whose process is gone as KILLED, and the RUNNING trials of
    training runs that are gone or ended (a killed Optuna worker's trial outlives nobody).

    Returns:
        The ids of the training runs marked (trials not listed).
    """
    host = socket.gethostname()
    running = _running_runs(client, experiment_id)
    dead = [run for run in running if _is_dead(run, host)]
    dead_ids = {run.info.run_id for run in dead}
    for run in dead:
        tags = run.data.tags
        reason = (f"KILLED by the next training run: process {tags[PID_TAG]} on {host} is gone")
        client.set_tag(run.info.run_id, CLEANUP_TAG, reason)
        client.set_terminated(run.info.run_id, "KILLED")
        log.warning("run %s was left RUNNING: %s", run.info.run_id, reason)
    running_ids = {run.info.run_id for run in running}
    for run in running:
        reason = _orphan_trial(client, run, dead_ids, running_ids)
        if reason:
            client.set_tag(run.info.run_id, CLEANUP_TAG, reason)
            client.set_terminated(run.info.run_id, "KILLED")
    return sorted(dead_ids)


def _orphan_trial(client: MlflowClient, run: Run, dead_ids: set[str],
                  running_ids: set[str]) -> str:
    """Why a RUNNING trial run (a child without the pid tags) cannot be running any more,
    or "" when it may be."""
    parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
    if not parent or PID_TAG in run.data.tags or run.info.run_id in dead_ids:
        return ""
    if parent in dead_ids:
        return "KILLED with its training run, whose process is gone"
    if parent in running_ids:
        return ""
    try:
        status = client.get_run(parent).info.status
    except MlflowException:
        return ""
    return "" if status == "RUNNING" else f"KILLED: its training run had ended ({status})"


def _training_run(client: MlflowClient, run_id: str | None) -> Run | None:
    """The run behind a version when `tailor train` made it (it has the pid tag), else None
    (a version registered by hand, or from a run this store does not hold)."""
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run if PID_TAG in run.data.tags else None


def tag_orphan_versions(client: MlflowClient, registered_name: str) -> list[str]:
    """Tag the versions left without a decision by a run that no longer runs.

    Returns:
        The versions tagged `tailor.status = orphaned`.
    """
    orphaned = []
    for version in client.search_model_versions(f"name = '{registered_name}'"):
        tags = version.tags or {}
        if PROMOTION_TAG in tags or STATUS_TAG in tags or version.aliases:
            continue
        run = _training_run(client, version.run_id)
        if run is None or run.info.status == "RUNNING":
            continue  # not made by `tailor train`, or its run may still decide
        status = run.info.status
        number = str(version.version)
        client.set_model_version_tag(registered_name, number, STATUS_TAG, ORPHANED)
        client.set_model_version_tag(
            registered_name, number, PROMOTION_TAG,
            f"not promoted: orphaned, its training run {version.run_id} ended ({status}) "
            "before deciding")
        log.warning("%s v%s was left without a promotion decision (run %s %s): tagged %s",
                    registered_name, number, version.run_id, status, ORPHANED)
        orphaned.append(number)
    return orphaned


def clean_up_leftovers(client: MlflowClient, experiment_id: str,
                       registered_name: str) -> Leftovers:
    """Mark the runs and versions killed training runs left behind (see the module)."""
    killed = kill_dead_runs(client, experiment_id)
    return Leftovers(killed, tag_orphan_versions(client, registered_name))
