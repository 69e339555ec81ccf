"""Starting an experiment against a real MLflow registry (SQLite, in a temporary home): every
variant's model alias or version must exist as `tailor-<model>`, and a refused start records
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from experiment_definitions import make_definition, variants
from tailor.config import Settings, load_settings
from tailor.errors import InputError
from tailor.experiments.state import RUNNING, open_store, start
from tailor.registry.tracking import use_tracking


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(home=tmp_path / "home", env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    settings.home_path.mkdir(parents=True)
    return settings


def register(settings: Settings, name: str, count: int, aliases: dict[str, int]) -> None:
    """`count` versions of `name` (a tiny folder each, no run) and the given aliases."""
    client = MlflowClient(use_tracking(settings), settings.tracking_uri)
    client.create_registered_model(name)
    for index in range(count):
        folder = settings.home_path / "models" / name / str(index)
        folder.mkdir(parents=True)
        (folder / "MLmodel").write_text("flavors: {}\n")
        client.create_model_version(name, str(folder))
    for alias, version in aliases.items():
        client.set_registered_model_alias(name, alias, str(version))


def model_test(*references: str, surface: str = "homepage") -> object:
    specs = [(f"v{index}", 1 / len(references), {"model": reference})
             for index, reference in enumerate(references)]
    return make_definition(name="model-test", surface=surface, layer=surface.replace("_", "-"),
                           metrics={"primary": "conversion"}, variants=variants(*specs))


def nothing_recorded(settings: Settings) -> bool:
    with open_store(settings) as store:
        return store.record("model-test") is None and store.audit() == []


def test_existing_aliases_and_versions_start(settings: Settings) -> None:
    register(settings, "tailor-homepage", 2, {"champion": 1, "challenger": 2})
    record = start(settings, "model-test", "ana", "go",
                   definition=model_test("champion", "challenger", "2"))
    assert record.status == RUNNING


def test_an_unknown_version_is_refused_naming_the_field_and_what_exists(
        settings: Settings) -> None:
    register(settings, "tailor-homepage", 2, {"champion": 1})
    with pytest.raises(InputError) as refused:
        start(settings, "model-test", "ana", "go", definition=model_test("champion", "7"))
    message = str(refused.value)
    assert message.startswith("variants.1.changes.model: tailor-homepage has no version '7' "
                              "in the registry at sqlite:///")
    assert "(versions 2, 1; aliases champion=1)" in message
    assert nothing_recorded(settings)


def test_an_unknown_alias_is_refused(settings: Settings) -> None:
    register(settings, "tailor-homepage", 1, {"champion": 1})
    with pytest.raises(InputError, match="variants.1.changes.model: tailor-homepage has no "
                                         "alias 'challenger'"):
        start(settings, "model-test", "ana", "go",
              definition=model_test("champion", "challenger"))
    assert nothing_recorded(settings)


def test_the_surfaces_own_model_is_checked(settings: Settings) -> None:
    """Checkout's variants name versions of tailor-checkout, not of the homepage model."""
    register(settings, "tailor-homepage", 3, {"champion": 3})
    register(settings, "tailor-checkout", 1, {"champion": 1})
    with pytest.raises(InputError, match="variants.1.changes.model: tailor-checkout has no "
                                         "version '3'"):
        start(settings, "model-test", "ana", "go",
              definition=model_test("champion", "3", surface="checkout_offer"))
    assert nothing_recorded(settings)


def test_no_registry_at_all_is_refused(settings: Settings) -> None:
    with pytest.raises(InputError, match="variants.0.changes.model: no model registry yet"):
        start(settings, "model-test", "ana", "go", definition=model_test("champion", "2"))
    assert nothing_recorded(settings)


def test_experiments_without_model_changes_need_no_registry(settings: Settings) -> None:
    assert start(settings, "layout-test", "ana", "go",
                 definition=make_definition()).status == RUNNING
