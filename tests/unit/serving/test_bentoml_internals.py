"""BentoML's private names that serving relies on still exist and behave as assumed.

An upgrade that moves one fails here, naming it and the pinned version.
"""

from __future__ import annotations

from pathlib import Path

from tailor.serving import bentoml_internals


def test_model_store_class_and_configured_store_are_where_they_were(tmp_path: Path) -> None:
    hint = (f"BentoML moved it after {bentoml_internals.PINNED_BENTOML}; update "
            "tailor/serving/bentoml_internals.py")
    store = bentoml_internals.model_store_at(tmp_path)
    assert bentoml_internals.store_path(store) == tmp_path, hint
    assert list(store.list()) == [], hint
    before = bentoml_internals.configured_model_store()
    try:
        bentoml_internals.set_configured_model_store(store)
        assert bentoml_internals.configured_model_store() is store, hint
    finally:
        bentoml_internals.set_configured_model_store(before)
    assert bentoml_internals.configured_model_store() is before
