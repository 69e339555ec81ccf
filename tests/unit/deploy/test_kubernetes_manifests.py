"""deploy/kubernetes/: the committed manifests are the generated ones, each valid against the
Kubernetes API's schema (offline, the strict schemas kubernetes-validate ships for a pinned
API version: unknown fields and wrong types fail), listed in kustomization.yaml, probing the
routes the server serves, with every secret coming from a Secret, and the autoscaler's
bounds from the serving sizing that README.md shows."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from tailor.cli import app
from tailor.deploy.kubernetes import BENTO_PORT, SECRET_KEYS
from tailor.deploy.sizing import SizingInputs, size_serving, sizing_lines
from tailor.server import ENDPOINTS, READY_PATH

REPO = Path(__file__).resolve().parents[3]
FOLDER = REPO / "deploy" / "kubernetes"
# The API versions the manifests must be valid for: the oldest cluster supported (CronJob
# time zones and autoscaling/v2 are GA well before it) and the newest schema the pinned
# kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|_URL$|_URI$|STORAGE$")


def manifests() -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text())
            for path in sorted(FOLDER.glob("*.yaml")) if path.name != "kustomization.yaml"}


def containers(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container of a workload (Deployment, StatefulSet, CronJob)."""
    spec = manifest.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    yield from pod.get("containers", [])


def test_the_committed_folder_is_what_tailor_deploy_kubernetes_writes(
        tailor_home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "kubernetes", str(tmp_path / "k8s"), "--json"])
    assert result.exit_code == 0, result.output
    generated = {path.name: path.read_text() for path in (tmp_path / "k8s").iterdir()}
    committed = {path.name: path.read_text() for path in FOLDER.iterdir()}
    assert committed == generated, "regenerate with: tailor deploy kubernetes deploy/kubernetes"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_the_kubernetes_api(version: str) -> None:
    found = manifests()
    assert {manifest["kind"] for manifest in found.values()} >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "CronJob",
        "StatefulSet", "ConfigMap", "PersistentVolumeClaim"}
    for name, manifest in found.items():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message}")


def _validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_validation_refuses_an_unknown_field_and_a_wrong_type() -> None:
    deployment = manifests()["tailor-serving-deployment.yaml"]
    _validate(deployment)
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"][
        "paht"] = READY_PATH
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        _validate(misspelt)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "3000"
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
        _validate(wrong_type)
    autoscaler = copy.deepcopy(manifests()["tailor-serving-hpa.yaml"])
    autoscaler["spec"]["maxReplicaCount"] = 10  # not a field of autoscaling/v2
    with pytest.raises(kubernetes_validate.ValidationError, match="maxReplicaCount"):
        _validate(autoscaler)


def test_the_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(manifests())


def test_the_probes_ask_the_servers_health_routes() -> None:
    """Readiness on /readyz, liveness (and start-up) on /livez: routes `tailor serve` lists
    as served without a key (the e2e test asks the real server for them)."""
    health = next(path for path, _ in ENDPOINTS if "/readyz" in path).split()[1:]
    deployment = manifests()["tailor-serving-deployment.yaml"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": BENTO_PORT}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[kind]["httpGet"]["path"] in health
        assert container[kind]["httpGet"]["port"] in ports
    service = manifests()["tailor-serving-service.yaml"]
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"][
        "memory"]


def test_no_secret_is_written_in_a_manifest() -> None:
    for name, manifest in manifests().items():
        assert manifest["kind"] != "Secret", name
        for container in containers(manifest):
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]) and variable["name"] != "TAILOR_HOME":
                    assert "value" not in variable, (name, variable)
                    assert variable["valueFrom"]["secretKeyRef"]["name"] in SECRET_KEYS
    settings = manifests()["tailor-settings.yaml"]["data"]
    assert not [key for key in settings if SECRET_NAME.search(key) and "TRACKING" not in key]
    for secret, keys in SECRET_KEYS.items():
        example = (FOLDER / f"{secret}.env.example").read_text()
        assert all(f"{key}=" in example for key in keys)
        assert all("CHANGE-ME" in value or "@" not in value for value in keys.values())


def test_the_autoscaler_bounds_are_the_sizing_and_the_readme_shows_it() -> None:
    sizing = size_serving()
    spec = manifests()["tailor-serving-hpa.yaml"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (sizing.min_replicas,
                                                          sizing.max_replicas)
    target = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
    assert target == round(sizing.inputs.target_cpu_utilization * 100)
    readme = (REPO / "README.md").read_text()
    missing = [line for line in sizing_lines(sizing) if line not in readme]
    assert not missing, "README.md's sizing is stale: paste `tailor deploy sizing`"


def test_a_different_traffic_gives_other_bounds(tmp_path: Path, tailor_home: Path) -> None:
    result = CliRunner().invoke(app, ["deploy", "kubernetes", str(tmp_path), "--events-per-day",
                                      "1000000", "--surge", "20", "--json"])
    assert result.exit_code == 0, result.output
    hpa = yaml.safe_load((tmp_path / "tailor-serving-hpa.yaml").read_text())["spec"]
    smaller = size_serving(SizingInputs(events_per_day=1_000_000, surge=20))
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (smaller.min_replicas,
                                                        smaller.max_replicas) == (2, 3)
