"""What every `tailor experiment` command shares: its options, settings with the exit codes,
the output (one JSON object on stdout, or prose on stderr) and who acts.

Reads the settings (`--home`, `TAILOR_HOME`, tailor.toml) and the login name. Writes stdout
and stderr. Exit codes as `tailor.cli`'s (which this package must not import: cli imports
it): 1 a gate refused (promotion), 2 bad input, 3 a service (database, registry) failed.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from tailor.errors import GateRefused, InputError

if TYPE_CHECKING:
    from tailor.config import Settings

HOME_OPTION = typer.Option(None, "--home",
                           help="Tailor home folder (default: TAILOR_HOME or ./.tailor).")
JSON_OPTION = typer.Option(False, "--json",
                           help="Print one JSON object on stdout instead of prose.")
ACTOR_OPTION = typer.Option(None, "--actor", help="Who does it, for the audit (default: the "
                                                  "login name).")
NAME_ARGUMENT = typer.Argument(..., help="The experiment's name (its definition file's stem).")
EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_SERVICE_FAILED = 1, 2, 3


@contextmanager
def job(home: Optional[Path]) -> Iterator[Settings]:
    """Settings for a command; a refusal exits 1, bad input 2 and a failed service 3, each
    with one line on stderr."""
    from tailor.config import load_settings

    with failures():
        yield load_settings(home=home)


@contextmanager
def failures() -> Iterator[None]:
    """Logging set up, then the block's failures as exit codes: a refusal 1, bad input 2 and
    a failed service 3, each with one line on stderr; anything else is a traceback."""
    from tailor.config import ConfigError
    from tailor.logs import setup_logging

    setup_logging()
    try:
        yield
    except GateRefused as error:
        console().print(f"[bold red]refused:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_GATE_FAILED) from None
    except (InputError, ConfigError, FileNotFoundError) as error:
        console().print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as error:
        if not service_error(error):
            raise
        console().print(f"[bold red]service failed:[/] {type(error).__name__}: "
                        f"{' '.join(str(error).split())}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_SERVICE_FAILED) from None


def service_error(error: BaseException) -> bool:
    """A database or registry that cannot be reached (as `tailor.cli` tells them apart)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    for kind in type(error).__mro__:
        if kind.__module__.startswith("psycopg") and kind.__name__ in {"OperationalError",
                                                                       "InterfaceError"}:
            return True
        if kind.__module__.startswith("requests") and "ConnectionError" in kind.__name__:
            return True
    return False


def console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def emit(payload: dict[str, Any], as_json: bool, human: object) -> None:
    """`payload` as one JSON line on stdout, or `human` on stderr."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        console().print(human, highlight=False)


def actor(given: Optional[str]) -> str:
    """Who acts: `given`, else the login name (the environment's in a container)."""
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: the environment's, else unknown
        return os.environ.get("USER") or "unknown"
