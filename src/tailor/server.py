"""Start, probe and stop the serving process: `bentoml serve bentos.service:Tailor`.

Reads the resolved settings (the `serving` section, the home) and the `bentos/` folder of
the source tree (or of the current directory, as in the container image). Writes nothing
itself; the server process logs to the file it is given (stderr by default).

Used by `tailor serve`, the demo and the end-to-end tests, so all three start the server
the same way. The server process reads exactly the settings of the command that started
it: every resolved setting is passed to it as its `TAILOR_*` variable, with the home made
absolute (BentoML runs in the folder that holds `bentos/`).

Each server gets a private, temporary BENTOML_HOME, removed when it stops: BentoML keeps
its Prometheus multiprocess files in `$BENTOML_HOME/prometheus_multiproc_dir` and empties
that folder when a server starts, so two servers sharing one home (a second `tailor serve`,
a benchmark's reference server) would silently wipe each other's metrics. The models are
not kept there: the pipeline keeps them in its own BentoML model store,
`serving.bentoml_home` (default `<home>/bentoml`, `tailor.serving.model_store`), which
outlives the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tailor.config import SETTINGS, Settings
from tailor.errors import InputError

SERVICE = "bentos.service:Tailor"
SERVICE_FILE = Path("bentos") / "service.py"
# One BLAS/OpenMP thread per server worker unless the environment says otherwise: a request's
# dot product is too small to gain from splitting, and every worker spawning a thread per core
# oversubscribes the CPU under load (scale with serving.workers instead). bentofile.yaml sets
# the same for a built Bento.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
READY_PATH = "/readyz"
ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("POST /homepage", "homepage products for a customer, with reasons"),
    ("POST /also_bought", "products bought with a product (confidence, lift)"),
    ("POST /checkout_offer", "P(abandon) of a cart and the incentive to show"),
    ("POST /batch/homepage", 'several homepage requests in one call: {"requests": [...]}'),
    ("POST /batch/checkout_offer", 'several carts in one call: {"requests": [...]}'),
    ("POST /collect/v1/events", "the event collector (its own public or secret keys)"),
    ("GET  /collect/tailor.js", "the browser tracker"),
    ("GET  /healthz /livez /readyz", "health, no key"),
    ("GET  /metrics", "Prometheus metrics (secret key)"),
    ("GET  /dashboard", "the daily report: the shop, models, serving (secret key)"),
    ("GET  /shop/", "the demo shop, with serving.demo_shop (tailor serve --demo-shop), no key"),
    ("GET  /docs.json", "the OpenAPI spec, no key"),
    ("GET  /", "this list of endpoints, no key"),
)


class PortInUse(InputError):
    """The port the server should listen on is taken; the message names it."""


def service_dir() -> Path:
    """The folder holding `bentos/service.py`: the current directory, else the source tree.

    Raises:
        FileNotFoundError: neither has it (an installed package without the repository).
    """
    for folder in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (folder / SERVICE_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"no {SERVICE_FILE} in {Path.cwd()} or the source tree: run `tailor serve` from the "
        "Tailor repository (or the image's /app), or serve a built Bento with `bentoml serve`")


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUse when something already listens on `host:port`."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(f"cannot listen on {host}:{port} ({error.strerror}); stop what "
                            "uses it or pass --port (serving.port)") from None


def server_environment(settings: Settings, workers: int | None = None,
                       host: str | None = None, port: int | None = None) -> dict[str, str]:
    """This process's environment plus every resolved setting as its TAILOR_* variable
    (BENTOML_HOME is left to `start_server`); `workers`, `host` and `port` override their
    settings, so the server knows the address it really listens on (the demo shop's
    origin)."""
    values = dict(settings.values, home=str(settings.home_path.resolve()))
    for name, value in (("serving_workers", workers), ("serving_host", host),
                        ("serving_port", port)):
        if value is not None:
            values[name] = value
    env = dict(os.environ)
    for setting in SETTINGS:
        value = values[setting.name]
        env[setting.env] = str(value).lower() if isinstance(value, bool) else str(value)
    env["BENTOML_DO_NOT_TRACK"] = "true"  # no usage analytics calls from a shop's server
    for variable in BLAS_THREAD_VARIABLES:
        env.setdefault(variable, "1")
    return env


def server_command(host: str, port: int, working_dir: Path) -> list[str]:
    """The `bentoml serve` command line for the Tailor service."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host,
            "--port", str(port), "--working-dir", str(working_dir)]


@dataclass
class ServerProcess:
    """A running `bentoml serve` in its own process group, and its private BentoML home."""

    process: subprocess.Popen
    host: str
    port: int
    bentoml_home: Path

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> bool:
        """Poll /readyz until it answers 200; False when the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + READY_PATH, timeout=2.0) as response:
                    if response.status == 200:
                        return True
            except OSError:  # refused while starting, or 503 (HTTPError) until ready
                pass
            time.sleep(0.25)
        return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the whole group (the arbiter and its workers), SIGKILL after `timeout`;
        then remove the private BentoML home."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.bentoml_home, ignore_errors=True)
        return self.process.returncode

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_termination() -> None:
    """Make SIGTERM (`docker stop`, Kubernetes) raise KeyboardInterrupt, like Ctrl-C, so the
    caller's cleanup stops the server's process group instead of orphaning it."""
    signal.signal(signal.SIGTERM, _interrupt)


def start_server(settings: Settings, *, host: str | None = None, port: int | None = None,
                 workers: int | None = None, log: IO[bytes] | None = None) -> ServerProcess:
    """Start the Tailor BentoML server (without waiting for it to be ready).

    Args:
        settings: resolved settings; `serving.host`, `serving.port` unless overridden.
        host, port, workers: overrides of `serving.host`, `serving.port`, `serving.workers`.
        log: where the server's stdout and stderr go (default: this process's stderr).

    Raises:
        PortInUse: the port is taken.
        FileNotFoundError: `bentos/service.py` cannot be found.
    """
    host = host or settings.serving_host
    port = port or settings.serving_port
    check_port_free(host, port)
    working_dir = service_dir()
    bentoml_home = Path(tempfile.mkdtemp(prefix="tailor-bentoml-"))
    env = {**server_environment(settings, workers, host, port),
           "BENTOML_HOME": str(bentoml_home)}
    process = subprocess.Popen(server_command(host, port, working_dir), cwd=working_dir,
                               env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                               start_new_session=True)
    return ServerProcess(process=process, host=host, port=port, bentoml_home=bentoml_home)
