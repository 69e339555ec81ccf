"""The Kubernetes deployment of Tailor, written as manifests (`tailor deploy kubernetes DIR`).

Reads: the settings (the job table's schedule) and the serving sizing (`tailor.deploy.sizing`).
Writes into the folder it is given, one object per file, and a `kustomization.yaml` listing
every file:
  * the serving Deployment (the Bento image), its Service, HorizontalPodAutoscaler (bounds
    from the sizing) and PodDisruptionBudget;
  * the scheduler's jobs as CronJobs (`tailor.scheduler.deploy_files.cronjob_manifest`, the
    one source of them);
  * the ConfigMap `tailor-settings` (plain TAILOR_* settings) and the PersistentVolumeClaim
    `tailor-home` the jobs write and the serving pods read;
  * PostgreSQL and Redis as StatefulSets and the MLflow server as a Deployment, each with a
    Service, for clusters without managed ones.
No Secret is written: URLs with passwords, key hashes and the mail password come from the
Secrets `tailor-secrets` and `tailor-backing-secrets`, created in the cluster from the
`*.env.example` files written beside the manifests (docs/operations.md, "Kubernetes").
The committed `deploy/kubernetes/` is this folder for the default settings (a test keeps it
so, and validates every manifest against the Kubernetes API schema).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tailor.config import Settings
from tailor.deploy.sizing import Sizing, size_serving
from tailor.scheduler.deploy_files import CONTAINER_HOME, cronjob_manifest, cronjob_name
from tailor.scheduler.jobs import Job

BENTO_IMAGE = "tailor-bento:latest"  # bentoml containerize tailor:latest -t tailor-bento:latest
BENTO_PORT = 3000  # where `bentoml serve` listens in the Bento image
READY_PATH = "/readyz"  # 503 until the models are loaded and the event store takes writes
LIVE_PATH = "/livez"  # 200 while the process answers
MODEL_STORE = "/var/lib/tailor/models"  # serving.bentoml_home: writable, per pod
# Estimated, not measured: each worker holds every model; ALS customer factors for 5M
# customers at 64 factors are 1.3 GB, the cross-sell table and catalogue about 0.5 GB, Python
# and the libraries about 0.5 GB (docs/scaling.md has the training-side figures).
MEMORY_PER_WORKER_GIB = 3
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"  # as in docker-compose.yml
POSTGRES_IMAGE = "postgres:16"
REDIS_IMAGE = "redis:7"
SECRETS = "tailor-secrets"
BACKING_SECRETS = "tailor-backing-secrets"
SETTINGS_MAP = "tailor-settings"
DATABASES = ("tailor_pii", "mlflow", "tailor_optuna")  # PII store, MLflow, Optuna studies
SERVING = "tailor-serving"
# Keys of each Secret, written as `<secret>.env.example` (values are placeholders).
SECRET_KEYS = {
    SECRETS: {
        "TAILOR_DATABASE_URL": "postgresql://tailor:CHANGE-ME@tailor-postgres:5432/tailor",
        "TAILOR_PII_DATABASE_URL": "postgresql://tailor:CHANGE-ME@tailor-postgres:5432/tailor_pii",
        "TAILOR_REDIS_URL": "redis://tailor-redis:6379/0",
        "TAILOR_COLLECTOR_PUBLIC_KEY_HASHES": "",
        "TAILOR_COLLECTOR_SECRET_KEY_HASHES": "",
        "TAILOR_COLLECTOR_ADMIN_KEY_HASHES": "",
        "TAILOR_MAIL_PASSWORD": "",
        "TAILOR_MODELS_OPTUNA_STORAGE":
            "postgresql://tailor:CHANGE-ME@tailor-postgres:5432/tailor_optuna",
    },
    BACKING_SECRETS: {
        "POSTGRES_PASSWORD": "CHANGE-ME",
        "MLFLOW_BACKEND_STORE_URI": "postgresql://tailor:CHANGE-ME@tailor-postgres:5432/mlflow",
    },
}


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "tailor", "app.kubernetes.io/component": component}


def _meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": _labels(component)}


def _http_probe(path: str, period: int, failures: int, timeout: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def serving_deployment(sizing: Sizing) -> dict[str, Any]:
    """The Bento image behind the HPA: no replica count (the HPA owns it), probes on the
    server's health routes, one CPU core requested per worker."""
    workers = sizing.inputs.workers_per_pod
    memory = f"{workers * MEMORY_PER_WORKER_GIB}Gi"
    container = {
        "name": "tailor", "image": BENTO_IMAGE,
        "ports": [{"name": "http", "containerPort": BENTO_PORT}],
        "env": [{"name": "TAILOR_HOME", "value": CONTAINER_HOME},
                {"name": "TAILOR_SERVING_WORKERS", "value": str(workers)},
                {"name": "TAILOR_SERVING_BENTOML_HOME", "value": MODEL_STORE}],
        "envFrom": [{"configMapRef": {"name": SETTINGS_MAP}}, {"secretRef": {"name": SECRETS}}],
        # A pod may take minutes to load its models: liveness waits for the start-up probe.
        "startupProbe": _http_probe(LIVE_PATH, 5, 60, 5),
        "readinessProbe": _http_probe(READY_PATH, 5, 2, 3),
        "livenessProbe": _http_probe(LIVE_PATH, 10, 3, 5),
        # The limit leaves a core above the workers for BentoML's own process and bursts;
        # memory's limit is its request (a pod over it is restarted, not its neighbours).
        "resources": {"requests": {"cpu": str(workers), "memory": memory},
                      "limits": {"cpu": str(workers + 1), "memory": memory}},
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "tailor-home", "mountPath": CONTAINER_HOME, "readOnly": True},
                         {"name": "models", "mountPath": MODEL_STORE}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(SERVING, "serving"),
        "spec": {
            "selector": {"matchLabels": _labels("serving")},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": _labels("serving")},
                "spec": {"terminationGracePeriodSeconds": 30, "containers": [container],
                         "volumes": [
                             {"name": "tailor-home", "persistentVolumeClaim":
                              {"claimName": "tailor-home", "readOnly": True}},
                             {"name": "models", "emptyDir": {"sizeLimit": "10Gi"}}]},
            },
        },
    }


def serving_service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(SERVING, "serving"),
            "spec": {"selector": _labels("serving"),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def serving_autoscaler(sizing: Sizing) -> dict[str, Any]:
    """Scale on CPU at the sizing's target, between its bounds; up fast (double every 30 s),
    down slowly (a fifth a minute after five quiet minutes)."""
    target = round(sizing.inputs.target_cpu_utilization * 100)
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(SERVING, "serving"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVING},
            "minReplicas": sizing.min_replicas, "maxReplicas": sizing.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 30},
                    {"type": "Pods", "value": 4, "periodSeconds": 30}]},
                "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [
                    {"type": "Percent", "value": 20, "periodSeconds": 60}]},
            },
        },
    }


def serving_disruption_budget() -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(SERVING, "serving"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels("serving")}}}


def settings_map() -> dict[str, Any]:
    """Plain settings only; everything holding a password or a key is in the Secrets."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(SETTINGS_MAP, "settings"),
            "data": {"MLFLOW_TRACKING_URI": "http://tailor-mlflow:5000",
                     "TAILOR_SCHEDULE_TIMEZONE": "UTC"}}


def home_claim() -> dict[str, Any]:
    """The Tailor home: written by the jobs, read by every serving pod (ReadWriteMany)."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta("tailor-home", "home"),
            "spec": {"accessModes": ["ReadWriteMany"],
                     "resources": {"requests": {"storage": "200Gi"}}}}


def _service(name: str, component: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, component),
            "spec": {"selector": _labels(component),
                     "ports": [{"name": component, "port": port, "targetPort": port}]}}


def _stateful_set(name: str, component: str, container: dict[str, Any],
                  storage: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceName": name, "replicas": 1, "selector": {"matchLabels": _labels(component)},
        "template": {"metadata": {"labels": _labels(component)},
                     "spec": {"containers": [container]}}}
    if storage:
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": storage}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(name, component),
            "spec": spec}


def _exec_probe(*command: str) -> dict[str, Any]:
    return {"exec": {"command": list(command)}, "periodSeconds": 10, "timeoutSeconds": 3,
            "failureThreshold": 6}


def postgres() -> dict[str, Any]:
    """Event store, PII store, MLflow's backend and the Optuna studies."""
    container = {
        "name": "postgres", "image": POSTGRES_IMAGE, "args": ["-c", "max_connections=200"],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "env": [{"name": "POSTGRES_USER", "value": "tailor"},
                {"name": "POSTGRES_DB", "value": "tailor"},
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {
                    "name": BACKING_SECRETS, "key": "POSTGRES_PASSWORD"}}}],
        "readinessProbe": _exec_probe("pg_isready", "-U", "tailor", "-d", "tailor"),
        "livenessProbe": _exec_probe("pg_isready", "-U", "tailor", "-d", "tailor"),
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"},
                      "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                         {"name": "init", "mountPath": "/docker-entrypoint-initdb.d",
                          "readOnly": True}],
    }
    manifest = _stateful_set("tailor-postgres", "postgres", container, "100Gi")
    manifest["spec"]["template"]["spec"]["volumes"] = [
        {"name": "init", "configMap": {"name": "tailor-postgres-init"}}]
    return manifest


def postgres_init() -> dict[str, Any]:
    """The databases beside `tailor` (the event store), made on the volume's first start."""
    statements = " ".join(f"CREATE DATABASE {name};" for name in DATABASES)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta("tailor-postgres-init", "postgres"),
            "data": {"create-databases.sql": statements}}


def redis() -> dict[str, Any]:
    """The online feature store: no persistence (`tailor features` materializes it again)."""
    container = {
        "name": "redis", "image": REDIS_IMAGE,
        "args": ["redis-server", "--save", "", "--appendonly", "no"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "readinessProbe": _exec_probe("redis-cli", "ping"),
        "livenessProbe": _exec_probe("redis-cli", "ping"),
        "resources": {"requests": {"cpu": "1", "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
    }
    return _stateful_set("tailor-redis", "redis", container, None)


def mlflow_server() -> dict[str, Any]:
    """Tracking and registry on PostgreSQL; artifacts proxied by the server to its volume
    (or to S3: set --artifacts-destination to s3://... and the AWS_* keys in its Secret)."""
    container = {
        "name": "mlflow", "image": MLFLOW_IMAGE,
        "command": ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000",
                    "--backend-store-uri", "$(MLFLOW_BACKEND_STORE_URI)",
                    "--artifacts-destination", "/mlartifacts"],
        "ports": [{"name": "mlflow", "containerPort": 5000}],
        "env": [{"name": "MLFLOW_BACKEND_STORE_URI", "valueFrom": {"secretKeyRef": {
            "name": BACKING_SECRETS, "key": "MLFLOW_BACKEND_STORE_URI"}}}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "mlflow"},
                           "periodSeconds": 10, "failureThreshold": 6},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "mlflow"},
                          "periodSeconds": 20, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [{"name": "artifacts", "mountPath": "/mlartifacts"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("tailor-mlflow", "mlflow"),
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},  # one writer of the volume
                 "selector": {"matchLabels": _labels("mlflow")},
                 "template": {"metadata": {"labels": _labels("mlflow")},
                              "spec": {"containers": [container], "volumes": [
                                  {"name": "artifacts", "persistentVolumeClaim":
                                   {"claimName": "tailor-mlflow-artifacts"}}]}}},
    }


def mlflow_artifacts_claim() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta("tailor-mlflow-artifacts", "mlflow"),
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "100Gi"}}}}


def manifests(settings: Settings, jobs: Sequence[Job],
              sizing: Sizing | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every manifest by file name, each with a one-line comment saying what it is."""
    sizing = sizing or size_serving()
    files: dict[str, tuple[str, dict[str, Any]]] = {
        "tailor-serving-deployment.yaml": ("the Bento image's server", serving_deployment(sizing)),
        "tailor-serving-service.yaml": ("the server inside the cluster", serving_service()),
        "tailor-serving-hpa.yaml": (
            f"{sizing.min_replicas}-{sizing.max_replicas} pods, from `tailor deploy sizing`",
            serving_autoscaler(sizing)),
        "tailor-serving-pdb.yaml": ("one pod down at a time in voluntary disruptions",
                                    serving_disruption_budget()),
        "tailor-settings.yaml": ("plain TAILOR_* settings (secrets: tailor-secrets)",
                                 settings_map()),
        "tailor-home-pvc.yaml": ("the Tailor home (needs a ReadWriteMany storage class)",
                                 home_claim()),
    }
    for job in jobs:
        files[f"{cronjob_name(job)}.yaml"] = (f"{job.name}: {job.description}",
                                              cronjob_manifest(settings, job))
    files.update({
        "tailor-postgres.yaml": ("PostgreSQL (or a managed one: docs/operations.md)", postgres()),
        "tailor-postgres-service.yaml": ("", _service("tailor-postgres", "postgres", 5432)),
        "tailor-postgres-init.yaml": ("", postgres_init()),
        "tailor-redis.yaml": ("Redis, the online store (or a managed one)", redis()),
        "tailor-redis-service.yaml": ("", _service("tailor-redis", "redis", 6379)),
        "tailor-mlflow.yaml": ("the MLflow server (or a managed one)", mlflow_server()),
        "tailor-mlflow-service.yaml": ("", _service("tailor-mlflow", "mlflow", 5000)),
        "tailor-mlflow-artifacts-pvc.yaml": ("", mlflow_artifacts_claim()),
    })
    return files


GENERATED = ("# Generated by `tailor deploy kubernetes DIR` (src/tailor/deploy/kubernetes.py)"
             " from\n# the job table, the settings and the serving sizing; do not edit by hand.\n")
KUSTOMIZATION_NOTE = (
    "# Secrets are not here: create tailor-secrets and tailor-backing-secrets from the\n"
    "# *.env.example files (`kubectl create secret generic NAME --from-env-file=FILE`).\n"
    "# Managed PostgreSQL, Redis or MLflow: drop their files below and point the URLs in\n"
    "# the Secrets at them (docs/operations.md, \"Kubernetes\").\n")


def write_kubernetes(settings: Settings, jobs: Sequence[Job], folder: Path,
                     sizing: Sizing | None = None) -> list[Path]:
    """Write every manifest, the Secrets' example files and the kustomization into `folder`."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (comment, manifest) in manifests(settings, jobs, sizing).items():
        path = folder / name
        path.write_text(GENERATED + (f"# {comment}\n" if comment else "")
                        + yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": [path.name for path in written]}
    for secret, keys in SECRET_KEYS.items():
        path = folder / f"{secret}.env.example"
        path.write_text(f"# Keys of the Secret {secret}; placeholders, never real values.\n"
                        + "".join(f"{key}={value}\n" for key, value in keys.items()))
        written.append(path)
    path = folder / "kustomization.yaml"
    path.write_text(GENERATED + KUSTOMIZATION_NOTE + yaml.safe_dump(kustomization,
                                                                   sort_keys=False))
    return [*written, path]
