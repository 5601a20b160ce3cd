"""How ingestion words sizes, counts and errors in its reports and refusals."""

from __future__ import annotations

MIB = 1024**2
GIB = 1024**3


def size_text(n: int) -> str:
    """`"2.0 GB"`, `"100.0 MB"`, `"512 bytes"` (binary multiples)."""
    for unit, scale in (("GB", GIB), ("MB", MIB), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def count_text(n: int, singular: str, plural: str | None = None) -> str:
    """`"1 image"`, `"1,024 images"`."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def brief(error: BaseException) -> str:
    """An exception's own words, at most 120 characters."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
