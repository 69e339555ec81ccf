"""Waiting in tests for a condition to hold, never for a fixed time.

`wait_until` asks a predicate again and again until it holds, and fails naming what it
waited for once a generous deadline passes. The deadline is a ceiling against a hang, not
a speed figure: how fast something happens is measured in `bench/`, where a slow machine
cannot fail a test with it. Importable from every test folder: pytest puts `tests/` on
`sys.path` when it loads `tests/conftest.py`. Reads and writes nothing itself.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """The first truthy value `predicate()` returns, asked every `interval` seconds.

    Args:
        predicate: the condition; exceptions it raises propagate at once.
        timeout: seconds after which to give up (generous: a ceiling against a hang).
        what: what is waited for, for the failure message ("the add_to_cart to be stored").
        interval: seconds between two asks.

    Returns:
        The predicate's truthy value.

    Raises:
        AssertionError: the predicate did not hold within `timeout`; the message names
            `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            shown = repr(value)
            shown = shown if len(shown) <= 200 else shown[:200] + "…"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last seen: {shown})")
        time.sleep(interval)
