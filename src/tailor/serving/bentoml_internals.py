"""The BentoML names Tailor uses that BentoML does not publish, in one place (BentoML 1.4).

Reads and writes nothing itself. Serving keeps its own BentoML model store under the Tailor
home (so a registry outage still has models to serve) and also reads the store BentoML is
configured with (a served Bento's); BentoML exposes neither the store class nor the
configured store publicly. When an upgrade moves them,
`tests/unit/serving/test_bentoml_internals.py` fails naming them, and this module is the only
one to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PINNED_BENTOML = "1.4"


def model_store_at(path: Path) -> Any:
    """A BentoML model store rooted at `path` (the folder must exist)."""
    from bentoml._internal.models.model import ModelStore

    return ModelStore(path)


def configured_model_store() -> Any:
    """The model store BentoML itself is configured with ($BENTOML_HOME's, or a Bento's)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.model_store.get()


def set_configured_model_store(store: Any) -> None:
    """Point BentoML's configured model store at `store` (tests, and tools that import)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.model_store.set(store)


def store_path(store: Any) -> Path:
    """The folder a BentoML model store is rooted at."""
    return Path(store._path)
