"""Headless Chromium for the browser tests (the tracker's, the dashboard's): Debian's
`chromium` and `chromium-driver` driven by selenium (the dev extra).

`browser_paths()` skips a test (fails it under CI=true) naming what is missing;
`start_browser(folder)` starts one with a fresh profile under `folder`. Reads and writes
nothing else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run")


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver, or a skip (a failure under CI) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver))
               if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = ("browser test needs " + ", ".join(missing)
                   + "; install with: apt-get install -y chromium chromium-driver")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return str(chromium), str(driver)


def start_browser(profiles: Path, *, network_log: bool = False) -> Any:
    """A headless Chromium with a fresh profile under `profiles` (no shared localStorage),
    keeping the page's console messages (and, with `network_log`, DevTools' network events
    in the `performance` log: every request, beacons included); the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=profiles)}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", **(
        {"performance": "ALL"} if network_log else {})})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(5)
    return driver
