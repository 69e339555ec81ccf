"""A synthetic shop with known ground truth, for the demo, the tests and closed-loop experiments."""

from tailor.simulate.closed_loop import load_shop_state, run_closed_loop
from tailor.simulate.config import ShopConfig
from tailor.simulate.policies import (
    PopularityPolicy,
    RandomPolicy,
    ShopperPolicy,
    TrueAffinityPolicy,
    true_affinity_scores,
)
from tailor.simulate.shop import SimulationSummary, simulate_shop
from tailor.simulate.world import ShopState, build_shop_state

__all__ = [
    "PopularityPolicy", "RandomPolicy", "ShopConfig", "ShopState", "ShopperPolicy",
    "SimulationSummary", "TrueAffinityPolicy", "build_shop_state", "load_shop_state",
    "run_closed_loop", "simulate_shop", "true_affinity_scores",
]
