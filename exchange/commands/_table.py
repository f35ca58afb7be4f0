"""Plain-text tables for the terminal that line up with Chinese text.

A CJK character takes two terminal columns (East Asian Width ``W``/``F``) and combining
marks take none, so padding by ``len()`` misaligns every column after a Chinese header.
:func:`render` pads by display width instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["clip", "display_width", "render"]


def display_width(text: str) -> int:
    """Columns ``text`` occupies in a terminal.

    Args:
        text: One line of text.
    """
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def clip(text: str, width: int) -> str:
    """Cut ``text`` to at most ``width`` columns, marking the cut with ``…``.

    Args:
        text: One line of text (newlines are turned into spaces).
        width: Maximum display width (at least 1).
    """
    text = " ".join(text.split())
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    """A table with a header line, a rule, and one line per row.

    Args:
        headers: Column titles (Chinese first, e.g. ``"积压 backlog"``).
        rows: Cell texts; each row has ``len(headers)`` cells.
        right: Indexes of columns to right-align (numbers).

    Returns:
        The table, lines joined by ``\\n``, without a trailing newline.
    """
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    aligned = set(right)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            _pad(c, widths[i], i in aligned) for i, c in enumerate(cells)
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)
