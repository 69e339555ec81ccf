"""A campaign planned from real champions: the churn model's scores choose the customers (the
same ones `score_churn` ranks highest), the homepage model's batch gives each the same picks
`tailor recommend` gives them one by one, each customer's variant is the one the running
discount-timing experiment's assignment gives them, and the mail reaches the address the
shop's customers file holds, joined from the PII store at send time only.

One small simulated shop (300 customers, 60 days) ingested with its customers file (PII to
the PII store), and one trial each of the homepage and churn models: no shared fixture trains
a churn model, and this is the cheapest home that has both (about 30 s).
"""

from __future__ import annotations

import csv
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from campaign_homes import PRODUCT_URL, SENDER, SHOP_URL, start_experiment, write_definition
from shop_homes import build_shop_home
from smtp_servers import local_smtp_server
from tailor.config import Settings, load_settings
from tailor.events.campaign_store import open_campaign_store
from tailor.experiments.campaign_send import send_due
from tailor.experiments.campaigns import plan_campaign
from tailor.experiments.state import current_assigner
from tailor.training.jobs import recommend_for_customer, score_churn

pytestmark = pytest.mark.slow
TOP_SHARE = 0.1


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    from tailor.models.data import load_shop_data
    from tailor.training import excluded_customer_ids, train_model

    folder = tmp_path_factory.mktemp("campaign-models")
    home = folder / "home"
    settings = load_settings(home=home, env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
        experiments_campaign_sender=SENDER, experiments_campaign_tracking_url="https://t.example",
        experiments_campaign_shop_url=SHOP_URL, experiments_campaign_product_url=PRODUCT_URL,
        experiments_campaign_top_share=TOP_SHARE, mail_host="127.0.0.1")
    shop = build_shop_home(settings, folder / "shop", customers=300, products=60, days=60,
                           seed=3, ends_days_ago=3)
    data = load_shop_data(settings, excluded_customer_ids(settings))
    for model in ("homepage", "churn"):
        result = train_model(settings, model, trials=1, data=data, jobs=1)
        assert result.status == "trained", result.reason
        if not result.promoted:  # these tests judge the campaign, not the promotion rule
            MlflowClient(settings.tracking_uri, settings.tracking_uri) \
                .set_registered_model_alias(f"tailor-{model}", "champion", result.version)
    write_definition(home)
    start_experiment(settings)
    return settings, shop


def test_the_champions_choose_the_customers_and_their_picks(home) -> None:
    settings, shop = home
    now = datetime.now(timezone.utc)
    report = plan_campaign(settings, "models-test", now=now)
    scores = score_churn(settings).scores.sort_values(
        ["churn_probability", "customer_id"], ascending=[False, True])
    expected = scores["customer_id"].head(math.ceil(TOP_SHARE * len(scores))).tolist()
    assert report.scored == len(scores) and report.at_risk == len(expected) > 0
    store = open_campaign_store(settings.event_store_url)
    try:
        sends = store.sends("models-test")
    finally:
        store.close()
    assert sorted({send.customer_id for send in sends}) == sorted(expected)
    assigner = current_assigner(settings)
    for send in sends:
        answer = assigner.assign("campaign", send.customer_id)
        assert answer is not None  # no holdout, the whole layer: everyone is exposed
        assert (send.experiment, send.variant) == (answer.experiment, answer.variant)
    catalogue = pd.read_csv(shop / "products.csv", dtype={"product_id": str}) \
        .set_index("product_id")["name"]
    k = settings.experiments_campaign_picks
    for send in sends:
        one_by_one = recommend_for_customer(settings, send.customer_id, k=k)["items"]
        assert [pick["product_id"] for pick in send.picks] == [
            item["product_id"] for item in one_by_one]
        assert all(pick["name"] == catalogue[pick["product_id"]] for pick in send.picks)

    people = {row["customer_id"]: row for row in
              csv.DictReader((shop / "customers.csv").open(encoding="utf-8"))}
    with local_smtp_server() as smtp:
        sent = send_due(settings.replace(mail_port=smtp.port), now=now)
    first_mails = [send for send in sends if send.mail == 1]
    assert sent.ok and sent.sent == len(first_mails)
    delivered = {mail.rcpt_tos[0]: mail for mail in smtp.messages}
    assert sorted(delivered) == sorted(people[send.customer_id]["email"]
                                       for send in first_mails)
    for send in first_mails:
        mail = delivered[people[send.customer_id]["email"]]
        assert mail.body().startswith(f"Hi {people[send.customer_id]['name']},")
        assert send.picks[0]["name"] in mail.body()
    stored = "\n".join(repr(send) for send in sends)
    assert not any(people[send.customer_id]["email"] in stored for send in sends)
