"""An XGBoost booster's trees walked in Python for one row at a time: the margin XGBoost computes.

Reads a fitted `xgboost.Booster` (its JSON model) once; writes nothing.

For a single row, `Booster.inplace_predict` spends most of its time around the trees (the
array interface, the C call, the output buffer): about 0.1 ms for the checkout model's 62
trees of depth 4, where walking those trees in Python takes a few tens of microseconds.
`TreeWalker` does that walk the way XGBoost's CPU predictor does: a missing value (NaN) goes
the node's default way, any other value left when it is below the split's threshold (both
float32), and the margin is the base margin plus each tree's leaf, summed in float32 in tree
order. So its margins are XGBoost's to the bit; `TreeWalker.build` checks that on probe rows
and returns None (callers keep `inplace_predict`) for any booster it cannot reproduce:
categorical splits, several targets or classes, boosters other than gbtree, or a probe
whose margin differs.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

PROBE_ROWS = 512
PROBE_SEED = 20261203
MISSING_SHARE = 0.2  # of the probe values, NaN (every default direction is taken)


class UnsupportedBooster(ValueError):
    """The booster has something `TreeWalker` does not reproduce; the message says what."""


@dataclass(frozen=True)
class _Tree:
    """One tree as flat lists (node 0 is the root; a leaf's `left` is -1, its value in
    `threshold`)."""

    left: list[int]
    right: list[int]
    feature: list[int]
    threshold: list[float]
    default_left: list[bool]


class TreeWalker:
    """The margin of single rows, tree by tree in Python.

    Args:
        trees: the booster's trees in boosting order.
        base_margin: the booster's base score as a margin (float32).
        features: how many columns a row has.
    """

    def __init__(self, trees: Sequence[_Tree], base_margin: np.float32, features: int) -> None:
        self.trees = list(trees)
        self.base_margin = np.float32(base_margin)
        self.features = features
        # Every tree's nodes in one list of (feature, threshold, left, right, default child),
        # children as positions in it; a leaf has feature -1 and its value as threshold.
        self._nodes: list[tuple[int, float, int, int, int]] = []
        self._roots: list[int] = []
        for tree in self.trees:
            start = len(self._nodes)
            self._roots.append(start)
            for node, left in enumerate(tree.left):
                if left < 0:
                    self._nodes.append((-1, tree.threshold[node], -1, -1, -1))
                    continue
                right = tree.right[node]
                self._nodes.append((tree.feature[node], tree.threshold[node], start + left,
                                    start + right,
                                    start + (left if tree.default_left[node] else right)))

    @classmethod
    def build(cls, booster: Any, features: int) -> TreeWalker | None:
        """A walker for `booster`, checked against its own margins; None when it cannot be
        reproduced (the reason is logged)."""
        try:
            walker = cls.from_booster(booster, features)
            walker.check(booster)
        except UnsupportedBooster as reason:
            log.info("tree walk off, XGBoost predicts: %s", reason)
            return None
        return walker

    @classmethod
    def from_booster(cls, booster: Any, features: int) -> TreeWalker:
        """The walker of a gbtree binary booster with numerical splits.

        Raises:
            UnsupportedBooster: another objective, booster, categorical splits, several
                targets, or a tree reading a column past `features`.
        """
        learner = json.loads(booster.save_raw("json"))["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise UnsupportedBooster(f"objective {objective}")
        booster_kind = learner["gradient_booster"]["name"]
        if booster_kind != "gbtree":
            raise UnsupportedBooster(f"booster {booster_kind}")
        model = learner["gradient_booster"]["model"]
        if any(int(group) != 0 for group in model.get("tree_info", [])):
            raise UnsupportedBooster("more than one output group")
        trees = [_tree(tree, features) for tree in model["trees"]]
        return cls(trees, _base_margin(learner["learner_model_param"]["base_score"]), features)

    def margin(self, row: Sequence[float]) -> np.float32:
        """The margin of one row (`features` values, NaN = missing), as XGBoost computes it."""
        nodes = self._nodes
        leaves: list[float] = [float(self.base_margin)]  # exact: float32 in a float
        for root in self._roots:
            feature, threshold, below, above, missing = nodes[root]
            while feature >= 0:
                value = row[feature]
                # NaN (value != value) goes the default way
                node = (below if value < threshold else above) if value == value else missing
                feature, threshold, below, above, missing = nodes[node]
            leaves.append(threshold)
        # float32, in tree order: accumulate adds one after another (a sum may pair them up)
        return np.add.accumulate(np.array(leaves, dtype=np.float32))[-1]

    def margins(self, values: np.ndarray) -> np.ndarray:
        """The margin of each row of a float32 matrix.

        Raises:
            ValueError: the rows have another number of columns than the trees read (as
                XGBoost refuses them).
        """
        if values.ndim != 2 or values.shape[1] != self.features:
            raise ValueError(f"rows of shape {values.shape}: the trees read {self.features} "
                             "columns")
        return np.array([self.margin(row.tolist()) for row in values], dtype=np.float32)

    def check(self, booster: Any, rows: int = PROBE_ROWS) -> None:
        """Compare the walk with `booster.inplace_predict` on probe rows (every threshold
        from both sides and missing values).

        Raises:
            UnsupportedBooster: a probe row's margin differs (the first one is named).
        """
        probes = self.probe_rows(rows)
        expected = np.asarray(booster.inplace_predict(probes, predict_type="margin"),
                              dtype=np.float32).reshape(-1)
        walked = self.margins(probes)
        different = np.flatnonzero(walked.view(np.uint32) != expected.view(np.uint32))
        if len(different):
            first = int(different[0])
            raise UnsupportedBooster(f"probe row {first}: margin {walked[first]!r} walked, "
                                     f"{expected[first]!r} from XGBoost "
                                     f"({len(different)} of {rows} differ)")

    def probe_rows(self, rows: int) -> np.ndarray:
        """Rows whose values are the trees' thresholds (each column's own), a hair either
        side of them, and NaN."""
        random = np.random.default_rng(PROBE_SEED)
        by_feature: list[list[float]] = [[0.0] for _ in range(self.features)]
        for tree in self.trees:
            for node, feature in enumerate(tree.feature):
                if tree.left[node] >= 0:
                    by_feature[feature].append(tree.threshold[node])
        probes = np.empty((rows, self.features), dtype=np.float32)
        for column, thresholds in enumerate(by_feature):
            picked = np.asarray(thresholds, dtype=np.float32)[
                random.integers(0, len(thresholds), rows)]
            nudged = np.nextafter(picked, np.where(random.random(rows) < 0.5, -np.inf, np.inf)
                                  .astype(np.float32))
            probes[:, column] = np.where(random.random(rows) < 0.5, picked, nudged)
        probes[random.random(probes.shape) < MISSING_SHARE] = np.nan
        return probes


def _tree(tree: dict[str, Any], features: int) -> _Tree:
    """One tree of the JSON model as flat lists."""
    if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
        raise UnsupportedBooster("vector leaves")
    if any(int(kind) != 0 for kind in tree.get("split_type", [])):
        raise UnsupportedBooster("categorical splits")
    left = [int(child) for child in tree["left_children"]]
    feature = [int(index) for index in tree["split_indices"]]
    if any(feature[node] >= features for node in range(len(left)) if left[node] >= 0):
        raise UnsupportedBooster(f"a split on a column past the row's {features}")
    return _Tree(left, [int(child) for child in tree["right_children"]], feature,
                 [float(np.float32(value)) for value in tree["split_conditions"]],
                 [bool(flag) for flag in tree["default_left"]])


def _base_margin(base_score: Any) -> np.float32:
    """The logistic margin of the stored base score, in float32 as XGBoost computes it.

    Raises:
        UnsupportedBooster: more than one base score.
    """
    scores = json.loads(base_score) if isinstance(base_score, str) and \
        base_score.startswith("[") else [base_score]
    if len(scores) != 1:
        raise UnsupportedBooster(f"{len(scores)} base scores")
    probability = np.float32(float(scores[0]))
    one = np.float32(1.0)
    return np.float32(-np.float32(math.log(np.float32(one / probability - one))))
