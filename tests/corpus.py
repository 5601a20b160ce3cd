"""The upload corpus that the tests generate in memory: tiny images, zips of them, and the zips that must be refused.

Shared by `tests/test_datasets.py` (ingestion in process) and `tests/test_hostile_uploads.py` (the
same uploads through the command line), so both build their zips the same way and both run every
upload of `REFUSED_ZIPS`, each expecting the same words in its refusal. Nothing binary is committed.
"""

from __future__ import annotations

import io
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
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

# The name every escape attempt tries to create, so that a test can look for it anywhere on disk.
MARKER = f"pwned-{uuid.uuid4().hex[:8]}"

# ---------------------------------------------------------------------------------------------
# Images


def image_bytes(fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (8, 8), color=None, **save) -> bytes:
    """A tiny solid image in Pillow `mode`, encoded as `fmt` (`save` is passed to `Image.save`)."""
    if color is None:
        color = DEFAULT_COLOURS.get(mode, (200, 30, 30))
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt, **save)
    return buffer.getvalue()


PNG = image_bytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(
    width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2, rows: bytes | None = None, extra: bytes = b""
) -> bytes:
    """A PNG written chunk by chunk, so that its header can say what its data does not: `png(50_000, 50_000)`
    declares 2.5 billion pixels in a hundred bytes (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = zlib.compress(rows if rows is not None else b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# Zips


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


def class_entries(
    *classes: str, per_class: int = 3, prefix: str = "", image: bytes | None = None
) -> list[tuple[str, bytes]]:
    """`per_class` images `{prefix}{class}/{i}.png` of each class: `image` for all of them, or by default a PNG
    of its own shade for each `i`."""
    return [
        (f"{prefix}{c}/{i}.png", image if image is not None else image_bytes(color=(i * 40, 100, 200)))
        for c in classes
        for i in range(per_class)
    ]


def classes_zip(*classes: str, per_class: int = 3, prefix: str = "", extra: dict | None = None) -> bytes:
    """A zip of class folders (see `class_entries`), with the `extra` entries `{name: bytes}` added."""
    return make_zip({**dict(class_entries(*classes, per_class=per_class, prefix=prefix)), **(extra or {})})


def headers(data: bytes) -> Iterator[tuple[int, int]]:
    """`(local header offset, central header offset)` of every entry, in central directory order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos, position = archive.infolist(), archive.start_dir
    for info in infos:
        assert data[position : position + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[position + 28 : position + 34])
        yield info.header_offset, position
        position += 46 + name_len + extra_len + comment_len


# field: (struct format, offset in the local header, offset in the central directory header)
_HEADER_FIELDS = {"flag_bits": ("<H", 6, 8), "method": ("<H", 8, 10), "file_size": ("<I", 22, 24)}
_UTF8_FLAG = 0x800


def patch_zip(data: bytes, index: int, *, raw_name: bytes | None = None, **fields: int) -> bytes:
    """Rewrite entry `index`'s header fields (`flag_bits`, `method`, `file_size`) or its name, in its local and
    central headers, as a hostile tool could. `raw_name` replaces a placeholder name of the same length with
    bytes in any encoding, and clears the UTF-8 flag (as Japanese Windows writes names)."""
    patched = bytearray(data)
    local, central = list(headers(data))[index]
    for field, value in fields.items():
        fmt, local_offset, central_offset = _HEADER_FIELDS[field]
        struct.pack_into(fmt, patched, local + local_offset, value)
        struct.pack_into(fmt, patched, central + central_offset, value)
    if raw_name is not None:
        for name_at, length_at, flags_at in (
            (local + 30, local + 26, local + 6),
            (central + 46, central + 28, central + 8),
        ):
            assert struct.unpack_from("<H", patched, length_at)[0] == len(raw_name), "placeholder of another length"
            patched[name_at : name_at + len(raw_name)] = raw_name
            struct.pack_into("<H", patched, flags_at, struct.unpack_from("<H", patched, flags_at)[0] & ~_UTF8_FLAG)
    return bytes(patched)


def zip_with_raw_names(entries: dict[bytes, bytes]) -> bytes:
    """A zip whose names are the given bytes, without the UTF-8 flag (as Japanese Windows writes them)."""
    placeholders = [f"{i:0{len(raw)}d}" for i, raw in enumerate(entries)]
    data = make_zip(dict(zip(placeholders, entries.values(), strict=True)))
    for index, raw in enumerate(entries):
        data = patch_zip(data, index, raw_name=raw)
    return data


def stored_zip(names: list[str]) -> bytes:
    """A zip of empty stored entries, written directly: fast for a hundred thousand of them."""
    local, central = [], []
    offset = 0
    for name in names:
        raw = name.encode("utf-8")
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(raw), 0) + raw
        central.append(
            struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(raw), 0, 0, 0, 0, 0, offset)
            + raw
        )
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    count = min(len(names), 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0)
    return b"".join(local) + directory + end


def overlapping_bomb(copies: int, entry_bytes: int = 100 * 1024**2 - 1) -> bytes:
    """One deflated entry listed `copies` times in the central directory, every copy pointing at the
    same data: a few hundred kilobytes that claim `copies` × `entry_bytes` (the shape of the
    "better zip bomb"). Each copy alone passes the per-entry size and ratio checks."""
    payload = np.random.default_rng(0).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    payload += bytes(entry_bytes - len(payload))
    data = make_zip([("cats/big.png", payload)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start = archive.start_dir
    end_at = data.rfind(b"PK\x05\x06")
    record = data[start:end_at]
    entries = [(f"{name}/{i}.png", PNG) for name in ("cats", "dogs") for i in range(2)]
    small = make_zip(entries)
    with zipfile.ZipFile(io.BytesIO(small)) as archive:
        small_start = archive.start_dir
    small_end = small.rfind(b"PK\x05\x06")
    shift = len(data[:start])
    # The small entries' local headers follow the big one; their central records move with them.
    moved = bytearray(small[small_start:small_end])
    position = 0
    while position < len(moved):
        offset = struct.unpack_from("<L", moved, position + 42)[0]
        struct.pack_into("<L", moved, position + 42, offset + shift)
        name_len, extra_len, comment_len = struct.unpack_from("<3H", moved, position + 28)
        position += 46 + name_len + extra_len + comment_len
    directory = record * copies + bytes(moved)
    total = copies + len(entries)
    body = data[:start] + small[:small_start]
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, total, total, len(directory), len(body), 0)
    return body + directory + end


# ---------------------------------------------------------------------------------------------
# The refused uploads: every one ends in one sentence containing its fragment, and nothing written.


def with_entry(name: str | zipfile.ZipInfo, data: bytes = PNG, *, first: bool = False) -> bytes:
    """A valid upload (cats and dogs, three images each) with one more entry `name`, last or `first`."""
    entries = class_entries("cats", "dogs")
    return make_zip([(name, data), *entries] if first else [*entries, (name, data)])


def _raw_backslash_traversal() -> bytes:
    raw = f"..\\..\\{MARKER}.png".encode("ascii")
    return patch_zip(with_entry("x" * len(raw)), 6, raw_name=raw)


def _symlink_entry() -> bytes:
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return with_entry(link, b"/etc/passwd")


def _crc_damaged_zip() -> bytes:
    data = bytearray(make_zip(class_entries("cats", "dogs", image=PNG), compression=zipfile.ZIP_STORED))
    local, _ = next(headers(bytes(data)))
    data[local + 30 + len("cats/0.png") + 40] ^= 0xFF
    return bytes(data)


def _given_split_without_validation_images() -> bytes:
    entries = {f"train/{c}/{i}.png": PNG for c in ("cats", "dogs") for i in range(2)}
    return make_zip(entries | {"val/cats/1.png": PNG})


VALID_ZIP = classes_zip("cats", "dogs")
_END = VALID_ZIP.rfind(b"PK\x05\x06")
_CENTRAL = zipfile.ZipFile(io.BytesIO(VALID_ZIP)).start_dir

# name: (builder of the upload's bytes, a fragment of the one-sentence refusal). Builders run when a test
# asks, since some build 100 MB.
REFUSED_ZIPS: dict[str, tuple[Callable[[], bytes], str]] = {
    # Not a zip, or a zip cut short
    "not_a_zip": (lambda: b"this is a text file, not a zip", "is not a zip file"),
    "image_instead_of_a_zip": (lambda: PNG, "is not a zip file"),
    "empty_file": (lambda: b"", "is not a zip file"),
    "truncated_in_the_middle": (lambda: VALID_ZIP[: len(VALID_ZIP) // 2], "is not a zip file"),
    "truncated_in_the_central_directory": (lambda: VALID_ZIP[: _CENTRAL + 30] + VALID_ZIP[_END:], "is not a zip file"),
    "end_record_cut_short": (lambda: VALID_ZIP[:-5], "is not a zip file"),
    # Entries that would be written outside the dataset
    "dotdot": (lambda: with_entry(f"../{MARKER}.png"), f"'../{MARKER}.png' points outside"),
    "dotdot_deep_inside_a_class": (
        lambda: with_entry(f"cats/../../../../{MARKER}.png"),
        f"'cats/../../../../{MARKER}.png' points outside",
    ),
    "dotdot_folder_entry": (lambda: with_entry(f"cats/../../{MARKER}/"), "points outside"),
    "backslash_dotdot": (lambda: with_entry(f"cats\\..\\..\\{MARKER}.png"), "points outside"),
    "mixed_separators_dotdot": (lambda: with_entry(f"cats/..\\..\\{MARKER}.png"), "points outside"),
    "backslash_dotdot_in_a_name_without_the_utf8_flag": (_raw_backslash_traversal, "points outside"),
    "absolute_first": (
        lambda: with_entry(f"/tmp/{MARKER}.png", first=True),
        f"'/tmp/{MARKER}.png' has an absolute path",
    ),
    "drive_letter_backslash": (lambda: with_entry(f"C:\\{MARKER}.png"), f"'C:/{MARKER}.png' has an absolute path"),
    "drive_letter_lowercase_slash": (lambda: with_entry(f"d:/{MARKER}.png"), "has an absolute path"),
    "drive_relative": (lambda: with_entry(f"C:{MARKER}.png"), "has an absolute path"),
    "unc_share": (lambda: with_entry(f"\\\\server\\share\\{MARKER}.png"), "has an absolute path"),
    "root_backslash": (lambda: with_entry(f"\\{MARKER}.png"), "has an absolute path"),
    "extended_length_path": (lambda: with_entry(f"\\\\?\\C:\\{MARKER}.png"), "has an absolute path"),
    "symlink_entry": (_symlink_entry, "'cats/link.png' is a symbolic link"),
    # Entries that cannot be read
    "encrypted_entry": (lambda: patch_zip(VALID_ZIP, 2, flag_bits=0x1), "'cats/2.png' is password-protected"),
    "aes_encrypted_entry": (lambda: patch_zip(VALID_ZIP, 0, flag_bits=0x1, method=99), "password-protected"),
    "unreadable_compression_method": (lambda: patch_zip(VALID_ZIP, 0, method=9), "compression method (number 9)"),
    "crc_error": (_crc_damaged_zip, "is damaged: the entry 'cats/0.png' cannot be read"),
    "header_that_lies_about_the_size": (
        lambda: patch_zip(VALID_ZIP, 1, file_size=20),
        "is damaged: the entry 'cats/1.png'",
    ),
    # Bombs
    "entry_declaring_4_gb": (
        lambda: patch_zip(VALID_ZIP, 1, file_size=0xFFFFFFF0),
        "unpacks to 4.0 GB, more than the 100.0 MB",
    ),
    "ratio_zip_bomb": (lambda: with_entry("cats/zeros.png", bytes(50 * 1024**2)), "which is how zip bombs look"),
    "overlapping_entries_bomb": (lambda: overlapping_bomb(42), "unpacks to more than 4.0 GB"),
    "more_than_100000_entries": (
        lambda: stored_zip([f"cats/{i}.png" for i in range(100_001)]),
        "more than the 100,000 allowed",
    ),
    # No classes to train on
    "empty_zip": (lambda: make_zip({}), "contains no images"),
    "only_junk": (
        lambda: make_zip({"__MACOSX/._a": b"x", ".DS_Store": b"x", "a/b.txt": b"x"}),
        "contains no images",
    ),
    "only_nested_zips": (
        lambda: make_zip({"cats/a.zip": VALID_ZIP, "dogs/b.zip": VALID_ZIP, "c.zip": VALID_ZIP}),
        "contains no images",
    ),
    "only_empty_class_folders": (lambda: make_zip({"cats/": b"", "dogs/": b""}), "contains no images"),
    "only_one_class": (lambda: classes_zip("cats"), "only one class ('cats', 3 images)"),
    "class_with_one_image": (
        lambda: make_zip({"cats/1.png": PNG, "cats/2.png": PNG, "dogs/1.png": PNG}),
        "Class 'dogs' in 'upload.zip' has only 1 image",
    ),
    "given_split_without_validation_images": (
        _given_split_without_validation_images,
        "Class 'dogs' in 'upload.zip' has 2 training and 0 validation",
    ),
}


# ---------------------------------------------------------------------------------------------
# Hostile images: what every way an image enters (ingestion, Try it, test zips, `tlcore predict`)
# must turn into a prediction or one sentence.


def _rgb16_png() -> bytes:
    """A 48-bit RGB PNG (16 bits a sample), which Pillow reads as 8-bit RGB."""
    width = height = 6
    row = b"\x00" + struct.pack(">3H", 60000, 2000, 30000) * width
    return png(width, height, bit_depth=16, colour_type=2, rows=row * height)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([255, 255, 255, 200, 30, 30] + [0, 0, 0] * 254)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=1)
    return buffer.getvalue()


def _truncated_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


HOSTILE_IMAGES: dict[str, tuple[Callable[[], bytes], str | None]] = {
    "grey-16-bit.png": (lambda: image_bytes("PNG", "I;16", (8, 8)), None),
    "rgb-16-bit.png": (_rgb16_png, None),
    "cmyk.jpg": (lambda: image_bytes("JPEG", "CMYK", (8, 8)), None),
    "palette-transparent.png": (_palette_with_transparency, None),
    "one-pixel.png": (lambda: image_bytes("PNG", "RGB", (1, 1)), None),
    "81-megapixels.png": (lambda: png(9_000, 9_000), "too many pixels"),
    "over-the-bomb-limit.png": (lambda: png(20_000, 20_000), "decompression bomb"),
    "truncated.jpg": (_truncated_jpeg, "truncated"),
    "not-an-image.jpg": (lambda: b"This is a text file with a .jpg name.\n" * 20, "not an image"),
}
"""File name -> (its bytes, None when it must be predicted, else words of the sentence that refuses it)."""
