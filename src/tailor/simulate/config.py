"""The simulator's settings: one frozen dataclass whose defaults describe a typical shop.

Reads and writes nothing; `ShopConfig.to_dict` is what `ground_truth/config.json` holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Any

from tailor.errors import InputError


@dataclass(frozen=True)
class ShopConfig:
    """Size, seed and behaviour knobs of a simulated shop.

    The defaults are the demo shop. Rates are calibrated so that about 2% of
    sessions end in an order and about 70% of carts are abandoned.

    Attributes:
        n_customers: customers in the base (existing and signing up during the window).
        n_products: products in the catalogue.
        n_days: simulated days starting at `start`.
        seed: the same seed (and settings) writes byte-identical events.
        fault_rate: share of event rows to corrupt, split evenly over the fault kinds.
        start: first simulated day, ISO date (UTC midnight).
        latent_dim: dimension of customer taste and product vectors.
        taste_strength: scale of customers' latent tastes: how personal (vs popular) their
            choices are; 1.0 gives collaborative filtering a clear edge over bestsellers.
        sessions_per_day: mean sessions per active customer and day (gamma distributed).
        daily_signup_rate: share of the customer base signing up per simulated day (new
            customers; at most half the base), the rest signed up before the window.
        weekly_churn_hazard: mean weekly probability that a customer drops out.
        slate_size: products on the homepage slate.
        promo_share: share of carts shown a random site-wide promotion (10% off or free
            shipping); randomised, so its effect on abandonment is unconfounded.
        email_weekday: weekday of the weekly e-mail campaign (0 = Monday).
        rows_per_group: event rows per Parquet row group (bounds memory).
        show_progress: rich progress bar on stderr; None decides from the shop's size.
        shift_at_day: the day (0-based) a seasonal shift in tastes and a catalogue turnover
            happens (`tailor.simulate.shift`); None for no shift.
    """

    n_customers: int = 2_000
    n_products: int = 300
    n_days: int = 60
    seed: int = 7
    fault_rate: float = 0.0
    start: str = "2026-01-05"
    latent_dim: int = 12
    taste_strength: float = 1.0
    sessions_per_day: float = 0.75
    daily_signup_rate: float = 0.0035
    weekly_churn_hazard: float = 0.015
    slate_size: int = 10
    promo_share: float = 0.05
    email_weekday: int = 1
    rows_per_group: int = 1_000_000
    show_progress: bool | None = None
    shift_at_day: int | None = None

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_products", "n_days", "latent_dim", "slate_size",
                     "rows_per_group"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name}: must be at least 1, got {getattr(self, name)!r}")
        _check_share("fault_rate", self.fault_rate, upper=0.5)
        _check_share("daily_signup_rate", self.daily_signup_rate)
        _check_share("weekly_churn_hazard", self.weekly_churn_hazard)
        _check_share("promo_share", self.promo_share)
        if not self.taste_strength >= 0:
            raise InputError(f"taste_strength: must be 0 or more, got {self.taste_strength!r}")
        if not self.sessions_per_day > 0:
            raise InputError(f"sessions_per_day: must be above 0, got {self.sessions_per_day!r}")
        if not 0 <= self.email_weekday <= 6:
            raise InputError(f"email_weekday: must be 0 (Monday) to 6, got {self.email_weekday!r}")
        if self.shift_at_day is not None and not 0 < int(self.shift_at_day) < self.n_days:
            raise InputError(f"shift_at_day: must be between 1 and n_days - 1 ({self.n_days - 1}),"
                             f" got {self.shift_at_day!r}")
        _ = self.start_date  # parsing it raises a clear error for a bad date

    @property
    def start_date(self) -> dt.date:
        """The first simulated day as a date."""
        try:
            return dt.date.fromisoformat(str(self.start))
        except ValueError:
            raise InputError(f"start: {self.start!r} is not an ISO date (YYYY-MM-DD)") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ShopConfig:
        """Settings from `to_dict` output; unknown keys are ignored (older files)."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def _check_share(name: str, value: float, upper: float = 1.0) -> None:
    """Raise InputError naming `name` unless 0 <= value <= upper."""
    if not 0.0 <= float(value) <= upper:
        raise InputError(f"{name}: must be between 0 and {upper}, got {value!r}")
