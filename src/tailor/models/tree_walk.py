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

The walk itself is the trees compiled into one Python expression of nested comparisons
(`_compiled`: 66 us instead of 302 us for the 1M-customer shop's 400 trees, 6 instead of 14
for the demo's), or, for trees too deep to compile, a loop over the node list; the check above
covers whichever is used.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, cast

import numpy as np

log = logging.getLogger(__name__)

PROBE_ROWS = 512
PROBE_SEED = 20261203
MISSING_SHARE = 0.2  # of the probe values, NaN (every default direction is taken)
COMPILED_DEPTH = 40  # deeper trees are walked node by node (Python's nesting limits)


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
        self._leaves = _compiled(self.trees, float(self.base_margin), features)

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
        """The margin of one row (`features` values, NaN = missing), as XGBoost computes it.

        Raises:
            ValueError: the row has another number of values than the trees read.
        """
        if len(row) != self.features:
            raise ValueError(f"a row of {len(row)} values: the trees read {self.features} "
                             "columns")
        if self._leaves is not None:
            return np.add.accumulate(np.array(self._leaves(row), dtype=np.float32))[-1]
        return self.walked_margin(row)

    def walked_margin(self, row: Sequence[float]) -> np.float32:
        """`margin` by walking the node list (the way for trees too deep to compile)."""
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


def _compiled(trees: Sequence[_Tree], base_margin: float, features: int
              ) -> Callable[[Sequence[float]], tuple[float, ...]] | None:
    """The trees as one Python expression: a row's base margin and the leaf each tree gives
    it, in tree order; None when a tree is deeper than `COMPILED_DEPTH` or has a value that is
    not a finite number (the node list is walked instead).

    Each split is one comparison of the row's value with the float32 threshold, written so
    that a missing value (NaN, false in every comparison) takes the node's default way:
    `value < threshold` picks left when the default is right, `value >= threshold` picks
    right when the default is left. Interpreted jumps instead of a loop over node tuples:
    about a sixth of the walk's CPU on the 1M-customer shop's 400 trees. The source holds
    only the model's integers and float literals (`repr`, which reads back exactly).
    """
    def source(tree: _Tree, node: int, depth: int) -> str:
        if depth > COMPILED_DEPTH:
            raise UnsupportedBooster(f"a tree deeper than {COMPILED_DEPTH}")
        value = tree.threshold[node]
        if not math.isfinite(value):
            raise UnsupportedBooster(f"the value {value!r}")
        if tree.left[node] < 0:
            return repr(value)
        feature = tree.feature[node]
        if not 0 <= feature < features:
            raise UnsupportedBooster(f"a split on column {feature}")
        left = source(tree, tree.left[node], depth + 1)
        right = source(tree, tree.right[node], depth + 1)
        if tree.default_left[node]:
            return f"({right} if x[{feature}] >= {value!r} else {left})"
        return f"({left} if x[{feature}] < {value!r} else {right})"

    try:
        leaves = ", ".join(source(tree, 0, 0) for tree in trees)
        function = eval(compile(f"lambda x: ({base_margin!r}, {leaves})", "<tree walk>",
                                "eval"), {"__builtins__": {}})
    except (UnsupportedBooster, RecursionError, MemoryError, SyntaxError) as reason:
        log.info("trees walked node by node: %s", reason)
        return None
    return cast(Callable[[Sequence[float]], tuple[float, ...]], function)


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
