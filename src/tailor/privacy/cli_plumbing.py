"""What the privacy commands share with every `tailor` command: settings for a job (bad input
exits 2, a failed service 3, each with one line), `--home`, `--json` and printing the answer.

`tailor.cli` imports the privacy commands, so they cannot import it; this is its plumbing
for them. Reads the settings; writes only to stdout (the JSON answer) and stderr (prose).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from tailor.errors import InputError

if TYPE_CHECKING:
    from tailor.config import Settings

HOME_OPTION = typer.Option(None, "--home",
                           help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json",
                           help="Print one JSON object on stdout instead of prose.")
EXIT_BAD_INPUT, EXIT_SERVICE_FAILED = 2, 3


@contextmanager
def job(home: Optional[Path], retry_hint: str = "") -> Iterator["Settings"]:
    """Settings for a command; bad input exits 2 and a failed service 3, each one line (the
    latter ending with `retry_hint` in brackets when given)."""
    from tailor.config import ConfigError, load_settings
    from tailor.logs import setup_logging

    setup_logging()
    try:
        yield load_settings(home=home)
    except (InputError, ConfigError, FileNotFoundError) as error:
        console().print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as error:
        if not _service_error(error):
            raise
        hint = f" ({retry_hint})" if retry_hint else ""
        console().print(f"[bold red]service failed:[/] {type(error).__name__}: "
                        f"{' '.join(str(error).split())}{hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SERVICE_FAILED) from None


def _service_error(error: BaseException) -> bool:
    """A database or Redis that cannot be reached or dropped the connection (as `tailor.cli`
    says)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(kind.__module__.startswith(("psycopg", "redis"))
               and kind.__name__ in {"OperationalError", "InterfaceError", "ConnectionError",
                                     "TimeoutError"}
               for kind in type(error).__mro__)


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def emit(payload: dict[str, Any], as_json: bool, human: object) -> None:
    """One JSON object on stdout with `--json`, else prose on stderr."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        console().print(human, highlight=False)
