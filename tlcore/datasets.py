"""Safe ingestion of an uploaded zip of images into the workspace, and the datasets it produces.

A dataset is what one upload becomes: a folder `datasets/<id>/` holding `manifest.json` (the class
names, every image with its label and its split, every file that was skipped and why) and `files/`
(the images, renamed `000000.jpg`, `000001.png`, ... and stored as 8-bit RGB JPEG or PNG, so that
`tf.io.decode_image` reads every one of them). The id is a hash of the upload, so the same zip
uploaded twice is the same dataset and is not processed again.

Layouts understood (folder names are matched case-insensitively where they have a meaning):

- one folder per class at the root of the zip (`cats/1.jpg`, `dogs/1.jpg`), or the same inside any
  number of single wrapper folders (`photos/cats/1.jpg`); images in sub-folders of a class folder
  belong to that class, as with `keras.utils.image_dataset_from_directory`;
- `train/` next to `val/` (or `validation/`, `valid/`, `test/`), each holding class folders: that
  split is used as given. `test/` is the validation split when there is no `val/`-like folder,
  otherwise its images are kept apart as split `"test"` and never trained on;
- a second zip of class folders passed as `val_zip`: its images are the validation split.

Without a given split, a seeded, stratified split holds out `val_fraction` of each class (at least
one image) for validation. The split is fixed at ingestion and stored.

A folder on the server can be registered too (`ingest_folder`, for data too large to upload): the
same layouts and checks, but its plain RGB JPEGs are read where they are, never copied.

An upload is untrusted input. Entry names are only ever used as labels, never as paths; archives
that try to escape their folder, hold links or encrypted entries, or exceed the size, count,
compression-ratio or pixel limits (`Limits`) are refused with a `DatasetError` before anything is
kept. Everything is staged in the workspace's `tmp/` and renamed into `datasets/` only once the
whole upload has been accepted, so a refusal or a crash leaves nothing behind. Files that are merely
unusable (not images, damaged, system junk, outside any class folder, too many pixels) are skipped
and listed in the report with their reason.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import random
import re
import shutil
import stat
import struct
import tempfile
import threading
import unicodedata
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from tlcore import settings
from tlcore.errors import DatasetError, TLCoreError
from tlcore.workspace import Workspace, read_json, write_json_atomic

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FORMAT = 1
SPLITS = ("train", "val", "test")
DATA_DIRS_ENV = "TLCORE_DATA_DIRS"

ZipSource = Union[str, "os.PathLike[str]", bytes, IO[bytes]]
"""A zip given as a path, its bytes, or a binary file object (such as Streamlit's `UploadedFile`)."""

_MIB = 1024**2
_GIB = 1024**3
_CHUNK = _MIB

_TRAIN_FOLDERS = ("train",)
_VAL_FOLDERS = ("val", "validation", "valid")
_TEST_FOLDERS = ("test",)
_WINDOWS_JUNK = ("thumbs.db", "ehthumbs.db", "desktop.ini")
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)

# The only Pillow decoders ever tried: an upload must not reach plugins such as EPS, which runs
# Ghostscript.
_PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_SUPPORTED = "JPEG, PNG, BMP, GIF, WebP or TIFF"
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
_END_RECORD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_RECORD_BYTES = 1024  # generous for one entry (46 bytes, its name and extras)
_STORED_FILE = re.compile(r"^files/[0-9]{6,}\.(jpg|png)$")
_DRIVE = re.compile(r"^[A-Za-z]:")

# `warnings.catch_warnings` swaps process-wide state; the lock keeps two ingestions in the app's
# threads from restoring each other's filters in the wrong order.
_WARNINGS_LOCK = threading.Lock()

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

    max_zip_bytes: int = 2 * _GIB
    """Size of one uploaded zip file."""
    max_total_bytes: int = 4 * _GIB
    """Unpacked size of all entries together, as declared by the zip and as actually read."""
    max_entry_bytes: int = 100 * _MIB
    """Unpacked size of any one entry."""
    max_files: int = 100_000
    """Number of entries (files and folders) in the upload."""
    max_depth: int = 32
    """Folders and file name in one entry's path; deeper entries are skipped. Reading the layout
    costs memory in proportion to entries × depth, so a few very deep names (a 64 KB name can hold
    32,000 folders) must not be able to exhaust it."""
    max_ratio: float = 200.0
    """Unpacked size over packed size of one entry; beyond it the zip is treated as a zip bomb."""
    ratio_min_bytes: int = _MIB
    """`max_ratio` is only checked for entries that unpack to more than this (tiny files vary wildly)."""
    max_image_pixels: int = 64_000_000
    """Width × height of one image; larger images are skipped without being decoded (Pillow's own
    decompression-bomb guard, `PIL.Image.MAX_IMAGE_PIXELS`, still applies on top of this)."""
    max_total_pixels: int = 20_000_000_000
    """Width × height summed over all images (20 gigapixels is about 1,600 12-megapixel photos)."""
    min_images_per_class: int = 2
    """Images a class needs; never fewer than 2, one to train on and one to validate with."""


FOLDER_LIMITS = Limits(max_files=10_000_000, max_total_pixels=2**62)
"""A server folder's limits: an upload's per-image limits, with no cap on its total size."""


@dataclass(frozen=True)
class Item:
    """One stored image.

    file: its path relative to the dataset folder (`"files/000123.jpg"`), or, when `in_place`,
        relative to the dataset's `source_dir`.
    label: the index of its class in `Dataset.classes`.
    split: `"train"`, `"val"` or `"test"`.
    source: its path inside the uploaded zip (or the registered folder).
    in_place: the image is read where it is, in the folder a dataset was registered from.
    stat: for an image read in place, its size in bytes and modification time (ns) when registered.
    """

    file: str
    label: int
    split: str
    source: str
    in_place: bool = False
    stat: tuple[int, int] | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file (or folder, ending in `/`) of the upload that was not used, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Dataset:
    """An ingested dataset, as stored in `datasets/<id>/`.

    id: the first 16 hex digits of the upload's SHA-256 (with the split settings); also `fingerprint`.
    root: the dataset folder.
    name: the uploaded file's name.
    classes: the class names, sorted; a label is an index into it.
    items: every stored image.
    skipped: every file of the upload that was not used, with the reason.
    split_source: `"given"` (folders or a validation zip) or `"seeded"` (split at ingestion).
    val_fraction, seed: the settings of a seeded split (recorded, unused, for a given one).
    created: when it was ingested (ISO 8601, UTC).
    source_dir: for a dataset registered from a folder on the server (`ingest_folder`), that
        folder: its plain RGB JPEGs are read in place, never copied. None for an upload.
    """

    id: str
    root: Path
    name: str
    classes: tuple[str, ...]
    items: tuple[Item, ...] = field(repr=False)
    skipped: tuple[SkippedFile, ...] = field(repr=False)
    split_source: str
    val_fraction: float
    seed: int
    created: str
    source_dir: Path | None = None

    @property
    def fingerprint(self) -> str:
        return self.id

    def path(self, item: Item) -> Path:
        """Where the image of `item` is read from."""
        if item.in_place:
            if self.source_dir is None:
                raise ValueError(f"{item.file!r} is read in place, but dataset {self.id!r} has no source folder.")
            return self.source_dir / item.file
        return self.root / item.file

    def check_source(self) -> None:
        """Raise `DatasetError` when an image read in place has gone from its folder, or changed, since
        registration (its checks and split were made for the file as it was)."""
        for item in self.items:
            if not item.in_place:
                continue
            try:
                info = self.path(item).stat()
            except OSError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                change = "is no longer in"
            elif item.stat is not None and (info.st_size, info.st_mtime_ns) != item.stat:
                change = "has changed in"
            else:
                continue
            raise DatasetError(
                f"The image {item.source!r} of dataset {self.name!r} {change} {str(self.source_dir)!r}; "
                "register the folder again to train on what it holds now."
            )

    def counts(self) -> pd.DataFrame:
        """Images per class and split: columns `class`, `train`, `val`, (`test`,) `total`."""
        import pandas as pd

        table, splits = self._count_table()
        rows = [{"class": name, **table[name], "total": sum(table[name].values())} for name in self.classes]
        return pd.DataFrame(rows, columns=["class", *splits, "total"])

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        """The absolute paths and labels of the images in `split` (`"train"`, `"val"` or `"test"`)."""
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {', '.join(SPLITS)}. Received: split={split!r}")
        chosen = [item for item in self.items if item.split == split]
        return [self.path(item) for item in chosen], [item.label for item in chosen]

    def sample_files(self, class_name: str, k: int) -> list[Path]:
        """Up to `k` images of `class_name`, spread evenly over the class, the same ones every time."""
        if class_name not in self.classes:
            raise ValueError(f"{class_name!r} is not a class of this dataset; its classes are {list(self.classes)}.")
        label = self.classes.index(class_name)
        paths = [self.path(item) for item in self.items if item.label == label]
        if k >= len(paths):
            return paths
        return [paths[i * len(paths) // k] for i in range(max(k, 0))]

    def report(self) -> dict[str, Any]:
        """The validation report as JSON-able data: classes, counts per class and split, skipped files."""
        table, splits = self._count_table()
        counts = {name: {**table[name], "total": sum(table[name].values())} for name in self.classes}
        totals = {split: sum(row[split] for row in counts.values()) for split in splits}
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "classes": list(self.classes),
            "split_source": self.split_source,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "counts": counts,
            "totals": {**totals, "total": len(self.items), "classes": len(self.classes), "skipped": len(self.skipped)},
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }

    def summary(self) -> str:
        """The report as readable text, one table row per class, then the skipped files."""
        table, splits = self._count_table()
        totals = {split: sum(table[name][split] for name in self.classes) for split in splits}
        if self.split_source == "given":
            how = "split given by the upload"
        else:
            how = f"seeded split: {self.val_fraction:.0%} held out for validation, seed {self.seed}"
        lines = [
            f"Dataset {self.id} from {self.name!r}, ingested {self.created}",
            f"{len(self.classes)} classes, {len(self.items)} images "
            f"({', '.join(f'{totals[s]} {s}' for s in splits)}); {how}",
            "",
        ]
        header = ["class", *splits, "total"]
        rows = [[name, *(str(table[name][s]) for s in splits), str(sum(table[name].values()))] for name in self.classes]
        widths = [max(_display_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            cells = [_pad(row[0], widths[0])] + [
                " " * (w - len(c)) + c for c, w in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        if self.skipped:
            lines += ["", f"Skipped {len(self.skipped)}:"]
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)

    def _count_table(self) -> tuple[dict[str, dict[str, int]], tuple[str, ...]]:
        splits = SPLITS if any(item.split == "test" for item in self.items) else SPLITS[:2]
        table = {name: dict.fromkeys(splits, 0) for name in self.classes}
        for item in self.items:
            table[self.classes[item.label]][item.split] += 1
        return table, splits


def ingest_zip(
    train_zip: ZipSource,
    val_zip: ZipSource | None = None,
    *,
    workspace: Workspace,
    name: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    limits: Limits = Limits(),
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Check an uploaded zip of class folders and store it as a dataset in `workspace`.

    Args:
        train_zip: the upload: a path, the zip's bytes, or a binary file object (read from its start).
        val_zip: optionally, a second zip of class folders used as the validation split.
        workspace: where the dataset is stored (`datasets/<id>/`).
        name: the upload's file name, for the report and messages; defaults to the file's own name.
        val_fraction: the part of each class held out for validation when the upload gives no split
            (strictly between 0 and 1; at least one image per class).
        seed: seeds that split; the same upload and seed always give the same split.
        limits: what the upload may hold before it is refused (see `Limits`).
        progress: called as `progress(done, total)` while the zip's entries are processed.

    Returns:
        The `Dataset`. When the same upload (with the same `val_fraction` and `seed`) was ingested
        before, the stored dataset is returned at once (`limits` are not part of its identity).

    Raises:
        DatasetError: the upload was refused; its message says why in one sentence, and nothing was
            written to the workspace.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise DatasetError(
            f"The validation fraction must be a number between 0 and 1 (such as 0.2), but {val_fraction!r} was given."
        )
    name = name or _source_name(train_zip, "upload.zip")
    val_name = _source_name(val_zip, "validation.zip") if val_zip is not None else None
    try:
        return _ingest_zip(train_zip, val_zip, workspace, name, val_name, val_fraction, seed, limits, progress)
    except OSError as error:
        # Reading the upload has its own messages; what is left is writing: a full disk, a read-only
        # workspace. The staging folder is gone by now, so nothing was kept.
        raise DatasetError(
            f"{name!r} could not be stored in the workspace {str(workspace.root)!r} ({error.strerror or error}); "
            "please free some disk space or check that the folder can be written, then upload it again."
        ) from None


def _ingest_zip(
    train_zip: ZipSource,
    val_zip: ZipSource | None,
    workspace: Workspace,
    name: str,
    val_name: str | None,
    val_fraction: float,
    seed: int,
    limits: Limits,
    progress: Callable[[int, int], None] | None,
) -> Dataset:
    with ExitStack() as stack:
        uploads = [_Upload(name, _open_source(train_zip, name, limits, stack, workspace), "train" if val_zip else None)]
        if val_zip is not None:
            uploads.append(_Upload(val_name, _open_source(val_zip, val_name, limits, stack, workspace), "val"))
        dataset_id = _dataset_id(uploads, val_fraction, seed)
        existing = _load_or_none(workspace, dataset_id)
        if existing is not None:
            return existing
        staging = Path(tempfile.mkdtemp(prefix=f"ingest-{dataset_id}-", dir=workspace.tmp_dir))
        try:
            manifest = _ingest(uploads, staging, dataset_id, name, float(val_fraction), int(seed), limits, progress)
            return _publish(staging, manifest, workspace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def ingest_folder(
    folder: str | os.PathLike[str],
    *,
    workspace: Workspace,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    limits: Limits = FOLDER_LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Register a folder of class folders on this machine as a dataset, reading its images in place.

    For data too large to upload: the same layouts as a zip (see the module's docstring), the same
    checks on every image, the same report. Plain RGB JPEGs (most photos) are not copied: training
    streams them from the folder. Every other image is converted once, exactly as an upload's, into
    the dataset's folder in the workspace. Nothing is ever written into `folder`. Symbolic links are
    not followed (they are listed as skipped), so the dataset stays inside `folder`.

    Args:
        folder: the folder to register.
        allowed_roots: when given (the app passes the operator's `TLCORE_DATA_DIRS`), `folder` must
            be one of these folders or inside one, after resolving links.
        val_fraction, seed, progress: as for `ingest_zip`.
        limits: an upload's per-image limits apply; the folder's totals are not capped by default.

    Returns:
        The `Dataset`; registering an unchanged folder again returns the stored one at once. A
        folder whose files changed (added, removed, rewritten) becomes a new dataset.

    Raises:
        DatasetError: the folder is missing, not allowed, or holds no usable dataset.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise DatasetError(
            f"The validation fraction must be a number between 0 and 1 (such as 0.2), but {val_fraction!r} was given."
        )
    root = _allowed_folder(folder, allowed_roots)
    workspace_root = workspace.root.resolve()
    if root == workspace_root or workspace_root in root.parents:
        raise DatasetError(
            f"The folder {str(folder)!r} is inside the app's workspace {str(workspace_root)!r}; "
            "register a folder of your own images."
        )
    files, junk = _walk_folder(root, limits, exclude=workspace_root)
    digest = hashlib.sha256(f"folder\0{root}\0{float(val_fraction)!r}\0{int(seed)}".encode())
    for _, real, size, mtime in files:
        digest.update(f"{real}\0{size}\0{mtime}\0".encode("utf-8", "surrogateescape"))
    dataset_id = digest.hexdigest()[:16]
    existing = _load_or_none(workspace, dataset_id)
    if existing is not None:
        return existing
    staging = Path(tempfile.mkdtemp(prefix=f"register-{dataset_id}-", dir=workspace.tmp_dir))
    try:
        manifest = _register(root, files, junk, staging, dataset_id, float(val_fraction), int(seed), limits, progress)
        return _publish(staging, manifest, workspace)
    except OSError as error:
        raise DatasetError(
            f"The folder {str(root)!r} could not be registered ({error.strerror or error}); check that it can be "
            f"read and that the workspace {str(workspace.root)!r} can be written."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def allowed_data_dirs(setting: str | None = None) -> list[Path]:
    """The folders an operator allows the app to register: `TLCORE_DATA_DIRS`, separated by `os.pathsep`.

    Only folders that exist are returned, resolved. The app offers nothing when the list is empty.
    """
    if setting is None:
        folders = settings.data_dirs()
    else:
        folders = [Path(part.strip()).expanduser() for part in setting.split(os.pathsep) if part.strip()]
    return [folder.resolve() for folder in folders if folder.is_dir()]


def server_folders(roots: Sequence[Path], depth: int = 2, limit: int = 500) -> list[Path]:
    """The folders under `roots` (each root included, then `depth` levels of sub-folders) a user may pick.

    Hidden folders and links are left out; at most `limit` are returned, in name order.
    """
    found: list[Path] = []

    def visit(folder: Path, level: int) -> None:
        if len(found) >= limit:
            return
        found.append(folder)
        if level == depth:
            return
        try:
            children = sorted(
                child
                for child in folder.iterdir()
                if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
            )
        except OSError:
            return
        for child in children:
            visit(child, level + 1)

    for root in roots:
        visit(root, 0)
    return found


def _allowed_folder(folder: str | os.PathLike[str], allowed_roots: Sequence[str | os.PathLike[str]] | None) -> Path:
    shown = str(folder)
    try:
        root = Path(folder).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise DatasetError(f"There is no folder {shown!r} on this machine; check the path.") from None
    if not root.is_dir():
        raise DatasetError(f"{shown!r} is a file, not a folder; give the folder that holds one folder per class.")
    if allowed_roots is not None:
        allowed = [Path(r).expanduser().resolve() for r in allowed_roots]
        if not any(root == base or base in root.parents for base in allowed):
            listed = ", ".join(repr(str(base)) for base in allowed) or "none"
            raise DatasetError(
                f"The folder {shown!r} is not inside a folder the operator allowed ({listed}); ask them to add it "
                f"to {DATA_DIRS_ENV}."
            )
    return root


def _walk_folder(
    root: Path, limits: Limits, exclude: Path | None = None
) -> tuple[list[tuple[_Entry, str, int, int]], list[SkippedFile]]:
    """Every regular file under `root`: its entry (names as people read them), its real relative path, its
    size and modification time; and what was skipped. Hidden and system folders, and `exclude` (the
    app's workspace, when it lies inside `root`), are not entered."""
    files: list[tuple[_Entry, str, int, int]] = []
    skipped: list[SkippedFile] = []
    junk: Counter[tuple[str, str]] = Counter()

    def unreadable(error: OSError) -> None:
        shown = Path(error.filename or root).relative_to(root).as_posix() if error.filename else "."
        skipped.append(SkippedFile(_printable(shown) + "/", f"cannot be read ({_brief(error)})"))

    for current, folders, names in os.walk(root, onerror=unreadable, followlinks=False):
        relative = Path(current).relative_to(root).parts
        kept = []
        for name in sorted(folders):
            shown = "/".join((*relative, _printable(name))) + "/"
            if not _is_utf8(name):
                skipped.append(SkippedFile(shown, "name is not valid UTF-8 (folder not read)"))
            elif (Path(current) / name).is_symlink():
                skipped.append(SkippedFile(shown, "symbolic link (not followed)"))
            elif exclude is not None and Path(current) / name == exclude:
                skipped.append(SkippedFile(shown, "the app's workspace (not read)"))
            elif junk_folder := _junk(_Entry(None, shown[:-1], (*relative, name), True)):  # type: ignore[arg-type]
                skipped.append(SkippedFile(*junk_folder))
            else:
                kept.append(name)
        folders[:] = kept
        for name in sorted(names):
            if not _is_utf8(name):
                skipped.append(SkippedFile("/".join((*relative, _printable(name))), "name is not valid UTF-8"))
                continue
            path = Path(current) / name
            parts = tuple(unicodedata.normalize("NFC", part) for part in (*relative, name))
            entry = _Entry(None, "/".join(parts), parts, False)  # type: ignore[arg-type]
            try:
                info = path.lstat()
            except OSError as error:
                skipped.append(SkippedFile(entry.path, f"cannot be read ({_brief(error)})"))
                continue
            if stat.S_ISLNK(info.st_mode):
                skipped.append(SkippedFile(entry.path, "symbolic link (not followed)"))
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if len(parts) > limits.max_depth:
                junk[(entry.path, f"nested more than {limits.max_depth} folders deep")] += 1
                continue
            reason = _junk(entry)
            if reason is not None:
                junk[reason] += 1
                continue
            files.append((entry, "/".join((*relative, name)), info.st_size, info.st_mtime_ns))
            if len(files) > limits.max_files:
                raise DatasetError(
                    f"The folder {str(root)!r} holds more than {limits.max_files:,} files; register a smaller folder."
                )
    skipped += [
        SkippedFile(path, f"{reason} ({_count(count, 'file')})" if path.endswith("/") else reason)
        for (path, reason), count in junk.items()
    ]
    return files, skipped


def _is_utf8(name: str) -> bool:
    """False for a file name the file system gave as bytes that are not UTF-8 (decoded with surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """`name` with any undecodable bytes shown as `\\xNN`, so it can be listed and stored as JSON."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _register(
    root: Path,
    files: list[tuple[_Entry, str, int, int]],
    junk: list[SkippedFile],
    staging: Path,
    dataset_id: str,
    val_fraction: float,
    seed: int,
    limits: Limits,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Check every image of a folder (`files` as `_walk_folder` lists them), convert the ones not read in
    place into `staging/files/`; the manifest."""
    name = root.name or str(root)
    entries = [entry for entry, *_ in files]
    targets, skipped, folders, given = _plan(entries, _Upload(name, None, None))  # type: ignore[arg-type]
    skipped = junk + skipped
    (staging / "files").mkdir()
    stored: list[_Stored] = []
    found: Counter[str] = Counter()
    budget = _Budget(limits)
    if progress is not None:
        progress(0, len(entries))
    for done, (entry, real, size, mtime) in enumerate(files, 1):
        target = targets.get(id(entry))
        if target is not None:
            # A name the manifest could not hold safely (a backslash in it) is copied, not read in place.
            outcome = _check_in_place(
                root / real, entry, budget, staging, len(stored), copy=not _in_place_name(real, root)
            )
            if isinstance(outcome, SkippedFile):
                skipped.append(outcome)
            else:
                in_place = outcome is None
                stored.append(
                    _Stored(
                        target.class_name,
                        target.split,
                        outcome or real,
                        entry.path,
                        in_place,
                        (size, mtime) if in_place else None,
                    )
                )
                found[target.folder] += 1
        if progress is not None:
            progress(done, len(entries))
    skipped += [
        SkippedFile(f"{folder}/", "empty class folder (no usable images)") for folder in folders if not found[folder]
    ]
    return _manifest(stored, skipped, given, dataset_id, name, str(root), val_fraction, seed, limits, root)


def _check_in_place(
    path: Path, entry: _Entry, budget: _Budget, staging: Path, index: int, copy: bool = False
) -> str | SkippedFile | None:
    """None when the image at `path` can be read where it is (and `copy` is false); else the path of its
    (converted) copy, or why it is skipped."""
    try:
        if path.stat().st_size > budget.limits.max_entry_bytes:
            return SkippedFile(entry.path, f"larger than the {_size(budget.limits.max_entry_bytes)} one file may be")
        data = path.read_bytes()
    except OSError as error:
        return SkippedFile(entry.path, f"cannot be read ({_brief(error)})")
    converted = _convert(data, entry.path, budget.limits.max_image_pixels)
    if isinstance(converted, str):
        return SkippedFile(entry.path, converted)
    encoded, suffix, _ = converted
    if encoded is data and not copy:
        return None
    relative = f"files/{index:06d}{suffix}"
    (staging / relative).write_bytes(encoded)
    return relative


def export_zip(dataset: Dataset, workspace: Workspace) -> Path:
    """A zip of `dataset` that recreates it anywhere: `train/`, `val/` (and `test/`) folders of class folders.

    Ingested again (`ingest_zip`, or `python -m tlcore train --spec spec.json --data THIS.zip` on
    another machine), it gives the same images, labels and split, in the same order, so a run's spec
    trains the same there. File names start with the image's rank to keep that order. The zip is
    made once per dataset, in the workspace's cache, and returned from there afterwards.
    """
    target = workspace.cache_dir / "exports" / f"dataset-{dataset.id}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for rank, item in enumerate(dataset.items):
                name = Path(item.source).stem or "image"
                suffix = Path(item.file).suffix
                folder = f"{item.split}/{dataset.classes[item.label]}"
                archive.write(dataset.path(item), f"{folder}/{rank:06d}-{name}{suffix}")
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def load_dataset(workspace: Workspace, dataset_id: str) -> Dataset:
    """The dataset `dataset_id` stored in `workspace`; `DatasetError` if it is missing or damaged."""
    root = _dataset_root(workspace, dataset_id)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(
            f"There is no dataset {dataset_id!r} in {str(workspace.datasets_dir)!r}; "
            "upload the zip again or pick one from the list of datasets."
        )
    try:
        return _from_manifest(root, read_json(manifest_path))
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as error:
        raise DatasetError(
            f"The dataset {dataset_id!r} is damaged ({error}); delete it and upload the zip again."
        ) from None


def list_datasets(workspace: Workspace) -> list[Dataset]:
    """Every readable dataset in `workspace`, newest first (damaged folders are left out)."""
    found = []
    for path in workspace.datasets_dir.iterdir():
        if path.is_dir():
            try:
                found.append(load_dataset(workspace, path.name))
            except DatasetError:
                continue
    return sorted(found, key=lambda d: (d.created, d.id), reverse=True)


def delete_dataset(workspace: Workspace, dataset_id: str) -> None:
    """Remove the dataset `dataset_id` (damaged or not) from `workspace`."""
    root = _dataset_root(workspace, dataset_id)
    if not root.is_dir():
        raise DatasetError(f"There is no dataset {dataset_id!r} to delete in {str(workspace.datasets_dir)!r}.")
    _discard(root, workspace)


# ---------------------------------------------------------------------------------------------
# Opening and hashing uploads


@dataclass
class _Upload:
    name: str
    handle: IO[bytes]
    split: str | None  # the split of every image in it, or None when its layout decides


def _source_name(source: ZipSource, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    own = getattr(source, "name", None)
    return Path(own).name if isinstance(own, str) and own else default


def _open_source(source: ZipSource, name: str, limits: Limits, stack: ExitStack, workspace: Workspace) -> IO[bytes]:
    """A seekable binary handle on the upload, at its start, once its size is within the limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        handle: IO[bytes] = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise DatasetError(f"{str(path)!r} is a folder; please zip it first and give the zip file.")
        if path.exists() and not path.is_file():
            # A pipe would wait for a writer and a device such as /dev/zero never ends: neither is a zip.
            raise DatasetError(f"{str(path)!r} is not a regular file; please give the path of a .zip file.")
        try:
            handle = stack.enter_context(open(path, "rb"))
        except OSError as error:
            raise DatasetError(f"The zip {str(path)!r} cannot be opened ({error.strerror or error}).") from None
    elif hasattr(source, "read"):
        handle = source
        if not (hasattr(source, "seekable") and source.seekable()):
            handle = stack.enter_context(tempfile.TemporaryFile(dir=workspace.tmp_dir))
            _copy_bounded(source, handle, name, limits)
    else:
        raise TypeError(
            f"A zip must be given as a path, bytes or a binary file object. Received: {type(source).__name__}"
        )
    size = handle.seek(0, os.SEEK_END)
    handle.seek(0)
    if size > limits.max_zip_bytes:
        raise DatasetError(
            f"{name!r} is {_size(size)}, more than the {_size(limits.max_zip_bytes)} an upload may be; "
            "please split it or resize the images."
        )
    return handle


def _copy_bounded(source: IO[bytes], target: IO[bytes], name: str, limits: Limits) -> None:
    copied = 0
    while chunk := source.read(_CHUNK):
        copied += len(chunk)
        if copied > limits.max_zip_bytes:
            raise DatasetError(
                f"{name!r} is more than the {_size(limits.max_zip_bytes)} an upload may be; "
                "please split it or resize the images."
            )
        target.write(chunk)


def _dataset_id(uploads: list[_Upload], val_fraction: float, seed: int) -> str:
    digest = hashlib.sha256()
    for index, upload in enumerate(uploads):
        if index:
            digest.update(b"\x00validation zip\x00")
        while chunk := upload.handle.read(_CHUNK):
            digest.update(chunk)
        upload.handle.seek(0)
    digest.update(f"\x00val_fraction={float(val_fraction)!r}\x00seed={int(seed)}".encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Ingestion


@dataclass
class _Entry:
    info: zipfile.ZipInfo
    path: str  # as people read it: decoded, NFC, "/"-separated
    parts: tuple[str, ...]
    is_dir: bool


@dataclass
class _Target:
    class_name: str
    split: str | None
    folder: str  # the class folder's path, for the empty-folder report


@dataclass
class _Budget:
    """What the upload has used so far of the limits that span all its entries."""

    limits: Limits
    entries: int = 0
    declared: int = 0
    read: int = 0
    pixels: int = 0


@dataclass
class _Stored:
    class_name: str
    split: str | None
    file: str
    source: str
    in_place: bool = False
    stat: tuple[int, int] | None = None


def _ingest(
    uploads: list[_Upload],
    staging: Path,
    dataset_id: str,
    name: str,
    val_fraction: float,
    seed: int,
    limits: Limits,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Stage every usable image of `uploads` in `staging/files/` and return the manifest."""
    budget = _Budget(limits)
    with ExitStack() as stack:
        archives = [stack.enter_context(_open_zip(upload, limits)) for upload in uploads]
        scans = [_scan(archive, upload, budget) for archive, upload in zip(archives, uploads, strict=True)]
        stored, skipped, given = _stage(archives, uploads, scans, budget, staging, progress)
    return _manifest(stored, skipped, given, dataset_id, name, name, val_fraction, seed, limits)


def _manifest(
    stored: list[_Stored],
    skipped: list[SkippedFile],
    given: bool,
    dataset_id: str,
    name: str,
    shown: str,
    val_fraction: float,
    seed: int,
    limits: Limits,
    source_dir: Path | None = None,
) -> dict[str, Any]:
    """Check the classes of the images kept (`shown` names the upload in messages), split them unless
    the layout did, and return the manifest; images stored `in_place` are read from `source_dir`."""
    classes = _check_classes(stored, given, shown, limits)
    if not given:
        _split(stored, val_fraction, seed)
    label = {class_name: index for index, class_name in enumerate(classes)}
    items = sorted(
        (Item(s.file, label[s.class_name], s.split, s.source, s.in_place, s.stat) for s in stored),
        key=lambda item: (item.label, item.source, item.file),
    )
    manifest = {
        "format": MANIFEST_FORMAT,
        "id": dataset_id,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": list(classes),
        "split_source": "given" if given else "seeded",
        "val_fraction": val_fraction,
        "seed": seed,
        "items": [
            {
                "file": i.file,
                "label": i.label,
                "split": i.split,
                "source": i.source,
                **({"in_place": True, "stat": list(i.stat or ())} if i.in_place else {}),
            }
            for i in items
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
    }
    if source_dir is not None:
        manifest["source_dir"] = str(source_dir)
    return manifest


def _stage(
    archives: list[zipfile.ZipFile],
    uploads: list[_Upload],
    scans: list[tuple[list[_Entry], list[SkippedFile]]],
    budget: _Budget,
    staging: Path,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[_Stored], list[SkippedFile], bool]:
    """Store the images of scanned uploads; return them, the skipped files and whether the split is given."""
    total = sum(1 for entries, _ in scans for entry in entries if not entry.is_dir)
    (staging / "files").mkdir()
    stored: list[_Stored] = []
    skipped: list[SkippedFile] = []
    given = len(uploads) > 1
    done = 0
    if progress is not None:
        progress(0, total)
    for archive, upload, (entries, junk) in zip(archives, uploads, scans, strict=True):
        targets, upload_skipped, folders, upload_given = _plan(entries, upload)
        given = given or upload_given
        skipped += junk + upload_skipped
        found: Counter[str] = Counter()
        for entry in entries:
            if entry.is_dir:
                continue
            target = targets.get(id(entry))
            if target is not None:
                outcome = _store(archive, entry, upload, budget, staging, len(stored))
                if isinstance(outcome, SkippedFile):
                    skipped.append(outcome)
                else:
                    stored.append(_Stored(target.class_name, target.split, outcome, entry.path))
                    found[target.folder] += 1
            done += 1
            if progress is not None:
                progress(done, total)
        skipped += [
            SkippedFile(f"{folder}/", "empty class folder (no usable images)")
            for folder in folders
            if not found[folder]
        ]
    return stored, skipped, given


def _open_zip(upload: _Upload, limits: Limits) -> zipfile.ZipFile:
    declared = _declared_entries(upload.handle)
    if declared is not None:
        entries, directory_bytes = declared
        # zipfile parses the whole central directory before anything can be counted: refuse a
        # huge one first, from the end record alone.
        if entries > limits.max_files or directory_bytes > limits.max_files * _CENTRAL_RECORD_BYTES:
            raise DatasetError(
                f"{upload.name!r} was refused because it lists {entries:,} files and folders in "
                f"{_size(directory_bytes)}, more than the {limits.max_files:,} allowed; please split it into "
                "smaller zips."
            )
    try:
        return zipfile.ZipFile(upload.handle)
    except _ZIP_ERRORS:
        raise DatasetError(
            f"{upload.name!r} is not a zip file that can be read (it may be damaged, cut short or another kind "
            "of archive); please upload a .zip with one folder of images per class."
        ) from None


def _declared_entries(handle: IO[bytes]) -> tuple[int, int] | None:
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


def _scan(archive: zipfile.ZipFile, upload: _Upload, budget: _Budget) -> tuple[list[_Entry], list[SkippedFile]]:
    """Refuse the upload if any entry is unsafe or over a limit; set junk aside.

    Returns the usable entries in the order they are stored in the zip, and the junk as skipped files.
    """
    limits = budget.limits
    infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
    budget.entries += len(infos)
    if budget.entries > limits.max_files:
        raise DatasetError(
            f"{upload.name!r} was refused because the upload holds {budget.entries:,} files and folders, more "
            f"than the {limits.max_files:,} allowed; please split it into smaller zips."
        )
    entries: list[_Entry] = []
    junk: Counter[tuple[str, str]] = Counter()
    for info in infos:
        entry = _entry(info)
        _check_entry(entry, upload.name, limits)
        budget.declared += info.file_size
        if budget.declared > limits.max_total_bytes:
            raise DatasetError(
                f"{upload.name!r} unpacks to more than {_size(limits.max_total_bytes)}, the most an upload "
                "may hold; please split it or resize the images."
            )
        if len(entry.parts) > limits.max_depth:
            if not entry.is_dir:
                junk[(entry.path, f"nested more than {limits.max_depth} folders deep")] += 1
            continue
        reason = _junk(entry)
        if reason is None:
            entries.append(entry)
        elif not entry.is_dir:
            junk[reason] += 1
    skipped = [
        SkippedFile(path, f"{reason} ({_count(count, 'file')})" if path.endswith("/") else reason)
        for (path, reason), count in junk.items()
    ]
    return entries, skipped


def _entry(info: zipfile.ZipInfo) -> _Entry:
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
    return _Entry(info, path, parts, path.endswith("/"))


def _check_entry(entry: _Entry, zip_name: str, limits: Limits) -> None:
    info, path = entry.info, entry.path
    refused = f"{zip_name!r} was refused because the entry {path!r}"
    if path.startswith("/") or (entry.parts and _DRIVE.match(entry.parts[0])):
        raise DatasetError(f"{refused} has an absolute path; please zip a plain folder of images instead.")
    if ".." in entry.parts:
        raise DatasetError(f"{refused} points outside the zip's folder; please zip a plain folder of images instead.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError(f"{refused} is a symbolic link; please zip the images themselves, not links to them.")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise DatasetError(f"{refused} is password-protected; please upload a zip without a password.")
    if entry.is_dir:
        return
    if info.compress_type not in _READABLE_METHODS:
        raise DatasetError(
            f"{refused} uses a compression method (number {info.compress_type}) that cannot be read; "
            "please re-create the zip with standard (deflate) compression."
        )
    if info.file_size > limits.max_entry_bytes:
        raise DatasetError(
            f"{refused} unpacks to {_size(info.file_size)}, more than the {_size(limits.max_entry_bytes)} "
            "one file may be."
        )
    if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise DatasetError(
            f"{refused} unpacks from {_size(info.compress_size)} to {_size(info.file_size)}, more than "
            f"{limits.max_ratio:g} times its packed size, which is how zip bombs look."
        )


def _junk(entry: _Entry) -> tuple[str, str] | None:
    """`(path to list, reason)` for system and hidden files, None for everything else."""
    for depth, part in enumerate(entry.parts):
        is_folder = entry.is_dir or depth < len(entry.parts) - 1
        shown = "/".join(entry.parts[: depth + 1]) + ("/" if is_folder else "")
        if part == "__MACOSX":
            return shown, "macOS metadata folder"
        if part.startswith("."):
            return shown, "hidden folder" if is_folder else "hidden file"
    if not entry.is_dir and entry.parts and entry.parts[-1].casefold() in _WINDOWS_JUNK:
        return entry.path, "Windows system file"
    return None


def _plan(entries: list[_Entry], upload: _Upload) -> tuple[dict[int, _Target], list[SkippedFile], list[str], bool]:
    """Decide from the names alone which class and split each file is for.

    Returns the targets (by `id(entry)`), the files skipped for where they are, the class folders
    (to report those left empty) and whether the layout gives the split.
    """
    files = [entry for entry in entries if not entry.is_dir]
    folders = {entry.parts[:n] for entry in entries for n in range(1, len(entry.parts) + entry.is_dir)}

    def subfolders(prefix: tuple[str, ...]) -> list[str]:
        return sorted({f[-1] for f in folders if len(f) == len(prefix) + 1 and f[: len(prefix)] == prefix})

    def holds_files(prefix: tuple[str, ...]) -> bool:
        return any(len(e.parts) == len(prefix) + 1 and e.parts[: len(prefix)] == prefix for e in files)

    top: tuple[str, ...] = ()
    while len(children := subfolders(top)) == 1:
        only = (*top, children[0])
        if holds_files(only) or not subfolders(only):
            break
        top = only

    roles = {}
    for folder in subfolders(top):
        key = folder.casefold()
        if key in _TRAIN_FOLDERS and subfolders((*top, folder)):
            roles[folder] = "train"
        elif key in _VAL_FOLDERS:
            roles[folder] = "val"
        elif key in _TEST_FOLDERS:
            roles[folder] = "test"
    given = "train" in roles.values() and len(set(roles.values())) > 1
    if given and upload.split is not None:
        raise DatasetError(
            f"{upload.name!r} already has train/ and validation folders, so it cannot be combined with a "
            "separate validation zip; please upload it on its own."
        )
    if given and "val" not in roles.values():
        roles = {folder: "val" if role == "test" else role for folder, role in roles.items()}
    depth = len(top) + (2 if given else 1)  # parts of a class folder's path

    targets: dict[int, _Target] = {}
    skipped: list[SkippedFile] = []
    bad_names: Counter[str] = Counter()
    for entry in files:
        if entry.parts[: len(top)] != top or len(entry.parts) <= depth:
            skipped.append(SkippedFile(entry.path, "not inside a class folder"))
            continue
        if given and entry.parts[len(top)] not in roles:
            skipped.append(SkippedFile(entry.path, "outside the train and validation folders"))
            continue
        folder = "/".join(entry.parts[:depth])
        class_name = _class_name(entry.parts[depth - 1])
        if class_name is None:
            bad_names[folder] += 1
            continue
        split = roles[entry.parts[len(top)]] if given else upload.split
        targets[id(entry)] = _Target(class_name, split, folder)
    unusable = "folder name cannot be a class name (blank or control characters)"
    skipped += [
        SkippedFile(f"{folder}/", f"{unusable}, {_count(count, 'file')}") for folder, count in bad_names.items()
    ]
    class_folders = [
        "/".join((*parent, folder))
        for parent in ([(*top, split) for split in roles] if given else [top])
        for folder in subfolders(parent)
        if "/".join((*parent, folder)) not in bad_names and _class_name(folder) is not None
    ]
    return targets, skipped, class_folders, given


def _class_name(folder: str) -> str | None:
    name = folder.strip()
    if not name or any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        return None
    return name


def _store(
    archive: zipfile.ZipFile, entry: _Entry, upload: _Upload, budget: _Budget, staging: Path, index: int
) -> str | SkippedFile:
    """Write the entry's image to `staging/files/` and return its relative path, or why it is skipped."""
    data = _read(archive, entry, upload.name, budget)
    converted = _convert(data, entry.path, budget.limits.max_image_pixels)
    if isinstance(converted, str):
        return SkippedFile(entry.path, converted)
    encoded, suffix, pixels = converted
    budget.pixels += pixels
    if budget.pixels > budget.limits.max_total_pixels:
        raise DatasetError(
            f"The images in {upload.name!r} hold more than {budget.limits.max_total_pixels:,} pixels in all; "
            "please resize them (1,000 pixels on the longest side is plenty) or upload fewer."
        )
    relative = f"files/{index:06d}{suffix}"
    (staging / relative).write_bytes(encoded)
    return relative


def _read(archive: zipfile.ZipFile, entry: _Entry, zip_name: str, budget: _Budget) -> bytes:
    """The entry's bytes, counted as they are read: a zip's declared sizes may lie."""
    limits = budget.limits
    chunks = []
    size = 0
    try:
        with archive.open(entry.info) as handle:
            while chunk := handle.read(_CHUNK):
                size += len(chunk)
                budget.read += len(chunk)
                if size > limits.max_entry_bytes:
                    raise DatasetError(
                        f"{zip_name!r} was refused because the entry {entry.path!r} unpacks to more than the "
                        f"{_size(limits.max_entry_bytes)} one file may be."
                    )
                if budget.read > limits.max_total_bytes:
                    raise DatasetError(
                        f"{zip_name!r} unpacks to more than {_size(limits.max_total_bytes)}, the most an upload "
                        "may hold; please split it or resize the images."
                    )
                chunks.append(chunk)
    except _READ_ERRORS as error:
        raise DatasetError(
            f"{zip_name!r} is damaged: the entry {entry.path!r} cannot be read ({_brief(error)}); "
            "please re-create the zip and upload it again."
        ) from None
    return b"".join(chunks)


def _convert(data: bytes, path: str, max_pixels: int) -> tuple[bytes, str, int] | str:
    """`(bytes to store, suffix, pixels)` for an image, or the reason it is skipped.

    A plain RGB JPEG that needs no rotation is kept byte for byte; anything else is converted to RGB
    (alpha composited on white, EXIF orientation applied) and stored as lossless PNG.
    """
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return f"too many pixels (more than {Image.MAX_IMAGE_PIXELS:,}), a possible decompression bomb"
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_MAGIC) or (data.startswith(b"RIFF") and data[8:12] == b"WEBP"):
            return "damaged image (its start is an image's, the rest cannot be read)"
        if data.startswith(_ARCHIVE_MAGIC) or data[257:262] == b"ustar" or path.casefold().endswith(_ARCHIVE_SUFFIXES):
            return "archive inside the zip (not unpacked)"
        return f"not an image in a supported format ({_SUPPORTED})"
    except Exception as error:  # Pillow's parsers raise many kinds of errors on hostile headers.
        return f"damaged image ({_brief(error)})"
    with image:
        width, height = image.size
        if width * height > max_pixels:
            return f"too many pixels ({width}×{height}, the limit is {max_pixels:,})"
        try:
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation)
        except Exception as error:  # as above: truncated or corrupt data, in any decoder
            return f"damaged or truncated image ({_brief(error)})"
        if image.format == "JPEG" and image.mode == "RGB" and orientation in (None, 1):
            return data, ".jpg", width * height
        try:
            rgb = _to_rgb(ImageOps.exif_transpose(image))
        except (ValueError, OSError) as error:
            return f"colour mode {image.mode} cannot be converted to RGB ({_brief(error)})"
    buffer = io.BytesIO()
    # Level 1: lossless either way, and several times faster than the default on photos.
    rgb.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), ".png", width * height


def _to_rgb(image: Image.Image) -> Image.Image:
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


def _check_classes(stored: list[_Stored], given: bool, name: str, limits: Limits) -> list[str]:
    """The sorted class names, once every class has enough images to train and validate on."""
    per_class: dict[str, Counter[str | None]] = {}
    for image in stored:
        per_class.setdefault(image.class_name, Counter())[image.split] += 1
    classes = sorted(per_class)
    if not classes:
        raise DatasetError(
            f"{name!r} contains no images that can be used; please put the images ({_SUPPORTED}) in one "
            "folder per class, such as cats/001.jpg and dogs/001.jpg."
        )
    if len(classes) == 1:
        only = classes[0]
        raise DatasetError(
            f"{name!r} has only one class ({only!r}, {_count(sum(per_class[only].values()), 'image')}); a classifier "
            "needs at least two class folders."
        )
    if given:
        lacking = [c for c in classes if not per_class[c]["train"] or not per_class[c]["val"]]
        if lacking:
            first = lacking[0]
            others = f" (and {_count(len(lacking) - 1, 'more class', 'more classes')})" if len(lacking) > 1 else ""
            raise DatasetError(
                f"Class {first!r} in {name!r} has {per_class[first]['train']} training and "
                f"{per_class[first]['val']} validation images{others}; every class needs at least one of each."
            )
    needed = max(limits.min_images_per_class, 2)
    few = [c for c in classes if per_class[c]["train"] + per_class[c]["val"] + per_class[c][None] < needed]
    if few:
        first = few[0]
        count = sum(n for split, n in per_class[first].items() if split != "test")
        others = f" (and {_count(len(few) - 1, 'more class', 'more classes')})" if len(few) > 1 else ""
        raise DatasetError(
            f"Class {first!r} in {name!r} has only {_count(count, 'image')}{others}; "
            f"every class needs at least {needed} to train and validate on."
        )
    return classes


def _split(stored: list[_Stored], val_fraction: float, seed: int) -> None:
    """Hold out `val_fraction` of every class (at least one image, never all) for validation."""
    by_class: dict[str, list[_Stored]] = {}
    for image in stored:
        by_class.setdefault(image.class_name, []).append(image)
    for class_name, images in by_class.items():
        images.sort(key=lambda image: (image.source, image.file))
        order = list(range(len(images)))
        # Seeded per class, so adding a class to a zip leaves the other classes' splits alone.
        random.Random(f"{seed}/{class_name}").shuffle(order)
        held_out = min(len(images) - 1, max(1, round(len(images) * val_fraction)))
        for rank, index in enumerate(order):
            images[index].split = "val" if rank < held_out else "train"


# ---------------------------------------------------------------------------------------------
# Storage


def _dataset_root(workspace: Workspace, dataset_id: str) -> Path:
    try:
        return workspace.dataset_dir(dataset_id)
    except TLCoreError as error:
        raise DatasetError(str(error)) from None


def _load_or_none(workspace: Workspace, dataset_id: str) -> Dataset | None:
    try:
        return load_dataset(workspace, dataset_id)
    except DatasetError:
        return None


def _publish(staging: Path, manifest: dict[str, Any], workspace: Workspace) -> Dataset:
    """Move the staged dataset into `datasets/<id>/` in one rename."""
    write_json_atomic(staging / "manifest.json", manifest)
    target = workspace.dataset_dir(manifest["id"])
    try:
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():
            raise
        existing = _load_or_none(workspace, manifest["id"])
        if existing is not None:  # the same upload, ingested meanwhile by another session
            return existing
        _discard(target, workspace)  # a damaged copy
        os.rename(staging, target)
    return load_dataset(workspace, manifest["id"])


def _discard(path: Path, workspace: Workspace) -> None:
    """Delete a folder so that readers see it whole or gone, never half-deleted."""
    trash = Path(tempfile.mkdtemp(prefix="delete-", dir=workspace.tmp_dir))
    os.rename(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def _from_manifest(root: Path, manifest: dict[str, Any]) -> Dataset:
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"unknown manifest format {manifest.get('format')!r}")
    if manifest["id"] != root.name:
        raise ValueError(f"the manifest is for dataset {manifest['id']!r}")
    classes = tuple(str(c) for c in manifest["classes"])
    source_dir = Path(manifest["source_dir"]) if manifest.get("source_dir") is not None else None
    items = tuple(
        Item(
            str(i["file"]),
            int(i["label"]),
            str(i["split"]),
            str(i["source"]),
            bool(i.get("in_place")),
            (int(i["stat"][0]), int(i["stat"][1])) if i.get("stat") else None,
        )
        for i in manifest["items"]
    )
    for item in items:
        valid_file = _in_place_name(item.file, source_dir) if item.in_place else _STORED_FILE.match(item.file)
        if not valid_file or not 0 <= item.label < len(classes) or item.split not in SPLITS:
            raise ValueError(f"the manifest lists an invalid image {item.file!r}")
    return Dataset(
        id=manifest["id"],
        root=root,
        name=str(manifest["name"]),
        classes=classes,
        items=items,
        skipped=tuple(SkippedFile(str(s["path"]), str(s["reason"])) for s in manifest["skipped"]),
        split_source=str(manifest["split_source"]),
        val_fraction=float(manifest["val_fraction"]),
        seed=int(manifest["seed"]),
        created=str(manifest["created"]),
        source_dir=source_dir,
    )


def _in_place_name(name: str, source_dir: Path | None) -> bool:
    """A path that stays inside `source_dir` whatever the manifest says (it is read, never trusted)."""
    parts = name.split("/")
    return (
        source_dir is not None
        and source_dir.is_absolute()
        and bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and all(part not in ("", ".", "..") for part in parts)
    )


# ---------------------------------------------------------------------------------------------
# Text


def _size(n: int) -> str:
    for unit, scale in (("GB", _GIB), ("MB", _MIB), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _brief(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))
