"""One SMTP connection, opened the way the `[mail]` settings say.

Reads: `mail_host`, `mail_port`, `mail_security`, `mail_user`, `mail_ca_file`,
`mail_timeout_seconds`, and the password from the `TAILOR_MAIL_PASSWORD` environment variable
(never from a file, never logged, never stored). Writes: nothing but the SMTP conversation.
Certificates are always checked (the system's authorities plus `mail_ca_file`).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr

from tailor.config import MAIL_PASSWORD_ENV, Settings

STANDARD_PORTS = {"none": 25, "starttls": 587, "tls": 465}

# What a failed connection or delivery raises: the SMTP errors, sockets, TLS, a bad address.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError, ValueError)


class MailSetupError(ValueError):
    """The settings cannot work as they are (e.g. a login without its password)."""


def server_label(settings: Settings) -> str:
    """`host:port (security)`, for logs and reports."""
    port = settings.mail_port or STANDARD_PORTS[settings.mail_security]
    return f"{settings.mail_host}:{port} ({settings.mail_security})"


def _tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.mail_ca_file:
        context.load_verify_locations(cafile=settings.mail_ca_file)
    return context


def connect(settings: Settings) -> smtplib.SMTP:
    """A connected (and, with `mail_user`, logged-in) SMTP session; `disconnect` it after.

    Raises:
        MailSetupError: `mail_user` is set and `TAILOR_MAIL_PASSWORD` is empty.
        smtplib.SMTPException, OSError: the server cannot be reached, refuses TLS or the login.
    """
    port = settings.mail_port or STANDARD_PORTS[settings.mail_security]
    timeout = settings.mail_timeout_seconds
    password = os.environ.get(MAIL_PASSWORD_ENV, "")
    if settings.mail_user and not password:
        raise MailSetupError(f"mail_user is set but {MAIL_PASSWORD_ENV} is empty")
    smtp: smtplib.SMTP
    if settings.mail_security == "tls":
        smtp = smtplib.SMTP_SSL(settings.mail_host, port, timeout=timeout,
                                context=_tls_context(settings))
    else:
        smtp = smtplib.SMTP(settings.mail_host, port, timeout=timeout)
    try:
        if settings.mail_security == "starttls":
            smtp.starttls(context=_tls_context(settings))
        if settings.mail_user:
            smtp.login(settings.mail_user, password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def disconnect(smtp: smtplib.SMTP) -> None:
    """End the session politely; close the socket when the server is gone already."""
    try:
        smtp.quit()
    except DELIVERY_ERRORS:
        smtp.close()


def deliver_raw(smtp: smtplib.SMTP, raw: bytes) -> dict[str, tuple[int, bytes]]:
    """Hand one stored message to the server as it is (its From and To headers are the
    envelope); returns the recipients the server refused while taking the rest.

    Raises:
        smtplib.SMTPRecipientsRefused: every recipient was refused (e.g. 550).
        smtplib.SMTPException, OSError: the server failed during the transaction.
    """
    headers = BytesHeaderParser().parsebytes(raw)
    sender = parseaddr(str(headers["From"] or ""))[1]
    to = [address for _, address in getaddresses([str(value) for value in
                                                    headers.get_all("To", [])]) if address]
    if not sender or not to:
        raise ValueError("the stored message has no From or To address")
    return smtp.sendmail(sender, to, raw)
