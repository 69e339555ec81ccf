"""deploy/cron/tailor.cron and deploy/kubernetes/*.yaml: equal to what `tailor schedule --export`
writes from the job table (for Kubernetes, the CronJobs with the rest of the deployment,
tests/unit/deploy/), parsed back to the table's schedules and commands, and a cron line
run natively (it takes the scheduler's lock)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tailor.cli import app
from tailor.config import Settings, load_settings
from tailor.scheduler.deploy_files import STARTING_DEADLINE_SECONDS, cronjob_name
from tailor.scheduler.job_locks import job_lock
from tailor.scheduler.jobs import job_table

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
PERIOD_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", env={})


@pytest.mark.parametrize("kind", ["cron", "kubernetes"])
def test_committed_files_are_the_generated_ones(kind: str, tailor_home: Path,
                                                tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schedule", "--export", kind, str(tmp_path / kind),
                                      "--json"])
    assert result.exit_code == 0, result.output
    generated = {path.name: path.read_text() for path in (tmp_path / kind).iterdir()}
    committed = {path.name: path.read_text() for path in (DEPLOY / kind).iterdir()}
    assert committed == generated, (
        f"regenerate with: tailor schedule --export {kind} deploy/{kind}")


def test_the_cronjobs_parse_to_the_table(settings: Settings) -> None:
    jobs = job_table(settings)
    manifests = {path.name: yaml.safe_load(path.read_text())
                 for path in (DEPLOY / "kubernetes").glob("*.yaml")}
    kustomization = manifests.pop("kustomization.yaml")
    cronjobs = [name for name in kustomization["resources"]
                if manifests[name]["kind"] == "CronJob"]
    assert cronjobs == [f"{cronjob_name(job)}.yaml" for job in jobs]
    for job in jobs:
        manifest = manifests[f"{cronjob_name(job)}.yaml"]
        spec = manifest["spec"]
        assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "CronJob")
        assert spec["schedule"] == job.cron and spec["timeZone"] == "UTC"
        assert spec["concurrencyPolicy"] == "Forbid"  # never two runs of a job at once
        assert 0 < spec["startingDeadlineSeconds"] < PERIOD_SECONDS[job.cadence]
        assert spec["startingDeadlineSeconds"] == STARTING_DEADLINE_SECONDS[job.cadence]
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == job.shell_command.split()
        assert pod["restartPolicy"] == "Never"
    assert manifests["tailor-retention.yaml"]["spec"]["schedule"] == "30 3 * * 1"  # Monday


def cron_lines() -> dict[str, str]:
    """Each job line of tailor.cron by the job whose command it runs."""
    lines = [line for line in (DEPLOY / "cron" / "tailor.cron").read_text().splitlines()
             if line and not line.startswith("#") and "=" not in line.split()[0]]
    return {line.split("/locks/schedule/")[1].split(".lock")[0]: line for line in lines}


def test_the_cron_lines_are_the_table(settings: Settings) -> None:
    lines = cron_lines()
    jobs = job_table(settings)
    assert list(lines) == [job.name for job in jobs]
    for job in jobs:
        fields = lines[job.name].split()
        assert " ".join(fields[:5]) == job.cron
        assert f" {job.shell_command} >> " in lines[job.name]


def run_cron_line(line: str, home: Path) -> subprocess.CompletedProcess:
    """The command part of a cron line, run by sh as cron would, with the file's variables."""
    command = line.split(None, 5)[5]
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TAILOR_")}
    environment.update(TAILOR_HOME=str(home),
                       PATH=f"{Path(sys.executable).parent}:{environment.get('PATH', '')}")
    return subprocess.run(["/bin/sh", "-c", command], env=environment, capture_output=True,
                          text=True, timeout=120)


def test_a_cron_line_runs_and_waits_for_no_lock_the_scheduler_holds(settings: Settings) -> None:
    line = cron_lines()["mail_flush"]
    log = settings.home_path / "schedule" / "logs" / "mail_flush.log"
    with job_lock(settings, "mail_flush") as held:  # a scheduler is running the job
        assert held is not None
        blocked = run_cron_line(line, settings.home_path)
    assert blocked.returncode == 1 and log.read_text() == ""  # flock -n: the job did not run
    completed = run_cron_line(line, settings.home_path)
    assert completed.returncode == 0, completed.stderr
    assert '"waiting": 0' in log.read_text()
