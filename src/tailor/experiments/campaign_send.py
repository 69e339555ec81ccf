"""Send the campaign mails that are due, over SMTP, each marked sent right after the server
took it.

Reads: `campaign_sends` (pending mails whose time has come), the exclusion list, the PII store
(a customer's address and name, joined here for the one message and never kept), the `[mail]`
SMTP settings (`tailor.mail.transport`) and the `[experiments]` campaign settings. Writes: each
mail's status in `campaign_sends`, one committed transaction per change: `sending` (with the
Message-ID) before the SMTP conversation, `sent` right after the server's accept, else back to
`pending` (or `failed` after `mail.max_attempts`). No outbox file: the table is the campaign's
outbox, and an .eml on disk would hold the customer's address. Logs counts and masked errors,
never an address or a name.

So a run that stops (the SMTP server goes away, the process is killed) resumes where it
stopped: the next run sends only what is still pending. A mail whose accept came in but whose
`sent` mark did not (a crash in between) stays `sending`, "uncertain", and is never sent again
on its own; `--retry-uncertain` puts such mails back once an operator has checked the server.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from typing import Any

from tailor.config import Settings
from tailor.events.campaign_store import (FAILED, PENDING, SENDING, SENT, SKIPPED,
                                          CampaignSend, CampaignStore, open_campaign_store)
from tailor.events.prediction_store import datetime_to_micros
from tailor.experiments.campaign_mail import (build_customer_message, envelope_sender,
                                              plain_address, render_mail)
from tailor.experiments.campaigns import campaign_is_off, check_campaign_settings
from tailor.mail.message import mask_addresses
from tailor.mail.transport import DELIVERY_ERRORS, connect, disconnect, server_label
from tailor.privacy.excluded_customers import exclusion_reasons

log = logging.getLogger(__name__)

SERVICE_CLOSING = 421  # the server is going away: stop, as for a dropped connection
UNCERTAIN_AFTER = timedelta(minutes=10)  # a claim older than this has no sender any more


class SmtpStopped(Exception):
    """The SMTP server cannot take mail now (unreachable, gone, closing): stop the run."""


@dataclass
class SendReport:
    """One send run: what went, what is left, and why it stopped. Counts only."""

    status: str  # done | stopped (the SMTP server failed) | off
    reason: str = ""
    server: str = ""
    due: int = 0  # mails ready when the run started
    sent: int = 0
    failed: int = 0  # given up in this run (refused for good, or out of attempts)
    skipped: dict[str, int] = field(default_factory=dict)  # by reason
    pending: int = 0  # still pending and due after the run (not sent yet)
    waiting: int = 0  # pending, not due yet (discount mails waiting for their day)
    uncertain: int = 0  # left `sending` by an interrupted run: may have been delivered
    requeued: int = 0  # uncertain mails put back by --retry-uncertain
    errors: list[str] = field(default_factory=list)  # distinct, masked
    held_back: int = field(default=0, repr=False)  # due discount mails whose first mail is recent

    @property
    def ok(self) -> bool:
        return self.status != "stopped"

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("held_back")  # counted in `waiting`
        return {**values, "ok": self.ok}

    def summary(self) -> str:
        if self.status == "off":
            return f"campaign mail: off ({self.reason})"
        skipped = ", ".join(f"{count:,} {reason.replace('_', ' ')}"
                            for reason, count in sorted(self.skipped.items()))
        text = (f"campaign mail via {self.server}: {self.sent:,} sent, {self.pending:,} "
                f"pending, {self.waiting:,} waiting for their day, {self.failed:,} failed"
                f"{', skipped: ' + skipped if skipped else ''}")
        if self.uncertain:
            text += (f"; {self.uncertain:,} uncertain (a run stopped between the server's "
                     "accept and the mark: check the server, then --retry-uncertain)")
        if self.status == "stopped":
            text = (f"the send stopped: {self.reason}. {text}. Run it again once the server "
                    "is back: only the pending mails go, nobody gets a mail twice")
        return text


def send_due(settings: Settings, campaign: str | None = None, *, now: datetime | None = None,
             retry_uncertain: bool = False) -> SendReport:
    """Send every campaign mail whose time has come (of one campaign, or all).

    Args:
        settings: `[mail]` SMTP, `[experiments]` campaign settings, the home.
        campaign: only this campaign's mails (default: every campaign's).
        now: the run's time (tests); default the clock.
        retry_uncertain: first put mails left `sending` by an interrupted run back to pending.

    Returns:
        The `SendReport`; status "stopped" when the SMTP server failed (nothing raised).

    Raises:
        InputError: a campaign setting is missing; the PII key does not fit the store.
    """
    off = campaign_is_off(settings)
    if off:
        return SendReport("off", reason=off)
    check_campaign_settings(settings)
    fixed_now = now.astimezone(timezone.utc) if now else None
    moment = fixed_now or datetime.now(timezone.utc)
    report = SendReport("done", server=server_label(settings))
    store = open_campaign_store(settings.event_store_url)
    try:
        if retry_uncertain:
            report.requeued = store.requeue_uncertain(
                datetime_to_micros(moment - UNCERTAIN_AFTER), campaign)
        ready = _ready(store, moment, campaign, report)
        report.due = len(ready)
        if ready:
            _send_all(settings, store, ready, report, fixed_now)
        _count_left(store, moment, campaign, report)
    finally:
        store.close()
    log.info("%s", report.summary())
    return report


def _ready(store: CampaignStore, now: datetime, campaign: str | None,
           report: SendReport) -> list[CampaignSend]:
    """Due pending mails that may go now: a discount mail only once its first mail went at
    least its delay ago; one whose first mail never went is skipped."""
    ready = []
    for send, first in store.pending_due(datetime_to_micros(now), campaign):
        if send.mail > 1:
            if first is None or first.status in (FAILED, SKIPPED):
                _skip(store, send, "first_mail_not_sent", report)
                continue
            wait = timedelta(days=send.discount_delay_days)
            if first.status != SENT or datetime_to_micros(now - wait) < int(first.sent_at or 0):
                report.held_back += 1  # the first mail is still on its way, or went too recently
                continue
        ready.append(send)
    return ready


def _skip(store: CampaignStore, send: CampaignSend, reason: str, report: SendReport) -> None:
    store.skip(send.id, reason)
    report.skipped[reason] = report.skipped.get(reason, 0) + 1


def _send_all(settings: Settings, store: CampaignStore, ready: list[CampaignSend],
              report: SendReport, fixed_now: datetime | None) -> None:
    """Deliver `ready` over one SMTP session until done or the server fails."""
    from tailor.events.pii import open_pii_store

    reasons = exclusion_reasons(settings)
    pii = open_pii_store(settings)
    session = _SmtpSession(settings)
    try:
        for send in ready:
            if send.customer_id in reasons:  # opted out or deleted since the plan
                _skip(store, send, reasons[send.customer_id] or "excluded", report)
                continue
            contact = pii.get(send.customer_id) or {}
            address = plain_address(contact.get("email"))
            if address is None:
                _skip(store, send, "no_address", report)
                continue
            try:
                _send_one(settings, store, session, send, address, contact.get("name"),
                          report, fixed_now)
            except SmtpStopped as stop:
                report.status, report.reason = "stopped", str(stop)
                log.warning("campaign mail: %s; stopped after %d sent (mail %d waits for the "
                            "next run)", stop, report.sent, send.id)
                return
    finally:
        session.close()
        pii.close()


def _send_one(settings: Settings, store: CampaignStore, session: "_SmtpSession",
              send: CampaignSend, address: str, name: str | None, report: SendReport,
              fixed_now: datetime | None) -> None:
    """Claim, deliver and mark one mail.

    Raises:
        SmtpStopped: the server failed as a whole (the mail, if claimed, is pending again).
    """
    message = build_customer_message(settings, render_mail(settings, send, name), address, name)
    raw = message.as_bytes(policy=policy.SMTP)
    clock = (lambda: fixed_now) if fixed_now else (lambda: datetime.now(timezone.utc))
    session.open()  # before the claim: a server that cannot be reached changes no mail
    if not store.claim(send.id, str(message["Message-ID"]), datetime_to_micros(clock())):
        return  # another sender has it
    try:
        session.deliver(envelope_sender(settings), address, raw)
    except SmtpStopped as stop:  # not this mail's fault: it waits for the next run
        store.release(send.id, str(stop), give_up=False)
        raise
    except smtplib.SMTPException as error:  # the server refused this one message
        code = _code(error)
        permanent = isinstance(error, smtplib.SMTPRecipientsRefused) and (code or 0) >= 500
        give_up = permanent or send.attempts + 1 >= settings.mail_max_attempts
        store.release(send.id, _describe(error), give_up=give_up)
        report.failed += give_up
        _note(report, _describe(error))
        return
    store.mark_sent(send.id, datetime_to_micros(clock()))
    report.sent += 1


class _SmtpSession:
    """One SMTP connection for a run, opened before the first mail is claimed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.label = server_label(settings)
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> None:
        """Connect (and log in) unless connected.

        Raises:
            SmtpStopped: the server cannot be reached, or refuses TLS or the login.
        """
        if self.smtp is not None:
            return
        try:
            self.smtp = connect(self.settings)
        except DELIVERY_ERRORS as error:
            raise SmtpStopped(f"cannot connect to {self.label}: {_describe(error)}") from None

    def deliver(self, sender: str, address: str, raw: bytes) -> None:
        """Hand one message to the server (`open` first).

        Raises:
            SmtpStopped: a dropped connection, the server closing (421) or refusing the
                sender: every other mail would fail the same way.
            smtplib.SMTPException: the server refused this message (a recipient refusal's
                code says whether for good).
        """
        assert self.smtp is not None, "open() first"
        try:
            refused = self.smtp.sendmail(sender, [address], raw)
        except smtplib.SMTPRecipientsRefused as error:
            if _code(error) == SERVICE_CLOSING:
                raise self._stopped(error) from None
            raise
        except smtplib.SMTPSenderRefused as error:  # 421 going away, or our sender refused
            what = "failed" if error.smtp_code == SERVICE_CLOSING else "refuses the sender"
            raise self._stopped(error, what) from None
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == SERVICE_CLOSING:
                raise self._stopped(error) from None
            raise
        except DELIVERY_ERRORS as error:  # a dropped connection, a socket or TLS error
            raise self._stopped(error) from None
        if refused:  # one recipient per message: a refusal raises above
            raise smtplib.SMTPRecipientsRefused(refused)

    def _stopped(self, error: BaseException, what: str = "failed") -> SmtpStopped:
        """Close the connection; the error that stops the run."""
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None
        return SmtpStopped(f"{self.label} {what}: {_describe(error)}")

    def close(self) -> None:
        if self.smtp is not None:
            disconnect(self.smtp)
            self.smtp = None


def _code(error: BaseException) -> int | None:
    """The SMTP reply code of a refusal (the lowest of a recipients' refusal)."""
    if isinstance(error, smtplib.SMTPResponseException):
        return int(error.smtp_code)
    if isinstance(error, smtplib.SMTPRecipientsRefused) and error.recipients:
        return min(int(code) for code, _ in error.recipients.values())
    return None


def _describe(error: BaseException) -> str:
    """The error's kind, code and message on one line, with every address masked."""
    code = _code(error)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        text = f"recipient refused ({code})"
    elif isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode("utf-8", "replace") \
            if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
        text = f"{code} {reply}"
    else:
        text = str(error)
    return mask_addresses(f"{type(error).__name__}: {' '.join(text.split())}")[:300]


def _note(report: SendReport, error: str) -> None:
    if error not in report.errors:
        report.errors.append(error)


def _count_left(store: CampaignStore, now: datetime, campaign: str | None,
                report: SendReport) -> None:
    """Pending (due or not) and uncertain mails after the run."""
    if report.reason:
        _note(report, report.reason)
    counts = store.status_counts(datetime_to_micros(now), campaign)
    report.pending = counts.get((PENDING, True), 0) - report.held_back
    report.waiting = counts.get((PENDING, False), 0) + report.held_back
    report.uncertain = counts.get((SENDING, True), 0) + counts.get((SENDING, False), 0)
