"""A scheduler in a process of its own, running `fake_job.py` as an hourly job named `fake`:

    python scheduler_process.py HOME FOLDER once NOW   # one round at NOW; prints its report
    python scheduler_process.py HOME FOLDER forever     # rounds until SIGTERM
"""

import json
import sys
from datetime import datetime
from pathlib import Path

from tailor.config import load_settings
from tailor.logs import setup_logging
from tailor.scheduler.jobs import Job


def fake_job(folder: Path) -> Job:
    return Job("fake", ("fake",), "hourly", 5, description="a test job",
               program=(sys.executable, str(Path(__file__).with_name("fake_job.py")),
                        str(folder)))


if __name__ == "__main__":
    home, folder, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    setup_logging()
    settings = load_settings(home=home, env={})
    if mode == "once":
        from tailor.scheduler.runner import run_due

        report = run_due(settings, datetime.fromisoformat(sys.argv[4]), [fake_job(folder)])
        print(json.dumps(report.to_dict()))
    else:
        from tailor.scheduler.service import run_forever

        run_forever(settings, [fake_job(folder)])
