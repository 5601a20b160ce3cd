"""Drafts: a dataset built picture by picture (from a camera), kept on disk until it becomes a dataset.

A draft is a folder `drafts/<id>/` of the workspace: `draft.json` (the dataset it extends, if any,
its classes in the order they were added, and its shots) and the shots, each stored once under the
hash of its bytes. Every change rewrites `draft.json` atomically, so a refresh, a second tab or a
restart keeps every picture taken.

`build` makes the dataset through `ingest_files`, with the dataset it extends (if any) and the shots
laid out as a folder of class folders: the dataset's id is content-addressed like any other, and
extending a dataset makes a new one; the old dataset, and every run that used it, stays as it was.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tlcore.datasets.dataset import Dataset
from tlcore.datasets.layout import StoredImage, class_name_of, split_seeded
from tlcore.datasets.storage import load_dataset
from tlcore.datasets.uploads import ingest_files
from tlcore.errors import DatasetError
from tlcore.images import convert_image
from tlcore.workspace import Workspace, check_id, read_json, write_json_atomic

DRAFT_FILE = "draft.json"
DEFAULT_NAME = "camera"


@dataclass(frozen=True)
class Shot:
    """One picture of a draft: its id (a hash of its bytes), its class and its file in the draft folder."""

    id: str
    class_name: str
    file: str


@dataclass(frozen=True)
class Draft:
    """A dataset being built. `base` is the id of the dataset it extends, None for a new one."""

    id: str
    root: Path
    base: str | None
    classes: tuple[str, ...]
    shots: tuple[Shot, ...]

    def counts(self) -> dict[str, int]:
        """Shots per class, every class listed (in the order the classes were added)."""
        taken = Counter(shot.class_name for shot in self.shots)
        return {name: taken[name] for name in self.classes}

    def shots_of(self, class_name: str) -> list[Shot]:
        return [shot for shot in self.shots if shot.class_name == class_name]

    def path(self, shot: Shot) -> Path:
        return self.root / shot.file


def new_draft(workspace: Workspace, base: str | None = None) -> Draft:
    """Start a draft; with `base`, one that extends that dataset (its classes are offered at once)."""
    classes: tuple[str, ...] = ()
    if base is not None:
        classes = load_dataset(workspace, base).classes
    draft_id = secrets.token_hex(8)
    draft = Draft(draft_id, workspace.drafts_dir / draft_id, base, classes, ())
    draft.root.mkdir(parents=True)
    _save(draft)
    return draft


def load_draft(workspace: Workspace, draft_id: str) -> Draft:
    """The draft `draft_id`; `DatasetError` when there is none (deleted, or built in another tab)."""
    root = workspace.drafts_dir / check_id(draft_id, "draft")
    try:
        data = read_json(root / DRAFT_FILE)
        shots = tuple(Shot(s["id"], s["class"], s["file"]) for s in data["shots"])
        return Draft(draft_id, root, data["base"], tuple(data["classes"]), shots)
    except FileNotFoundError:
        raise DatasetError("draft.not_found", id=repr(draft_id)) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError("draft.damaged", id=repr(draft_id), error=str(error)) from None


def list_drafts(workspace: Workspace) -> list[Draft]:
    """The workspace's drafts that can be read, the most recently changed first."""
    folders = sorted(
        (path for path in workspace.drafts_dir.iterdir() if (path / DRAFT_FILE).is_file()),
        key=lambda path: (path / DRAFT_FILE).stat().st_mtime_ns,
        reverse=True,
    )
    drafts = []
    for folder in folders:
        try:
            drafts.append(load_draft(workspace, folder.name))
        except DatasetError:
            continue
    return drafts


def delete_draft(draft: Draft) -> None:
    shutil.rmtree(draft.root, ignore_errors=True)


def add_class(draft: Draft, name: str) -> Draft:
    """The draft with class `name` (as `class_name_for` cleans it) added; a class it has already is kept once."""
    class_name = class_name_for(name)
    if class_name in draft.classes:
        return draft
    return _save(Draft(draft.id, draft.root, draft.base, (*draft.classes, class_name), draft.shots))


def add_shot(draft: Draft, class_name: str | None, data: bytes, name: str = "camera.jpg") -> Draft:
    """The draft with a picture of `class_name` added, converted as ingestion converts images; the same
    picture twice in one class is kept once.

    Raises:
        DatasetError: no class was chosen, or the class is not in the draft.
        ImageError: the picture is not an image that can be used (the message says why).
    """
    if not class_name:
        raise DatasetError("draft.no_class")
    if class_name not in draft.classes:
        raise DatasetError("draft.unknown_class", name=class_name)
    encoded = convert_image(data, name)
    suffix = ".jpg" if encoded.startswith(b"\xff\xd8") else ".png"
    shot_id = hashlib.sha256(encoded).hexdigest()[:16]
    if any(shot.id == shot_id and shot.class_name == class_name for shot in draft.shots):
        return draft
    file = f"{shot_id}{suffix}"
    if not (draft.root / file).exists():
        (draft.root / file).write_bytes(encoded)
    shots = (*draft.shots, Shot(shot_id, class_name, file))
    return _save(Draft(draft.id, draft.root, draft.base, draft.classes, shots))


def remove_shot(draft: Draft, shot: Shot) -> Draft:
    """The draft without `shot` (its file goes once no other class holds the same picture)."""
    kept = tuple(s for s in draft.shots if s != shot)
    saved = _save(Draft(draft.id, draft.root, draft.base, draft.classes, kept))
    if all(s.file != shot.file for s in kept):
        (draft.root / shot.file).unlink(missing_ok=True)
    return saved


def build(
    draft: Draft,
    workspace: Workspace,
    *,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Make the draft a dataset (the dataset it extends with the shots added) and delete the draft.

    A new dataset gets a seeded split (20 % of each class held out, seed 0). An extended one keeps its
    own split: its images stay where they were and, when its split was given, each class's new shots
    are split as a seeded split would.

    Raises:
        DatasetError: the dataset was refused, as an upload would be (for example a class with fewer
            than two pictures); the draft is kept, so more pictures can be taken.
    """
    base = load_dataset(workspace, draft.base) if draft.base is not None else None
    folder = name or (f"{base.name} + {DEFAULT_NAME}" if base is not None else DEFAULT_NAME)
    folder_part = _safe_part(folder)
    given = base is not None and base.split_source == "given"
    files: list[tuple[str, bytes]] = []
    if base is not None:
        files += _base_files(base, folder_part, given)
    shot_splits = _split_shots(draft, base) if given else {}
    for shot in draft.shots:
        split = f"{shot_splits[shot]}/" if given else ""
        path = f"{folder_part}/{split}{shot.class_name}/camera-{shot.file}"
        files.append((path, draft.path(shot).read_bytes()))
    dataset = ingest_files(
        files,
        workspace=workspace,
        name=folder,
        val_fraction=base.val_fraction if base is not None else 0.2,
        seed=base.seed if base is not None else 0,
        progress=progress,
    )
    delete_draft(draft)
    return dataset


def _base_files(base: Dataset, folder: str, given: bool) -> list[tuple[str, bytes]]:
    """The base dataset's images as a folder upload: each in its class folder under its own file name."""
    files = []
    used: set[str] = set()
    for item in base.items:
        class_name = base.classes[item.label]
        stem = PurePosixPath(item.source).name or "image"
        suffix = Path(item.file).suffix
        file_name = stem if PurePosixPath(stem).suffix.lower() == suffix.lower() else f"{stem}{suffix}"
        split = f"{item.split}/" if given else ""
        path = f"{folder}/{split}{class_name}/{file_name}"
        number = 1
        while path in used:  # two images of a class with one name, from different sub-folders
            number += 1
            path = f"{folder}/{split}{class_name}/{number}-{file_name}"
        used.add(path)
        files.append((path, base.path(item).read_bytes()))
    return files


def _split_shots(draft: Draft, base: Dataset) -> dict[Shot, str]:
    images = {shot: StoredImage(shot.class_name, None, shot.file, shot.file) for shot in draft.shots}
    split_seeded(list(images.values()), base.val_fraction, base.seed)
    return {shot: image.split or "train" for shot, image in images.items()}


def class_name_for(name: str) -> str:
    """`name` as a class name (outer spaces removed), or `DatasetError` when it cannot be one: it becomes a
    folder name in the dataset, so no "/" or "\\", no leading ".", no control characters."""
    cleaned = class_name_of(unicodedata.normalize("NFC", name or ""))
    if cleaned is None or "/" in cleaned or "\\" in cleaned or cleaned.startswith(".") or len(cleaned) > 100:
        raise DatasetError("draft.bad_class_name", name=name)
    return cleaned


def _safe_part(name: str) -> str:
    """`name` as one folder name: the dataset's name, with what a path cannot hold replaced."""
    cleaned = "".join("_" if char in "/\\" else char for char in name).strip().lstrip(".")
    return cleaned or DEFAULT_NAME


def _save(draft: Draft) -> Draft:
    write_json_atomic(
        draft.root / DRAFT_FILE,
        {
            "base": draft.base,
            "classes": list(draft.classes),
            "shots": [{"id": s.id, "class": s.class_name, "file": s.file} for s in draft.shots],
        },
    )
    return draft
