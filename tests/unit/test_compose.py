"""docker-compose.yml: there is no Docker engine here, so the file is parsed and the Tailor
commands its services run are run natively."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TAILOR = str(Path(sys.executable).with_name("tailor"))


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_service_has_a_healthcheck_and_waits_for_healthy_ones() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "mlflow", "tailor", "scheduler"} <= set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} waits for an unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    assert set(services["tailor"]["depends_on"]) == {"postgres", "redis", "mlflow"}


def test_tailor_services_read_the_same_settings_as_the_cli() -> None:
    from tailor.config import SETTINGS

    known = {setting.env for setting in SETTINGS} | {"MLFLOW_TRACKING_URI"}
    for name in ("tailor", "scheduler"):
        assert set(compose()["services"][name]["environment"]) <= known, name


def test_the_scheduler_service_runs_tailor_schedule_natively(tmp_path: Path) -> None:
    """The compose command with --once on an empty home (the jobs that need no models): each
    job runs, and the heartbeat lands where the healthcheck looks."""
    service = compose()["services"]["scheduler"]
    assert service["command"] == ["tailor", "schedule"]
    heartbeat = re.search(r"find (\S+) -mmin", " ".join(service["healthcheck"]["test"]))
    assert heartbeat and heartbeat.group(1) == \
        f"{service['environment']['TAILOR_HOME']}/scheduler.heartbeat"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    environment["TAILOR_SCHEDULE_JOBS"] = "export,mail_flush,validate"
    completed = subprocess.run([TAILOR, *service["command"][1:], "--once", "--json",
                                "--home", str(tmp_path)], env=environment,
                               capture_output=True, text=True, timeout=300)
    # An empty store exports nothing, has no mail to send, and its gate passes.
    assert completed.returncode == 0, completed.stderr[-1500:]
    runs = {run["job"]: run["outcome"] for run in json.loads(completed.stdout)["runs"]}
    assert runs == {"export": "ok", "mail_flush": "ok", "validate": "ok"}
    assert (tmp_path / "scheduler.heartbeat").is_file()


def test_the_scheduler_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    """`tailor schedule` as compose runs it: a round at start, then SIGTERM (docker stop)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    environment["TAILOR_SCHEDULE_JOBS"] = "mail_flush"
    log = (tmp_path / "scheduler.log").open("wb")
    process = subprocess.Popen([TAILOR, "schedule", "--home", str(tmp_path / "home")],
                               env=environment, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    state = tmp_path / "home" / "schedule" / "mail_flush.json"
    try:
        deadline = time.monotonic() + 120
        while not (state.exists() and json.loads(state.read_text())["last_outcome"] == "ok"):
            assert process.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "scheduler.log").read_text()[-2000:]
            time.sleep(0.2)
        assert (tmp_path / "home" / "scheduler.heartbeat").is_file()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):  # a second stop signal: still one clean exit
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    output = (tmp_path / "scheduler.log").read_text()
    assert process.returncode == 0, output[-2000:]
    assert "Traceback" not in output, output[-2000:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str, process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def _home_with_a_warehouse(folder: Path) -> Path:
    """A small shop up to its warehouse, its last day yesterday: enough for the popularity
    fallback, no models."""
    from shop_homes import build_shop_home
    from tailor.config import load_settings

    settings = load_settings(home=folder / "home", env={})
    build_shop_home(settings, folder / "shop", customers=60, products=20, days=14, seed=3,
                    ends_days_ago=1)
    return settings.home_path


@pytest.mark.slow
def test_the_tailor_service_command_serves_natively(tmp_path: Path) -> None:
    """The compose command, on a free port, over a home without models: ready (it serves
    the popularity fallback), answers /readyz like the healthcheck asks, wants a key."""
    service = compose()["services"]["tailor"]
    command = list(service["command"])
    assert command[:2] == ["tailor", "serve"]
    port = command.index("--port") + 1
    assert f"localhost:{command[port]}/readyz" in " ".join(service["healthcheck"]["test"])
    command[0], command[port] = TAILOR, str(_free_port())
    home = _home_with_a_warehouse(tmp_path)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAILOR_")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([*command, "--home", str(home)], env=environment,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{command[port]}"
    try:
        assert _ready(url + "/readyz", process, timeout=120), (tmp_path / "serve.log").read_text()
        assert httpx.post(url + "/homepage", json={"customer_id": "c1"}).status_code == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # as `docker stop` would
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]


def test_every_database_the_services_name_is_created(postgres_server_url: str) -> None:
    """Each PostgreSQL database in a service's URL is the image's POSTGRES_DB or made by the
    init scripts mounted into the image; the scripts run on the local server (databases
    renamed for the test, then dropped)."""
    import psycopg

    services = compose()["services"]
    postgres = services["postgres"]
    named = set()
    for service in services.values():
        text = json.dumps(service) + json.dumps(compose().get("x-tailor-env", {}))
        named |= set(re.findall(r"postgresql://[^@\s\"]+@postgres:5432/(\w+)", text))
    mounts = [volume.split(":") for volume in postgres["volumes"] if volume.startswith("./")]
    [(folder, _, _)] = [mount for mount in mounts if mount[1] == "/docker-entrypoint-initdb.d"]
    scripts = sorted((REPO / folder).glob("*.sql"))
    sql = "\n".join(script.read_text() for script in scripts)
    created = set(re.findall(r"CREATE DATABASE (\w+);", sql))
    assert named == {postgres["environment"]["POSTGRES_DB"]} | created
    suffix = f"_compose_{os.getpid()}"
    with psycopg.connect(postgres_server_url, autocommit=True) as connection:
        try:
            for statement in filter(str.strip, re.sub(r"--[^\n]*", "", sql).split(";")):
                connection.execute(statement.replace(";", "") + suffix)
            listed = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            assert {name + suffix for name in created} <= listed
        finally:
            for name in created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}{suffix}"')
