"""The Tailor server's latency, fallbacks and errors for the daily report, from its /metrics.

Reads the Prometheus text of the server's `GET /metrics` (`report.metrics_url`, default the
serving address; the secret key from the `TAILOR_REPORT_METRICS_KEY` environment variable,
unless `serving.metrics_without_key`) and the counters the previous report kept in its JSON;
writes nothing. Prometheus counters run from the server's start, so the figures are this
reading minus the previous report's: they cover the time since that reading when every
counter grew, and the time since the server restarted when one fell (the page says which; a
restart after which every counter has already passed its old value goes unnoticed, and the
period then reads short).
Percentiles are estimated from the histogram's buckets (`tailor_request_seconds`, the time a
request spent in the serving pipeline) by linear interpolation inside the bucket, as
Prometheus's `histogram_quantile` does.
"""

from __future__ import annotations

import math
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Iterable

from tailor.config import REPORT_METRICS_KEY_ENV, Settings

ENDPOINTS: tuple[str, ...] = ("homepage", "also_bought", "checkout_offer")
# The HTTP routes of each endpoint (single and batch forms), as tailor_http_requests_total
# labels them.
ROUTES: dict[str, str] = {"/homepage": "homepage", "/batch/homepage": "homepage",
                          "/also_bought": "also_bought", "/checkout_offer": "checkout_offer",
                          "/batch/checkout_offer": "checkout_offer"}
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
SCRAPE_TIMEOUT_SECONDS = 10.0
_SEP = "|"


@dataclass(frozen=True)
class EndpointServing:
    """One endpoint's answers over the reading's period."""

    endpoint: str
    requests: float
    fallbacks: float
    errors: float  # unexpected errors in the pipeline (each answered with a fallback)
    http_5xx: float  # answers with a 5xx status on the endpoint's routes
    p50: float | None  # seconds in the serving pipeline; None without requests
    p95: float | None
    p99: float | None
    beyond_buckets: list[str] = field(default_factory=list)  # percentiles past the top bucket
    fallback_reasons: dict[str, float] = field(default_factory=dict)

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.requests if self.requests else None

    @property
    def error_rate(self) -> float | None:
        return (self.errors + self.http_5xx) / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fallback_rate": self.fallback_rate,
                "error_rate": self.error_rate}


@dataclass(frozen=True)
class ServerFigures:
    """What the report could read from the server, and over which period."""

    status: str  # read | unreachable | refused | not read
    url: str
    note: str
    scraped_at: str | None = None
    since: str | None = None  # the previous reading's time; None: since the server started
    endpoints: list[EndpointServing] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)  # the raw reading, for the next

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "endpoints": [row.to_dict() for row in self.endpoints]}


def metrics_url(settings: Settings) -> str:
    """`report.metrics_url`, else the /metrics of the address `tailor serve` listens on."""
    if settings.report_metrics_url:
        return settings.report_metrics_url
    host = settings.serving_host
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{settings.serving_port}/metrics"


def read_server(settings: Settings, now: datetime,
                previous: Iterable[dict[str, Any]] = ()) -> ServerFigures:
    """Read the server's /metrics now and turn it into per-endpoint figures.

    Args:
        settings: the URL and (through the environment) the key.
        now: the reading's time (tz-aware).
        previous: the `server` part of earlier reports' JSON; the newest reading before
            `now` is subtracted.

    Returns:
        The figures; never raises for a server that is down or refuses (status says so).
    """
    url = metrics_url(settings)
    try:
        text = fetch_metrics(url, os.environ.get(REPORT_METRICS_KEY_ENV, ""))
    except urllib.error.HTTPError as error:
        hint = (f"set {REPORT_METRICS_KEY_ENV} to a secret key (`tailor keys create secret`)"
                if error.code in (401, 403) else "see the server's log")
        return ServerFigures("refused", url, f"the server answered {error.code}: {hint}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return ServerFigures("unreachable", url, f"no answer from the server: {reason}")
    counters = parse_counters(text)
    earlier = _newest_before(previous, now)
    since = None
    period = "since the server started (no earlier reading)"
    if earlier is not None:
        if restarted(counters, earlier["counters"]):
            period = (f"since the server restarted (a counter fell below the reading of "
                      f"{earlier['scraped_at']})")
        else:
            since = earlier["scraped_at"]
            period = f"since the previous reading at {since}"
    base = earlier["counters"] if since is not None and earlier is not None else {}
    delta = {key: value - base.get(key, 0.0) for key, value in counters.items()}
    return ServerFigures("read", url, period, now.isoformat(), since,
                         endpoint_figures(delta), counters)


def fetch_metrics(url: str, key: str, timeout: float = SCRAPE_TIMEOUT_SECONDS) -> str:
    """The Prometheus text at `url`, sent with `key` as a bearer token when there is one."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read().decode("utf-8")


def parse_counters(text: str) -> dict[str, float]:
    """The readings the report uses, flat: `requests|<endpoint>`, `fallbacks|<endpoint>`,
    `errors|<endpoint>`, `reason|<endpoint>|<reason>`, `http_5xx|<endpoint>` and
    `bucket|<endpoint>|<upper bound>` (cumulative, as Prometheus keeps them)."""
    from prometheus_client.parser import text_string_to_metric_families

    counters: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        counters[key] = counters.get(key, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            endpoint = labels.get("endpoint", "")
            if name == "tailor_request_seconds_bucket":
                add(_SEP.join(("bucket", endpoint, labels["le"])), value)
            elif name == "tailor_requests_total":
                add(f"requests{_SEP}{endpoint}", value)
                if labels.get("outcome") == "fallback":
                    add(f"fallbacks{_SEP}{endpoint}", value)
            elif name == "tailor_errors_total":
                add(f"errors{_SEP}{endpoint}", value)
            elif name == "tailor_fallbacks_total":
                add(_SEP.join(("reason", endpoint, labels.get("reason", "?"))), value)
            elif name == "tailor_http_requests_total" and labels.get("route") in ROUTES \
                    and labels.get("status", "").startswith("5"):
                add(f"http_5xx{_SEP}{ROUTES[labels['route']]}", value)
    return counters


def restarted(counters: dict[str, float], earlier: dict[str, float]) -> bool:
    """Whether a counter is lower than in the earlier reading (the server started again)."""
    return any(counters.get(key, 0.0) < value for key, value in earlier.items())


def endpoint_figures(delta: dict[str, float]) -> list[EndpointServing]:
    """Per endpoint: requests, fallbacks, errors, 5xx answers and latency percentiles."""
    rows = []
    for endpoint in ENDPOINTS:
        buckets = sorted(((float(key.split(_SEP)[2]), value) for key, value in delta.items()
                          if key.startswith(f"bucket{_SEP}{endpoint}{_SEP}")),
                         key=lambda pair: pair[0])
        estimates = {q: quantile(q, buckets) for q in QUANTILES}
        reasons = {key.split(_SEP)[2]: value for key, value in delta.items()
                   if key.startswith(f"reason{_SEP}{endpoint}{_SEP}") and value > 0}
        rows.append(EndpointServing(
            endpoint, delta.get(f"requests{_SEP}{endpoint}", 0.0),
            delta.get(f"fallbacks{_SEP}{endpoint}", 0.0), delta.get(f"errors{_SEP}{endpoint}", 0.0),
            delta.get(f"http_5xx{_SEP}{endpoint}", 0.0),
            *(None if estimates[q] is None else estimates[q][0] for q in QUANTILES),
            beyond_buckets=[f"p{round(q * 100)}" for q in QUANTILES
                            if estimates[q] is not None and estimates[q][1]],
            fallback_reasons=dict(sorted(reasons.items()))))
    return rows


def quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, bool] | None:
    """The q-quantile of a histogram given as (upper bound, cumulative count) pairs in order,
    interpolated linearly inside its bucket; (value, True) when it lies past the highest
    finite bound (the value is that bound); None for an empty histogram."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank and count > below:
            if math.isinf(upper):
                return lower, True
            return lower + (upper - lower) * (rank - below) / (count - below), False
        lower, below = upper, count
    return lower, True


def _newest_before(previous: Iterable[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The newest earlier reading (a dict with `scraped_at` and `counters`) before `now`."""
    readings = []
    for server in previous:
        if not server or server.get("status") != "read" or not server.get("counters"):
            continue
        try:
            moment = datetime.fromisoformat(str(server["scraped_at"]))
        except (KeyError, ValueError):
            continue
        if moment < now:
            readings.append((moment, server))
    return max(readings, key=lambda pair: pair[0])[1] if readings else None
