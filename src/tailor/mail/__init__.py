"""Mail for the whole platform: one SMTP setup (`[mail]`), and an outbox under the home that
keeps every message until the SMTP server has taken it.

`send` and `flush_outbox` are the API; alerts, reports and `tailor mail` use nothing else.
"""

from tailor.mail.delivery import Delivery, FlushReport, flush_outbox, send
from tailor.mail.message import Attachment

__all__ = ["Attachment", "Delivery", "FlushReport", "flush_outbox", "send"]
