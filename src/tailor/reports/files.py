"""Where the daily reports live under the home, and how a page is written there.

Writes `<home>/reports/daily/<date>.html` and `.json`, then `latest.html` and `latest.json`,
each under a temporary name renamed into place (a reader, such as the server's `/dashboard`,
never sees half a page). Reads the JSON of earlier reports (the server's counters at their
time). Imports nothing heavy: the serving app asks it where the latest page is.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from tailor.config import Settings
from tailor.pages.files import write_atomically

DAILY_FOLDER = "daily"
LATEST = "latest"


def daily_folder(settings: Settings) -> Path:
    """`<home>/reports/daily`."""
    return settings.reports_path / DAILY_FOLDER


def latest_page(settings: Settings) -> Path:
    """The newest report's HTML (`<home>/reports/daily/latest.html`), which `/dashboard` serves."""
    return daily_folder(settings) / f"{LATEST}.html"


def write_report(settings: Settings, day: date, page: str, payload: dict[str, Any]
                 ) -> dict[str, str]:
    """Write a day's page and JSON, then the `latest` copies; returns the four paths by kind.

    The `latest` copies are replaced only by the newest day's report, so re-running an older
    day (`tailor report --date`) leaves `/dashboard` on the newest one.
    """
    folder = daily_folder(settings)
    text = json.dumps(payload, indent=2, default=str)
    paths = {"html": folder / f"{day.isoformat()}.html", "json": folder / f"{day.isoformat()}.json"}
    write_atomically(paths["html"], page)
    write_atomically(paths["json"], text + "\n")
    newest = max(report_days(settings), default=day)
    if day >= newest:
        write_atomically(folder / f"{LATEST}.html", page)
        write_atomically(folder / f"{LATEST}.json", text + "\n")
    paths.update(latest_html=folder / f"{LATEST}.html", latest_json=folder / f"{LATEST}.json")
    return {kind: str(path) for kind, path in paths.items()}


def report_days(settings: Settings) -> list[date]:
    """The days that have a written report, oldest first."""
    found = []
    for path in daily_folder(settings).glob("*.json"):
        try:
            found.append(date.fromisoformat(path.stem))
        except ValueError:  # latest.json, or a file someone put there
            continue
    return sorted(found)


def earlier_payloads(settings: Settings) -> list[dict[str, Any]]:
    """The JSON of every written day's report that can be read (unreadable ones are skipped)."""
    payloads = []
    for day in report_days(settings):
        try:
            payloads.append(json.loads((daily_folder(settings) / f"{day}.json").read_text("utf-8")))
        except (OSError, ValueError):
            continue
    return payloads
