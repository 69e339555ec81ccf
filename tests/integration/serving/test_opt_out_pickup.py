"""An opt-out made by `tailor opt-out` (another process, through `tailor.privacy.opt_out`)
reaches a running pipeline: its next look at the list turns the customer's homepage into the
one a stranger gets, and `opt-in` turns it back, on the shared trained home.

The pipeline looks at the file every `RECHECK_SECONDS`; here the look is made on every ask
(recheck 0, restored after) so "the next request" is exact. How long the default interval
makes it take is measured in `bench/bench_opt_out.py`.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tailor.privacy.excluded_customers import exclusion_reasons
from tailor.serving.schemas import HomepageRequest

K = 10


def _cli(settings, *arguments: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tailor.cli", *arguments, "--home",
                           str(settings.home_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_request_after_tailor_opt_out_is_not_personalised_and_opt_in_restores_it(
        served_home, pipeline) -> None:
    model = pipeline.slots["homepage"].current.model
    tiers = model.customer_tiers(np.arange(len(model.customers)))
    customer = str(model.customers.ids[np.flatnonzero(tiers == 2)[7]])
    stranger = model.recommend(["\x00a stranger"], k=K)["product_id"].tolist()
    personal = [item.product_id for item in
                pipeline.homepage(HomepageRequest(customer_id=customer, k=K)).items]
    assert personal != stranger
    watch = pipeline.exclusions.watch
    interval = watch.recheck_seconds
    watch.recheck_seconds = 0.0
    try:
        _cli(served_home.settings, "opt-out", customer)
        answer = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
        assert (answer.personalised, [item.product_id for item in answer.items]) == \
            (False, stranger)
        _cli(served_home.settings, "opt-in", customer)
        again = pipeline.homepage(HomepageRequest(customer_id=customer, k=K))
        assert (again.personalised, [item.product_id for item in again.items]) == \
            (True, personal)
    finally:
        watch.recheck_seconds = interval
        if customer in exclusion_reasons(served_home.settings):
            _cli(served_home.settings, "opt-in", customer)
