"""Send a message now, or keep it in the outbox and retry it later; never raise.

Reads: the `[mail]` settings and `<home>/outbox/`. Writes: each message to the outbox before
the first attempt (`tailor.mail.outbox`), then moves it to `sent/` once delivered, or, after
`mail.max_attempts` failed attempts (waits of `mail.retry_backoff_seconds`, doubling), to
`failed/`. Logs one line per failed attempt (subject and error; never the password, never a
recipient list) and one error per message given up. A job that mails never fails because
mail did: both functions return what happened instead of raising.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path
from typing import Any, Iterable

from tailor.config import Settings
from tailor.mail.message import (Attachment, build_message, foreign_addresses, mask_addresses,
                                 recipients)
from tailor.mail.outbox import MessageState, Outbox
from tailor.mail.transport import (DELIVERY_ERRORS, connect, deliver_raw, disconnect,
                                   server_label)

log = logging.getLogger(__name__)

SENT, QUEUED, FAILED = "sent", "queued", "failed"
REFUSED, NOT_CONFIGURED = "refused", "not configured"
CANNOT_CONNECT = "cannot connect to"


@dataclass(frozen=True)
class Delivery:
    """What became of one message.

    `status`: "sent" (the server took it), "queued" (it waits in the outbox for
    `flush_outbox`), "refused" (the PII guard stopped it; nothing was written), or
    "not configured" (`mail.recipients` is empty; nothing was written).
    """

    status: str
    message_id: str = ""
    path: str = ""  # where the .eml is now ("" when none was kept)
    attempts: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FlushReport:
    """One pass over the outbox: delivered, still waiting, given up this pass."""

    sent: list[str] = field(default_factory=list)  # subjects
    waiting: int = 0  # still in the outbox afterwards (due later, or failed again)
    failed: list[dict[str, Any]] = field(default_factory=list)  # given up this pass
    errors: list[str] = field(default_factory=list)  # this pass's delivery errors, distinct
    purged: int = 0  # delivered messages deleted after mail.keep_sent_days
    failed_total: int = 0  # messages in outbox/failed/ (given up, any pass)
    server: str = ""

    @property
    def ok(self) -> bool:
        """No delivery attempt failed and nothing was given up in this pass."""
        return not self.errors and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def outbox_for(settings: Settings) -> Outbox:
    return Outbox(settings.home_path / "outbox")


def send(settings: Settings, subject: str, text: str, html: str | None = None,
         attachments: Iterable[Attachment | str | Path] = (),
         now: datetime | None = None) -> Delivery:
    """Mail the team (`mail.recipients`): write the message to the outbox, try to deliver it.

    Args:
        settings: the `[mail]` settings and the home.
        subject, text: the subject and the plain-text body.
        html: an HTML version of the body (the mail shows it where it can).
        attachments: `Attachment`s or paths of files to attach.
        now: the current time (tests); default the clock.

    Returns:
        A `Delivery`; never raises for a mail problem (an unreachable or refusing server leaves
        the message queued for `flush_outbox`; an attachment that cannot be read, or an outbox
        that cannot be written whose direct delivery fails too, is "failed").
    """
    now = now or datetime.now(timezone.utc)
    if not recipients(settings):
        return Delivery(NOT_CONFIGURED)
    try:
        message = build_message(settings, subject, text, html, attachments)
    except OSError as error:  # an attachment that is gone or unreadable
        log.error("mail %r not sent: an attachment cannot be read: %s",
                  mask_addresses(subject), error)
        return Delivery(FAILED, error=f"an attachment cannot be read: {_describe(error)}")
    foreign = foreign_addresses(message, settings)
    if foreign:
        error = (f"the message holds {len(foreign)} e-mail address(es) that are neither the "
                 "sender's nor a recipient's; Tailor's mail carries no personal data")
        log.error("mail %r not sent: %s", mask_addresses(subject), error)
        return Delivery(REFUSED, error=error)
    outbox = outbox_for(settings)
    raw, message_id = message.as_bytes(policy=policy.SMTP), str(message["Message-ID"])
    try:
        path, lock = outbox.add(raw, subject, now)
    except OSError as error:  # a read-only or full home: the alert still tries to go out
        log.error("mail %r: the outbox %s cannot be written (%s); delivering it directly, "
                  "without a retry if that fails", subject, outbox.root, error)
        return _deliver_unstored(settings, raw, message_id, _describe(error))
    try:
        return _attempt(settings, outbox, path, outbox.read_state(path), now, message_id)
    except OSError as error:  # moving it to sent/ or recording the attempt failed
        log.error("mail %r: the outbox failed: %s", subject, error)
        return Delivery(QUEUED, message_id, str(path), 1, f"outbox: {_describe(error)}")
    finally:
        lock.close()


def _deliver_unstored(settings: Settings, raw: bytes, message_id: str,
                      outbox_error: str) -> Delivery:
    """One attempt at a message the outbox could not keep: "sent" or "failed"."""
    try:
        smtp = connect(settings)
        try:
            deliver_raw(smtp, raw)
        finally:
            disconnect(smtp)
    except DELIVERY_ERRORS as error:
        return Delivery(FAILED, message_id, "", 1, f"outbox not writable ({outbox_error}) and "
                        f"{server_label(settings)}: {_describe(error)}")
    return Delivery(SENT, message_id, "", 1, f"not kept: outbox not writable ({outbox_error})")


def flush_outbox(settings: Settings, now: datetime | None = None) -> FlushReport:
    """Try every message in the outbox whose retry time has come, oldest first.

    After a failed connection the pass connects no more: the remaining due messages count an
    attempt with the same error. Messages that fail `mail.max_attempts` times move to
    `outbox/failed/` and are listed in the report's `failed` (and logged as errors); delivered
    ones older than `mail.keep_sent_days` are deleted.

    Returns:
        A `FlushReport`; never raises for a mail problem (a message file that cannot be read
        or moved is counted as an error and stays where it is).
    """
    now = now or datetime.now(timezone.utc)
    outbox = outbox_for(settings)
    report = FlushReport(server=server_label(settings))
    if outbox.root.exists() and not outbox.root.is_dir():
        report.errors.append(f"outbox: {outbox.root} is not a folder")
    connection_error = ""
    for path in outbox.waiting():
        with outbox.claim(path) as claimed:
            if not claimed:
                continue  # another process is delivering it, or it has just left
            state = outbox.read_state(path)
            if not state.due(now):
                continue
            try:
                if connection_error:
                    delivery = _record_failure(settings, outbox, path, state, now,
                                               connection_error)
                else:
                    delivery = _attempt(settings, outbox, path, state, now)
                    if delivery.status != SENT and delivery.error.startswith(CANNOT_CONNECT):
                        connection_error = delivery.error
            except OSError as error:  # the outbox itself: unreadable file, read-only folder
                log.error("mail %s: the outbox failed: %s", path.name, error)
                delivery = Delivery(QUEUED, path=str(path), error=f"outbox: {_describe(error)}")
        if delivery.error and delivery.status != SENT and delivery.error not in report.errors:
            report.errors.append(delivery.error)
        if delivery.status == SENT:
            report.sent.append(state.subject or path.name)
        elif delivery.status == FAILED:
            report.failed.append({"file": delivery.path, "subject": state.subject,
                                  "attempts": delivery.attempts, "error": delivery.error})
    try:
        report.purged = outbox.tidy(now, timedelta(days=settings.mail_keep_sent_days))
        report.waiting = len(outbox.waiting())
        if outbox.failed.is_dir():
            report.failed_total = len(list(outbox.failed.glob("*.eml")))
    except OSError as error:
        log.error("mail: the outbox %s cannot be read: %s", outbox.root, error)
        report.errors.append(f"outbox: {_describe(error)}")
    return report


def _attempt(settings: Settings, outbox: Outbox, path: Path, state: MessageState,
             now: datetime, message_id: str = "") -> Delivery:
    """One delivery attempt of a message whose lock the caller holds."""
    label = server_label(settings)
    raw = path.read_bytes()
    try:
        smtp = connect(settings)
    except DELIVERY_ERRORS as error:
        return _record_failure(settings, outbox, path, state, now,
                               f"{CANNOT_CONNECT} {label}: {_describe(error)}", message_id)
    try:
        refused = deliver_raw(smtp, raw)
    except DELIVERY_ERRORS as error:
        return _record_failure(settings, outbox, path, state, now,
                               f"{label}: {_describe(error)}", message_id)
    finally:
        disconnect(smtp)
    note = ""
    if refused:  # the others have it: sending again would deliver it to them twice
        codes = sorted({str(code) for code, _ in refused.values()})
        note = f"the server refused {len(refused)} recipient(s) ({', '.join(codes)})"
        log.warning("mail %r delivered, but %s", state.subject, note)
    kept = outbox.mark_sent(path, keep=settings.mail_keep_sent_days > 0)
    return Delivery(SENT, message_id, str(kept or ""), state.attempts + 1, note)


def _record_failure(settings: Settings, outbox: Outbox, path: Path, state: MessageState,
                    now: datetime, error: str, message_id: str = "") -> Delivery:
    """Count a failed attempt: set the next retry time, or give the message up."""
    state.attempts += 1
    state.last_error = error
    if state.attempts >= settings.mail_max_attempts:
        outbox.write_state(path, state)
        target = outbox.give_up(path)
        log.error("mail %r given up after %d attempts (kept in %s): %s", state.subject,
                  state.attempts, target, error)
        return Delivery(FAILED, message_id, str(target), state.attempts, error)
    wait = timedelta(seconds=settings.mail_retry_backoff_seconds * 2 ** (state.attempts - 1))
    state.next_attempt_at = (now + wait).isoformat()
    outbox.write_state(path, state)
    log.warning("mail %r not delivered (attempt %d of %d; next try after %s): %s",
                state.subject, state.attempts, settings.mail_max_attempts,
                state.next_attempt_at, error)
    return Delivery(QUEUED, message_id, str(path), state.attempts, error)


def _describe(error: BaseException) -> str:
    """One line: the error's kind and message."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
