"""How Tailor's commands log: Tailor's own lines on the terminal, the libraries' chatter in a file.

Writes nothing at import. `setup_logging` (called once per command by the CLI) sends Tailor's
records to stderr and keeps the libraries' INFO lines and warnings (Feast's registry refreshes,
MLflow's table migrations, ibis and SQLAlchemy deprecations, httpx request lines) off the
terminal: their warnings and errors still show, their INFO lines and Python warnings go only
to the log file when one is given (the demo's `<home>/logs/demo.log`). `library_output`
captures what a library prints straight to stdout or stderr (Feast's apply and materialize
lines, MLflow's "Created version") into the same log, under the library's logger name.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

TAILOR_LOGGER = "tailor"
# Loggers of the libraries Tailor drives; below WARNING they talk about themselves, not the shop.
LIBRARY_LOGGERS: tuple[str, ...] = (
    "feast", "mlflow", "alembic", "httpx", "httpcore", "ibis", "bentoml", "urllib3", "optuna",
    "matplotlib", "numexpr", "fsspec", "botocore", "git", "sqlalchemy",
)
WARNINGS_LOGGER = "py.warnings"
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "tailor-console"


class ConsoleFilter(logging.Filter):
    """On the terminal: Tailor's records at the console level, others only from WARNING up.

    Python warnings (captured as `py.warnings` records) show only when Tailor's own code
    raised them; a library's deprecation notice is for the library's maintainers.
    """

    def __init__(self, tailor_level: int) -> None:
        super().__init__()
        self.tailor_level = tailor_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == TAILOR_LOGGER or record.name.startswith(TAILOR_LOGGER + "."):
            return record.levelno >= self.tailor_level
        if record.name == WARNINGS_LOGGER:
            return f"{os.sep}tailor{os.sep}" in record.getMessage().split(":", 1)[0]
        return record.levelno >= logging.WARNING


class CurrentStderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever `sys.stderr` is when a record is emitted.

    A handler bound to the stderr of its creation keeps writing to it after a caller swapped
    and closed it (a test runner capturing one command's output), and fails every record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102 - the current stderr, never a stale one
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; nothing to keep
        pass


def setup_logging(tailor_level: int = logging.INFO, log_file: Path | None = None) -> None:
    """Configure the root logger once: a filtered stderr handler, and a file for everything.

    Args:
        tailor_level: the lowest level of Tailor's own records shown on the terminal.
        log_file: where every record goes at INFO and above (libraries included); its folder
            is created. None: no file.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(logging.INFO)
        library.propagate = True  # MLflow turns this off and prints with its own handler
        for handler in list(library.handlers):
            library.removeHandler(handler)
    logging.captureWarnings(True)
    # MLflow would give its loggers a handler of their own at import, past these filters.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console = _named_handler(root)
    if console is None:
        console = CurrentStderrHandler()
        console.set_name(HANDLER_NAME)
        console.setFormatter(logging.Formatter(LINE_FORMAT))
        root.addHandler(console)
    console.filters = [ConsoleFilter(tailor_level)]
    if log_file is not None and not _has_file_handler(root, log_file):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter(LINE_FORMAT))
        root.addHandler(to_file)


def _has_file_handler(root: logging.Logger, path: Path) -> bool:
    target = os.path.abspath(path)
    return any(isinstance(handler, logging.FileHandler) and handler.baseFilename == target
               for handler in root.handlers)


def _named_handler(root: logging.Logger) -> logging.Handler | None:
    return next((handler for handler in root.handlers if handler.get_name() == HANDLER_NAME),
                None)


@contextlib.contextmanager
def library_output(logger_name: str) -> Iterator[None]:
    """Capture what a library prints to stdout and stderr during the block into the log.

    Each captured line becomes an INFO record of `logger_name`, a library's logger (e.g.
    "feast.output"): it reaches the log file, never the terminal. Use it around library calls
    only, not around Tailor's own progress bars. Nothing the block raises is swallowed.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield
    finally:
        logger = logging.getLogger(logger_name)
        for line in captured.getvalue().splitlines():
            if line.strip():
                logger.info("%s", line.rstrip())
