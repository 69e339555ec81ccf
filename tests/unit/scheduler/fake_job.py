"""A stand-in job for the scheduler tests, steered by files in the folder it is given.

Appends `start <pid>` to runs.log, then: with `fail` present, prints a line and exits 3;
with `hold` present, waits (up to 60 s) until it is removed; appends `end` and exits 0.
"""

import os
import sys
import time
from pathlib import Path

folder = Path(sys.argv[1])
with (folder / "runs.log").open("a") as runs:
    runs.write(f"start {os.getpid()}\n")
if (folder / "fail").exists():
    print("fake job: failed on purpose", file=sys.stderr)
    sys.exit(3)
deadline = time.monotonic() + 60
while (folder / "hold").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
with (folder / "runs.log").open("a") as runs:
    runs.write("end\n")
