"""Correction of p-values across the metrics (and variants) of one experiment.

Reads a {name: p-value} mapping; writes nothing. Holm's step-down method (family-wise error,
the default: a decision on the primary metric and guardrails should not be a fluke) or
Benjamini-Hochberg (false discovery rate, for exploring many secondary metrics), both
statsmodels' `multipletests`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tailor.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

METHODS = {"holm": "holm", "benjamini-hochberg": "fdr_bh"}
DEFAULT_METHOD = "holm"


def adjust_p_values(p_values: Mapping[str, float],
                    method: str = DEFAULT_METHOD) -> dict[str, float]:
    """The adjusted p-values, by name: compare each with alpha as it is."""
    from statsmodels.stats.multitest import multipletests

    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    for name, value in p_values.items():
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
            raise InputError(f"p_values[{name!r}]: must be a number in [0, 1], got {value!r}")
    if not p_values:
        return {}
    names = list(p_values)
    adjusted = multipletests([float(p_values[name]) for name in names],
                             method=METHODS[method])[1]
    return {name: float(value) for name, value in zip(names, adjusted)}
