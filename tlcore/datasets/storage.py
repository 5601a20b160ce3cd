"""Datasets on disk: the manifest, publishing, loading and listing, and the dataset as a zip (`export_zip`).

A dataset is a folder `datasets/<id>/` holding `manifest.json` (the class names, every image with its
label and its split, every file that was skipped and why) and `files/` (the images, renamed
`000000.jpg`, `000001.png`, ...). A staged dataset is published with one rename, so readers see it
whole or not at all; the manifest is checked when read, never trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.datasets.dataset import MANIFEST_FORMAT, SPLITS, Dataset, Item, SkippedFile
from tlcore.datasets.layout import StoredImage, check_classes, split_seeded
from tlcore.errors import DatasetError, TLCoreError
from tlcore.i18n import Message, literal, readable
from tlcore.workspace import Workspace, read_json, write_json_atomic

if TYPE_CHECKING:
    from tlcore.datasets.archive import Limits


_STORED_FILE = re.compile(r"^files/[0-9]{6,}\.(jpg|png)$")


def build_manifest(
    stored: list[StoredImage],
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
    classes = check_classes(stored, given, shown, limits)
    if not given:
        split_seeded(stored, val_fraction, seed)
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
        "skipped": [{"path": s.path, "reason": s.reason.to_json()} for s in skipped],
    }
    if source_dir is not None:
        manifest["source_dir"] = str(source_dir)
    return manifest


def load_dataset(workspace: Workspace, dataset_id: str) -> Dataset:
    """The dataset `dataset_id` stored in `workspace`; `DatasetError` if it is missing or damaged."""
    root = dataset_root(workspace, dataset_id)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError("dataset.not_found", id=dataset_id, folder=str(workspace.datasets_dir))
    try:
        return from_manifest(root, read_json(manifest_path))
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
        raise DatasetError("dataset.damaged", id=dataset_id, error=str(error)) from None


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
    root = dataset_root(workspace, dataset_id)
    if not root.is_dir():
        raise DatasetError("dataset.nothing_to_delete", id=dataset_id, folder=str(workspace.datasets_dir))
    discard(root, workspace)


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


def dataset_root(workspace: Workspace, dataset_id: str) -> Path:
    try:
        return workspace.dataset_dir(dataset_id)
    except TLCoreError as error:
        raise DatasetError.from_message(error.message) from None


def load_or_none(workspace: Workspace, dataset_id: str) -> Dataset | None:
    try:
        return load_dataset(workspace, dataset_id)
    except DatasetError:
        return None


def publish(staging: Path, manifest: dict[str, Any], workspace: Workspace) -> Dataset:
    """Move the staged dataset into `datasets/<id>/` in one rename."""
    write_json_atomic(staging / "manifest.json", manifest)
    target = workspace.dataset_dir(manifest["id"])
    try:
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():
            raise
        existing = load_or_none(workspace, manifest["id"])
        if existing is not None:  # the same upload, ingested meanwhile by another session
            return existing
        discard(target, workspace)  # a damaged copy
        os.rename(staging, target)
    return load_dataset(workspace, manifest["id"])


def discard(path: Path, workspace: Workspace) -> None:
    """Delete a folder so that readers see it whole or gone, never half-deleted."""
    trash = Path(tempfile.mkdtemp(prefix="delete-", dir=workspace.tmp_dir))
    os.rename(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def from_manifest(root: Path, manifest: dict[str, Any]) -> Dataset:
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
        valid_file = in_place_name(item.file, source_dir) if item.in_place else _STORED_FILE.match(item.file)
        if not valid_file or not 0 <= item.label < len(classes) or item.split not in SPLITS:
            raise ValueError(f"the manifest lists an invalid image {item.file!r}")
    return Dataset(
        id=manifest["id"],
        root=root,
        name=str(manifest["name"]),
        classes=classes,
        items=items,
        skipped=tuple(SkippedFile(str(s["path"]), _reason(s["reason"])) for s in manifest["skipped"]),
        split_source=str(manifest["split_source"]),
        val_fraction=float(manifest["val_fraction"]),
        seed=int(manifest["seed"]),
        created=str(manifest["created"]),
        source_dir=source_dir,
    )


def _reason(data: Any) -> Message:
    """A skipped file's reason as the manifest holds it: a message, or (written before messages) plain text."""
    return readable(Message.from_json(data)) or literal(str(data))


def in_place_name(name: str, source_dir: Path | None) -> bool:
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
