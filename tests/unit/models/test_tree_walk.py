"""The trees walked in Python give XGBoost's margins to the bit, or are not used."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from tailor.models import tree_walk
from tailor.models.tree_walk import TreeWalker, UnsupportedBooster, _compiled

FEATURES = 9


def frame(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 rows with a fifth of the values missing, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    values[:, 3] = rng.integers(0, 4, rows)  # a column with ties at the thresholds
    labels = (values[:, 0] + 0.5 * values[:, 3] - values[:, 5] + rng.normal(size=rows) > 0.7)
    values[rng.random(values.shape) < 0.2] = np.nan
    return values, labels.astype(int)


def boosted(objective: str = "binary:logistic", rounds: int = 60, **params) -> xgb.Booster:
    values, labels = frame(3000, seed=1)
    if objective == "multi:softprob":
        labels = labels + (values[:, 1] > 0.5)
        params["num_class"] = 3
    if objective == "binary:logistic":
        params["base_score"] = 0.37
    return xgb.train({"objective": objective, "max_depth": 5, "eta": 0.1, "nthread": 1,
                      **params}, xgb.DMatrix(values, labels), rounds)


def test_the_walked_margins_are_xgboosts_to_the_bit() -> None:
    booster = boosted()
    walker = TreeWalker.build(booster, FEATURES)
    assert walker is not None
    values, _ = frame(5000, seed=2)
    values[:40] = walker.probe_rows(40)  # values on the thresholds and a hair either side
    expected = booster.inplace_predict(values, predict_type="margin")
    walked = walker.margins(values)
    assert walked.dtype == np.float32
    assert np.array_equal(walked.view(np.uint32), expected.view(np.uint32))
    # Not a constant: the rows take different paths through the trees.
    assert len(np.unique(walked)) > 500
    with pytest.raises(ValueError, match="the trees read 9 columns"):
        walker.margins(values[:, :-1])  # a row a column short, as XGBoost refuses it
    with pytest.raises(ValueError, match="a row of 8 values: the trees read 9 columns"):
        walker.margin(values[0, :-1].tolist())


def test_a_margin_that_differs_fails_the_check() -> None:
    booster = boosted()
    walker = TreeWalker.from_booster(booster, FEATURES)
    walker.check(booster)
    assert walker._leaves is not None  # compiled
    nudged = float(np.nextafter(np.float32(walker.trees[0].threshold[0]), np.float32(np.inf)))
    walker.trees[0].threshold[0] = nudged  # the first root split a hair off
    walker._leaves = _compiled(walker.trees, float(walker.base_margin), FEATURES)
    with pytest.raises(UnsupportedBooster, match="probe row"):
        walker.check(booster)
    walker._leaves = None  # the node list, with the same split off
    root = walker._nodes[walker._roots[0]]
    walker._nodes[walker._roots[0]] = (root[0], nudged, *root[2:])
    with pytest.raises(UnsupportedBooster, match="probe row"):
        walker.check(booster)


def test_deep_trees_compiled_or_walked_node_by_node_give_the_same_bits(monkeypatch) -> None:
    booster = boosted(rounds=40, max_depth=12)
    values, _ = frame(3000, seed=3)
    expected = booster.inplace_predict(values, predict_type="margin").view(np.uint32)
    compiled = TreeWalker.build(booster, FEATURES)
    assert compiled is not None and compiled._leaves is not None
    assert np.array_equal(compiled.margins(values).view(np.uint32), expected)
    monkeypatch.setattr(tree_walk, "COMPILED_DEPTH", 6)  # shallower than these trees
    walked = TreeWalker.build(booster, FEATURES)
    assert walked is not None and walked._leaves is None
    assert np.array_equal(walked.margins(values).view(np.uint32), expected)


def test_trees_it_cannot_reproduce_are_left_to_xgboost() -> None:
    assert TreeWalker.build(boosted("multi:softprob", rounds=5), FEATURES) is None
    assert TreeWalker.build(boosted("reg:squarederror", rounds=5), FEATURES) is None
    assert TreeWalker.build(boosted(rounds=5), FEATURES - 4) is None  # splits past the row
    assert TreeWalker.build(boosted(rounds=5), FEATURES) is not None
