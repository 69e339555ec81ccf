"""Start and stop a real `tailor collect` process for end-to-end tests and benchmarks.

Reads nothing; the process writes to the event store its environment names (by default
SQLite under the given home) and logs to `<home>/collector.log`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(home: Path, database_url: str = "",
                      settings: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without TAILOR_* settings, plus this test's home, store and
    any other settings (as TAILOR_* variables)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TAILOR_") or key.startswith("TAILOR_TEST_")}
    env["TAILOR_HOME"] = str(home)
    if database_url:
        env["TAILOR_DATABASE_URL"] = database_url
    env.update(settings or {})
    return env


@dataclass
class CollectorProcess:
    """A running `tailor collect`; `url` is its base URL."""

    home: Path
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, exactly like a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Ask it to stop (SIGTERM, as systemd or Kubernetes would), then wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_collector(home: Path, *, port: int | None = None, database_url: str = "",
                    demo_shop: bool = False, settings: dict[str, str] | None = None,
                    timeout: float = 30.0) -> CollectorProcess:
    """Start `tailor collect` and wait until /healthz answers.

    Raises:
        RuntimeError: it exited or did not answer in time (the message holds its log's tail).
    """
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    tailor = str(Path(sys.executable).with_name("tailor"))
    command = [tailor, "collect", "--port", str(port)] + (["--demo-shop"] if demo_shop else [])
    log_file = open(home / "collector.log", "ab")
    process = subprocess.Popen(command, env=clean_environment(home, database_url, settings),
                               stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    collector = CollectorProcess(home=home, port=port, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{collector.url}/healthz", timeout=1.0).status_code == 200:
                return collector
        except httpx.HTTPError:
            time.sleep(0.1)
    collector.stop()
    tail = (home / "collector.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"tailor collect did not come up on port {port}:\n{tail}")
