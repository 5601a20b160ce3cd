"""The decoded-image cache: a dataset's images decoded once per input size, kept on disk, memory-mapped.

Decoding is the largest cost of reading photos that are not already small: a 12-megapixel JPEG
takes about 17 ms even at 1/8 scale, its 224-px pixels are 150 KB. Every run, evaluation and study
of a dataset at one input size reads the same pixels, `tlcore.images.decode` of each stored image,
so they are decoded once, in parallel on every core, and kept in the workspace:

    cache/decoded/<dataset id>-<size>px-f<format>-pillow<version>/
        train.npy, val.npy, test.npy   uint8 (n, size, size, 3), rows in `Dataset.files(split)` order
        meta.json                      the dataset, the size, the file of every row

Readers map the files read-only (`numpy.lib.format.open_memmap`): a run holds only the pages it
touches, and runs of the same dataset share them through the page cache. The files are written
sequentially (header, then row after row) into a staging folder and renamed into place
(`tlcore.cache_folders`): a full disk is then an ordinary error and the cache is skipped, where
writing through a memory map would kill the process with SIGBUS.

An ingestion fills the entry for `INGEST_SIZE` (224 px, the default input size of every backbone)
from the same decode that checks each photo (`DecodedCache.stage` and `store_staged`), so a
dataset trained at its backbone's default size is decoded exactly once. Other sizes are filled by
the first run that needs them (`DecodedCache.ensure`).

Budget: `TLCORE_DECODED_CACHE_BUDGET` (default 4 GiB) bounds the folder, least recently used
entries going first. A dataset whose entry alone is larger (10,000 images at 224 px take 1.5 GB)
is not cached: a run then decodes its images as they stream from disk (`tlcore.pipeline`), as
before this cache. The key holds Pillow's version, because another decoder may give other pixels.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import PIL

from tlcore import cache_folders, settings
from tlcore.images import decode_files

if TYPE_CHECKING:
    from tlcore.datasets import Dataset, Item
    from tlcore.workspace import Workspace

DECODED_FORMAT = 1
CACHE_FOLDER = "decoded"
INGEST_SIZE = 224
"""The input size an ingestion decodes for: the default of every backbone in `tlcore.backbones`."""
SPLITS = ("train", "val", "test")


def entry_key(dataset_id: str, image_size: int) -> str:
    """The cache entry name of `dataset_id`'s images decoded at `image_size`."""
    return f"{dataset_id}-{image_size}px-f{DECODED_FORMAT}-pillow{PIL.__version__}"


def entry_bytes(images: int, image_size: int) -> int:
    """What the decoded pixels of `images` images take (the files' headers aside)."""
    return images * image_size * image_size * 3


@dataclass(frozen=True)
class DecodedImages:
    """A dataset's images decoded at `image_size`: one read-only, memory-mapped uint8 array per split,
    rows in `Dataset.files(split)` order (an empty array for an empty split)."""

    image_size: int
    splits: dict[str, np.ndarray]
    files: dict[str, list[str]]

    def split(self, name: str) -> np.ndarray:
        size = self.image_size
        return self.splits.get(name, np.zeros((0, size, size, 3), dtype=np.uint8))

    @functools.cached_property
    def _rows(self) -> dict[str, tuple[str, int]]:
        return {file: (split, row) for split, files in self.files.items() for row, file in enumerate(files)}

    def of_items(self, items: Sequence[Item]) -> np.ndarray:
        """The pixels of `items` (items of this dataset, in any order), copied into one array."""
        where = self._rows
        pixels = np.empty((len(items), self.image_size, self.image_size, 3), dtype=np.uint8)
        for index, item in enumerate(items):
            split, row = where[item.file]
            pixels[index] = self.splits[split][row]
        return pixels


class StagedRows:
    """Decoded images an ingestion writes one after another to an unnamed temporary file, each under its
    stored file's name, until `DecodedCache.store_staged` files them into the cache. A write that fails
    (a full disk) ends the staging quietly: the cache is optional. Made by `DecodedCache.stage`; a
    context manager that deletes the file."""

    def __init__(self, cache: DecodedCache, image_size: int) -> None:
        self.cache = cache
        self.image_size = image_size
        self.rows: dict[str, int] = {}
        self._file: IO[bytes] | None = tempfile.TemporaryFile(dir=cache.workspace.tmp_dir, prefix="decoded-")

    def __enter__(self) -> StagedRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fits(self, images: int) -> bool:
        """Whether the pixels of `images` images may be kept (the cache's budget)."""
        return self.cache.fits(images, self.image_size)

    def add(self, file: str, pixels: np.ndarray) -> None:
        """Stage the pixels of the stored image `file` (relative to the dataset folder)."""
        if self._file is None:
            return
        try:
            self._file.write(np.ascontiguousarray(pixels, dtype=np.uint8).data)
        except OSError:
            self.close()
            return
        self.rows[file] = len(self.rows)

    def read(self) -> np.ndarray | None:
        """Every staged row, memory-mapped in staging order; None when staging failed or staged nothing."""
        if self._file is None or not self.rows:
            return None
        self._file.flush()
        size = self.image_size
        return np.memmap(self._file, dtype=np.uint8, mode="r", shape=(len(self.rows), size, size, 3))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class DecodedCache:
    """The decoded-image cache of a workspace (see the module's docstring).

    budget: the most its folder may hold, in bytes; None reads `TLCORE_DECODED_CACHE_BUDGET`.
    """

    def __init__(self, workspace: Workspace, budget: int | None = None) -> None:
        self.workspace = workspace
        self.root = workspace.cache_dir / CACHE_FOLDER
        self.budget = settings.decoded_cache_budget() if budget is None else budget

    def fits(self, images: int, image_size: int) -> bool:
        """Whether the decoded pixels of `images` images fit the budget at all."""
        return entry_bytes(images, image_size) <= self.budget

    def load(self, dataset: Dataset, image_size: int) -> DecodedImages | None:
        """The dataset's decoded images at `image_size` if the cache holds them whole, else None."""
        folder = self.root / entry_key(dataset.id, image_size)
        if not cache_folders.is_complete(folder):
            return None
        expected = split_files(dataset)
        try:
            meta = json.loads((folder / cache_folders.META_FILE).read_text(encoding="utf-8"))
            if meta.get("files") != expected:
                raise ValueError("the entry holds other images")
            shape = (image_size, image_size, 3)
            splits = {}
            for split, files in expected.items():
                array = np.lib.format.open_memmap(folder / f"{split}.npy", mode="r")
                if array.dtype != np.uint8 or array.shape != (len(files), *shape):
                    raise ValueError(f"{split}.npy has shape {array.shape}")
                splits[split] = array
        except (OSError, ValueError):
            cache_folders.remove(folder)
            return None
        cache_folders.touch(folder)
        return DecodedImages(image_size, splits, expected)

    def ensure(self, dataset: Dataset, image_size: int) -> DecodedImages | None:
        """The dataset's decoded images at `image_size`, decoding and storing them first if needed.

        None when they would not fit the budget, or cannot be written (a full disk, a read-only
        workspace): the caller then decodes as it reads. Raises what `tlcore.images.decode` raises
        for an image damaged since ingestion.
        """
        found = self.load(dataset, image_size)
        if found is not None or not self.fits(len(dataset.items), image_size):
            return found
        files = split_files(dataset)
        paths = {split: [dataset.path(item) for item in _split_items(dataset, split)] for split in files}
        rows = {split: decode_files(split_paths, image_size) for split, split_paths in paths.items()}
        return self._store(dataset, image_size, files, rows)

    def stage(self, image_size: int = INGEST_SIZE) -> StagedRows:
        """Somewhere for an ingestion to put each image's pixels as it checks the image."""
        return StagedRows(self, image_size)

    def store_staged(self, dataset: Dataset, staged: StagedRows) -> None:
        """File the rows an ingestion staged for the now published `dataset` into the cache, when they
        cover every image of it and fit the budget (else nothing is stored)."""
        rows = staged.read()
        files = split_files(dataset)
        wanted = [file for split_files_ in files.values() for file in split_files_]
        if rows is None or any(file not in staged.rows for file in wanted):
            return
        if not self.fits(len(wanted), staged.image_size) or self.load(dataset, staged.image_size) is not None:
            return
        by_split = {split: (rows[staged.rows[file]] for file in split_files_) for split, split_files_ in files.items()}
        self._store(dataset, staged.image_size, files, by_split)

    def _store(
        self,
        dataset: Dataset,
        image_size: int,
        files: dict[str, list[str]],
        rows: dict[str, Iterable[np.ndarray]],
    ) -> DecodedImages | None:
        key = entry_key(dataset.id, image_size)
        total = sum(len(split_files_) for split_files_ in files.values())
        try:
            cache_folders.make_room(self.root, self.budget - entry_bytes(total, image_size))
            staging = cache_folders.staging(self.root, key)
        except OSError:
            return None
        try:
            for split, split_files_ in files.items():
                if split_files_:
                    _write_npy(staging / f"{split}.npy", rows[split], len(split_files_), image_size)
            meta = {
                "format": DECODED_FORMAT,
                "dataset": dataset.id,
                "image_size": image_size,
                "decoder": f"Pillow {PIL.__version__}",
                "files": files,
                "created": time.time(),
            }
            (staging / cache_folders.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
            cache_folders.publish(staging, self.root / key)
        except OSError:  # a full disk, a read-only workspace: the cache is optional
            cache_folders.remove(staging)
            return None
        return self.load(dataset, image_size)


def split_files(dataset: Dataset) -> dict[str, list[str]]:
    """The stored file of every image, split by split (only the splits the dataset has), in `files` order."""
    found = {split: [item.file for item in _split_items(dataset, split)] for split in SPLITS}
    return {split: files for split, files in found.items() if files}


def _split_items(dataset: Dataset, split: str) -> list[Item]:
    return [item for item in dataset.items if item.split == split]


def _write_npy(path: Path, rows: Iterable[np.ndarray], count: int, image_size: int) -> None:
    """Write `count` decoded images as an `.npy` file, one row after another (never through a memory map)."""
    shape = (count, image_size, image_size, 3)
    written = 0
    with open(path, "wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
        for pixels in rows:
            out.write(np.ascontiguousarray(pixels, dtype=np.uint8).data)
            written += 1
    if written != count:
        raise OSError(f"{path.name}: {written} images written, {count} expected")
