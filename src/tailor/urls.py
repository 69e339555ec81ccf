"""URLs made fit for logs and reports: the one place a password is hidden.

Reads and writes nothing; pure functions on URL strings.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_PASSWORD = re.compile(r"(//[^:/@]*):[^@]*@")


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, fit for reports and logs.

    Args:
        url: a URL such as `postgresql://user:secret@db.example:5432/events`.

    Returns:
        The same URL with the password hidden (`postgresql://user:***@db.example:5432/events`);
        the host is kept as written. A URL without a password comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: hide whatever sits before an @
        return _PASSWORD.sub(r"\1:***@", url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    username = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{username}:***@{host}"))
