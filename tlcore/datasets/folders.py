"""Folders on the server registered as datasets, read where they are: `ingest_folder`.

For data too large to upload. A folder has the same layouts as a zip (`layout`) and every image gets
the same checks, but its plain RGB JPEGs (most photos) are read in place, never copied: training
streams them from the folder. Every other image is converted once, as an upload's, into the
dataset's folder in the workspace. Nothing is ever written into the folder, links are not followed,
and the app may only register folders the operator allowed (`TLCORE_DATA_DIRS`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tlcore import settings
from tlcore.datasets.archive import FOLDER_LIMITS, Entry, Limits, Upload, Usage
from tlcore.datasets.dataset import Dataset, SkippedFile
from tlcore.datasets.layout import Junk, StoredImage, junk_reason, plan_layout
from tlcore.datasets.storage import build_manifest, in_place_name, load_or_none, publish
from tlcore.errors import DatasetError
from tlcore.i18n import Message, msg
from tlcore.images import IMAGE_SUFFIXES, convert
from tlcore.wording import brief, size_text
from tlcore.workspace import Workspace


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
        raise DatasetError("dataset.bad_val_fraction", value=repr(val_fraction))
    root = _allowed_folder(folder, allowed_roots)
    workspace_root = workspace.root.resolve()
    if root == workspace_root or workspace_root in root.parents:
        raise DatasetError("folder.inside_workspace", folder=str(folder), workspace=str(workspace_root))
    files, junk = _walk_folder(root, limits, exclude=workspace_root)
    digest = hashlib.sha256(f"folder\0{root}\0{float(val_fraction)!r}\0{int(seed)}".encode())
    for _, real, size, mtime in files:
        digest.update(f"{real}\0{size}\0{mtime}\0".encode("utf-8", "surrogateescape"))
    dataset_id = digest.hexdigest()[:16]
    existing = load_or_none(workspace, dataset_id)
    if existing is not None:
        return existing
    staging = Path(tempfile.mkdtemp(prefix=f"register-{dataset_id}-", dir=workspace.tmp_dir))
    try:
        manifest = _register(root, files, junk, staging, dataset_id, float(val_fraction), int(seed), limits, progress)
        return publish(staging, manifest, workspace)
    except OSError as error:
        raise DatasetError(
            "folder.cannot_register",
            folder=str(root),
            error=error.strerror or str(error),
            workspace=str(workspace.root),
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


def server_folders(roots: Sequence[Path], depth: int = 3, limit: int = 500) -> list[Path]:
    """The folders under `roots` (each root included, then `depth` levels of sub-folders) that look like
    datasets, for a user to pick: a folder of class folders holding images, or one with train/ and val/.

    The folders inside a dataset-like folder (its classes) are not offered, nor searched. Hidden folders
    and links are left out; at most `limit` are returned, in name order.
    """
    found: list[Path] = []

    def visit(folder: Path, level: int) -> None:
        if len(found) >= limit:
            return
        children = _subfolders(folder)
        if looks_like_dataset(children):
            found.append(folder)
        elif level < depth:
            for child in children:
                visit(child, level + 1)

    for root in roots:
        visit(root, 0)
    return found


def looks_like_dataset(children: Sequence[Path]) -> bool:
    """Whether a folder with these sub-folders is a dataset: train/ beside val/ (or validation/, valid/,
    test/), or at least two sub-folders holding images directly (its classes)."""
    names = {child.name.casefold() for child in children}
    if "train" in names and names & {"val", "validation", "valid", "test"}:
        return True
    with_images = 0
    for child in children:
        with_images += _holds_an_image(child)
        if with_images == 2:
            return True
    return False


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(
            child
            for child in folder.iterdir()
            if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
        )
    except OSError:
        return []


def _holds_an_image(folder: Path) -> bool:
    """Whether an image file (by its suffix) lies directly in `folder`; stops at the first one."""
    try:
        with os.scandir(folder) as entries:
            return any(
                entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file(follow_symlinks=False)
                for entry in entries
            )
    except OSError:
        return False


def _allowed_folder(folder: str | os.PathLike[str], allowed_roots: Sequence[str | os.PathLike[str]] | None) -> Path:
    shown = str(folder)
    try:
        root = Path(folder).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise DatasetError("folder.not_found", folder=shown) from None
    if not root.is_dir():
        raise DatasetError("folder.is_file", folder=shown)
    if allowed_roots is not None:
        allowed = [Path(r).expanduser().resolve() for r in allowed_roots]
        if not allowed:
            raise DatasetError("folder.none_allowed", folder=shown)
        if not any(root == base or base in root.parents for base in allowed):
            listed = ", ".join(repr(str(base)) for base in allowed)
            raise DatasetError("folder.not_allowed", folder=shown, allowed=listed)
    return root


def _walk_folder(
    root: Path, limits: Limits, exclude: Path | None = None
) -> tuple[list[tuple[Entry, str, int, int]], list[SkippedFile]]:
    """Every regular file under `root`: its entry (names as people read them), its real relative path, its
    size and modification time; and what was skipped. Hidden and system folders, and `exclude` (the
    app's workspace, when it lies inside `root`), are not entered."""
    files: list[tuple[Entry, str, int, int]] = []
    skipped: list[SkippedFile] = []
    junk = Junk()

    def unreadable(error: OSError) -> None:
        shown = Path(error.filename or root).relative_to(root).as_posix() if error.filename else "."
        skipped.append(SkippedFile(_printable(shown) + "/", msg("skip.unreadable", error=brief(error))))

    for current, folders, names in os.walk(root, onerror=unreadable, followlinks=False):
        relative = Path(current).relative_to(root).parts
        kept = []
        for name in sorted(folders):
            shown = "/".join((*relative, _printable(name))) + "/"
            if not _is_utf8(name):
                skipped.append(SkippedFile(shown, msg("skip.folder_name_not_utf8")))
            elif (Path(current) / name).is_symlink():
                skipped.append(SkippedFile(shown, msg("skip.symbolic_link")))
            elif exclude is not None and Path(current) / name == exclude:
                skipped.append(SkippedFile(shown, msg("skip.workspace")))
            elif junk_folder := junk_reason(Entry(None, shown[:-1], (*relative, name), True)):  # type: ignore[arg-type]
                skipped.append(SkippedFile(*junk_folder))
            else:
                kept.append(name)
        folders[:] = kept
        for name in sorted(names):
            if not _is_utf8(name):
                skipped.append(SkippedFile("/".join((*relative, _printable(name))), msg("skip.name_not_utf8")))
                continue
            path = Path(current) / name
            parts = tuple(unicodedata.normalize("NFC", part) for part in (*relative, name))
            entry = Entry(None, "/".join(parts), parts, False)  # type: ignore[arg-type]
            try:
                info = path.lstat()
            except OSError as error:
                skipped.append(SkippedFile(entry.path, msg("skip.unreadable", error=brief(error))))
                continue
            if stat.S_ISLNK(info.st_mode):
                skipped.append(SkippedFile(entry.path, msg("skip.symbolic_link")))
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if len(parts) > limits.max_depth:
                junk.add(entry.path, msg("skip.nested_too_deep", depth=limits.max_depth))
                continue
            reason = junk_reason(entry)
            if reason is not None:
                junk.add(*reason)
                continue
            files.append((entry, "/".join((*relative, name)), info.st_size, info.st_mtime_ns))
            if len(files) > limits.max_files:
                raise DatasetError("folder.too_many_files", folder=str(root), limit=f"{limits.max_files:,}")
    return files, skipped + junk.skipped()


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
    files: list[tuple[Entry, str, int, int]],
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
    targets, skipped, folders, given = plan_layout(entries, Upload(name, None, None))  # type: ignore[arg-type]
    skipped = junk + skipped
    (staging / "files").mkdir()
    stored: list[StoredImage] = []
    found: Counter[str] = Counter()
    usage = Usage(limits)
    if progress is not None:
        progress(0, len(entries))
    for done, (entry, real, size, mtime) in enumerate(files, 1):
        target = targets.get(id(entry))
        if target is not None:
            # A name the manifest could not hold safely (a backslash in it) is copied, not read in place.
            outcome = _check_in_place(
                root / real, entry, usage, staging, len(stored), copy=not in_place_name(real, root)
            )
            if isinstance(outcome, SkippedFile):
                skipped.append(outcome)
            else:
                in_place = outcome is None
                stored.append(
                    StoredImage(
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
    skipped += [SkippedFile(f"{folder}/", msg("skip.empty_class_folder")) for folder in folders if not found[folder]]
    return build_manifest(stored, skipped, given, dataset_id, name, str(root), val_fraction, seed, limits, root)


def _check_in_place(
    path: Path, entry: Entry, usage: Usage, staging: Path, index: int, copy: bool = False
) -> str | SkippedFile | None:
    """None when the image at `path` can be read where it is (and `copy` is false); else the path of its
    (converted) copy, or why it is skipped."""
    try:
        if path.stat().st_size > usage.limits.max_entry_bytes:
            limit = size_text(usage.limits.max_entry_bytes)
            return SkippedFile(entry.path, msg("skip.larger_than_limit", limit=limit))
        data = path.read_bytes()
    except OSError as error:
        return SkippedFile(entry.path, msg("skip.unreadable", error=brief(error)))
    converted = convert(data, entry.path, usage.limits.max_image_pixels)
    if isinstance(converted, Message):
        return SkippedFile(entry.path, converted)
    if converted.data is data and not copy:
        return None
    relative = f"files/{index:06d}{converted.suffix}"
    (staging / relative).write_bytes(converted.data)
    return relative
