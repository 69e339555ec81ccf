"""The CLI contract: fast start (no heavy imports), --home everywhere, exit code 2 on bad
input, 3 on a failed service, and a traceback (exit 1) for any other error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app

HEAVY_MODULES = ("pandas", "numpy", "pyarrow", "duckdb", "mlflow", "feast", "bentoml", "xgboost",
                 "pydantic", "apscheduler", "aiosmtpd")


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code = (
        "import sys, tailor.cli; "
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


def test_every_command_group_is_registered_once() -> None:
    """A group added twice (a merge leftover) is shadowed silently by Click: one of the two
    registrations is dead code that a later edit may make diverge."""
    names = [group.name for group in app.registered_groups]
    assert sorted(names) == sorted(set(names))
    assert "experiment" in names


def test_every_command_takes_home() -> None:
    runner = CliRunner()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert "--home" in result.output, f"{name} has no --home"


def test_config_keys_lists_every_key_with_its_limits() -> None:
    from tailor.config import SETTINGS

    result = CliRunner().invoke(app, ["config", "--keys", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["env"]: row for row in json.loads(result.stdout)["keys"]}
    assert set(rows) == {setting.env for setting in SETTINGS}
    assert rows["TAILOR_SERVING_PORT"]["must_be"] == "between 1 and 65535"
    assert rows["TAILOR_SERVING_PORT"]["key"] == "serving.port"
    assert rows["TAILOR_MODELS_DIVERSITY"]["default"] == "none"


def test_config_json_prints_one_object(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "--json", "--home", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["home"] == str(tmp_path)


def test_bad_setting_exits_2_with_the_key(tailor_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_INGEST_CHUNK_ROWS", "lots")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2
    assert "ingest_chunk_rows" in result.output


def test_missing_events_file_exits_2(tailor_home: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(tailor_home / "nope.csv")])
    assert result.exit_code == 2
    assert "nope.csv" in result.output


# A command whose library call fails with a plain ValueError: a bug, not the user's input.
BUGGY_INGEST = """
import sys
import tailor.events.ingest.job as job

def broken(*args, **kwargs):
    raise ValueError("an internal invariant broke")

job.ingest_files = broken
from tailor.cli import app
sys.argv = ["tailor", "ingest", sys.argv[1]]
app()
"""


def test_a_plain_value_error_is_a_crash_with_its_traceback_not_bad_input(
        tailor_home: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("event_id,customer_id,event_type,timestamp\n")
    done = subprocess.run([sys.executable, "-c", BUGGY_INGEST, str(events)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" in done.stderr
    assert "ValueError: an internal invariant broke" in done.stderr
    assert "error: an internal invariant broke" not in done.stderr  # not told as bad input


def test_an_input_error_raised_inside_a_command_exits_2_with_one_line(
        tailor_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.errors import InputError

    def refused(*args: object, **kwargs: object) -> None:
        raise InputError("events.csv: the file says no")

    monkeypatch.setattr("tailor.events.ingest.job.ingest_files", refused)
    events = tmp_path / "events.csv"
    events.write_text("event_id,customer_id,event_type,timestamp\n")
    result = CliRunner().invoke(app, ["ingest", str(events)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "error: events.csv: the file says no" in result.output
    assert "Traceback" not in result.output


def test_a_connection_ended_by_the_server_exits_3_with_one_line(
        tailor_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg's AdminShutdown (a backend terminated during COMMIT) is a failed service, not
    a failed gate with a traceback."""
    import psycopg

    def terminated(*args: object, **kwargs: object) -> None:
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command\n"
                                           "server closed the connection unexpectedly")

    monkeypatch.setattr("tailor.events.ingest.job.ingest_files", terminated)
    events = tmp_path / "events.csv"
    events.write_text("event_id,customer_id,event_type,timestamp\n")
    result = CliRunner().invoke(app, ["ingest", str(events)])
    assert result.exit_code == 3
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "AdminShutdown" in line]
    assert len(lines) == 1 and "server closed the connection" in lines[0]


def test_unreachable_postgres_exits_3_with_one_line(tailor_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 3  # "a service failed" (README, docs/architecture.md)
    assert "OperationalError" in result.output and "Traceback" not in result.output


def test_keys_create_identity_writes_a_private_secret_once(tmp_path: Path) -> None:
    import stat

    result = CliRunner().invoke(app, ["keys", "create", "identity", "--json", "--home",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout.strip().splitlines()[-1])
    path = Path(created["secret_file"])
    assert created["key"].startswith("tlr_ik_") and path.read_text().strip() == created["key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = CliRunner().invoke(app, ["keys", "create", "identity", "--home", str(tmp_path)])
    assert again.exit_code == 2 and "rotate" in again.output


def test_the_mlflow_project_ingest_entry_passes_the_catalogue_and_customers(
        tailor_home: Path, tmp_path: Path) -> None:
    """`mlflow run . -e ingest -P events=... -P products=...` stores the catalogue; without
    them (the entry's empty defaults) the import runs as `tailor ingest EVENTS` does."""
    import shlex

    from mlflow.projects._project_spec import load_project

    events = tmp_path / "events.csv"
    events.write_text("event_id,customer_id,event_type,product_id,timestamp\n"
                      "e1,c1,product_view,p1,2026-02-01T10:00:00Z\n")
    products = tmp_path / "products.csv"
    products.write_text("product_id,name,category,price\np1,Mug,home,9.5\n")
    entry = load_project(Path(__file__).resolve().parents[2]).get_entry_point("ingest")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    reports = []
    for parameters, home in (({"events": str(events), "products": str(products)}, "with"),
                             ({"events": str(events)}, "without")):
        command = entry.compute_command(parameters, str(tmp_path / "storage"))
        done = subprocess.run(["bash", "-c", command + " --home " + shlex.quote(
            str(tmp_path / home))], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert reports[0]["products"] == 1 and reports[1]["products"] == 0
    assert reports[0]["accepted"] == reports[1]["accepted"] == 1
