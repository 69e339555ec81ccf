"""`tailor serve` start-up checks and the server process environment (no server started)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import load_settings
from tailor.server import (
    BLAS_THREAD_VARIABLES, SERVICE_FILE, server_environment, service_dir,
)


def test_a_taken_port_exits_2_naming_it(tailor_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.output and "--port" in result.output


def test_a_bad_setting_exits_2_before_anything_starts(tailor_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_SERVING_WORKERS", "many")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "serving_workers" in result.output


def test_the_server_gets_every_resolved_setting_with_an_absolute_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(home="relative-home", env={}).replace(serving_timeout_ms="250")
    env = server_environment(settings, workers=3)
    assert env["TAILOR_HOME"] == str(tmp_path / "relative-home")
    assert env["TAILOR_SERVING_TIMEOUT_MS"] == "250" and env["TAILOR_SERVING_WORKERS"] == "3"
    assert env["TAILOR_SERVING_ADAPTIVE_BATCHING"] == "false"
    assert load_settings(env=env).values == {**settings.values, "home": env["TAILOR_HOME"],
                                             "serving_workers": 3}


def test_server_workers_get_one_blas_thread_unless_the_environment_says_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home="h", env={})
    for variable in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert all(server_environment(settings)[variable] == "1"
               for variable in BLAS_THREAD_VARIABLES)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert server_environment(settings)["OPENBLAS_NUM_THREADS"] == "4"


def test_the_service_module_is_found_outside_the_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (service_dir() / SERVICE_FILE).is_file()


def test_each_worker_sets_the_thread_switch_interval_from_the_settings(tmp_path: Path) -> None:
    """The service module (imported by every worker process) applies
    serving.switch_interval_ms to `sys.setswitchinterval`; checked in a fresh interpreter."""
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "TAILOR_HOME": str(tmp_path / "home"),
           "TAILOR_SERVING_SWITCH_INTERVAL_MS": "2.5"}
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import bentos.service; "
             "print(sys.getswitchinterval())")
    result = subprocess.run([sys.executable, "-c", probe, str(service_dir())], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(0.0025)
