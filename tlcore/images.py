"""Images: how every image that enters the program becomes the pixels a model sees.

Two steps, the same for every way in (an upload ingested into a dataset, a photo tried on a model, a
test zip, `python -m tlcore predict`, the export check):

1. `convert` (Pillow, no TensorFlow): open the image with the decoders we trust, apply its EXIF
   orientation, and make it 8-bit RGB (transparency on white, 16-bit and float samples scaled to 0-255).
   A plain RGB JPEG that needs no rotation is kept byte for byte; anything else becomes a lossless PNG.
   What cannot be used (not an image, damaged, too many pixels) is a reason (a `Message`), not an exception.
2. `decode_and_resize` (TensorFlow): decode those bytes and resize them to the model's square input,
   bilinear with antialiasing, rounded to uint8. Training pipelines, evaluation, prediction and the
   export check all call this one function, so they can never disagree about a photo.

Images stored in a dataset went through step 1 at ingestion; `load_images` does step 2 for them.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from tlcore.errors import ImageError
from tlcore.i18n import Message, msg
from tlcore.wording import brief

if TYPE_CHECKING:
    import tensorflow as tf

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

# `warnings.catch_warnings` swaps process-wide state; the lock keeps two ingestions in the app's
# threads from restoring each other's filters in the wrong order.
_WARNINGS_LOCK = threading.Lock()


def convert(data: bytes, path: str, max_pixels: int) -> tuple[bytes, str, int] | Message:
    """`(bytes to store, suffix, pixels)` for an image, or the reason it is skipped.

    A plain RGB JPEG that needs no rotation is kept byte for byte; anything else is converted to RGB
    (alpha composited on white, EXIF orientation applied) and stored as lossless PNG.
    """
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
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation)
        except Exception as error:  # as above: truncated or corrupt data, in any decoder
            return msg("image.truncated", error=brief(error))
        if image.format == "JPEG" and image.mode == "RGB" and orientation in (None, 1):
            return data, ".jpg", width * height
        try:
            rgb = to_rgb(ImageOps.exif_transpose(image))
        except (ValueError, OSError) as error:
            return msg("image.colour_mode", mode=image.mode, error=brief(error))
    buffer = io.BytesIO()
    # Level 1: lossless either way, and several times faster than the default on photos.
    rgb.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), ".png", width * height


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


def decode_and_resize(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """Step 2: decode image bytes (as `convert` stores them) and resize to `image_size` square, uint8 RGB."""
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode_file(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """`decode_and_resize` of a stored image file, inside a `tf.data` pipeline."""
    import tensorflow as tf

    return decode_and_resize(tf.io.read_file(path), image_size)


def load_images(paths: Sequence[str | os.PathLike[str]], image_size: int) -> np.ndarray:
    """Decode and resize stored image files into one uint8 array of shape (n, size, size, 3), in parallel."""
    import tensorflow as tf

    if not paths:
        return np.zeros((0, image_size, image_size, 3), dtype="uint8")
    files = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    images = files.map(lambda p: decode_file(p, image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return np.stack(list(images.as_numpy_iterator()))


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
    return converted[0]


def load_image(source: ImageSource, image_size: int, name: str | None = None) -> np.ndarray:
    """Both steps for one image from outside a dataset: uint8 RGB of shape (size, size, 3), as training saw it.

    Raises `ImageError`, naming the image and the reason, for anything that is not a usable image.
    """
    return decode_and_resize(convert_image(source, name), image_size).numpy()
