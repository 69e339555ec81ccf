"""Model slots on the real MLflow registry: an alias move switches the version; a version that
cannot load leaves the old one serving, is counted, and is tried again.

The tests move their own alias (`serving-test`), never `champion`, so the other tests' models
stay where they are. Extra versions are registered from copies of version 1's artifacts.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry

from tailor.serving.homepage import HomepageRanker
from tailor.serving.metrics import ServingMetrics
from tailor.serving.model_slots import ModelSlot, ModelWatcher
from waiting import wait_until

NAME = "tailor-homepage"
ALIAS = "serving-test"


@pytest.fixture(scope="module")
def client(served_home) -> MlflowClient:
    uri = served_home.settings.tracking_uri
    return MlflowClient(uri, uri)


def register_copy(client: MlflowClient, version: str, folder: Path) -> str:
    """A new version of tailor-homepage whose artifacts are a copy of `version`'s."""
    source = Path(urlparse(client.get_model_version_download_uri(NAME, version)).path)
    shutil.copytree(source, folder)
    run_id = client.get_model_version(NAME, version).run_id
    return str(client.create_model_version(NAME, source=folder.as_uri(), run_id=run_id).version)


def test_an_alias_move_switches_and_a_broken_version_keeps_the_old_one(
        served_home, client: MlflowClient, tmp_path: Path) -> None:
    first = served_home.versions["homepage"]
    metrics = ServingMetrics(CollectorRegistry())
    slot = ModelSlot(served_home.settings, "homepage", ALIAS, metrics=metrics,
                     prepare=lambda model: HomepageRanker(model, 20, 0.3))
    client.set_registered_model_alias(NAME, ALIAS, first)
    assert slot.refresh() and slot.current.version == first
    assert isinstance(slot.current.prepared, HomepageRanker)
    assert slot.refresh() is False  # nothing moved

    second = register_copy(client, first, tmp_path / "copy")
    client.set_registered_model_alias(NAME, ALIAS, second)
    before = slot.current
    assert slot.refresh() and slot.current.version == second
    assert slot.current.model is not before.model and slot.current.reference == ALIAS
    assert metrics.value("tailor_model_info", {"model": "homepage", "version": second}) == 1
    assert metrics.registry.get_sample_value(
        "tailor_model_info", {"model": "homepage", "version": first}) is None

    failures = metrics.value("tailor_model_load_failures_total", {"model": "homepage"})
    broken = register_copy(client, first, tmp_path / "broken")
    shutil.rmtree(tmp_path / "broken")
    client.set_registered_model_alias(NAME, ALIAS, broken)
    assert slot.refresh() is False
    assert slot.current.version == second
    assert slot.last_error.startswith(f"version {broken} failed to load")
    assert slot.status()["version"] == second and slot.status()["last_error"] == slot.last_error
    assert slot.refresh() is False  # tried again at the next refresh, failing again
    assert metrics.value("tailor_model_load_failures_total", {"model": "homepage"}) \
        - failures == 2

    shutil.copytree(tmp_path / "copy", tmp_path / "broken")  # the artifact is back
    assert slot.refresh() and slot.current.version == broken and slot.last_error is None


def test_a_version_number_and_a_missing_alias(served_home) -> None:
    first = served_home.versions["homepage"]
    pinned = ModelSlot(served_home.settings, "homepage", first)
    assert pinned.refresh() and pinned.current.version == first
    missing = ModelSlot(served_home.settings, "homepage", "no-such-alias")
    assert missing.refresh() is False and missing.current is None
    assert "tailor-homepage@no-such-alias not found" in missing.last_error


def test_no_registry_yet_and_nothing_in_a_model_store(served_home, tmp_path: Path,
                                                     empty_bentoml_store) -> None:
    settings = served_home.settings.replace(
        home=str(tmp_path / "home"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'never-created.db'}")
    slot = ModelSlot(settings, "checkout")
    assert slot.refresh() is False and slot.current is None
    assert "no model registry yet" in slot.last_error
    assert "BentoML" not in slot.last_error
    assert not (tmp_path / "never-created.db").exists()


def test_the_watcher_switches_in_the_background_while_readers_see_a_whole_model(
        served_home, client: MlflowClient, tmp_path: Path) -> None:
    first = served_home.versions["homepage"]
    client.set_registered_model_alias(NAME, ALIAS, first)
    slot = ModelSlot(served_home.settings, "homepage", ALIAS,
                     prepare=lambda model: HomepageRanker(model, 20, 0.3))
    assert slot.refresh()
    seen: list[str] = []
    reads: Counter[str] = Counter()
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:  # a request's view: the slot's model and its lookups, together
        while not stop.is_set():
            loaded = slot.current
            if loaded is None or loaded.prepared.model is not loaded.model:
                problems.append("no model, or a model with another version's lookups")
            elif not seen or seen[-1] != loaded.version:
                seen.append(loaded.version)
            if loaded is not None:
                reads[loaded.version] += 1
            loaded.prepared.non_personalised(5)

    reader = threading.Thread(target=read)
    reader.start()
    switched: list[str] = []
    watcher = ModelWatcher({"homepage": slot}, 0.2, on_switch=switched.append).start()
    try:
        moved = register_copy(client, first, tmp_path / "moved")
        client.set_registered_model_alias(NAME, ALIAS, moved)
        wait_until(lambda: slot.current.version == moved, 30, "the watcher to switch versions",
                   interval=0.05)
        # The reader goes on reading the new version for a while (it must never go back).
        wait_until(lambda: reads[moved] >= 200, 30, "200 reads of the new version")
    finally:
        watcher.stop()
        stop.set()
        reader.join()
    assert slot.current.version == moved and switched == ["homepage"]
    assert seen == [first, moved] and not problems


def test_a_server_pipeline_keeps_its_models_out_of_the_garbage_collectors_walks(
        served_home, client: MlflowClient, pipeline_factory, tmp_path: Path) -> None:
    """`freeze_heap`: what start-up loaded, and each version switched in later, sit in the
    permanent generation, so full collections under load do not walk them."""
    import gc

    first = served_home.versions["homepage"]
    client.set_registered_model_alias(NAME, ALIAS, first)
    settings = served_home.settings.replace(serving_homepage_model=ALIAS)
    gc.unfreeze()
    try:
        unfrozen = pipeline_factory(settings)
        assert gc.get_freeze_count() == 0 and unfrozen.slots["homepage"].current is not None
        pipeline = pipeline_factory(settings, freeze_heap=True)
        at_start = gc.get_freeze_count()
        assert at_start > 100_000  # the libraries and the models, not a handful
        assert gc.get_count()[2] == 0 or gc.get_count()[2] < at_start
        client.set_registered_model_alias(NAME, ALIAS, register_copy(client, first,
                                                                     tmp_path / "next"))
        pipeline.watcher.refresh_all()
        assert pipeline.slots["homepage"].current.version != first
        assert gc.get_freeze_count() > at_start  # the new version joined the frozen heap
    finally:
        gc.unfreeze()
