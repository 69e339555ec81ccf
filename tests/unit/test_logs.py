"""Tailor's lines reach the terminal; the libraries' INFO lines and warnings reach only the log."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_library_chatter_goes_to_the_log_file_only(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "demo.log"
    done = _run(f"""
        import logging, warnings
        from pathlib import Path
        from tailor.logs import library_output, setup_logging
        setup_logging(log_file=Path({str(log_file)!r}))
        import mlflow  # configures its own loggers unless told not to
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables")
        logging.getLogger("feast.infra.registry").info("Registry cache expired, so refreshing")
        logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/homepage")
        logging.getLogger("feast.infra").warning("a library warning the operator should see")
        warnings.simplefilter("default")  # as some libraries set it
        warnings.warn_explicit("fetch_arrow_table() is deprecated", DeprecationWarning,
                               "/x/site-packages/ibis/backends/duckdb/__init__.py", 332)
        with library_output("feast.output"):
            print("Created feature view customer_activity")
        logging.getLogger("tailor.features").info("84 features materialized")
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    noise = ("Creating initial MLflow", "Registry cache expired", "HTTP Request",
             "fetch_arrow_table", "Created feature view")
    assert not [line for line in done.stderr.splitlines() if any(n in line for n in noise)]
    assert "84 features materialized" in done.stderr
    assert "a library warning the operator should see" in done.stderr
    assert done.stdout == ""
    logged = log_file.read_text()
    for line in noise + ("84 features materialized",):
        assert line in logged


def test_tailor_level_hides_tailor_info_but_not_warnings() -> None:
    from tailor.logs import ConsoleFilter

    quiet = ConsoleFilter(logging.WARNING)
    info = logging.LogRecord("tailor.demo", logging.INFO, __file__, 1, "step done", None, None)
    warning = logging.LogRecord("tailor.demo", logging.WARNING, __file__, 1, "odd", None, None)
    assert not quiet.filter(info) and quiet.filter(warning)
    own = logging.LogRecord("py.warnings", logging.WARNING, __file__, 1,
                            "/src/tailor/models/x.py:3: UserWarning: ours", None, None)
    assert quiet.filter(own)


def test_the_console_handler_follows_a_swapped_stderr(monkeypatch) -> None:
    """A command run under a capturing runner swaps stderr and closes it afterwards; later
    records must go to the stderr of their own time, not fail on the closed one."""
    import io

    from tailor.logs import CurrentStderrHandler

    handler = CurrentStderrHandler()
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    handler.emit(logging.LogRecord("tailor.x", logging.INFO, __file__, 1, "one", None, None))
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    handler.emit(logging.LogRecord("tailor.x", logging.INFO, __file__, 1, "two", None, None))
    assert second.getvalue() == "two\n"
