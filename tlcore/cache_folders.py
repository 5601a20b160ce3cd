"""Cache folders: entries of recomputable data under `workspace/cache/`, kept within a disk budget.

The feature cache (`tlcore.features`) and the decoded-image cache (`tlcore.decoded`) keep their
entries the same way. An entry is a folder named by its key, holding its data and a `meta.json`
whose modification time records its last use. It is written under a temporary name (`staging`)
and renamed into place (`publish`), so no reader ever sees half an entry; it is deleted by renaming
it first (`remove`), so no reader sees it half deleted. When a new entry needs room, the least
recently used entries go first (`make_room`); what a killed process left half written or half
deleted is removed once it is an hour old.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

META_FILE = "meta.json"
_LEFTOVER_SECONDS = 3600.0


def staging(root: Path, key: str) -> Path:
    """A new, empty folder beside the entries of `root`, to write the entry `key` into."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f".partial-{key}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


def publish(folder: Path, target: Path) -> None:
    """Rename the written entry `folder` to `target`; when another process published the same entry
    first, keep theirs and delete `folder`. Raises `OSError` when the rename fails otherwise."""
    try:
        os.replace(folder, target)
    except OSError:
        if not is_complete(target):
            raise
        shutil.rmtree(folder, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    return (folder / META_FILE).is_file()


def touch(folder: Path) -> None:
    """Record that the entry `folder` was used now."""
    try:
        os.utime(folder / META_FILE)
    except OSError:
        pass


def remove(folder: Path) -> None:
    """Delete an entry: renamed first, so no reader ever sees it half deleted."""
    trash = folder.with_name(f".deleted-{folder.name}-{secrets.token_hex(4)}")
    try:
        os.replace(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def entries(root: Path) -> list[tuple[float, int, Path]]:
    """(last used, bytes, folder) of every complete entry of `root`, least recently used first."""
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            last_used = (folder / META_FILE).stat().st_mtime
            size = sum(f.stat().st_size for f in folder.iterdir())
        except OSError:
            continue
        found.append((last_used, size, folder))
    return sorted(found)


def make_room(root: Path, allowed: int) -> None:
    """Evict the least recently used entries of `root` until they hold at most `allowed` bytes."""
    if not root.is_dir():
        return
    for folder in root.iterdir():  # what a killed process left half written or half deleted
        try:
            stale = folder.name.startswith(".") and time.time() - folder.stat().st_mtime > _LEFTOVER_SECONDS
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
    found = entries(root)
    total = sum(size for _, size, _ in found)
    for _, size, folder in found:
        if total <= allowed:
            break
        remove(folder)
        total -= size
