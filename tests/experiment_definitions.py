"""Experiment definitions for tests: a valid one as a dict, changed field by field.

Importable from every test folder (pytest puts `tests/` on `sys.path`). Reads and writes
nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from tailor.experiments.definition import Definition, parse_definition

BASE: dict[str, Any] = {
    "name": "layout-test",
    "hypothesis": "A carousel draws more clicks than the grid.",
    "owner": "tests",
    "surface": "homepage",
    "layer": "homepage",
    "traffic": 1.0,
    "variants": [
        {"name": "control", "weight": 0.5, "changes": {}},
        {"name": "carousel", "weight": 0.5, "changes": {"layout": "carousel"}},
    ],
    "metrics": {"primary": "click_through", "secondary": ["conversion"]},
    "guardrails": [{"metric": "fallback_rate", "max_increase": 0.02}],
    "minimum_sample": 100,
    "max_duration_days": 14,
}


def definition_data(**overrides: Any) -> dict[str, Any]:
    """`BASE` with top-level keys replaced (a deep copy: change it freely)."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(overrides))
    return data


def make_definition(**overrides: Any) -> Definition:
    """A checked `Definition` of `definition_data(**overrides)`."""
    return parse_definition(definition_data(**overrides), "test")


def variants(*specs: tuple[str, float, dict[str, Any]]) -> list[dict[str, Any]]:
    """`variants` entries from (name, weight, changes) triples."""
    return [{"name": name, "weight": weight, "changes": changes}
            for name, weight, changes in specs]
