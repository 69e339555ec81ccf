"""The BentoML model store between the registry and the slots: a loaded version is imported
once, labelled, and loaded from the store; without a registry the store serves."""

from __future__ import annotations

import socket
from pathlib import Path

import bentoml
import mlflow.pyfunc
import numpy as np
from mlflow.tracking import MlflowClient

from tailor.serving.bentoml_internals import model_store_at
from tailor.serving.checkout_offers import CheckoutScorer
from tailor.serving.model_slots import ModelSlot
from tailor.serving.model_store import bentoml_home
from tailor.serving.schemas import CartLine, CheckoutOfferRequest, HomepageRequest
from tailor.training.registration import use_tracking

SERVED = ("homepage", "cross_sell", "checkout")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing_registry(settings, tmp_path: Path, **overrides):
    return settings.replace(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'missing.db'}",
                            **overrides)


def test_a_loaded_version_is_imported_once_with_its_labels(served_home, tmp_path: Path,
                                                           empty_bentoml_store) -> None:
    settings = served_home.settings.replace(home=str(tmp_path / "home"))
    version = served_home.versions["checkout"]
    tag = f"tailor-checkout:v{version}"
    slot = ModelSlot(settings, "checkout", "champion", prepare=CheckoutScorer)
    assert slot.refresh()

    store = model_store_at(tmp_path / "home" / "bentoml" / "models")
    stored = store.get(tag)
    uri = settings.tracking_uri
    run_id = MlflowClient(uri, uri).get_model_version("tailor-checkout", version).run_id
    assert run_id and dict(stored.info.labels) == {
        "registered_name": "tailor-checkout", "version": version, "run_id": run_id,
        "alias": "champion"}
    assert stored.info.module == "bentoml.mlflow"
    assert slot.status()["tag"] == tag and slot.status()["source"] == "registry"

    # What the slot serves is the registry's model: same probabilities on the same rows.
    use_tracking(settings)
    direct = mlflow.pyfunc.load_model(f"models:/tailor-checkout/{version}") \
        .unwrap_python_model().model
    from_store = bentoml.mlflow.load_model(stored).unwrap_python_model().model
    rows = np.random.default_rng(5).uniform(0, 50, (20, len(slot.current.prepared.feature_names)))
    expected = direct.classifier.predict_proba_values(rows.astype(np.float32))
    for model in (from_store, slot.current.model):
        assert np.allclose(model.classifier.predict_proba_values(rows.astype(np.float32)),
                           expected)

    # Loaded again (by number this time): no second import.
    pinned = ModelSlot(settings, "checkout", version)
    assert pinned.refresh() and pinned.current.tag == tag
    assert [str(model.tag) for model in store.list("tailor-checkout")] == [tag]
    assert store.get(tag).creation_time == stored.creation_time


def test_without_the_registry_the_pipeline_serves_from_the_store(
        served_home, pipeline, pipeline_factory, tmp_path: Path, empty_bentoml_store) -> None:
    """`pipeline` loaded the champions through the home's store; the registry is gone now."""
    served = pipeline_factory(missing_registry(served_home.settings, tmp_path))
    for name in SERVED:
        status = served.status()["models"][name]
        assert (status["version"], status["source"]) == \
            (served_home.versions[name], "bentoml store"), status
        assert status["last_error"].startswith("no model registry yet")
        assert f"serving tailor-{name}:v{status['version']} from the BentoML model store " \
               f"at {bentoml_home(served_home.settings) / 'models'}" in status["last_error"]
    customer = str(pipeline.slots["homepage"].current.model.customers.ids[3])
    homepage = served.homepage(HomepageRequest(customer_id=customer, k=5))
    assert not homepage.fallback and homepage.personalised
    assert homepage.model_version == served_home.versions["homepage"]
    assert homepage.items == pipeline.homepage(HomepageRequest(customer_id=customer, k=5)).items
    cart = CheckoutOfferRequest(customer_id=customer, session_id="s-store",
                                cart=[CartLine(product_id="p00002", price=42.0)])
    offer = served.checkout_offer(cart)
    assert not offer.fallback and offer.p_abandon == pipeline.checkout_offer(cart).p_abandon


def test_an_unreachable_registry_server_also_falls_back_to_the_store(
        served_home, pipeline, tmp_path: Path, monkeypatch, empty_bentoml_store) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = served_home.settings.replace(
        mlflow_tracking_uri=f"http://127.0.0.1:{closed_port()}")
    slot = ModelSlot(settings, "cross_sell")
    assert slot.refresh() and slot.current.version == served_home.versions["cross_sell"]
    assert slot.current.source == "bentoml store"
    assert slot.last_error.startswith("registry lookup failed") \
        and "from the BentoML model store" in slot.last_error
    assert slot.refresh() is False  # still down: the note stays, the model too
    assert slot.current.source == "bentoml store" and "registry lookup failed" in \
        slot.last_error and "from the BentoML model store" in slot.last_error


def test_a_bentos_own_models_serve_a_home_without_registry_or_store(
        served_home, pipeline, tmp_path: Path, configured_bentoml_store) -> None:
    """A built Bento carries its models in its own store, which BentoML configures."""
    configured_bentoml_store(bentoml_home(served_home.settings) / "models")
    settings = missing_registry(served_home.settings, tmp_path, home=str(tmp_path / "home"))
    pinned = served_home.versions["homepage"]
    for reference in ("champion", pinned):
        slot = ModelSlot(settings, "homepage", reference)
        assert slot.refresh() and slot.current.version == pinned
        assert slot.current.source == "bentoml store"
    assert ModelSlot(settings, "homepage", "999").refresh() is False  # not in any store


def test_the_registry_takes_over_again_once_it_answers(served_home, pipeline,
                                                       tmp_path: Path) -> None:
    missing = missing_registry(served_home.settings, tmp_path)
    slot = ModelSlot(missing, "checkout")
    assert slot.refresh() and slot.current.source == "bentoml store"
    slot.settings = served_home.settings  # the registry is back
    assert slot.refresh() and slot.current.source == "registry" and slot.last_error is None
    assert slot.current.version == served_home.versions["checkout"]
    assert slot.refresh() is False
