"""How fast `tailor --help` answers: target ≤ 1 s, beside a bare `python -c pass` baseline.

Run: .venv/bin/python bench/bench_cli.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 1.0


def time_command(command: list[str], repeat: int) -> list[float]:
    """Wall-clock seconds of each of `repeat` runs of a command (output discarded)."""
    durations = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        durations.append(time.perf_counter() - started)
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    tailor = str(Path(sys.executable).with_name("tailor"))
    baseline = time_command([sys.executable, "-c", "pass"], args.repeat)
    measured = time_command([tailor, "--help"], args.repeat)
    median, worst = statistics.median(measured), max(measured)
    print(f"tailor --help: median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms "
          f"(target <= {TARGET_SECONDS * 1000:.0f} ms)")
    print(f"baseline python -c pass: median {statistics.median(baseline) * 1000:.0f} ms; "
          f"ratio {median / statistics.median(baseline):.1f}x")
    ok = worst <= TARGET_SECONDS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
