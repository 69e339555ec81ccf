"""A Bento built with `models:` from the store the server filled serves without the registry:
the running server imported its champions into `<home>/bentoml`; a Bento built from that
store and served with a missing registry and an empty Tailor store still personalises, so
its models came from the Bento."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector_process import free_port
from serving_home import SERVED_MODELS, Serving
from tailor.server import ServerProcess, server_environment
from tailor.serving.model_store import bentoml_home

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _build(serving: Serving, tags: list[str], build_home: Path, tmp_path: Path,
           env: dict[str, str]) -> str:
    shutil.copytree(bentoml_home(serving.home.settings) / "models", build_home / "models")
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    bentofile["models"] = tags
    (tmp_path / "bentofile.yaml").write_text(yaml.safe_dump(bentofile))
    built = subprocess.run([sys.executable, "-m", "bentoml", "build", "-f",
                            str(tmp_path / "bentofile.yaml"), "-o", "tag", str(REPO)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def test_a_bento_carrying_its_models_serves_without_the_registry(serving: Serving,
                                                                 tmp_path: Path) -> None:
    store = bentoml_home(serving.home.settings) / "models"
    versions = {model: serving.champion(model) for model in SERVED_MODELS}
    tags = [f"tailor-{model}:v{version}" for model, version in versions.items()]
    for tag in tags:  # the server's workers imported each champion once
        name, version = tag.split(":")
        assert (store / name / version / "model.yaml").is_file(), tag

    build_home = tmp_path / "bentoml"
    settings = serving.home.settings.replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'no-registry.db'}",
        serving_bentoml_home=str(tmp_path / "no-store"), serving_timeout_ms=3000)
    env = {**server_environment(settings), "BENTOML_HOME": str(build_home)}
    tag = _build(serving, tags, build_home, tmp_path, env)
    info = yaml.safe_load((build_home / "bentos" / tag.replace(":", "/") / "bento.yaml")
                          .read_text())
    assert {model["tag"] for model in info["models"]} == set(tags)
    # Served from the store it was built from (an image carries them in the Bento instead).

    port = free_port()
    with (tmp_path / "bento.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1",
             "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    server = ServerProcess(process=process, host="127.0.0.1", port=port,
                           bentoml_home=build_home)
    try:
        assert server.wait_ready(timeout=240), (tmp_path / "bento.log").read_text()[-3000:]
        answer = _post(serving, server.url)
        assert answer["fallback"] is False and answer["personalised"] is True, answer
        assert answer["model_version"] == versions["homepage"]
    finally:
        server.stop()
    assert not (tmp_path / "no-registry.db").exists()  # the registry was never there


def _post(serving: Serving, url: str) -> dict:
    import httpx

    response = httpx.post(url + "/homepage", json={"customer_id": serving.home.known_buyer,
                                                   "k": 5},
                          headers={"Authorization": f"Bearer {serving.secret_key}"},
                          timeout=30.0)
    assert response.status_code == 200, response.text
    return response.json()
