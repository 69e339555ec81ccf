"""The error a user can fix: a wrong argument, file or setting, told apart from a bug.

Shared below everything (every layer may raise it). Reads and writes nothing.
"""

from __future__ import annotations


class InputError(ValueError):
    """The user's input is wrong (a command's argument, a file to import, a setting, the
    state of the home); the message says what and where.

    The command line reports it as one line and exit 2 ("bad usage or input"). Any other
    `ValueError` reaching the command line is a bug: it ends with a traceback. A subclass of
    `ValueError`, so callers that catch `ValueError` keep working.
    """


class GateRefused(Exception):
    """A check refused an action on purpose (a promotion the analysis does not back): the
    message says why and how to go on; nothing was changed.

    The command line reports it as one line and exit 1 ("a gate failed").
    """
