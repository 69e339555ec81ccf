"""The sample-ratio-mismatch check: are the units split across variants as configured?

Reads each variant's unit count and configured weight; writes nothing. A chi-square goodness
of fit (scipy) of the observed counts against total * weight; a p-value below
`DEFAULT_SRM_THRESHOLD` (0.001, strict because the check runs at every look and a mismatch
means broken assignment or logging, not a small effect) flags the experiment: its lifts are
not to be trusted until the cause is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tailor.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_SRM_THRESHOLD = 0.001
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SampleRatioCheck:
    p_value: float
    chi_square: float
    observed: dict[str, int]
    expected: dict[str, float]
    mismatch: bool
    threshold: float


def sample_ratio_mismatch(units: Mapping[str, int], weights: Mapping[str, float],
                          threshold: float = DEFAULT_SRM_THRESHOLD) -> SampleRatioCheck:
    """Chi-square test of the variants' unit counts against their configured weights.

    No units at all answers p = 1, no mismatch (nothing assigned yet).
    """
    from scipy import stats

    if set(units) != set(weights):
        raise InputError(f"units and weights: variants differ ({sorted(units)} against "
                         f"{sorted(weights)})")
    if len(weights) < 2:
        raise InputError("weights: need at least two variants")
    if any(weight <= 0 for weight in weights.values()) \
            or abs(sum(weights.values()) - 1) > WEIGHT_TOLERANCE:
        raise InputError(f"weights: must be > 0 and sum to 1, got {dict(weights)}")
    if any(count < 0 or int(count) != count for count in units.values()):
        raise InputError(f"units: must be whole numbers >= 0, got {dict(units)}")
    if not 0 < threshold < 1:
        raise InputError(f"threshold: must be between 0 and 1, got {threshold!r}")
    names = list(weights)
    total = sum(int(units[name]) for name in names)
    observed = {name: int(units[name]) for name in names}
    expected = {name: total * weights[name] for name in names}
    if total == 0:
        return SampleRatioCheck(1.0, 0.0, observed, expected, False, threshold)
    # The weights sum to 1 within the tolerance; rescale so scipy's equal-sum check holds.
    scale = total / sum(expected.values())
    result = stats.chisquare([observed[name] for name in names],
                             [expected[name] * scale for name in names])
    p_value = float(result.pvalue)
    return SampleRatioCheck(p_value, float(result.statistic), observed, expected,
                            p_value < threshold, threshold)
