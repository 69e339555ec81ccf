"""Variants: each model follows the alias or version number of its `serving.<model>_model`
setting, and the answers report it as `variant`."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.tracking import MlflowClient

from tailor.config import ConfigError
from tailor.serving.schemas import (
    AlsoBoughtRequest, CartLine, CheckoutOfferRequest, HomepageRequest,
)


def register_copy(client: MlflowClient, name: str, version: str, folder: Path) -> str:
    """A new version of `name` whose artifacts are a copy of `version`'s."""
    source = Path(urlparse(client.get_model_version_download_uri(name, version)).path)
    shutil.copytree(source, folder)
    run_id = client.get_model_version(name, version).run_id
    return str(client.create_model_version(name, source=folder.as_uri(), run_id=run_id).version)


def test_a_challenger_alias_and_a_pinned_version(served_home, pipeline, pipeline_factory,
                                                 tmp_path: Path) -> None:
    uri = served_home.settings.tracking_uri
    client = MlflowClient(uri, uri)
    champion = served_home.versions["homepage"]
    challenger = register_copy(client, "tailor-homepage", champion, tmp_path / "challenger")
    client.set_registered_model_alias("tailor-homepage", "challenger", challenger)
    pinned = served_home.versions["checkout"]
    settings = served_home.settings.replace(serving_homepage_model="challenger",
                                            serving_checkout_model=pinned)
    variant = pipeline_factory(settings)

    customer = str(pipeline.slots["homepage"].current.model.customers.ids[5])
    homepage = variant.homepage(HomepageRequest(customer_id=customer, k=5))
    assert (homepage.variant, homepage.model_version) == ("challenger", challenger)
    assert challenger != champion and not homepage.fallback
    offer = variant.checkout_offer(CheckoutOfferRequest(
        customer_id=customer, session_id="s-v", cart=[CartLine(product_id="p00001", price=20.0)]))
    assert (offer.variant, offer.model_version, offer.fallback) == (pinned, pinned, False)
    also = variant.also_bought(AlsoBoughtRequest(product_id="p00001", k=3))
    assert also.variant == "champion"
    assert variant.status()["models"]["homepage"]["reference"] == "challenger"
    # The default pipeline still follows the champions.
    assert pipeline.homepage(HomepageRequest(customer_id=customer, k=5)).variant == "champion"


def test_a_missing_pinned_version_falls_back_and_says_which(served_home, pipeline_factory,
                                                             tmp_path: Path) -> None:
    variant = pipeline_factory(served_home.settings.replace(serving_checkout_model="999"))
    answer = variant.checkout_offer(CheckoutOfferRequest(
        customer_id="c-any", session_id="s-v", cart=[CartLine(product_id="p00001", price=20.0)]))
    assert answer.fallback and answer.variant == "999" and answer.offer == "none"
    assert "tailor-checkout@999 not found" in answer.fallback_reason


@pytest.mark.parametrize("value", ["", "champion!", "two words", "-x"])
def test_a_reference_that_is_no_alias_is_refused_by_name(served_home, value: str) -> None:
    with pytest.raises(ConfigError, match="serving_cross_sell_model must be a registry alias"):
        served_home.settings.replace(serving_cross_sell_model=value)
