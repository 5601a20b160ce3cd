"""A dataset as the rest of the program sees it: its images (`Item`), the files left out and why
(`SkippedFile`), its classes, split and report (`Dataset`).

The id is a hash of the uploaded images (or of the registered folder's files) with the split settings,
so the same images uploaded twice, zipped or as a folder, are the same dataset and are not processed
again.
"""

from __future__ import annotations

import math
import random
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.errors import DatasetError
from tlcore.i18n import Message, language_from_environment, msg
from tlcore.wording import columns

if TYPE_CHECKING:
    import pandas as pd


MANIFEST_FORMAT = 1
SPLITS = ("train", "val", "test")


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
    """A file (or folder, ending in `/`) of the upload that was not used, and why (`reason`, rendered where
    it is shown; the manifest stores `reason.to_json()`)."""

    path: str
    reason: Message


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
            folder = str(self.source_dir)
            if info is None or not stat.S_ISREG(info.st_mode):
                raise DatasetError("dataset.image_gone", image=item.source, name=self.name, folder=folder)
            if item.stat is not None and (info.st_size, info.st_mtime_ns) != item.stat:
                raise DatasetError("dataset.image_changed", image=item.source, name=self.name, folder=folder)

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

    def report(self, lang: str | None = None) -> dict[str, Any]:
        """The validation report as JSON-able data: classes, counts per class and split, skipped files (their
        reasons in `lang`; None: the environment's language)."""
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
            "skipped": [{"path": s.path, "reason": s.reason.render(lang)} for s in self.skipped],
        }

    def summary(self, lang: str | None = None) -> str:
        """The report as readable text in `lang` (None: the environment's language), one table row per
        class, then the skipped files."""
        lang = lang or language_from_environment()
        table, splits = self._count_table()
        totals = {split: sum(table[name][split] for name in self.classes) for split in splits}
        if self.split_source == "given":
            how = msg("dataset.split_given")
        else:
            how = msg("dataset.split_seeded", fraction=f"{self.val_fraction:.0%}", seed=self.seed)
        classes, images = msg("count.classes", n=len(self.classes)), msg("count.images", n=len(self.items))
        if "test" in splits:
            counts = msg(
                "dataset.counts_with_test",
                classes=classes,
                images=images,
                train=totals["train"],
                val=totals["val"],
                test=totals["test"],
                how=how,
            )
        else:
            counts = msg(
                "dataset.counts", classes=classes, images=images, train=totals["train"], val=totals["val"], how=how
            )
        title = msg("dataset.summary_title", id=self.id, name=self.name, created=self.created)
        lines = [title.render(lang), counts.render(lang), ""]
        headings = {
            "class": msg("dataset.column_class"),
            "train": msg("dataset.column_train"),
            "val": msg("dataset.column_val"),
            "test": msg("dataset.column_test"),
            "total": msg("dataset.column_total"),
        }
        header = [headings[name].render(lang) for name in ("class", *splits, "total")]
        rows = [[name, *(str(table[name][s]) for s in splits), str(sum(table[name].values()))] for name in self.classes]
        lines += columns([header, *rows])
        if self.skipped:
            lines += ["", msg("dataset.summary_skipped", n=len(self.skipped)).render(lang)]
            lines += [f"  {s.path}: {s.reason.render(lang)}" for s in self.skipped]
        return "\n".join(lines)

    def _count_table(self) -> tuple[dict[str, dict[str, int]], tuple[str, ...]]:
        splits = SPLITS if any(item.split == "test" for item in self.items) else SPLITS[:2]
        table = {name: dict.fromkeys(splits, 0) for name in self.classes}
        for item in self.items:
            table[self.classes[item.label]][item.split] += 1
        return table, splits


def stratified_rows(labels: Sequence[int], fraction: float, seed: int) -> list[int]:
    """The rows of `labels` that make `fraction` of each class (at least one image of a class that has any).

    Each class's rows are shuffled with `seed` and the first share taken, so for one seed a smaller
    fraction is always a subset of a larger one: a data-efficiency curve then adds images to what the
    smaller runs saw, rather than drawing new ones. The rows come back in their original order.
    """
    by_class: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        by_class.setdefault(label, []).append(row)
    kept = []
    for label, rows in by_class.items():
        order = list(rows)
        random.Random(f"{seed}/{label}").shuffle(order)
        kept += order[: max(1, math.floor(len(rows) * fraction + 0.5))]
    return sorted(kept)
