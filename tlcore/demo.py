"""A small image dataset generated on the spot, for a first run and for tests.

`demo_zip()` draws simple shapes (circles, squares, triangles, ...) in random colours, sizes and
positions on noisy backgrounds and returns them as the bytes of a zip with one folder per class, the
layout `tlcore.datasets.ingest_zip` expects. Nothing is downloaded, so a newcomer can see the whole
flow (upload, model, training, comparison) in a minute on any machine, and the tests get a tiny,
deterministic dataset that a network can actually learn: the classes differ in shape, not in colour
or place.
"""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circles", "squares", "triangles", "crosses", "stars", "rings")
"""The classes, in the order `classes=k` takes them."""

# A fixed timestamp keeps the zip bytes (and so the dataset id) the same for the same arguments.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def demo_zip(classes: int = 3, per_class: int = 24, size: int = 64, seed: int = 0) -> bytes:
    """Generate a learnable shapes dataset as zip bytes: `<shape>/<shape>_000.jpg`, ...

    Each image is one shape, drawn filled in a random colour at a random size (a third to three
    quarters of the image), position and rotation, on a background of random brightness with noise.
    Shapes are always bright on dark or dark on bright, so every image shows its class.

    Args:
        classes: how many shape classes, from 2 to 6 (`SHAPES[:classes]`).
        per_class: images per class, at least 2.
        size: image side in pixels, at least 16.
        seed: the same arguments and seed always give the same bytes.

    Returns:
        The bytes of a zip of JPEG images with one folder per class at its root.
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"`classes` must be between 2 and {len(SHAPES)}. Received: classes={classes}")
    if per_class < 2:
        raise ValueError(f"`per_class` must be at least 2. Received: per_class={per_class}")
    if size < 16:
        raise ValueError(f"`size` must be at least 16 pixels. Received: size={size}")
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for shape in SHAPES[:classes]:
            for index in range(per_class):
                image = _draw(shape, size, rng)
                encoded = io.BytesIO()
                image.save(encoded, format="JPEG", quality=90)
                info = zipfile.ZipInfo(f"{shape}/{shape[:-1]}_{index:03d}.jpg", date_time=_ZIP_TIME)
                archive.writestr(info, encoded.getvalue())
    return buffer.getvalue()


def _draw(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    dark_background = rng.random() < 0.5
    level = rng.uniform(20, 90) if dark_background else rng.uniform(165, 235)
    tint = rng.uniform(-15, 15, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    background = np.clip(level + tint + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")

    low, high = (170, 256) if dark_background else (0, 90)
    colour = tuple(int(c) for c in rng.integers(low, high, size=3))
    radius = rng.uniform(size / 6, size * 3 / 8)
    cx, cy = (rng.uniform(radius + 1, size - radius - 1) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    _SHAPE_DRAWERS[shape](ImageDraw.Draw(image), cx, cy, radius, angle, colour)
    return image


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [(cx + r * math.cos(angle + i * step), cy + r * math.sin(angle + i * step)) for i, r in enumerate(radii)]


def _circle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _square(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    draw.polygon(_polygon(cx, cy, [r] * 4, angle), fill=colour)


def _triangle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    draw.polygon(_polygon(cx, cy, [r] * 3, angle), fill=colour)


def _cross(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    width = max(2, round(r / 2.5))
    for turn in (0, math.pi / 2):
        dx, dy = r * math.cos(angle + turn), r * math.sin(angle + turn)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=colour, width=width)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    draw.polygon(_polygon(cx, cy, [r, r * 0.4] * 5, angle), fill=colour)


def _ring(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, round(r / 4)))


_SHAPE_DRAWERS = {
    "circles": _circle,
    "squares": _square,
    "triangles": _triangle,
    "crosses": _cross,
    "stars": _star,
    "rings": _ring,
}
