"""docker-compose.yml: there is no Docker engine here, so the file is parsed and the Tailor
commands its services run are run natively."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TAILOR = str(Path(sys.executable).with_name("tailor"))


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_service_has_a_healthcheck_or_waits_for_healthy_ones() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "mlflow", "scheduler"} <= set(services)
    for name, service in services.items():
        waits = service.get("depends_on", {})
        assert "healthcheck" in service or waits, name
        for dependency, condition in waits.items():
            assert dependency in services
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency} without a healthcheck"
            assert condition == {"condition": "service_healthy"}


def test_tailor_services_read_the_same_settings_as_the_cli() -> None:
    from tailor.config import SETTINGS

    known = {setting.env for setting in SETTINGS} | {"MLFLOW_TRACKING_URI"}
    environment = compose()["services"]["scheduler"]["environment"]
    assert set(environment) <= known


def test_the_scheduler_commands_run_natively(tmp_path: Path) -> None:
    command = " ".join(compose()["services"]["scheduler"]["command"])
    jobs = re.findall(r"tailor ([a-z]+(?: --[a-z-]+)*)", command)
    assert jobs == ["export --json", "validate --json"]
    for job in jobs:
        completed = subprocess.run([TAILOR, *job.split(), "--home", str(tmp_path)],
                                   capture_output=True, text=True, timeout=120)
        # An empty store exports nothing and its gate passes: both must exit 0.
        assert completed.returncode == 0, completed.stderr[-1500:]
