"""How many serving pods the brief's shop needs, normally and in a tenfold surge.

Reads and writes nothing: arithmetic on the figures below, each with where it comes from.
The Kubernetes HorizontalPodAutoscaler (`tailor.deploy.kubernetes`) takes its bounds from
`size_serving`, `tailor deploy sizing` prints the computation, and README.md's deployment
section shows it for the defaults (a test keeps the three equal).

The computation, in requests a second of `/homepage` cost (the measured endpoint):
  mean load      = events a day / 86,400 x (model calls + collector posts x their cost) per event
  normal peak    = mean x peak-to-mean ratio (the busiest hour of a normal day)
  surge          = normal peak x surge factor (the brief: 10x on Black Friday)
  per pod        = measured requests/s per worker x workers per pod x the HPA's CPU target
  minReplicas    = normal peak / per pod, rounded up, at least 2 (a rollout or a lost node
                   never leaves one pod carrying everything)
  maxReplicas    = surge / per pod, rounded up
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# docs/benchmarks.md, "Serving capacity (issue 16)": a /homepage request costs 2.8-3.0 ms of
# server CPU on the demo and the 1M-customer shop (333-357 requests/s per core flat out), and
# two workers held 300 requests/s at p99 <= 50 ms sharing their two cores with the load
# generator; 300 per worker flat out, the HPA's 60% CPU target on top.
REQUESTS_PER_WORKER = 300.0
EVENTS_PER_DAY = 10_000_000  # the brief's shop: ~10M events a day from 5M monthly customers
# Share of events that ask the API for an answer, in the simulated shop's mix: page views
# (homepage, 43%), product views (also bought, 42%) and checkout starts (offer, 2%). Also
# bought and checkout offers cost less than a homepage list; they are counted as one.
MODEL_CALLS_PER_EVENT = 0.87
# The tracker (tailor.js) sends its queue when a page goes away, in batches of at most 10:
# about one post per page, and 86% of events are pages.
COLLECTOR_POSTS_PER_EVENT = 0.86
# A post of a few events costs about what the trivial endpoint does (1.5-1.8 ms of server CPU
# against 2.7-3.0 ms for /homepage, docs/benchmarks.md): half a homepage request.
COLLECTOR_POST_COST = 0.5
# Assumed, not measured: the busiest hour of a normal day carries an eighth of the day's
# traffic (evening shopping), three times the mean. Set it from the shop's own traffic.
PEAK_TO_MEAN = 3.0
SURGE = 10.0  # the brief: "handle traffic spikes (10x surge on Black Friday)"
WORKERS_PER_POD = 2  # serving.workers; one CPU core requested per worker
TARGET_CPU_UTILIZATION = 0.6  # the HPA's target: 40% headroom while new pods start
MIN_REPLICAS_FLOOR = 2


@dataclass(frozen=True)
class SizingInputs:
    """The figures the sizing starts from (defaults: the module's constants)."""

    requests_per_worker: float = REQUESTS_PER_WORKER
    events_per_day: float = EVENTS_PER_DAY
    model_calls_per_event: float = MODEL_CALLS_PER_EVENT
    collector_posts_per_event: float = COLLECTOR_POSTS_PER_EVENT
    collector_post_cost: float = COLLECTOR_POST_COST
    peak_to_mean: float = PEAK_TO_MEAN
    surge: float = SURGE
    workers_per_pod: int = WORKERS_PER_POD
    target_cpu_utilization: float = TARGET_CPU_UTILIZATION


@dataclass(frozen=True)
class Sizing:
    """The sizing's steps (requests/s of /homepage cost) and the HPA bounds they give."""

    inputs: SizingInputs
    mean_rps: float
    normal_peak_rps: float
    surge_rps: float
    pod_capacity_rps: float  # a pod flat out (p99 <= 100 ms)
    pod_planned_rps: float  # a pod at the HPA's CPU target
    min_replicas: int
    max_replicas: int

    @property
    def cores_at_max(self) -> int:
        """CPU cores requested by the serving pods at maxReplicas."""
        return self.max_replicas * self.inputs.workers_per_pod

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cores_at_max": self.cores_at_max}


def size_serving(inputs: SizingInputs = SizingInputs()) -> Sizing:
    """The HPA bounds for `inputs` (see the module's docstring for the computation).

    Raises:
        ValueError: a figure is not positive, or the CPU target is above 1.
    """
    for name, value in asdict(inputs).items():
        if value <= 0:
            raise ValueError(f"sizing: {name} must be positive, got {value}")
    if inputs.target_cpu_utilization > 1:
        raise ValueError("sizing: target_cpu_utilization is a share of a core, at most 1")
    per_event = (inputs.model_calls_per_event
                 + inputs.collector_posts_per_event * inputs.collector_post_cost)
    mean = inputs.events_per_day / 86_400 * per_event
    peak = mean * inputs.peak_to_mean
    surge = peak * inputs.surge
    capacity = inputs.requests_per_worker * inputs.workers_per_pod
    planned = capacity * inputs.target_cpu_utilization
    return Sizing(inputs, mean, peak, surge, capacity, planned,
                  max(MIN_REPLICAS_FLOOR, math.ceil(peak / planned)),
                  max(MIN_REPLICAS_FLOOR, math.ceil(surge / planned)))


def sizing_lines(sizing: Sizing) -> list[str]:
    """The computation as text, one step a line (for `tailor deploy sizing` and README)."""
    given = sizing.inputs
    per_event = given.model_calls_per_event + given.collector_posts_per_event \
        * given.collector_post_cost
    return [
        (f"mean load: {given.events_per_day:,.0f} events/day / 86,400 x {per_event:.3f} "
         f"requests/event ({given.model_calls_per_event} model calls + "
         f"{given.collector_posts_per_event} collector posts x {given.collector_post_cost}) "
         f"= {sizing.mean_rps:,.1f} requests/s"),
        f"normal peak: x {given.peak_to_mean:g} = {sizing.normal_peak_rps:,.1f} requests/s",
        f"surge: x {given.surge:g} = {sizing.surge_rps:,.1f} requests/s",
        (f"per pod: {given.requests_per_worker:g} requests/s per worker x "
         f"{given.workers_per_pod} workers = {sizing.pod_capacity_rps:g} flat out, "
         f"{sizing.pod_planned_rps:g} at the {given.target_cpu_utilization:.0%} CPU target"),
        (f"minReplicas: {sizing.normal_peak_rps:,.1f} / {sizing.pod_planned_rps:g} -> "
         f"{sizing.min_replicas} (at least {MIN_REPLICAS_FLOOR})"),
        (f"maxReplicas: {sizing.surge_rps:,.1f} / {sizing.pod_planned_rps:g} -> "
         f"{sizing.max_replicas} ({sizing.cores_at_max} cores requested at the top)"),
    ]
