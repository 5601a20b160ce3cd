"""Images: how every image that enters the program becomes the pixels a model sees.

Two steps, the same for every way in (an upload ingested into a dataset, a photo tried on a model, a
test zip, `python -m tlcore predict`, the export check):

1. `convert` (Pillow): open the image with the decoders we trust, apply its EXIF orientation, and make
   it 8-bit RGB (transparency on white, 16-bit and float samples scaled to 0-255). A plain RGB JPEG
   that needs no rotation is kept byte for byte; anything else becomes a lossless PNG. What cannot be
   used (not an image, damaged, too many pixels) is a reason (a `Message`), not an exception.
2. `decode` (Pillow): decode those bytes at the scale the model needs and resize them to its square
   input, bilinear with antialiasing, uint8 RGB. A JPEG much larger than the input is decoded by
   its own DCT scaling (`Image.draft`: 1/2, 1/4 or 1/8 of its size, never below the input size), so
   a 12-megapixel photo costs a fraction of a full decode, and the antialiased resize that follows
   keeps the pixels as close to an exact average of the full-size photo as a full decode did.
   Training, feature passes, evaluation, prediction and the export check all get their pixels from
   this one function (directly, or from the decoded-image cache it fills, `tlcore.decoded`), so they
   can never disagree about a photo.

Step 1 checks a kept JPEG by decoding it at the smallest scale the format allows (every byte of its
compressed data is still read, so a truncated or damaged file is caught as a full decode catches it);
given `image_size`, it decodes at that scale instead and returns the pixels of step 2 as well, so an
ingestion decodes each photo once. Both steps run in parallel on every core (`decode_files`): Pillow
releases the GIL while it decodes and resizes.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from tlcore.errors import ImageError
from tlcore.i18n import Message, msg
from tlcore.wording import brief

ImageSource = str | os.PathLike[str] | bytes | IO[bytes]
"""An image as a path, its bytes, or a binary file object (such as Streamlit's `UploadedFile`)."""

MAX_IMAGE_BYTES = 100 * 1024**2
"""The largest file one image may be (an upload's `Limits.max_entry_bytes`)."""
MAX_IMAGE_PIXELS = 64_000_000
"""The most pixels one image may have (an upload's `Limits.max_image_pixels`)."""

# The only Pillow decoders ever tried: an upload must not reach plugins such as EPS, which runs
# Ghostscript. The messages `image.unsupported_format` and `dataset.no_images` list them for users.
_PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""The file name endings of those formats, for places that pick images by name before opening them."""
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_ARCHIVE_MAGIC = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
)
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
# Decodes running ahead of the one consuming them, per worker: keeps every core busy, bounds memory.
_AHEAD_PER_WORKER = 4

# `warnings.catch_warnings` swaps process-wide state; the lock keeps two ingestions in the app's
# threads from restoring each other's filters in the wrong order.
_WARNINGS_LOCK = threading.Lock()


class Converted(NamedTuple):
    """An image as step 1 stores it, and, when asked for, as step 2 decodes it."""

    data: bytes
    """The bytes to store: the original JPEG, or a lossless PNG."""
    suffix: str
    """`.jpg` or `.png`."""
    pixel_count: int
    """Width × height of the image as uploaded."""
    decoded: np.ndarray | None
    """`decode(data, image_size)`, when `convert` was given an `image_size`."""


def convert(data: bytes, path: str, max_pixels: int, image_size: int | None = None) -> Converted | Message:
    """Step 1 for an image: what to store, or the reason it is skipped (see the module's docstring).

    image_size: also decode the image for a model of this input size (`Converted.decoded`, exactly
        `decode(Converted.data, image_size)`), from the same decode that checks it.
    """
    return _convert(data, path, max_pixels, image_size, encode=True)


def _convert(data: bytes, path: str, max_pixels: int, image_size: int | None, encode: bool) -> Converted | Message:
    """`convert`; `encode` False leaves a converted image's PNG unwritten (`Converted.data` empty)."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return msg("image.decompression_bomb", limit=f"{Image.MAX_IMAGE_PIXELS:,}")
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_MAGIC) or (data.startswith(b"RIFF") and data[8:12] == b"WEBP"):
            return msg("image.damaged_after_start")
        if data.startswith(_ARCHIVE_MAGIC) or data[257:262] == b"ustar" or path.casefold().endswith(_ARCHIVE_SUFFIXES):
            return msg("image.archive_inside")
        return msg("image.unsupported_format")
    except Exception as error:  # Pillow's parsers raise many kinds of errors on hostile headers.
        return msg("image.damaged", error=brief(error))
    with image:
        width, height = image.size
        if width * height > max_pixels:
            return msg("image.too_many_pixels", width=width, height=height, limit=f"{max_pixels:,}")
        try:
            kept = image.format == "JPEG" and image.mode == "RGB" and _orientation(image) in (None, 1)
            if kept:
                # Checking needs every byte decoded, not every pixel: the smallest scale reads them all.
                _draft(image, image_size or 1)
            image.load()
        except Exception as error:  # as above: truncated or corrupt data, in any decoder
            return msg("image.truncated", error=brief(error))
        if kept:
            return Converted(data, ".jpg", width * height, _model_pixels(image, image_size) if image_size else None)
        try:
            rgb = to_rgb(ImageOps.exif_transpose(image))
        except (ValueError, OSError) as error:
            return msg("image.colour_mode", mode=image.mode, error=brief(error))
    decoded = _model_pixels(rgb, image_size) if image_size else None
    if not encode:
        return Converted(b"", ".png", width * height, decoded)
    buffer = io.BytesIO()
    # Level 1: lossless either way, and several times faster than the default on photos.
    rgb.save(buffer, format="PNG", compress_level=1)
    return Converted(buffer.getvalue(), ".png", width * height, decoded)


def _orientation(image: Image.Image) -> int | None:
    return image.getexif().get(ExifTags.Base.Orientation)


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as 8-bit RGB: high-depth samples scaled to 0-255, transparency composited on white."""
    if image.mode in _HIGH_DEPTH_MODES:
        # Float images may hold NaN or infinities, which have no 8-bit value.
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if pixels.max(initial=0) > 255:  # 16-bit samples: keep the brightness, not the low byte
            pixels = pixels / 257
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode(data: bytes, image_size: int) -> np.ndarray:
    """Step 2: image bytes (as `convert` stores them) as the model sees them, uint8 RGB of shape (size, size, 3).

    Raises what Pillow raises for bytes that are not a usable image (`OSError`, `ValueError`):
    stored images were checked by `convert`, so that means a file changed or damaged since.
    """
    with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as image:
        _draft(image, image_size)
        return _model_pixels(image, image_size)


def _draft(image: Image.Image, image_size: int) -> None:
    """Let a JPEG decode at the smallest of 1/1, 1/2, 1/4 or 1/8 of its size that keeps both sides at
    least `image_size` (its DCT scaling); other formats decode whole."""
    image.draft("RGB", (image_size, image_size))


def _model_pixels(image: Image.Image, image_size: int) -> np.ndarray:
    """`image` resized to the model's square input (bilinear, antialiased: Pillow widens the filter
    when it shrinks), as uint8 RGB."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image.resize((image_size, image_size), Image.Resampling.BILINEAR))


def decode_file(path: str | os.PathLike[str], image_size: int) -> np.ndarray:
    """`decode` of a stored image file."""
    return decode(Path(path).read_bytes(), image_size)


def decode_workers() -> int:
    """The threads that decode images: one per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_files(paths: Sequence[str | os.PathLike[str]], image_size: int) -> Iterator[np.ndarray]:
    """`decode_file` of every path, in order, decoded in parallel on every core a little ahead of the caller."""
    workers = decode_workers()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="tlcore-decode")
    pending: deque[Future[np.ndarray]] = deque()
    try:
        for path in paths:
            pending.append(pool.submit(decode_file, path, image_size))
            if len(pending) >= _AHEAD_PER_WORKER * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def load_images(paths: Sequence[str | os.PathLike[str]], image_size: int) -> np.ndarray:
    """Decode stored image files into one uint8 array of shape (n, size, size, 3), in parallel."""
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    for index, pixels in enumerate(decode_files(paths, image_size)):
        images[index] = pixels
    return images


def source_name(source: ImageSource, default: str) -> str:
    """A readable name for an image source: its file name when it has one."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    own = getattr(source, "name", None)
    return Path(own).name if isinstance(own, str) and own else default


def read_source(source: ImageSource, name: str) -> bytes:
    """The bytes of an image source, refusing missing files and files too large to be an image."""
    limit = MAX_IMAGE_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ImageError("image.is_folder", path=str(path))
        try:
            if path.stat().st_size > limit:
                raise ImageError("image.too_large", name=name, limit=limit // 1024**2)
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError("image.cannot_read", path=str(path), error=exc.strerror or str(exc)) from None
    elif hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(limit + 1)
    else:
        raise TypeError(f"An image must be a path, bytes or a binary file object. Received: {type(source).__name__}")
    if len(data) > limit:
        raise ImageError("image.too_large", name=name, limit=limit // 1024**2)
    if not data:
        raise ImageError("image.empty", name=name)
    return data


def convert_image(source: ImageSource, name: str | None = None) -> bytes:
    """Step 1 for an image from outside a dataset: JPEG or PNG bytes, as ingestion would store it.

    Raises `ImageError`, naming the image and the reason, for anything that is not a usable image.
    """
    name = name or source_name(source, "image")
    converted = convert(read_source(source, name), name, MAX_IMAGE_PIXELS)
    if isinstance(converted, Message):
        raise ImageError("image.cannot_be_used", name=name, reason=converted)
    return converted.data


def load_image(source: ImageSource, image_size: int, name: str | None = None) -> np.ndarray:
    """Both steps for one image from outside a dataset: uint8 RGB of shape (size, size, 3), as training saw it.

    Raises `ImageError`, naming the image and the reason, for anything that is not a usable image.
    """
    name = name or source_name(source, "image")
    converted = _convert(read_source(source, name), name, MAX_IMAGE_PIXELS, image_size, encode=False)
    if isinstance(converted, Message):
        raise ImageError("image.cannot_be_used", name=name, reason=converted)
    return converted.decoded
