"""The zip defence: opening an upload and refusing, before anything is kept, what could harm the machine.

An upload is untrusted input. Entry names are only ever used as labels, never as paths. An archive
that tries to escape its folder (absolute paths, `..`), holds links or encrypted entries, or exceeds
the size, count, compression-ratio or pixel limits (`Limits`) is refused with a `DatasetError`. Each
check names the attack it stops. Sizes are counted as the bytes are read, because a zip's declared
sizes may lie.
"""

from __future__ import annotations

import io
import lzma
import os
import re
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tlcore.datasets.dataset import SkippedFile
from tlcore.datasets.layout import Junk, junk_reason
from tlcore.errors import DatasetError
from tlcore.i18n import msg
from tlcore.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from tlcore.wording import GIB, MIB, brief, size_text
from tlcore.workspace import Workspace

ZipSource = str | os.PathLike[str] | bytes | IO[bytes]
"""A zip given as a path, its bytes, or a binary file object (such as Streamlit's `UploadedFile`)."""

CHUNK = MIB

_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_END_RECORD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_RECORD_BYTES = 1024  # generous for one entry (46 bytes, its name and extras)
_DRIVE = re.compile(r"^[A-Za-z]:")

# NotImplementedError: an entry that claims to need a newer zip version (a damaged header can).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    NotImplementedError,
)
_READ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
)


@dataclass(frozen=True)
class Limits:
    """What an upload may hold before it is refused. The defaults suit a laptop and a web app."""

    max_zip_bytes: int = 2 * GIB
    """Size of one uploaded zip file."""
    max_total_bytes: int = 4 * GIB
    """Unpacked size of all entries together, as declared by the zip and as actually read."""
    max_entry_bytes: int = MAX_IMAGE_BYTES
    """Unpacked size of any one entry."""
    max_files: int = 100_000
    """Number of entries (files and folders) in the upload."""
    max_depth: int = 32
    """Folders and file name in one entry's path; deeper entries are skipped. Reading the layout
    costs memory in proportion to entries × depth, so a few very deep names (a 64 KB name can hold
    32,000 folders) must not be able to exhaust it."""
    max_ratio: float = 200.0
    """Unpacked size over packed size of one entry; beyond it the zip is treated as a zip bomb."""
    ratio_min_bytes: int = MIB
    """`max_ratio` is only checked for entries that unpack to more than this (tiny files vary wildly)."""
    max_image_pixels: int = MAX_IMAGE_PIXELS
    """Width × height of one image; larger images are skipped without being decoded (Pillow's own
    decompression-bomb guard, `PIL.Image.MAX_IMAGE_PIXELS`, still applies on top of this)."""
    max_total_pixels: int = 20_000_000_000
    """Width × height summed over all images (20 gigapixels is about 1,600 12-megapixel photos)."""
    min_images_per_class: int = 2
    """Images a class needs; never fewer than 2, one to train on and one to validate with."""


UPLOAD_LIMITS = Limits()
"""An upload's limits: the defaults."""

FOLDER_LIMITS = Limits(max_files=10_000_000, max_total_pixels=2**62)
"""A server folder's limits: an upload's per-image limits, with no cap on its total size."""


@dataclass
class Upload:
    name: str
    handle: IO[bytes]
    split: str | None  # the split of every image in it, or None when its layout decides


@dataclass
class Entry:
    info: zipfile.ZipInfo
    path: str  # as people read it: decoded, NFC, "/"-separated
    parts: tuple[str, ...]
    is_dir: bool


@dataclass
class Usage:
    """What the upload has used so far of the limits that span all its entries."""

    limits: Limits
    entries: int = 0
    declared: int = 0
    read: int = 0
    pixels: int = 0


def source_name(source: ZipSource, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    own = getattr(source, "name", None)
    return Path(own).name if isinstance(own, str) and own else default


def open_source(source: ZipSource, name: str, limits: Limits, stack: ExitStack, workspace: Workspace) -> IO[bytes]:
    """A seekable binary handle on the upload, at its start, once its size is within the limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        handle: IO[bytes] = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise DatasetError("archive.is_folder", path=str(path))
        if path.exists() and not path.is_file():
            # A pipe would wait for a writer and a device such as /dev/zero never ends: neither is a zip.
            raise DatasetError("archive.not_regular_file", path=str(path))
        try:
            handle = stack.enter_context(open(path, "rb"))
        except OSError as error:
            raise DatasetError("archive.cannot_open", path=str(path), error=error.strerror or str(error)) from None
    elif hasattr(source, "read"):
        handle = source
        if not (hasattr(source, "seekable") and source.seekable()):
            handle = stack.enter_context(tempfile.TemporaryFile(dir=workspace.tmp_dir))
            copy_bounded(source, handle, name, limits)
    else:
        raise TypeError(
            f"A zip must be given as a path, bytes or a binary file object. Received: {type(source).__name__}"
        )
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    if size > limits.max_zip_bytes:
        raise DatasetError("archive.too_large", name=name, size=size_text(size), limit=size_text(limits.max_zip_bytes))
    return handle


def copy_bounded(source: IO[bytes], target: IO[bytes], name: str, limits: Limits) -> None:
    copied = 0
    while chunk := source.read(CHUNK):
        copied += len(chunk)
        if copied > limits.max_zip_bytes:
            raise DatasetError("archive.larger_than_limit", name=name, limit=size_text(limits.max_zip_bytes))
        target.write(chunk)


def open_zip(upload: Upload, limits: Limits) -> zipfile.ZipFile:
    declared = declared_entries(upload.handle)
    if declared is not None:
        entries, directory_bytes = declared
        # zipfile parses the whole central directory before anything can be counted: refuse a
        # huge one first, from the end record alone.
        if entries > limits.max_files or directory_bytes > limits.max_files * _CENTRAL_RECORD_BYTES:
            raise DatasetError(
                "archive.too_many_entries_listed",
                name=upload.name,
                entries=f"{entries:,}",
                size=size_text(directory_bytes),
                limit=f"{limits.max_files:,}",
            )
    try:
        return zipfile.ZipFile(upload.handle)
    except _ZIP_ERRORS:
        raise DatasetError("archive.not_a_zip", name=upload.name) from None


def declared_entries(handle: IO[bytes]) -> tuple[int, int] | None:
    """`(entries, central directory bytes)` as the zip's end records declare them, None without one."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _END_RECORD.size - 0xFFFF))  # the record, then at most a 64 KiB comment
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END_RECORD.size:
        handle.seek(0)
        return None
    fields = _END_RECORD.unpack_from(tail, at)
    entries, directory_bytes = fields[4], fields[5]
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        handle.seek(_ZIP64_LOCATOR.unpack_from(tail, locator)[2])
        record = handle.read(_ZIP64_END_RECORD.size)
        if len(record) == _ZIP64_END_RECORD.size and record.startswith(b"PK\x06\x06"):
            entries, directory_bytes = _ZIP64_END_RECORD.unpack(record)[7:9]
    handle.seek(0)
    return entries, directory_bytes


def scan(archive: zipfile.ZipFile, upload: Upload, usage: Usage) -> tuple[list[Entry], list[SkippedFile]]:
    """Refuse the upload if any entry is unsafe or over a limit; set junk aside.

    Returns the usable entries in the order they are stored in the zip, and the junk as skipped files.
    """
    limits = usage.limits
    infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
    usage.entries += len(infos)
    if usage.entries > limits.max_files:
        raise DatasetError(
            "archive.too_many_entries", name=upload.name, entries=f"{usage.entries:,}", limit=f"{limits.max_files:,}"
        )
    entries: list[Entry] = []
    junk = Junk()
    for info in infos:
        entry = entry_from(info)
        check_entry(entry, upload.name, limits)
        usage.declared += info.file_size
        if usage.declared > limits.max_total_bytes:
            raise DatasetError("archive.unpacks_too_large", name=upload.name, limit=size_text(limits.max_total_bytes))
        if len(entry.parts) > limits.max_depth:
            if not entry.is_dir:
                junk.add(entry.path, msg("skip.nested_too_deep", depth=limits.max_depth))
            continue
        reason = junk_reason(entry)
        if reason is None:
            entries.append(entry)
        elif not entry.is_dir:
            junk.add(*reason)
    return entries, junk.skipped()


def entry_from(info: zipfile.ZipInfo) -> Entry:
    name = info.filename
    if not info.flag_bits & _UTF8_NAME_FLAG:
        # Without the UTF-8 flag, zipfile decodes names as cp437; zips made on Japanese Windows
        # (and many Linux tools) hold cp932 or UTF-8 bytes there.
        raw = name.encode("cp437")
        for encoding in ("utf-8", "cp932"):
            try:
                name = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
    path = unicodedata.normalize("NFC", name.replace("\\", "/"))
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    return Entry(info, path, parts, path.endswith("/"))


def check_entry(entry: Entry, zip_name: str, limits: Limits) -> None:
    info, path = entry.info, entry.path
    if path.startswith("/") or (entry.parts and _DRIVE.match(entry.parts[0])):
        raise DatasetError("archive.absolute_path", name=zip_name, entry=path)
    if ".." in entry.parts:
        raise DatasetError("archive.outside_folder", name=zip_name, entry=path)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError("archive.symbolic_link", name=zip_name, entry=path)
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise DatasetError("archive.password_protected", name=zip_name, entry=path)
    if entry.is_dir:
        return
    if info.compress_type not in _READABLE_METHODS:
        raise DatasetError("archive.unknown_compression", name=zip_name, entry=path, method=info.compress_type)
    if info.file_size > limits.max_entry_bytes:
        raise DatasetError(
            "archive.entry_too_large",
            name=zip_name,
            entry=path,
            size=size_text(info.file_size),
            limit=size_text(limits.max_entry_bytes),
        )
    if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise DatasetError(
            "archive.zip_bomb",
            name=zip_name,
            entry=path,
            packed=size_text(info.compress_size),
            size=size_text(info.file_size),
            ratio=f"{limits.max_ratio:g}",
        )


def read_entry(archive: zipfile.ZipFile, entry: Entry, zip_name: str, usage: Usage) -> bytes:
    """The entry's bytes, counted as they are read: a zip's declared sizes may lie."""
    limits = usage.limits
    chunks = []
    size = 0
    try:
        with archive.open(entry.info) as handle:
            while chunk := handle.read(CHUNK):
                size += len(chunk)
                usage.read += len(chunk)
                if size > limits.max_entry_bytes:
                    raise DatasetError(
                        "archive.entry_larger_than_limit",
                        name=zip_name,
                        entry=entry.path,
                        limit=size_text(limits.max_entry_bytes),
                    )
                if usage.read > limits.max_total_bytes:
                    raise DatasetError(
                        "archive.unpacks_too_large", name=zip_name, limit=size_text(limits.max_total_bytes)
                    )
                chunks.append(chunk)
    except DatasetError:  # a ValueError too: the refusals above, not a damaged zip
        raise
    except _READ_ERRORS as error:
        raise DatasetError("archive.damaged_entry", name=zip_name, entry=entry.path, error=brief(error)) from None
    return b"".join(chunks)
