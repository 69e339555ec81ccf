"""Per-variant sufficient statistics of one metric: the sums every test in
`tailor.experiments.statistics` needs, computed once over the unit-level data.

Reads: per-unit arrays (one row per assignment unit: its variant, its metric value, for a
ratio metric its denominator, for CUPED its pre-period value of the same metric). Writes
nothing. Sums add up, so a day's sums can be added to the previous days' (the sequential
test's looks) without keeping the units.

Sums are float64. The variance is taken as `(sum_squares - sum**2 / n) / (n - 1)`; for the
metrics of a shop (conversion, revenue per visitor, orders) the mean is within a few
standard deviations of zero, far from where this form loses digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tailor.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class VariantSums:
    """One variant's sums of one metric over its units.

    `total` and `squares` are the sums of the unit values y and y**2. A ratio metric
    (revenue / orders per unit) adds its denominator d: `denominator` (sum d),
    `denominator_squares` (sum d**2) and `cross` (sum y*d). CUPED adds the unit's pre-period
    value x of the same metric: `covariate` (sum x), `covariate_squares` (sum x**2) and
    `covariate_cross` (sum x*y).
    """

    variant: str
    units: int
    total: float
    squares: float
    denominator: float | None = None
    denominator_squares: float | None = None
    cross: float | None = None
    covariate: float | None = None
    covariate_squares: float | None = None
    covariate_cross: float | None = None

    def __post_init__(self) -> None:
        where = f"variant {self.variant!r}"
        if not isinstance(self.units, (int, np.integer)) or self.units < 0:
            raise InputError(f"{where}: units must be a whole number >= 0, got {self.units!r}")
        for name in ("total", "squares", "denominator", "denominator_squares", "cross",
                     "covariate", "covariate_squares", "covariate_cross"):
            value = getattr(self, name)
            if value is not None and not np.isfinite(value):
                raise InputError(f"{where}: {name} must be a finite number, got {value!r}")
        if self.squares < 0 or (self.denominator_squares or 0) < 0 \
                or (self.covariate_squares or 0) < 0:
            raise InputError(f"{where}: a sum of squares is negative")
        ratio_parts = (self.denominator, self.denominator_squares, self.cross)
        if any(part is None for part in ratio_parts) and any(p is not None for p in ratio_parts):
            raise InputError(f"{where}: a ratio metric needs denominator, denominator_squares "
                             "and cross together")
        cuped_parts = (self.covariate, self.covariate_squares, self.covariate_cross)
        if any(part is None for part in cuped_parts) and any(p is not None for p in cuped_parts):
            raise InputError(f"{where}: CUPED needs covariate, covariate_squares and "
                             "covariate_cross together")

    @property
    def is_ratio(self) -> bool:
        return self.denominator is not None

    @property
    def has_covariate(self) -> bool:
        return self.covariate is not None

    @classmethod
    def proportion(cls, variant: str, units: int, conversions: int) -> VariantSums:
        """A proportion metric from its counts: `conversions` of `units` units converted."""
        if not 0 <= conversions <= units:
            raise InputError(f"variant {variant!r}: conversions must be between 0 and units "
                             f"({units}), got {conversions}")
        return cls(variant, int(units), float(conversions), float(conversions))

    @classmethod
    def from_values(cls, variant: str, values: Any, *, denominators: Any = None,
                    covariates: Any = None) -> VariantSums:
        """One variant's sums from its per-unit arrays (all of one length)."""
        labels = np.zeros(len(_column(values, "values")), dtype=np.int64)
        return _sums_by_code(labels, [variant], values, denominators, covariates)[variant]

    def __add__(self, other: VariantSums) -> VariantSums:
        """The sums of two disjoint sets of units of one variant (two days, two shards)."""
        if other.variant != self.variant or other.is_ratio != self.is_ratio \
                or other.has_covariate != self.has_covariate:
            raise InputError(f"cannot add the sums of {other.variant!r} to those of "
                             f"{self.variant!r}: different variants or metric shapes")
        added = {name: (None if getattr(self, name) is None
                        else getattr(self, name) + getattr(other, name))
                 for name in ("total", "squares", "denominator", "denominator_squares", "cross",
                              "covariate", "covariate_squares", "covariate_cross")}
        return VariantSums(self.variant, self.units + other.units, **added)


def unit_sums(variants: Any, values: Any, *, denominators: Any = None, covariates: Any = None,
              variant_names: Any = None) -> dict[str, VariantSums]:
    """Each variant's sums from unit-level arrays, one pass per sum (no loop over units).

    Args:
        variants: each unit's variant (strings, a pandas Categorical or Series).
        values: each unit's metric value (1/0 for a proportion).
        denominators: each unit's denominator, for a ratio metric (orders for AOV).
        covariates: each unit's pre-period value of the metric, for CUPED.
        variant_names: variants to report even with no units (the definition's variants).

    Returns:
        {variant name: VariantSums}, in the order of `variant_names`, else sorted.
    """
    import pandas as pd

    if getattr(variants, "ndim", 1) != 1:
        raise InputError(f"variants: expected a 1-D array, got shape {variants.shape}")
    categorical = variants.array if isinstance(variants, pd.Series) else variants
    if isinstance(categorical, pd.Categorical):   # its codes are the factorisation already
        codes, labels = np.asarray(categorical.codes, dtype=np.int64), categorical.categories
    else:
        codes, labels = pd.factorize(variants, sort=True)
    if (codes < 0).any():
        raise InputError(f"variants: {int((codes < 0).sum())} units have no variant")
    names = [str(label) for label in labels]
    if variant_names is not None:
        wanted = [str(name) for name in variant_names]
        unknown = sorted(set(names) - set(wanted))
        if unknown:
            raise InputError(f"variants: units in variants not in the definition: {unknown}")
        position = {name: index for index, name in enumerate(wanted)}
        codes = np.asarray([position[name] for name in names], dtype=np.int64)[codes]
        names = wanted
    return _sums_by_code(codes, names, values, denominators, covariates)


def _sums_by_code(codes: np.ndarray, names: list[str], values: Any, denominators: Any,
                  covariates: Any) -> dict[str, VariantSums]:
    length = len(codes)
    y = _column(values, "values", length)
    count = len(names)
    units = np.bincount(codes, minlength=count)

    def by_variant(weights: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=count)

    sums: dict[str, np.ndarray | None] = {"total": by_variant(y), "squares": by_variant(y * y)}
    for name in ("denominator", "denominator_squares", "cross", "covariate",
                 "covariate_squares", "covariate_cross"):
        sums[name] = None
    if denominators is not None:
        d = _column(denominators, "denominators", length)
        if (d < 0).any():
            raise InputError("denominators: a unit's denominator is negative")
        sums.update(denominator=by_variant(d), denominator_squares=by_variant(d * d),
                    cross=by_variant(y * d))
    if covariates is not None:
        x = _column(covariates, "covariates", length)
        sums.update(covariate=by_variant(x), covariate_squares=by_variant(x * x),
                    covariate_cross=by_variant(x * y))
    return {name: VariantSums(name, int(units[index]),
                              **{key: (None if column is None else float(column[index]))
                                 for key, column in sums.items()})
            for index, name in enumerate(names)}


def _column(data: Any, field: str, length: int | None = None) -> np.ndarray:
    """A 1-D array of `data`, checked: the expected length, numbers, no missing values."""
    array = np.asarray(data)
    if array.ndim != 1:
        raise InputError(f"{field}: expected a 1-D array, got shape {array.shape}")
    if length is not None and len(array) != length:
        raise InputError(f"{field}: {len(array)} values for {length} units (lengths differ)")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{field}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    missing = int(np.count_nonzero(~np.isfinite(array)))
    if missing:
        raise InputError(f"{field}: {missing} values are missing or infinite")
    return array


def check_variants(sums: Mapping[str, VariantSums], control: str) -> None:
    """`control` among the variants, at least one other, every variant's sums of one shape."""
    if control not in sums:
        raise InputError(f"control: {control!r} is not among the variants {sorted(sums)}")
    if len(sums) < 2:
        raise InputError("variants: need a control and at least one other variant")
    shapes = {(s.is_ratio, s.has_covariate) for s in sums.values()}
    if len(shapes) > 1:
        raise InputError("variants: the variants' sums differ in shape (ratio or covariate "
                         "sums present for some variants only)")
