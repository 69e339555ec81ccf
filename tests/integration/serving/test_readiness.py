"""Readiness: a pipeline whose registered models cannot load is not ready.

The fault is a BentoML model store that cannot be written (its folder's place is taken by
a file: what a read-only home does, as root too): every registered version fails to load
and answers are fallbacks. Before, `/readyz` said ready all the same; now `ready()` is
False with the reason until the fault clears and the watcher's next round loads them.
A shop without any model yet stays ready (its collector must take the first events).
"""

from __future__ import annotations

from pathlib import Path

from tailor.serving.schemas import HomepageRequest


def test_models_that_exist_but_fail_to_load_make_the_pipeline_unready(
        served_home, pipeline_factory, tmp_path: Path, empty_bentoml_store) -> None:
    blocked = tmp_path / "bentoml-home"
    blocked.write_text("a file where the model store's folder should be")
    broken = pipeline_factory(served_home.settings.replace(serving_bentoml_home=str(blocked)))
    assert not broken.ready()
    reason = broken.unready_reason()
    assert reason is not None and "model not loaded" in reason and "failed to load" in reason
    assert broken.status()["unready_reason"] == reason
    answer = broken.homepage(HomepageRequest(customer_id="c1", k=3))
    assert answer.fallback  # still answering, but no longer claiming to be ready
    blocked.unlink()  # the home is writable again
    broken.watcher.refresh_all()
    assert broken.ready() and broken.unready_reason() is None
    assert broken.slots["homepage"].current is not None


def test_a_home_without_models_is_still_ready(served_home, pipeline_factory, tmp_path: Path,
                                              empty_bentoml_store) -> None:
    fresh = pipeline_factory(served_home.settings.replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'no-registry.db'}",
        serving_bentoml_home=str(tmp_path / "empty-bentoml")))
    assert fresh.ready() and fresh.unready_reason() is None
