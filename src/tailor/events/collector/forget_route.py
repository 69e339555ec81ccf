"""`DELETE /v1/customers/{customer_id}`: the right to be forgotten over HTTP (admin keys only).

Reads the request's key (the `admin` scope, `tailor.events.collector.access.scoped`) and the
customer id in the path. Writes the customer's tombstone (`tailor.events.tombstones`) before
answering, so from then on serving treats the id as excluded, and the collector and file
import store nothing of it; then starts `tailor forget - --resume --json` in a process of
its own (the id on its standard input, never on a command line that `ps` shows), which
cleans every store, and answers 202 with the tombstone. The job's output goes to
`<home>/privacy/forget-jobs/<tombstone>.log`; `GET /v1/forget-jobs/{tombstone}` says whether
it is running, stopped or done (`tailor.events.forget_jobs`); the DELETE again, or
`tailor forget ID --resume`, finishes a job that stopped. The event layer imports no privacy
module: the job is the CLI's. Running the job in another process keeps the server's workers
answering while it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tailor.config import SETTINGS, Settings
from tailor.events.collector.access import scoped
from tailor.events.forget_jobs import JOBS_DIR, forget_job_status
from tailor.events.keys import ADMIN
from tailor.events.tombstones import (
    add_tombstone,
    forget_id_problem,
    load_tombstone_key,
    tombstone_of,
)

CUSTOMERS_PATH = "/v1/customers/{customer_id:path}"  # an id may hold a slash, as for opt-out
JOB_PATH = "/v1/forget-jobs/{tombstone:path}"  # any text reaches the key check


def job_environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus every resolved setting as its TAILOR_* variable, so
    the job sees the stores this server uses."""
    values = dict(settings.values, home=str(settings.home_path.resolve()))
    env = dict(os.environ)
    for setting in SETTINGS:
        value = values[setting.name]
        env[setting.env] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def start_forget_job(settings: Settings, customer_id: str, tombstone: str, actor: str
                     ) -> subprocess.Popen:
    """`tailor forget - --resume --json` in a new session, the id written to its stdin."""
    folder = settings.home_path / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{tombstone}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailor.cli", "forget", "-", "--resume", "--json",
             "--actor", actor],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env=job_environment(settings), start_new_session=True)
    assert process.stdin is not None
    process.stdin.write(customer_id.encode("utf-8"))
    process.stdin.close()
    # Reaped when it ends (no zombie left in a long-running server worker).
    threading.Thread(target=process.wait, name="forget-job", daemon=True).start()
    return process


def _tombstone_and_start(settings: Settings, customer_id: str, actor: str) -> dict[str, Any]:
    tombstone = tombstone_of(load_tombstone_key(settings.home_path), customer_id)
    added = add_tombstone(settings.home_path, tombstone)
    start_forget_job(settings, customer_id, tombstone, actor)
    return {"status": "accepted", "tombstone": tombstone, "tombstone_added": added,
            "job": f"{JOBS_DIR}/{tombstone}.log"}


@scoped(ADMIN)
async def forget_customer(request: Request) -> Response:
    """Tombstone the customer at once and start the job that removes them everywhere: 202."""
    customer_id = request.path_params["customer_id"]
    problem = forget_id_problem(customer_id)  # the rule `tailor forget` applies
    if problem:
        return JSONResponse({"error": problem}, status_code=400)
    settings = request.app.state.collector.settings
    grant = request.state.key_grant
    body = await run_in_threadpool(_tombstone_and_start, settings, customer_id.strip(),
                                   f"key {grant.key_id}")
    return JSONResponse(body, status_code=202)


@scoped(ADMIN)
async def forget_job(request: Request) -> Response:
    """What became of a forget (the tombstone a DELETE answered): 200 with `status` `running`
    (and the steps done), `stopped` (the step and the error's type: send the DELETE again, it
    resumes) or `done` (the counts per store); 404 for a tombstone no forget wrote."""
    tombstone = request.path_params["tombstone"]
    settings = request.app.state.collector.settings
    status = await run_in_threadpool(forget_job_status, settings.home_path, tombstone)
    if status is None:
        return JSONResponse({"error": "tombstone: no forget of this tombstone (a 64-character "
                                      "hex string a DELETE answered)"}, status_code=404)
    return JSONResponse(status)
