"""One monitoring round on the demo shop: target <= 30 s on a 2-core machine.

Simulates the demo's shop (2,000 customers, 300 products, seed 7) for 60 days plus the days
that arrive after training, with a shift in tastes and catalogue on the first new day, ingests
the first 60 days, trains the four models (one Optuna trial each: the baseline measured in the
same run), then ingests (and exports and loads into the warehouse, as the hourly jobs
would) the new days in two steps and times `tailor monitor`'s round
(`tailor.monitoring.rounds.run_round`, all four models) after each: the first round sees a
week of new data, the second the shift. Prints each round's seconds, its decisions and its
ratio to the training time, then the slower round against the target. A round that retrains
a challenger does the retraining inside the round, so it is the costlier case.

Run: .venv/bin/python bench/bench_monitor_round.py [--customers 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 30.0
TRAINED_DAYS, NEW_DAYS = 60, (7, 7)


def _slice(events, start, first: int, last: int, path: Path) -> Path:
    import pandas as pd

    when = events["timestamp"]
    chosen = events[(when >= start + pd.Timedelta(days=first))
                    & (when < start + pd.Timedelta(days=last))]
    chosen.to_parquet(path, index=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="keep the home here")
    args = parser.parse_args()

    import pandas as pd

    from tailor.config import load_settings
    from tailor.events.ingest.job import ingest_files
    from tailor.events.lake import export_lake
    from tailor.logs import setup_logging
    from tailor.monitoring.rounds import run_round
    from tailor.simulate import ShopConfig, simulate_shop
    from tailor.training import train_models
    from tailor.warehouse import refresh_warehouse

    def load(path: Path, **catalogue: Path) -> None:  # as the hourly jobs would
        ingest_files(settings, path, progress=False, **catalogue)
        export_lake(settings)
        refresh_warehouse(settings)

    root = args.keep or Path(tempfile.mkdtemp(prefix="tailor-bench-monitor-"))
    setup_logging(tailor_level=logging.WARNING, log_file=root / "bench.log")
    shop = root / "shop"
    days = TRAINED_DAYS + sum(NEW_DAYS)
    simulate_shop(ShopConfig(n_customers=args.customers, n_products=args.products, n_days=days,
                             seed=7, shift_at_day=TRAINED_DAYS + NEW_DAYS[0],
                             show_progress=False), shop)
    events = pd.read_parquet(shop / "events.parquet")
    start = events["timestamp"].min().normalize()
    settings = load_settings(home=root / "home", env={})
    load(_slice(events, start, 0, TRAINED_DAYS, root / "trained.parquet"),
         products_path=shop / "products.csv", customers_path=shop / "customers.csv")
    started = time.perf_counter()
    trained = train_models(settings, "all", trials=1)
    train_seconds = time.perf_counter() - started
    print(f"baseline: training the four models (1 trial each) took {train_seconds:.1f} s "
          f"({', '.join(f'{r.model} v{r.version}' for r in trained)})")

    first, slowest = TRAINED_DAYS, 0.0
    for step, new_days in enumerate(NEW_DAYS, start=1):
        load(_slice(events, start, first, first + new_days, root / f"new_{step}.parquet"))
        first += new_days
        started = time.perf_counter()
        rounds = run_round(settings)
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        decisions = ", ".join(f"{r.model} {r.decision}" for r in rounds)
        print(f"round {step} (data to day {first}): {seconds:.1f} s, "
              f"{seconds / train_seconds:.2f}x the training; {decisions}")
    verdict = "PASS" if slowest <= TARGET_SECONDS else "FAIL"
    print(f"slowest round: {slowest:.1f} s (target <= {TARGET_SECONDS:.0f} s): {verdict}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"home kept in {root}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
