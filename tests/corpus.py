"""Building blocks of the upload corpus that the tests generate in memory: tiny images and zips of them.

Shared by `tests/test_datasets.py` (ingestion in process) and `tests/test_hostile_uploads.py` (the
same uploads through the command line), so both build their zips the same way.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping

from PIL import Image

# A recognisable solid colour for each Pillow mode (red where the mode has colour).
DEFAULT_COLOURS = {
    "L": 90,
    "1": 1,
    "I;16": 40000,
    "P": 3,
    "LA": (90, 128),
    "RGBA": (200, 30, 30, 255),
    "CMYK": (0, 255, 255, 0),
}


def image_bytes(fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (8, 8), color=None, **save) -> bytes:
    """A tiny solid image in Pillow `mode`, encoded as `fmt` (`save` is passed to `Image.save`)."""
    if color is None:
        color = DEFAULT_COLOURS.get(mode, (200, 30, 30))
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def make_zip(
    entries: Mapping[str, bytes] | Iterable[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """Zip bytes from `{name: bytes}` or `[(name or ZipInfo, bytes), ...]` (the list form allows repeated names)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items() if isinstance(entries, Mapping) else entries:
            archive.writestr(name, data)
    return buffer.getvalue()
