"""Ingesting uploads into datasets: a zip (`ingest_zip`) or a folder sent file by file (`ingest_files`).

The upload is checked by the zip defence (`archive`) before anything is kept, its layout is read
from its names (`layout`), and every image is converted by `tlcore.images.convert` into the staging
folder, then published as a whole (`storage`). Everything is staged in the workspace's `tmp/` and
renamed into `datasets/` only once the whole upload has been accepted, so a refusal or a crash leaves
nothing behind. Files that are merely unusable (not images, damaged, system junk, outside any class
folder, too many pixels) are skipped and listed in the report with their reason.

A dataset's id is a hash of what it holds: each image's class, split, name inside its class folder
and bytes, with the split settings. The same images give the same dataset however they came (one zip
or another of the same folder, or the folder itself), and a different image gives a new dataset.

Images are converted in parallel on every core, a few entries ahead of the one being stored. The
decode that checks each image also gives its pixels at the default input size, which go into the
decoded-image cache (`tlcore.decoded`) once the dataset is published: training at that size then
decodes nothing again.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import unicodedata
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from tlcore.datasets.archive import (
    UPLOAD_LIMITS,
    Entry,
    Limits,
    Upload,
    Usage,
    ZipSource,
    copy_bounded,
    open_source,
    open_zip,
    read_entry,
    scan,
    source_name,
)
from tlcore.datasets.dataset import Dataset, SkippedFile
from tlcore.datasets.layout import StoredImage, Target, is_junk, plan_layout
from tlcore.datasets.storage import build_manifest, load_or_none, publish
from tlcore.decoded import DecodedCache, StagedRows
from tlcore.errors import DatasetError
from tlcore.i18n import Message, msg
from tlcore.images import Converted, convert, decode_workers
from tlcore.wording import size_text
from tlcore.workspace import Workspace


def ingest_zip(
    train_zip: ZipSource,
    val_zip: ZipSource | None = None,
    *,
    workspace: Workspace,
    name: str | None = None,
    val_name: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    limits: Limits = UPLOAD_LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Check an uploaded zip of class folders and store it as a dataset in `workspace`.

    Args:
        train_zip: the upload: a path, the zip's bytes, or a binary file object (read from its start).
        val_zip: optionally, a second zip of class folders used as the validation split.
        workspace: where the dataset is stored (`datasets/<id>/`).
        name, val_name: the uploads' file names, for the report and messages; default to the files'
            own names.
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
        raise DatasetError("dataset.bad_val_fraction", value=repr(val_fraction))
    name = name or source_name(train_zip, "upload.zip")
    val_name = (val_name or source_name(val_zip, "validation.zip")) if val_zip is not None else None
    try:
        return _ingest_zip(train_zip, val_zip, workspace, name, val_name, val_fraction, seed, limits, progress)
    except OSError as error:
        # Reading the upload has its own messages; what is left is writing: a full disk, a read-only
        # workspace. The staging folder is gone by now, so nothing was kept.
        raise DatasetError(
            "dataset.cannot_store", name=name, workspace=str(workspace.root), error=error.strerror or str(error)
        ) from None


FileData = bytes | IO[bytes]
"""One file of a folder upload: its bytes, or a binary file object such as Streamlit's `UploadedFile`."""


def ingest_files(
    files: Sequence[tuple[str, FileData]],
    val_files: Sequence[tuple[str, FileData]] | None = None,
    *,
    workspace: Workspace,
    name: str | None = None,
    val_name: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    limits: Limits = UPLOAD_LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Check a folder sent file by file (as a browser sends a dropped folder) and store it as a dataset.

    The files are packed, unchanged, into a zip in the workspace's `tmp/` and ingested by
    `ingest_zip`: a folder meets the same limits, refusals, layout rules and report as the same folder
    zipped, and gets the same dataset id.

    Args:
        files: `(path, data)` for every file, the path relative to the folder's parent with `/`
            between its parts, as browsers give it (`"flowers/daisy/001.jpg"`). Paths are only ever
            names: one that tries to leave the folder is refused as in a zip.
        val_files: optionally, a second folder of class folders used as the validation split.
        name, val_name: the folders' names, for the report and messages; default to the first part
            of the paths.
        workspace, val_fraction, seed, limits, progress: as for `ingest_zip`.

    Raises:
        DatasetError: the folder was refused (empty, loose images without class folders, or any
            refusal of `ingest_zip`); nothing was written to the workspace.
    """
    name = name or folder_name(files)
    val_name = val_name or (folder_name(val_files) if val_files is not None else None)
    with ExitStack() as stack:
        train_zip = _pack(files, name, limits, workspace, stack)
        val_zip = _pack(val_files, val_name, limits, workspace, stack) if val_files is not None else None
        return ingest_zip(
            train_zip,
            val_zip,
            workspace=workspace,
            name=name,
            val_name=val_name,
            val_fraction=val_fraction,
            seed=seed,
            limits=limits,
            progress=progress,
        )


def folder_name(files: Sequence[tuple[str, FileData]]) -> str:
    """The name of the folder the files were chosen from: the first part of their paths."""
    tops = {PurePosixPath(path.replace("\\", "/")).parts[:1] for path, _ in files}
    only = next(iter(tops)) if len(tops) == 1 else ()
    return only[0] if only and only[0] not in ("/", "..") else "folder"


def _pack(
    files: Sequence[tuple[str, FileData]], name: str, limits: Limits, workspace: Workspace, stack: ExitStack
) -> IO[bytes]:
    """A zip of `files`, stored uncompressed in a temporary file in the workspace that goes with `stack`."""
    paths = [unicodedata.normalize("NFC", path.replace("\\", "/")) for path, _ in files]
    if not paths:
        raise DatasetError("dataset.empty_folder", name=name)
    if len(paths) > limits.max_files:
        raise DatasetError(
            "archive.too_many_entries", name=name, entries=f"{len(paths):,}", limit=f"{limits.max_files:,}"
        )
    _refuse_loose_images(paths, name)
    handle = stack.enter_context(tempfile.TemporaryFile(dir=workspace.tmp_dir))
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path, (_, data) in zip(paths, files, strict=True):
            source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
            source.seek(0)
            with archive.open(zipfile.ZipInfo(path), "w", force_zip64=True) as entry:
                copy_bounded(source, entry, name, limits)
            if handle.tell() > limits.max_zip_bytes:
                raise DatasetError("archive.larger_than_limit", name=name, limit=size_text(limits.max_zip_bytes))
    handle.seek(0)
    return handle


def _refuse_loose_images(paths: list[str], name: str) -> None:
    """Refuse a folder whose files all lie in it directly: it has no class folders.

    Browsers name a dropped folder's files from the folder itself (`photos/001.jpg`), so two parts.
    """
    kept = [parts for parts in (tuple(p for p in path.split("/") if p) for path in paths) if not is_junk(parts)]
    if kept and all(len(parts) <= 2 for parts in kept):
        raise DatasetError("dataset.loose_images", name=name, files=msg("count.files", n=len(kept)))


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
        uploads = [Upload(name, open_source(train_zip, name, limits, stack, workspace), "train" if val_zip else None)]
        if val_zip is not None:
            uploads.append(Upload(val_name, open_source(val_zip, val_name, limits, stack, workspace), "val"))
        usage = Usage(limits)
        archives = [stack.enter_context(open_zip(upload, limits)) for upload in uploads]
        scans = [scan(archive, upload, usage) for archive, upload in zip(archives, uploads, strict=True)]
        plans = [Plan(*plan_layout(entries, upload)) for (entries, _), upload in zip(scans, uploads, strict=True)]
        dataset_id = content_id(archives, uploads, scans, plans, float(val_fraction), int(seed), limits)
        existing = load_or_none(workspace, dataset_id)
        if existing is not None:
            return existing
        staging = Path(tempfile.mkdtemp(prefix=f"ingest-{dataset_id}-", dir=workspace.tmp_dir))
        cache = DecodedCache(workspace)
        decoded = stack.enter_context(cache.stage())
        try:
            stored, skipped, given = _stage(archives, uploads, scans, plans, usage, staging, progress, decoded)
            manifest = build_manifest(
                stored, skipped, given, dataset_id, name, name, float(val_fraction), int(seed), limits
            )
            dataset = publish(staging, manifest, workspace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        cache.store_staged(dataset, decoded)
        return dataset


@dataclass
class Plan:
    """`layout.plan_layout`'s answer for one upload."""

    targets: dict[int, Target]
    skipped: list[SkippedFile]
    class_folders: list[str]
    given: bool


def content_id(
    archives: list[zipfile.ZipFile],
    uploads: list[Upload],
    scans: list[tuple[list[Entry], list[SkippedFile]]],
    plans: list[Plan],
    val_fraction: float,
    seed: int,
    limits: Limits,
) -> str:
    """The id of the dataset the uploads make: a hash of every image's class, split, name and bytes.

    Reading the images costs a pass over the upload, but only once: an upload whose dataset exists
    is found here, before anything is converted. The pass enforces the size limits on its own count.
    """
    usage = Usage(limits)
    images = []
    for archive, upload, (entries, _), plan in zip(archives, uploads, scans, plans, strict=True):
        for entry in entries:
            target = plan.targets.get(id(entry))
            if target is None:
                continue
            inside = "/".join(entry.parts[target.folder.count("/") + 1 :])
            digest = hashlib.sha256(read_entry(archive, entry, upload.name, usage)).hexdigest()
            images.append(f"{target.split}\x00{target.class_name}\x00{inside}\x00{digest}")
    identity = hashlib.sha256("\n".join(sorted(images)).encode())
    identity.update(f"\x00val_fraction={val_fraction!r}\x00seed={seed}".encode())
    return identity.hexdigest()[:16]


def _stage(
    archives: list[zipfile.ZipFile],
    uploads: list[Upload],
    scans: list[tuple[list[Entry], list[SkippedFile]]],
    plans: list[Plan],
    usage: Usage,
    staging: Path,
    progress: Callable[[int, int], None] | None,
    decoded: StagedRows,
) -> tuple[list[StoredImage], list[SkippedFile], bool]:
    """Store the images of scanned uploads (and their pixels in `decoded`); return them, the skipped files
    and whether the split is given."""
    total = sum(1 for entries, _ in scans for entry in entries if not entry.is_dir)
    # Decoding for the cache costs nothing extra, but holding the pixels of more than it may keep would.
    image_size = decoded.image_size if decoded.fits(total) else None
    (staging / "files").mkdir()
    stored: list[StoredImage] = []
    skipped: list[SkippedFile] = []
    given = len(uploads) > 1
    done = 0
    if progress is not None:
        progress(0, total)
    with ThreadPoolExecutor(decode_workers(), thread_name_prefix="tlcore-ingest") as pool:
        for archive, upload, (entries, junk), plan in zip(archives, uploads, scans, plans, strict=True):
            given = given or plan.given
            skipped += junk + plan.skipped
            found: Counter[str] = Counter()
            files = [entry for entry in entries if not entry.is_dir]
            for entry, converted in _converted(pool, archive, upload, usage, files, plan.targets, image_size):
                target = plan.targets.get(id(entry))
                if target is not None:
                    outcome = _store(entry, converted, upload, usage, staging, len(stored), decoded)
                    if isinstance(outcome, SkippedFile):
                        skipped.append(outcome)
                    else:
                        stored.append(StoredImage(target.class_name, target.split, outcome, entry.path))
                        found[target.folder] += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            skipped += [
                SkippedFile(f"{folder}/", msg("skip.empty_class_folder"))
                for folder in plan.class_folders
                if not found[folder]
            ]
    return stored, skipped, given


def _converted(
    pool: ThreadPoolExecutor,
    archive: zipfile.ZipFile,
    upload: Upload,
    usage: Usage,
    entries: list[Entry],
    targets: dict[int, Target],
    image_size: int | None,
) -> Iterator[tuple[Entry, Converted | Message | None]]:
    """Every entry with its image converted (None for an entry that is not an image of a class), in order.

    Entries are read here, one after another (the zip defence counts what is read), and converted by
    `pool`, a few entries ahead of the caller.
    """
    pending: deque[tuple[Entry, Future[Converted | Message] | None]] = deque()
    ahead = 2 * decode_workers()

    def oldest() -> tuple[Entry, Converted | Message | None]:
        entry, job = pending.popleft()
        return entry, None if job is None else job.result()

    for entry in entries:
        job = None
        if id(entry) in targets:
            data = read_entry(archive, entry, upload.name, usage)
            job = pool.submit(convert, data, entry.path, usage.limits.max_image_pixels, image_size)
        pending.append((entry, job))
        if len(pending) > ahead:
            yield oldest()
    while pending:
        yield oldest()


def _store(
    entry: Entry,
    converted: Converted | Message | None,
    upload: Upload,
    usage: Usage,
    staging: Path,
    index: int,
    decoded: StagedRows,
) -> str | SkippedFile:
    """Write the entry's converted image to `staging/files/` and return its relative path, or why it is skipped."""
    if isinstance(converted, Message):
        return SkippedFile(entry.path, converted)
    usage.pixels += converted.pixel_count
    if usage.pixels > usage.limits.max_total_pixels:
        raise DatasetError("dataset.too_many_pixels", name=upload.name, limit=f"{usage.limits.max_total_pixels:,}")
    relative = f"files/{index:06d}{converted.suffix}"
    (staging / relative).write_bytes(converted.data)
    if converted.decoded is not None:
        decoded.add(relative, converted.decoded)
    return relative
