"""Assignment: the contract's hash, a split that follows the weights, sticky units (across
processes, new assigners, other experiments and the anonymous -> customer switch), layers
that never share a unit, the global holdout, promoted winners as defaults."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from scipy.stats import binomtest, chisquare

from experiment_definitions import make_definition, variants
from tailor.experiments.assignment import (
    Assigner, PromotedExperiment, RunningExperiment, assignment_unit, bucket,
)

UNITS = [f"c{index:06d}" for index in range(20_000)]
ALPHA = 0.001  # a correct split fails a test at this level once in a thousand runs


def three_way():
    return make_definition(name="three-way", variants=variants(
        ("control", 0.5, {}), ("carousel", 0.3, {"layout": "carousel"}),
        ("hero", 0.2, {"layout": "hero_grid"})))


def counts(assigner: Assigner, surface: str, units=UNITS) -> Counter:
    found = Counter()
    for unit in units:
        answer = assigner.assign(surface, unit)
        found[(answer.experiment, answer.variant) if answer else None] += 1
    return found


def test_the_bucket_is_the_contracts_sha256_reading() -> None:
    digest = hashlib.sha256(b"homepage-layout:anon-1234").digest()
    assert bucket("homepage-layout", "anon-1234") == int.from_bytes(digest[:8], "big") / 2 ** 64
    assert 0.0 <= bucket("x", "") < 1.0


def test_variants_split_the_units_by_their_weights() -> None:
    found = counts(Assigner([RunningExperiment(three_way(), 0.0)]), "homepage")
    observed = [found[("three-way", name)] for name in ("control", "carousel", "hero")]
    assert sum(observed) == len(UNITS)
    assert chisquare(observed, [len(UNITS) * w for w in (0.5, 0.3, 0.2)]).pvalue > ALPHA


def test_the_split_test_rejects_a_split_that_ignores_the_weights() -> None:
    """The same test on an equal split (the weights ignored) fails: it can tell them apart."""
    equal = make_definition(name="three-way", variants=variants(
        ("control", 0.34, {}), ("carousel", 0.33, {}), ("hero", 0.33, {})))
    found = counts(Assigner([RunningExperiment(equal, 0.0)]), "homepage")
    observed = [found[("three-way", name)] for name in ("control", "carousel", "hero")]
    assert chisquare(observed, [len(UNITS) * w for w in (0.5, 0.3, 0.2)]).pvalue < ALPHA


def test_a_unit_keeps_its_variant_in_a_new_assigner_and_beside_other_experiments() -> None:
    alone = Assigner([RunningExperiment(three_way(), 0.0)])
    other = make_definition(name="also-test", surface="also_bought", layer="cross-sell",
                            variants=variants(("a", 0.5, {}), ("b", 0.5, {"diversity": "mixed"})))
    crowded = Assigner([RunningExperiment(three_way(), 0.0), RunningExperiment(other, 0.0)])
    for unit in UNITS[:2000]:
        first = alone.assign("homepage", unit)
        assert Assigner([RunningExperiment(three_way(), 0.0)]).assign("homepage", unit) == first
        assert crowded.assign("homepage", unit) == first
        assert alone.assign("homepage", unit) is first  # the answers are built once


def test_the_salt_reshuffles_the_units() -> None:
    first = Assigner([RunningExperiment(three_way(), 0.0)])
    resalted = make_definition(name="three-way", salt="second-run", variants=[
        v.model_dump() for v in three_way().variants])
    second = Assigner([RunningExperiment(resalted, 0.0)])
    moved = sum(first.assign("homepage", u).variant != second.assign("homepage", u).variant
                for u in UNITS[:5000])
    # Independent draws disagree with probability 1 - (0.5² + 0.3² + 0.2²) = 0.62.
    assert binomtest(moved, 5000, 0.62).pvalue > ALPHA


def test_assignment_is_the_same_in_another_process() -> None:
    assigner = Assigner([RunningExperiment(three_way(), 0.0)], holdout_share=0.1)
    here = [[a.experiment, a.variant] if (a := assigner.assign("homepage", u)) else None
            for u in UNITS[:500]]
    code = (
        "import json\n"
        "from test_experiment_assignment import three_way, UNITS\n"
        "from tailor.experiments.assignment import Assigner, RunningExperiment\n"
        "a = Assigner([RunningExperiment(three_way(), 0.0)], holdout_share=0.1)\n"
        "print(json.dumps([[x.experiment, x.variant] if (x := a.assign('homepage', u)) "
        "else None for u in UNITS[:500]]))\n")
    folder = os.path.dirname(__file__)
    environment = {**os.environ, "PYTHONHASHSEED": "12345",
                   "PYTHONPATH": os.pathsep.join([folder, os.path.dirname(os.path.dirname(
                       folder)), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here


def test_the_anonymous_id_keeps_the_variant_after_login() -> None:
    assigner = Assigner([RunningExperiment(three_way(), 0.0)])
    for index in range(300):
        anonymous = f"anon-{index:032x}"
        before = assigner.assign("homepage", assignment_unit(anonymous))
        after = assigner.assign("homepage", assignment_unit(f"customer-{index}", anonymous))
        assert after == before
    assert assignment_unit("c1") == "c1" and assignment_unit(None, None) is None
    assert assigner.assign("homepage", assignment_unit(None)) is None


def test_experiments_of_one_layer_never_share_a_unit() -> None:
    homepage = make_definition(name="home-test", traffic=0.4)
    cross_sell = make_definition(name="cross-test", surface="also_bought", traffic=0.6,
                                 variants=variants(("a", 0.5, {}),
                                                   ("b", 0.5, {"diversity": "mixed"})))
    assigner = Assigner([RunningExperiment(homepage, 0.0), RunningExperiment(cross_sell, 0.4)])
    in_home = {u for u in UNITS if assigner.assign("homepage", u) is not None}
    in_cross = {u for u in UNITS if assigner.assign("also_bought", u) is not None}
    assert not in_home & in_cross
    assert len(in_home | in_cross) == len(UNITS)  # the slices cover the layer
    assert binomtest(len(in_home), len(UNITS), 0.4).pvalue > ALPHA


def test_two_experiments_of_one_surface_split_its_layer_by_their_traffic() -> None:
    first = make_definition(name="first", traffic=0.3)
    second = make_definition(name="second", traffic=0.5)
    found = counts(Assigner([RunningExperiment(first, 0.0), RunningExperiment(second, 0.3)]),
                   "homepage")
    by_experiment = Counter({key[0] if key else None: n for key, n in found.items()})
    for name, share in (("first", 0.3), ("second", 0.5)):
        total = sum(n for key, n in found.items() if key and key[0] == name)
        assert binomtest(total, len(UNITS), share).pvalue > ALPHA
    assert binomtest(found[None], len(UNITS), 0.2).pvalue > ALPHA
    assert set(by_experiment) == {"first", "second", None}


def test_the_holdout_takes_its_share_on_every_surface_and_gets_no_experiment() -> None:
    campaign = make_definition(name="timing", surface="campaign", layer="campaign",
                               metrics={"primary": "conversion"}, guardrails=[],
                               variants=variants(("now", 0.5, {"discount_delay_days": 0}),
                                                 ("later", 0.5, {"discount_delay_days": 2})))
    assigner = Assigner([RunningExperiment(three_way(), 0.0), RunningExperiment(campaign, 0.0)],
                        holdout_share=0.1)
    held = [u for u in UNITS if assigner.in_holdout(u)]
    assert binomtest(len(held), len(UNITS), 0.1).pvalue > ALPHA
    assert all(assigner.assign("homepage", u) is None and assigner.assign("campaign", u) is None
               for u in held)
    assert all(assigner.assign("homepage", u) is not None for u in UNITS if u not in set(held))
    # The holdout is hashed on its own salt: the variants split the rest by their weights.
    found = counts(assigner, "homepage", [u for u in UNITS if u not in set(held)])
    observed = [found[("three-way", name)] for name in ("control", "carousel", "hero")]
    assert chisquare(observed, [sum(observed) * w for w in (0.5, 0.3, 0.2)]).pvalue > ALPHA


def test_no_experiment_on_a_surface_assigns_nobody_there() -> None:
    assigner = Assigner([RunningExperiment(three_way(), 0.0)])
    assert assigner.assign("checkout_offer", "c1") is None
    assert Assigner().assign("homepage", "c1") is None


def test_a_promoted_winner_is_the_default_outside_the_holdout_and_the_base_of_variants() -> None:
    layout = make_definition(name="layout-test")
    diversity = make_definition(name="diversity-test", traffic=0.5, variants=variants(
        ("single", 0.5, {"diversity": "single_category"}), ("mixed", 0.5, {"diversity": "mixed"})))
    assigner = Assigner([RunningExperiment(diversity, 0.0)], holdout_share=0.1,
                        promoted=[PromotedExperiment(layout, "carousel")])
    for unit in UNITS[:3000]:
        answer = assigner.assign("homepage", unit)
        if assigner.in_holdout(unit):
            assert answer is None
        elif answer.experiment is None:
            assert (answer.variant, answer.changes.set()) == (None, {"layout": "carousel"})
        else:
            assert answer.changes.layout == "carousel" and answer.changes.diversity


def test_a_promoted_model_change_is_left_to_the_registry() -> None:
    model_test = make_definition(name="model-test", variants=variants(
        ("control", 0.5, {}), ("challenger", 0.5, {"model": "challenger"})))
    assigner = Assigner(promoted=[PromotedExperiment(model_test, "challenger")])
    assert assigner.assign("homepage", "c1") is None


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_a_holdout_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="holdout_share"):
        Assigner(holdout_share=share)
