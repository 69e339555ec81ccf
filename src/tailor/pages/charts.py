"""Plots as inline SVG text: matplotlib figures drawn so that several share one page without
clashing ids and the same figures draw the same bytes. matplotlib is imported inside the
function (importing this module is cheap)."""

from __future__ import annotations

import io
from typing import Any

COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037")


def svg(figure: Any, name: str) -> str:
    """A matplotlib figure as an inline `<svg>` element (no XML prologue)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(figure)
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]
