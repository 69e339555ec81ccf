"""What `tailor experiment analyze` costs on a large experiment: 10M exposures and their
events, analysed from the lake's Parquet files, beside the same analysis of 1M in the same run.

Target (issue 13): 10M exposures and their events analysed in <= 30 s on the 2-core machine.

The bench writes a home of its own: a started two-variant homepage experiment in
`experiment_state`, and its lake (`<home>/lake/predictions/date=*/hour=00/*.parquet`, the
prediction log with 8 products per answer, and `<home>/lake/events/...`), built with numpy and
pyarrow: units (customers) are exposed 2.5 times on average over 14 days; each answer has a
page view in its session, 30% of them a view of a product of the slate 30 s later and 3% (3.6%
in the treatment) a purchase of it 10 minutes later; 2% bring a purchase 3 days before the
answer (the pre-period). Then it times `analyze_experiment` (the real path: lake views, the
store's tail, the attribution SQL, every metric, the daily looks) at `--baseline` exposures
(after one untimed run: imports and caches) and at `--exposures`, and prints both with their
CPU seconds (every thread of the process) and the load, the ratio and the verdict against
the target. The machine is shared: the CPU seconds over its 2 cores bound what a quiet
machine would take.

Run: .venv/bin/python bench/bench_experiment_analysis.py [--exposures 10000000]
     [--baseline 1000000] [--keep DIR]   (a kept DIR is reused by the next run with it)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

TARGET_SECONDS = 30.0
DAYS = 14
SLATE = 8
START = datetime(2026, 3, 2, tzinfo=timezone.utc)
NAME = "bench-layout"


def _ids(prefix: str, numbers: np.ndarray):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(pa.scalar(prefix), pa.array(numbers).cast(pa.string()),
                                       "")


def _micros(offsets_seconds: np.ndarray) -> np.ndarray:
    base = int(START.timestamp() * 1_000_000)
    return base + (offsets_seconds * 1_000_000).astype(np.int64)


def write_lake(lake: Path, exposures: int, seed: int = 7) -> dict[str, int]:
    """The prediction log's and the events' Parquet files of one experiment, one file per
    day and dataset; returns the row counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tailor.events.lake import LAKE_EVENT_SCHEMA
    from tailor.events.prediction_lake import ITEM_TYPE, LAKE_PREDICTION_SCHEMA

    rng = np.random.default_rng(seed)
    units = int(exposures / 2.5)
    unit = rng.integers(0, units, exposures)
    treatment = (unit * 2654435761 % 2**32) % 2 == 1   # a fixed 50/50 hash of the unit
    offset = rng.uniform(0, DAYS * 86_400, exposures)
    served = _micros(offset)
    day = (offset // 86_400).astype(np.int64)
    products = rng.integers(0, 2_000, (exposures, SLATE))
    counts = {"predictions": exposures, "events": 0}
    for today in range(DAYS):
        rows = np.flatnonzero(day == today)
        n = len(rows)
        flat = products[rows].ravel()
        items = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * SLATE + 1, SLATE, dtype=np.int32)),
            pa.StructArray.from_arrays(
                [_ids("p", flat), pa.array(rng.random(n * SLATE)),
                 pa.DictionaryArray.from_arrays(np.zeros(n * SLATE, dtype=np.int32),
                                                ["personal"]).cast(pa.string())],
                fields=list(ITEM_TYPE)))
        customer = _ids("c", unit[rows])
        session = _ids("s", rows)
        variant = pa.DictionaryArray.from_arrays(treatment[rows].astype(np.int32),
                                                 ["grid", "carousel"]).cast(pa.string())
        columns = {
            "seq": pa.array(rows.astype(np.int64) + 1),
            "served_at": pa.array(served[rows]).cast(pa.timestamp("us", tz="UTC")),
            "request_id": _ids("r", rows), "customer_id": customer, "session_id": session,
            "endpoint": pa.array(["homepage"] * n), "model": pa.array(["homepage"] * n),
            "variant": pa.array(["champion"] * n), "items": items,
            "fallback": pa.array(rng.random(n) < 0.01), "experiment": pa.array([NAME] * n),
            "experiment_variant": variant}
        table = pa.table({field.name: columns.get(field.name, pa.nulls(n, field.type))
                          for field in LAKE_PREDICTION_SCHEMA}, schema=LAKE_PREDICTION_SCHEMA)
        folder = lake / "predictions" / f"date={(START + timedelta(days=today)).date()}" / "hour=00"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"part-{today}.parquet")
        events = _events(rng, rows, unit[rows], treatment[rows], offset[rows], products[rows])
        counts["events"] += events.num_rows
        table = pa.table({field.name: events.column(field.name) if field.name in
                          events.column_names else pa.nulls(events.num_rows, field.type)
                          for field in LAKE_EVENT_SCHEMA}, schema=LAKE_EVENT_SCHEMA)
        folder = lake / "events" / f"date={(START + timedelta(days=today)).date()}" / "hour=00"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"part-{today}.parquet")
    return counts


def _events(rng, rows, unit, treatment, offset, products):
    """A page view per answer, views of a slate product, purchases, pre-period purchases."""
    import pyarrow as pa

    n = len(rows)
    viewed = rng.random(n) < 0.3
    bought = viewed & (rng.random(n) < np.where(treatment, 0.12, 0.10))
    earlier = rng.random(n) < 0.02
    pick = products[np.arange(n), rng.integers(0, SLATE, n)]
    parts = [(np.ones(n, bool), "page_view", 1.0), (viewed, "product_view", 30.0),
             (bought, "purchase", 600.0), (earlier, "purchase", -3 * 86_400.0)]
    columns = {key: [] for key in ("customer_id", "event_type", "product_id", "timestamp",
                                   "session_id", "price", "order_id")}
    for mask, kind, delay in parts:
        index = np.flatnonzero(mask)
        columns["customer_id"].append(_ids("c", unit[index]))
        columns["event_type"].append(pa.array([kind] * len(index)))
        columns["product_id"].append(_ids("p", pick[index]) if kind != "page_view"
                                     else pa.nulls(len(index), pa.string()))
        columns["timestamp"].append(pa.array(_micros(offset[index] + delay)).cast(
            pa.timestamp("us", tz="UTC")))
        columns["session_id"].append(_ids("s", rows[index]) if delay >= 0
                                     else _ids("e", rows[index]))
        columns["price"].append(pa.array(np.where(kind == "purchase",
                                                  rng.uniform(20, 120, len(index)), np.nan),
                                         from_pandas=True))
        columns["order_id"].append(_ids(f"o{int(delay)}-", rows[index]) if kind == "purchase"
                                   else pa.nulls(len(index), pa.string()))
    return pa.table({key: pa.concat_arrays([chunk.cast(chunk.type) for chunk in value])
                     for key, value in columns.items()})


def prepare_home(home: Path, exposures: int) -> tuple:
    """A home with the started experiment and its lake; returns (settings, counts)."""
    import yaml

    from tailor.config import load_settings
    from tailor.experiments.definition import parse_definition, shipped_definitions_dir
    from tailor.experiments.state import open_store

    settings = load_settings(home=home, env={})
    data = yaml.safe_load((shipped_definitions_dir() / "homepage-layout.yaml").read_text())
    data.update(name=NAME, traffic=1.0, layer="bench", control="grid",
                variants=[{"name": "grid", "weight": 0.5, "changes": {"layout": "grid"}},
                          {"name": "carousel", "weight": 0.5,
                           "changes": {"layout": "carousel"}}])
    definition = parse_definition(data, "bench")
    with open_store(settings) as store:
        store.create(definition, "bench")
        store.start(definition, "bench", "bench")
    counts = write_lake(Path(settings.lake_root), exposures)
    return settings, counts


def timed(settings, as_of: datetime) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (every thread of the process: DuckDB's too) and the result."""
    from tailor.experiments.analysis import analyze_experiment

    started, cpu = time.perf_counter(), time.process_time()
    result = analyze_experiment(settings, NAME, as_of=as_of)
    return time.perf_counter() - started, time.process_time() - cpu, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=10_000_000)
    parser.add_argument("--baseline", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the homes here and keep them")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="bench-analysis-"))
    as_of = START + timedelta(days=DAYS + 1)
    results = {}
    for label, size in (("baseline", arguments.baseline), ("target", arguments.exposures)):
        started = time.perf_counter()
        if (folder / label / "lake").is_dir():   # --keep DIR of an earlier run: reuse it
            from tailor.config import load_settings

            settings = load_settings(home=folder / label, env={})
            print(f"{label}: reusing {folder / label}", flush=True)
        else:
            settings, counts = prepare_home(folder / label, size)
            print(f"{label}: wrote {counts['predictions']:,} answers and {counts['events']:,} "
                  f"events in {time.perf_counter() - started:.1f} s", flush=True)
        if label == "baseline":   # once untimed: imports (scipy, statsmodels) and caches
            timed(settings, as_of)
        load = os.getloadavg()[0]
        seconds, cpu, result = timed(settings, as_of)
        results[label] = seconds
        conversion = result.metric("conversion").analysis.variants[1].lift
        print(f"{label}: analysed {sum(result.units.values()):,} units in {seconds:.1f} s, "
              f"{cpu:.1f} CPU s (load {load:.1f} -> {os.getloadavg()[0]:.1f}; conversion lift "
              f"{conversion.relative:+.1%}, verdict {result.verdict.decision})", flush=True)
    ratio = results["target"] / results["baseline"]
    scale = arguments.exposures / arguments.baseline
    verdict = "PASS" if results["target"] <= TARGET_SECONDS else "FAIL"
    print(f"{arguments.exposures:,} exposures: {results['target']:.1f} s against the "
          f"{TARGET_SECONDS:.0f} s target ({verdict}); {ratio:.2f}x the {arguments.baseline:,}"
          f"-exposure run ({scale:.0f}x the data)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
