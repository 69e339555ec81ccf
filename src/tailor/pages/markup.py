"""Markup shared by Tailor's pages: the style sheet, and tables whose every number sits in
a cell with a stable id holding the exact value in `data-value` and the rounded one as its
text (so a browser test, or a scraper, reads the figures back). Reads and writes nothing."""

from __future__ import annotations

import html
import re
from typing import Any, Iterable, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 64rem;
       color: #212121; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin-top: 1.2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.25rem 0.6rem; text-align: right; }
th { text-align: left; } td.text { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.card { border: 1px solid #e0e0e0; border-radius: 6px; padding: 0.6rem 1rem; min-width: 9rem; }
.card .label { color: #616161; font-size: 0.8rem; display: block; }
.card .value { font-size: 1.4rem; display: block; }
.card .change { color: #616161; font-size: 0.8rem; }
.note { color: #616161; font-size: 0.85rem; }
.flag { color: #c62828; font-weight: bold; } .ok { color: #2e7d32; }
.changed { color: #ef6c00; font-weight: bold; }
svg { max-width: 100%; height: auto; }
"""


def element_id(*parts: object) -> str:
    """A stable element id from its parts, each reduced to letters, digits, _ and -."""
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", str(part)) or "none" for part in parts)


def cell(identifier: str, value: Any, text: str) -> str:
    """A table cell with its id, the exact value in data-value and the text shown."""
    return (f'<td id="{html.escape(identifier)}" data-value="{html.escape(exact(value))}">'
            f"{html.escape(text)}</td>")


def exact(value: Any) -> str:
    """The exact value as text: floats as repr (read back to the same float), None empty."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def text_cell(text: str, css: str = "text") -> str:
    return f'<td class="{css}">{html.escape(text)}</td>'


def table(identifier: str, headers: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in headers)
    body = "\n".join(f"<tr>{row}</tr>" for row in rows)
    return (f'<table id="{identifier}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table>")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'
