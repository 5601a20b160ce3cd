"""The layout of a dataset, decided from the names of its files alone, and its split.

Layouts understood (folder names are matched case-insensitively where they have a meaning):

- one folder per class at the root of the zip (`cats/1.jpg`, `dogs/1.jpg`), or the same inside any
  number of single wrapper folders (`photos/cats/1.jpg`); images in sub-folders of a class folder
  belong to that class, as with `keras.utils.image_dataset_from_directory`;
- `train/` next to `val/` (or `validation/`, `valid/`, `test/`), each holding class folders: that
  split is used as given. `test/` is the validation split when there is no `val/`-like folder,
  otherwise its images are kept apart as split `"test"` and never trained on;
- a second zip of class folders given as the validation zip: its images are the validation split.

Without a given split, a seeded, stratified split holds out a fraction of each class (at least one
image) for validation. System junk (`__MACOSX/`, hidden files, `Thumbs.db`) is set aside by name.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlcore.datasets.dataset import SkippedFile
from tlcore.errors import DatasetError
from tlcore.i18n import Message, msg

if TYPE_CHECKING:
    from tlcore.datasets.archive import Entry, Limits, Upload


_TRAIN_FOLDERS = ("train",)
_VAL_FOLDERS = ("val", "validation", "valid")
_TEST_FOLDERS = ("test",)
_WINDOWS_JUNK = ("thumbs.db", "ehthumbs.db", "desktop.ini")


@dataclass
class Target:
    """Where the layout puts one file: its class, its split (None: decided later by the seeded split)."""

    class_name: str
    split: str | None
    folder: str  # the class folder's path, for the empty-folder report


@dataclass
class StoredImage:
    """An image kept so far: its class and split, its stored file and the name people know it by."""

    class_name: str
    split: str | None
    file: str
    source: str
    in_place: bool = False
    stat: tuple[int, int] | None = None


def is_junk(parts: tuple[str, ...]) -> bool:
    """Whether a file at this path is system junk or hidden (see `junk_reason`)."""
    return (
        any(part == "__MACOSX" or part.startswith(".") for part in parts)
        or bool(parts)
        and parts[-1].casefold() in _WINDOWS_JUNK
    )


def junk_reason(entry: Entry) -> tuple[str, Message] | None:
    """`(path to list, reason)` for system and hidden files, None for everything else."""
    for depth, part in enumerate(entry.parts):
        is_folder = entry.is_dir or depth < len(entry.parts) - 1
        shown = "/".join(entry.parts[: depth + 1]) + ("/" if is_folder else "")
        if part == "__MACOSX":
            return shown, msg("skip.macos_metadata")
        if part.startswith("."):
            return shown, msg("skip.hidden_folder") if is_folder else msg("skip.hidden_file")
    if not entry.is_dir and entry.parts and entry.parts[-1].casefold() in _WINDOWS_JUNK:
        return entry.path, msg("skip.windows_system_file")
    return None


class Junk:
    """Files set aside by name (`junk_reason`, or nested too deep), counted per path listed: a folder of
    junk is one line of the report, with its number of files."""

    def __init__(self) -> None:
        self.reasons: dict[str, Message] = {}
        self.counts: Counter[str] = Counter()

    def add(self, path: str, reason: Message) -> None:
        self.reasons.setdefault(path, reason)
        self.counts[path] += 1

    def skipped(self) -> list[SkippedFile]:
        return [
            SkippedFile(path, msg("skip.folder_files", reason=self.reasons[path], files=msg("count.files", n=count)))
            if path.endswith("/")
            else SkippedFile(path, self.reasons[path])
            for path, count in self.counts.items()
        ]


def plan_layout(entries: list[Entry], upload: Upload) -> tuple[dict[int, Target], list[SkippedFile], list[str], bool]:
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
        raise DatasetError("layout.split_and_validation_zip", name=upload.name)
    if given and "val" not in roles.values():
        roles = {folder: "val" if role == "test" else role for folder, role in roles.items()}
    depth = len(top) + (2 if given else 1)  # parts of a class folder's path

    targets: dict[int, Target] = {}
    skipped: list[SkippedFile] = []
    bad_names: Counter[str] = Counter()
    for entry in files:
        if entry.parts[: len(top)] != top or len(entry.parts) <= depth:
            skipped.append(SkippedFile(entry.path, msg("skip.not_in_class_folder")))
            continue
        if given and entry.parts[len(top)] not in roles:
            skipped.append(SkippedFile(entry.path, msg("skip.outside_split_folders")))
            continue
        folder = "/".join(entry.parts[:depth])
        class_name = class_name_of(entry.parts[depth - 1])
        if class_name is None:
            bad_names[folder] += 1
            continue
        split = roles[entry.parts[len(top)]] if given else upload.split
        targets[id(entry)] = Target(class_name, split, folder)
    skipped += [
        SkippedFile(f"{folder}/", msg("skip.bad_class_name", files=msg("count.files", n=count)))
        for folder, count in bad_names.items()
    ]
    class_folders = [
        "/".join((*parent, folder))
        for parent in ([(*top, split) for split in roles] if given else [top])
        for folder in subfolders(parent)
        if "/".join((*parent, folder)) not in bad_names and class_name_of(folder) is not None
    ]
    return targets, skipped, class_folders, given


def class_name_of(folder: str) -> str | None:
    name = folder.strip()
    if not name or any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        return None
    return name


def check_classes(stored: list[StoredImage], given: bool, name: str, limits: Limits) -> list[str]:
    """The sorted class names, once every class has enough images to train and validate on."""
    per_class: dict[str, Counter[str | None]] = {}
    for image in stored:
        per_class.setdefault(image.class_name, Counter())[image.split] += 1
    classes = sorted(per_class)
    if not classes:
        raise DatasetError("dataset.no_images", name=name)
    if len(classes) == 1:
        only = classes[0]
        images = msg("count.images", n=sum(per_class[only].values()))
        raise DatasetError("dataset.only_one_class", name=name, only=only, images=images)
    if given:
        lacking = [c for c in classes if not per_class[c]["train"] or not per_class[c]["val"]]
        if lacking:
            first, train, val = lacking[0], per_class[lacking[0]]["train"], per_class[lacking[0]]["val"]
            if len(lacking) == 1:
                raise DatasetError("dataset.class_lacks_split", first=first, name=name, train=train, val=val)
            others = msg("count.more_classes", n=len(lacking) - 1)
            raise DatasetError(
                "dataset.classes_lack_split", first=first, name=name, train=train, val=val, others=others
            )
    needed = max(limits.min_images_per_class, 2)
    few = [c for c in classes if per_class[c]["train"] + per_class[c]["val"] + per_class[c][None] < needed]
    if few:
        first = few[0]
        images = msg("count.images", n=sum(n for split, n in per_class[first].items() if split != "test"))
        if len(few) == 1:
            raise DatasetError("dataset.class_too_small", first=first, name=name, images=images, needed=needed)
        others = msg("count.more_classes", n=len(few) - 1)
        raise DatasetError(
            "dataset.classes_too_small", first=first, name=name, images=images, others=others, needed=needed
        )
    return classes


def split_seeded(stored: list[StoredImage], val_fraction: float, seed: int) -> None:
    """Hold out `val_fraction` of every class (at least one image, never all) for validation."""
    by_class: dict[str, list[StoredImage]] = {}
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
