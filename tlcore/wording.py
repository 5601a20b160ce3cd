"""Values as messages show them, and text laid out in columns.

The sentences themselves are catalog messages (`tlcore.i18n`); what is here formats the values they
are given: sizes with their units (which read the same in English and Japanese), an exception's own
words. Counts with a noun are messages too (`msg("count.images", n=3)`), for their plural forms.
Reports in columns (`tlcore.datasets.Dataset.summary`, `tlcore.evaluation.Evaluation.summary`) pad
by display width, so Japanese class names and headings line up.
"""

from __future__ import annotations

import unicodedata

MIB = 1024**2
GIB = 1024**3


def size_text(n: int) -> str:
    """`"2.0 GB"`, `"100.0 MB"`, `"512 bytes"` (binary multiples): an upload's sizes and limits."""
    for unit, scale in (("GB", GIB), ("MB", MIB), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def format_bytes(size: float) -> str:
    """Sizes in the binary units budgets are given in: `"1.5 GiB"`, `"320 MiB"`."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size / scale:.0f} {unit}"
    return f"{int(size)} B"


def brief(error: BaseException) -> str:
    """An exception's own words, at most 120 characters (a value in a message, never translated)."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def display_width(text: str) -> int:
    """The columns `text` takes in a terminal: two for wide characters (kanji, kana), one for the rest."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def columns(rows: list[list[str]]) -> list[str]:
    """`rows` as lines of aligned columns two spaces apart: the first column left-aligned, the rest
    right-aligned (numbers), each as wide as its widest cell; trailing spaces are dropped."""
    widths = [max(display_width(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        cells = [row[0] + " " * (widths[0] - display_width(row[0]))]
        cells += [" " * (w - display_width(c)) + c for c, w in zip(row[1:], widths[1:], strict=False)]
        lines.append("  ".join(cells).rstrip())
    return lines
