"""Building a message, and the guard that keeps personal data out of it.

Reads: the `mail_sender` and `mail_recipients` settings. Writes nothing: returns an
`email.message.EmailMessage` (plain text, optionally an HTML alternative, attachments).
The guard refuses a message that holds an e-mail address other than the sender's or a
recipient's: Tailor's mail carries figures, rule names and paths, never a customer's contact.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Iterable

from tailor.config import Settings

# What an address looks like inside prose (a stricter shape than the settings accept, so
# that version strings and decorators are not taken for addresses).
_ADDRESS_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_TEXT_TYPES = {"text", "message"}
_TEXT_SUBTYPES = {"json", "xml", "csv", "javascript"}


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the recipient sees it, its bytes and MIME type."""

    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: str | Path) -> "Attachment":
        """The file at `path`, its type guessed from the name (`report.html` -> text/html)."""
        path = Path(path)
        guessed, _ = mimetypes.guess_type(path.name)
        return cls(path.name, path.read_bytes(), guessed or "application/octet-stream")


def recipients(settings: Settings) -> list[str]:
    """The configured recipients, as written in the settings (empty: mail is off)."""
    return [item.strip() for item in settings.mail_recipients.split(",") if item.strip()]


def build_message(settings: Settings, subject: str, text: str, html: str | None = None,
                  attachments: Iterable[Attachment | str | Path] = ()) -> EmailMessage:
    """A message from the configured sender to the configured recipients."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_sender
    message["To"] = ", ".join(recipients(settings))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(settings.mail_sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid("tailor", domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for item in attachments:
        attachment = item if isinstance(item, Attachment) else Attachment.from_path(item)
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype,
                               subtype=subtype or "octet-stream", filename=attachment.filename)
    return message


def mask_addresses(text: str) -> str:
    """`text` with every e-mail address replaced by `<address>` (for a log line)."""
    return _ADDRESS_IN_TEXT.sub("<address>", text)


def foreign_addresses(message: EmailMessage, settings: Settings) -> set[str]:
    """E-mail addresses in the subject, the text parts and the text attachments that are
    neither the sender's nor a recipient's (lower-cased). Binary attachments are not read."""
    allowed = {address.lower() for _, address in
               getaddresses([settings.mail_sender, *recipients(settings)])}
    found = set(_ADDRESS_IN_TEXT.findall(str(message["Subject"] or "")))
    for part in message.walk():
        if part.is_multipart():
            continue
        readable = (part.get_content_maintype() in _TEXT_TYPES
                    or part.get_content_subtype() in _TEXT_SUBTYPES)
        if readable:
            payload = part.get_payload(decode=True) or b""
            found.update(_ADDRESS_IN_TEXT.findall(payload.decode("utf-8", "replace")))
    return {address.lower() for address in found} - allowed
