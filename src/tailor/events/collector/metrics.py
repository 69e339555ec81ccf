"""The collector's counts: Prometheus metrics of one app, and the window of batches that
becomes one `ingest_runs` row.

Reads the results of committed batches; writes nothing itself (the writer records each
window's `IngestRun` in the event store).
"""

from __future__ import annotations

import os
import secrets
from collections import Counter as Tally
from dataclasses import dataclass, field

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tailor.events.collector.batches import BatchResult
from tailor.events.frames import utc_now
from tailor.events.schema import REJECT_REASONS
from tailor.events.store import IngestRun

DEAD_LETTER_SOURCE = "collector"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class CollectorMetrics:
    """Prometheus counters of one collector app, in its own registry (not the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("tailor_collector_events_accepted",
                                "Events stored (new event ids).", registry=self.registry)
        self.duplicates = Counter("tailor_collector_events_duplicate",
                                  "Valid events whose event_id was already stored.",
                                  registry=self.registry)
        self.rejected = Counter("tailor_collector_events_rejected",
                                "Events refused by the data contract, by reason.", ["reason"],
                                registry=self.registry)
        self.requests = Counter("tailor_collector_requests",
                                "POST /v1/events requests by HTTP status.", ["status"],
                                registry=self.registry)
        self.latency = Histogram("tailor_collector_request_duration_seconds",
                                 "Time from request to answer of POST /v1/events.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pending = Gauge("tailor_collector_pending_batches",
                            "Batches received and not yet committed.", registry=self.registry)
        self.tracking = Counter("tailor_collector_tracking_requests",
                                "Campaign tracking requests (kind open or click) by outcome: "
                                "recorded, not_recorded (the store did not take the event) "
                                "or unknown (404).", ["kind", "outcome"],
                                registry=self.registry)
        self.opted_out = Counter("tailor_collector_events_opted_out",
                                 "Events dropped unstored: their customer or browser opted out "
                                 "(or was deleted).", registry=self.registry)
        self.opt_out_requests = Counter("tailor_collector_opt_out_requests",
                                        "Opt-out and opt-in calls (action opt-out or opt-in) "
                                        "by HTTP status.", ["action", "status"],
                                        registry=self.registry)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)  # export zeros so dashboards see every reason


@dataclass
class IngestWindow:
    """Counts of the batches in one `ingest_runs` row (one row per window, not per request)."""

    batch_id: str
    started_at: pd.Timestamp
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Tally = field(default_factory=Tally)
    recorded_at: float = 0.0
    dirty: bool = False

    @classmethod
    def start(cls) -> "IngestWindow":
        """A new window whose id is unique across processes and restarts."""
        now = utc_now()
        batch_id = f"collector-{now:%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
        return cls(batch_id=batch_id, started_at=now)

    def add(self, received: int, result: BatchResult) -> None:
        """Count one committed batch."""
        self.received += received
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected.update(item["reason"] for item in result.rejected)
        self.dirty = True

    def as_run(self) -> IngestRun:
        """The window as the `IngestRun` the store records."""
        return IngestRun(batch_id=self.batch_id, source=DEAD_LETTER_SOURCE,
                         started_at=self.started_at, finished_at=utc_now(),
                         received=self.received, accepted=self.accepted,
                         duplicates=self.duplicates, rejected=dict(self.rejected))
