"""Who is in which experiment and variant: a deterministic hash of a stable id, no I/O.

Reads and writes nothing: an `Assigner` is built from the experiments that run (and those
promoted), as `tailor.experiments.state` records them, and answers from memory.

The rule (the experiments contract):

- the unit is a stable id of the visitor (`assignment_unit`: the browser's first anonymous
  id when the request carries it, else the customer id);
- `bucket(salt, unit)`: the first 8 bytes of sha256("<salt>:<unit>") read as a big-endian
  integer, divided by 2**64: a number in [0, 1), the same in every process and on every
  machine, so a unit keeps its variant across requests, sessions and server restarts;
- the global holdout: units with `bucket("tailor-holdout", unit) < experiments.holdout_share`
  are in no experiment and get the plain defaults (not even promoted winners: they measure
  what the experiments' launches added up to);
- layers: `bucket("layer:<layer>", unit)` falls in at most one running experiment's slice of
  the layer ([slice_start, slice_start + traffic), fixed when it started), so experiments of
  one layer never share a unit; a unit outside every slice is in none of them;
- variant: `bucket(<experiment salt>, unit)` against the cumulative weights, in the
  definition's order. The layer's and the experiment's salts differ, so the variants split
  an experiment's slice in proportion to their weights.

A promoted experiment assigns nobody; its winner's changes (all but `model`: the promotion
moves the registry alias instead) become the default of its surface for every unit outside
the holdout, and the base of every later variant there.

`assign` costs a few microseconds: up to three sha256 digests of a short string and a
bisection over precomputed integer thresholds; its answers are objects built once.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Sequence

from tailor.experiments.definition import Changes, Definition

HOLDOUT_SALT = "tailor-holdout"
LAYER_SALT = "layer:{layer}"
_SCALE = 2 ** 64
_NO_CHANGES = Changes()


def bucket(salt: str, unit_id: str) -> float:
    """The unit's place in [0, 1) under `salt` (see the module docstring)."""
    return _point(_prefix(salt), unit_id.encode("utf-8")) / _SCALE


def _prefix(salt: str) -> bytes:
    return f"{salt}:".encode("utf-8")


def _point(prefix: bytes, unit: bytes) -> int:
    """The bucket as an integer in [0, 2**64)."""
    return int.from_bytes(hashlib.sha256(prefix + unit).digest()[:8], "big")


def _scaled(share: float) -> int:
    return min(_SCALE, max(0, round(share * _SCALE)))


def assignment_unit(customer_id: str | None, anonymous_id: str | None = None) -> str | None:
    """The id a request is assigned by: the browser's anonymous id when given, else the
    customer id (None: nothing stable to assign by).

    tailor.js keeps its first anonymous id after `identify()` (until `reset()` at logout), so
    a shop that sends it with each request (`context.anonymous_id`) keeps a visitor's
    variant across the anonymous -> customer switch; one that does not sends the customer id
    alone, which keeps it across devices once logged in but not across the switch.
    """
    return anonymous_id or customer_id or None


@dataclass(frozen=True)
class Assignment:
    """What one unit gets on one surface.

    Attributes:
        experiment: the running experiment it is in; None when only promoted changes apply.
        variant: its variant there (None with `experiment`).
        changes: the changes to serve (promoted defaults, then the variant's own).
    """

    experiment: str | None
    variant: str | None
    changes: Changes


@dataclass(frozen=True)
class _Experiment:
    """One running experiment, precomputed: its salt and variant thresholds."""

    name: str
    prefix: bytes
    thresholds: tuple[int, ...]  # cumulative weights x 2**64; the last is 2**64
    assignments: tuple[Assignment, ...]

    def variant_of(self, unit: bytes) -> Assignment:
        index = bisect_right(self.thresholds, _point(self.prefix, unit))
        return self.assignments[min(index, len(self.assignments) - 1)]


@dataclass(frozen=True)
class _Layer:
    """The slices of one layer held by the running experiments of one surface."""

    prefix: bytes
    slices: tuple[tuple[int, int, _Experiment], ...]  # [low, high) x 2**64


@dataclass(frozen=True)
class _Surface:
    layers: tuple[_Layer, ...]
    default: Assignment | None  # the promoted changes, for units in no experiment


@dataclass(frozen=True)
class RunningExperiment:
    """A running experiment as the assigner needs it."""

    definition: Definition
    slice_start: float


@dataclass(frozen=True)
class PromotedExperiment:
    """A promoted experiment and its winner (later ones override earlier ones)."""

    definition: Definition
    winner: str


class Assigner:
    """Answers `assign(surface, unit_id)` for a fixed set of experiments.

    Args:
        running: the running experiments with their slices.
        holdout_share: `experiments.holdout_share`, the share of units in no experiment.
        promoted: promoted experiments, oldest first: their winners' changes are defaults.
    """

    def __init__(self, running: Sequence[RunningExperiment] = (), holdout_share: float = 0.0,
                 promoted: Sequence[PromotedExperiment] = ()) -> None:
        if not 0.0 <= holdout_share < 1.0:
            raise ValueError(f"holdout_share: must be in [0, 1), got {holdout_share}")
        self.holdout_share = holdout_share
        self.running = tuple(item.definition.name for item in running)
        self._holdout = _scaled(holdout_share)
        self._holdout_prefix = _prefix(HOLDOUT_SALT)
        defaults = _promoted_defaults(promoted)
        surfaces = {item.definition.surface for item in running} | set(defaults)
        self._surfaces = {surface: _compiled_surface(
            [item for item in running if item.definition.surface == surface],
            defaults.get(surface)) for surface in surfaces}

    def assign(self, surface: str, unit_id: str | None) -> Assignment | None:
        """The unit's experiment, variant and changes on `surface`; None when it gets the
        plain defaults (no unit, no experiment there, the holdout, outside every slice and
        nothing promoted)."""
        route = self._surfaces.get(surface)
        if route is None or not unit_id:
            return None
        unit = unit_id.encode("utf-8")
        if self._holdout and _point(self._holdout_prefix, unit) < self._holdout:
            return None
        for layer in route.layers:
            point = _point(layer.prefix, unit)
            for low, high, experiment in layer.slices:
                if low <= point < high:
                    return experiment.variant_of(unit)
        return route.default

    def in_holdout(self, unit_id: str) -> bool:
        """Whether the unit is in the global holdout."""
        return bool(self._holdout) and \
            _point(self._holdout_prefix, unit_id.encode("utf-8")) < self._holdout

    def surfaces(self) -> list[str]:
        """The surfaces with a running or promoted experiment."""
        return sorted(self._surfaces)


def _promoted_defaults(promoted: Iterable[PromotedExperiment]) -> dict[str, Changes]:
    """Per surface, the winners' changes merged in promotion order (no `model`)."""
    merged: dict[str, dict] = {}
    for item in promoted:
        changes = item.definition.variant(item.winner).changes.set()
        changes.pop("model", None)
        merged.setdefault(item.definition.surface, {}).update(changes)
    return {surface: Changes(**changes) for surface, changes in merged.items() if changes}


def _compiled_surface(running: Sequence[RunningExperiment], default: Changes | None
                      ) -> _Surface:
    layers: dict[str, list[tuple[int, int, _Experiment]]] = {}
    for item in running:
        definition = item.definition
        low = _scaled(item.slice_start)
        high = _scaled(item.slice_start + definition.traffic)
        layers.setdefault(definition.layer, []).append(
            (low, high, _compiled_experiment(definition, default)))
    return _Surface(
        layers=tuple(_Layer(_prefix(LAYER_SALT.format(layer=layer)), tuple(sorted(slices)))
                     for layer, slices in layers.items()),
        default=Assignment(None, None, default) if default is not None else None)


def _compiled_experiment(definition: Definition, default: Changes | None) -> _Experiment:
    total = sum(variant.weight for variant in definition.variants)
    thresholds, cumulative = [], 0.0
    for variant in definition.variants:
        cumulative += variant.weight
        thresholds.append(_scaled(cumulative / total))
    thresholds[-1] = _SCALE
    base = default.set() if default is not None else {}
    assignments = tuple(
        Assignment(definition.name, variant.name,
                   Changes(**{**base, **variant.changes.set()}) if base or variant.changes.set()
                   else _NO_CHANGES)
        for variant in definition.variants)
    return _Experiment(definition.name, _prefix(definition.salt), tuple(thresholds),
                       assignments)
