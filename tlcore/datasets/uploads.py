"""Ingesting uploaded zips into datasets: `ingest_zip`.

The upload is checked by the zip defence (`archive`) before anything is kept, its layout is read
from its names (`layout`), and every image is converted by `tlcore.images.convert` into the staging
folder, then published as a whole (`storage`). Everything is staged in the workspace's `tmp/` and
renamed into `datasets/` only once the whole upload has been accepted, so a refusal or a crash leaves
nothing behind. Files that are merely unusable (not images, damaged, system junk, outside any class
folder, too many pixels) are skipped and listed in the report with their reason.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tlcore.datasets.archive import (
    UPLOAD_LIMITS,
    Entry,
    Limits,
    Upload,
    Usage,
    ZipSource,
    open_source,
    open_zip,
    read_entry,
    scan,
    source_name,
    upload_id,
)
from tlcore.datasets.dataset import Dataset, SkippedFile
from tlcore.datasets.layout import StoredImage, plan_layout
from tlcore.datasets.storage import build_manifest, load_or_none, publish
from tlcore.errors import DatasetError
from tlcore.i18n import Message, msg
from tlcore.images import convert
from tlcore.workspace import Workspace


def ingest_zip(
    train_zip: ZipSource,
    val_zip: ZipSource | None = None,
    *,
    workspace: Workspace,
    name: str | None = None,
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
        raise DatasetError("dataset.bad_val_fraction", value=repr(val_fraction))
    name = name or source_name(train_zip, "upload.zip")
    val_name = source_name(val_zip, "validation.zip") if val_zip is not None else None
    try:
        return _ingest_zip(train_zip, val_zip, workspace, name, val_name, val_fraction, seed, limits, progress)
    except OSError as error:
        # Reading the upload has its own messages; what is left is writing: a full disk, a read-only
        # workspace. The staging folder is gone by now, so nothing was kept.
        raise DatasetError(
            "dataset.cannot_store", name=name, workspace=str(workspace.root), error=error.strerror or str(error)
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
        uploads = [Upload(name, open_source(train_zip, name, limits, stack, workspace), "train" if val_zip else None)]
        if val_zip is not None:
            uploads.append(Upload(val_name, open_source(val_zip, val_name, limits, stack, workspace), "val"))
        dataset_id = upload_id(uploads, val_fraction, seed)
        existing = load_or_none(workspace, dataset_id)
        if existing is not None:
            return existing
        staging = Path(tempfile.mkdtemp(prefix=f"ingest-{dataset_id}-", dir=workspace.tmp_dir))
        try:
            manifest = _ingest(uploads, staging, dataset_id, name, float(val_fraction), int(seed), limits, progress)
            return publish(staging, manifest, workspace)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _ingest(
    uploads: list[Upload],
    staging: Path,
    dataset_id: str,
    name: str,
    val_fraction: float,
    seed: int,
    limits: Limits,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Stage every usable image of `uploads` in `staging/files/` and return the manifest."""
    usage = Usage(limits)
    with ExitStack() as stack:
        archives = [stack.enter_context(open_zip(upload, limits)) for upload in uploads]
        scans = [scan(archive, upload, usage) for archive, upload in zip(archives, uploads, strict=True)]
        stored, skipped, given = _stage(archives, uploads, scans, usage, staging, progress)
    return build_manifest(stored, skipped, given, dataset_id, name, name, val_fraction, seed, limits)


def _stage(
    archives: list[zipfile.ZipFile],
    uploads: list[Upload],
    scans: list[tuple[list[Entry], list[SkippedFile]]],
    usage: Usage,
    staging: Path,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[StoredImage], list[SkippedFile], bool]:
    """Store the images of scanned uploads; return them, the skipped files and whether the split is given."""
    total = sum(1 for entries, _ in scans for entry in entries if not entry.is_dir)
    (staging / "files").mkdir()
    stored: list[StoredImage] = []
    skipped: list[SkippedFile] = []
    given = len(uploads) > 1
    done = 0
    if progress is not None:
        progress(0, total)
    for archive, upload, (entries, junk) in zip(archives, uploads, scans, strict=True):
        targets, upload_skipped, folders, upload_given = plan_layout(entries, upload)
        given = given or upload_given
        skipped += junk + upload_skipped
        found: Counter[str] = Counter()
        for entry in entries:
            if entry.is_dir:
                continue
            target = targets.get(id(entry))
            if target is not None:
                outcome = _store(archive, entry, upload, usage, staging, len(stored))
                if isinstance(outcome, SkippedFile):
                    skipped.append(outcome)
                else:
                    stored.append(StoredImage(target.class_name, target.split, outcome, entry.path))
                    found[target.folder] += 1
            done += 1
            if progress is not None:
                progress(done, total)
        skipped += [
            SkippedFile(f"{folder}/", msg("skip.empty_class_folder")) for folder in folders if not found[folder]
        ]
    return stored, skipped, given


def _store(
    archive: zipfile.ZipFile, entry: Entry, upload: Upload, usage: Usage, staging: Path, index: int
) -> str | SkippedFile:
    """Write the entry's image to `staging/files/` and return its relative path, or why it is skipped."""
    data = read_entry(archive, entry, upload.name, usage)
    converted = convert(data, entry.path, usage.limits.max_image_pixels)
    if isinstance(converted, Message):
        return SkippedFile(entry.path, converted)
    encoded, suffix, pixels = converted
    usage.pixels += pixels
    if usage.pixels > usage.limits.max_total_pixels:
        raise DatasetError("dataset.too_many_pixels", name=upload.name, limit=f"{usage.limits.max_total_pixels:,}")
    relative = f"files/{index:06d}{suffix}"
    (staging / relative).write_bytes(encoded)
    return relative
