"""The `tailor.js` tracker as the collector serves it: the file under `tailor/events/static/`
with the settings it must agree with written in, so the browser and the platform share one
value (today `events.session_gap_minutes`, the idle time that ends a session).

Reads `tailor/events/static/tailor.js`; writes nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

TRACKER_FILE = Path(__file__).resolve().parents[1] / "static" / "tailor.js"
# The one line of tailor.js that holds the session gap; the file itself keeps the default
# (30), so it stays a working script when read as it is.
_SESSION_GAP_LINE = re.compile(r"^(\s*const SESSION_GAP_MINUTES = )\d+;", re.MULTILINE)


@lru_cache(maxsize=8)
def render_tracker_script(session_gap_minutes: int) -> bytes:
    """The tracker's text with `session_gap_minutes` written in (rendered once per value).

    Args:
        session_gap_minutes: `events.session_gap_minutes`, minutes without an event after
            which the next event starts a new session.

    Returns:
        The script as UTF-8 bytes.

    Raises:
        RuntimeError: tailor.js no longer has exactly one `const SESSION_GAP_MINUTES = N;`
            line to write the setting into.
    """
    source = TRACKER_FILE.read_text(encoding="utf-8")
    rendered, count = _SESSION_GAP_LINE.subn(rf"\g<1>{int(session_gap_minutes)};", source)
    if count != 1:
        raise RuntimeError(f"{TRACKER_FILE}: expected one 'const SESSION_GAP_MINUTES = N;' "
                           f"line for events.session_gap_minutes, found {count}")
    return rendered.encode("utf-8")
