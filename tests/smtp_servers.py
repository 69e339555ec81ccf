"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping every message it accepts.

`local_smtp_server()` starts one on a free port (or the port given: a server "coming back"),
optionally with STARTTLS or implicit TLS from `make_certificates()` (a throwaway CA and a
server certificate for 127.0.0.1 and localhost), a login, a 5xx answer to every recipient, or
an accept limit (after that many messages, 421 "shutting down" to every new one, as a server
going away mid-campaign; set `accept_limit` to None to bring it back).
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ReceivedMail:
    """One message as the server took it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def body(self) -> str:
        """The plain-text part."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def attachments(self) -> dict[str, bytes]:
        return {part.get_filename(): part.get_payload(decode=True)
                for part in self.message.iter_attachments()}


@dataclass
class SmtpServer:
    """What a running test server received, and where it listens."""

    port: int
    messages: list[ReceivedMail] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    accept_limit: int | None = None  # messages taken before answering 421 to every MAIL


class _Handler:
    def __init__(self, server: SmtpServer, refuse: str | None) -> None:
        self.server, self.refuse = server, refuse

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        with self.server.lock:
            limit = self.server.accept_limit
            if limit is not None and len(self.server.messages) >= limit:
                return "421 4.3.2 Service shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append(ReceivedMail(envelope.mail_from,
                                                     list(envelope.rcpt_tos), message))
        return "250 Message accepted"


@contextmanager
def local_smtp_server(port: int | None = None, *, starttls: ssl.SSLContext | None = None,
                      implicit_tls: ssl.SSLContext | None = None,
                      login: tuple[str, str] | None = None,
                      refuse: str | None = None,
                      accept_limit: int | None = None) -> Iterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1 for the block.

    Args:
        port: the port to listen on (default a free one).
        starttls: offer STARTTLS with this server context, and require it.
        implicit_tls: TLS from the first byte (SMTPS) with this server context.
        login: (user, password) the server requires (over TLS).
        refuse: the answer to every RCPT, e.g. "550 5.1.1 mailbox unavailable".
        accept_limit: after this many messages, answer 421 to every MAIL FROM.
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received = SmtpServer(port=port or free_port(), accept_limit=accept_limit)
    kwargs: dict = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=True)
    if implicit_tls is not None:
        kwargs.update(ssl_context=implicit_tls)
    if login is not None:
        def authenticate(server, session, envelope, mechanism, auth_data):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            received.logins.append(user)
            # handled=False: the server answers 535 itself (True would leave the client waiting)
            return AuthResult(success=(user, password) == login, handled=False)

        kwargs.update(authenticator=authenticate, auth_required=True)
    controller = Controller(_Handler(received, refuse), hostname="127.0.0.1",
                            port=received.port, **kwargs)
    controller.start()
    try:
        yield received
    finally:
        controller.stop()


def make_certificates(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost.

    Returns:
        The CA's PEM file (what the client trusts, `mail.ca_file`) and the server's context.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("Tailor test CA", ca_key, "Tailor test CA", ca_key, ca=True)
    server_cert = certificate("127.0.0.1", server_key, "Tailor test CA", ca_key, ca=False)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context
