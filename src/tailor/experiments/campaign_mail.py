"""One campaign mail: its tracking URLs, its text and HTML, and the message to a customer.

Reads: a planned mail (`CampaignSend`), the customer's name and address as the sender hands
them over (joined from the PII store at send time, never kept), and the `[experiments]`
campaign settings. Writes nothing: returns strings and an `EmailMessage`.

Every link of the mail goes through the collector: `<tracking_url>/t/c/<token>?u=<n>` leads
to the mail's n-th stored link target (`tailor.events.collector.tracking`), and the HTML part
carries the open pixel `<tracking_url>/t/o/<token>.gif`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from tailor.config import Settings
from tailor.events.campaign_store import CampaignSend

PIXEL_PATH, CLICK_PATH = "/t/o/", "/t/c/"
_ADDRESS = re.compile(r'^[A-Za-z0-9.!#$%&\'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$')


@dataclass(frozen=True)
class RenderedMail:
    """Subject and bodies of one mail."""

    subject: str
    text: str
    html: str


def open_pixel_url(settings: Settings, token: str) -> str:
    return f"{settings.experiments_campaign_tracking_url.rstrip('/')}{PIXEL_PATH}{token}.gif"


def click_url(settings: Settings, token: str, link_number: int) -> str:
    return (f"{settings.experiments_campaign_tracking_url.rstrip('/')}{CLICK_PATH}{token}"
            f"?u={link_number}")


def render_mail(settings: Settings, send: CampaignSend, name: str | None) -> RenderedMail:
    """The mail's subject, plain text and HTML.

    Args:
        settings: subject, discount and tracking settings.
        send: the planned mail (picks, code, whether it offers the discount).
        name: the customer's name for the greeting (None or empty: a neutral greeting).
    """
    percent = settings.experiments_campaign_discount_percent
    subject = settings.experiments_campaign_subject
    if send.with_discount:
        subject = f"{subject}: {percent}% off for you"
    greeting = f"Hi {_one_line(name)}," if name and _one_line(name) else "Hello,"
    picks = [(pick, click_url(settings, send.token, number))
             for number, pick in enumerate(send.picks, start=1)]
    shop = click_url(settings, send.token, 0)
    offer = _offer_sentence(send, percent, settings.experiments_campaign_discount_valid_days)
    return RenderedMail(subject, _text(greeting, picks, shop, offer, send.code),
                        _html(greeting, picks, shop, offer, send.code,
                              open_pixel_url(settings, send.token)))


def _offer_sentence(send: CampaignSend, percent: int, valid_days: int) -> str:
    if not send.with_discount:
        return ""
    return (f"Here is {percent}% off your next order with the code below, valid for "
            f"{valid_days} days.")


def _price(pick: dict[str, Any]) -> str:
    return f" ({pick['price']:.2f})" if pick.get("price") is not None else ""


def _text(greeting: str, picks: list[tuple[dict[str, Any], str]], shop: str, offer: str,
          code: str) -> str:
    lines = [greeting, "", "It has been a while. We picked a few things you might like:", ""]
    lines += [f"  - {pick['name']}{_price(pick)}: {url}" for pick, url in picks]
    if offer:
        lines += ["", offer, f"Your code: {code}"]
    lines += ["", f"Visit the shop: {shop}", ""]
    return "\n".join(lines)


def _html(greeting: str, picks: list[tuple[dict[str, Any], str]], shop: str, offer: str,
          code: str, pixel: str) -> str:
    escape = html.escape
    items = "".join(f'<li><a href="{escape(url)}">{escape(pick["name"])}</a>'
                    f"{escape(_price(pick))}</li>" for pick, url in picks)
    offer_html = (f"<p>{escape(offer)}</p><p>Your code: <strong>{escape(code)}</strong></p>"
                  if offer else "")
    return ("<!DOCTYPE html><html><body>"
            f"<p>{escape(greeting)}</p>"
            "<p>It has been a while. We picked a few things you might like:</p>"
            f"<ul>{items}</ul>{offer_html}"
            f'<p><a href="{escape(shop)}">Visit the shop</a></p>'
            f'<img src="{escape(pixel)}" width="1" height="1" alt="">'
            "</body></html>")


def _one_line(text: str | None) -> str:
    """A name as one line of plain words (no line breaks a header or a body could misuse)."""
    return " ".join(str(text or "").split())[:100]


def plain_address(text: str | None) -> str | None:
    """The address as the SMTP envelope takes it: one ASCII `local@domain`, else None."""
    address = str(text or "").strip()
    if not address.isascii() or not _ADDRESS.match(address):
        return None
    return address


def build_customer_message(settings: Settings, rendered: RenderedMail, address: str,
                           name: str | None) -> EmailMessage:
    """The message from `experiments.campaign_sender` to one customer (`address` checked by
    `plain_address` first)."""
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = settings.experiments_campaign_sender
    local, _, domain = address.rpartition("@")
    message["To"] = Address(display_name=_one_line(name), username=local, domain=domain)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid("tailor-campaign", domain=envelope_sender(settings)
                                       .rpartition("@")[2] or "localhost")
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def envelope_sender(settings: Settings) -> str:
    """The bare address of `experiments.campaign_sender`."""
    return parseaddr(settings.experiments_campaign_sender)[1]
