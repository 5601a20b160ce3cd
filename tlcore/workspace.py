"""The workspace: the one folder everything the app and the CLI write lives in.

Layout::

    <workspace>/
        datasets/<dataset-id>/   ingested datasets (content-addressed, see `tlcore.datasets`)
        runs/<run-id>/           one folder per training run (see `tlcore.runs`)
        drafts/<draft-id>/       datasets being built picture by picture (see `tlcore.datasets.drafts`)
        studies/<study-id>/      one folder per study, naming its runs (see `tlcore.study`)
        cache/                   derived data that can always be recomputed (features, weights downloads)
        tmp/                     staging area; a half-finished write never lands anywhere else

The root is `--workspace DIR` on the command line, else the `TLCORE_WORKSPACE` environment variable,
else `./workspace`. Identifiers that come from users (run ids, dataset ids) are checked against a
strict pattern before they become paths, so no input can name a file outside the workspace.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from tlcore import settings
from tlcore.errors import TLCoreError

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class Workspace:
    """A workspace folder and the paths inside it."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        chosen = root if root is not None else settings.workspace_root()
        self.root = Path(chosen).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise TLCoreError("workspace.is_file", path=str(self.root))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def datasets_dir(self) -> Path:
        return self._subdir("datasets")

    @property
    def runs_dir(self) -> Path:
        return self._subdir("runs")

    @property
    def drafts_dir(self) -> Path:
        return self._subdir("drafts")

    @property
    def studies_dir(self) -> Path:
        return self._subdir("studies")

    @property
    def cache_dir(self) -> Path:
        return self._subdir("cache")

    @property
    def tmp_dir(self) -> Path:
        return self._subdir("tmp")

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.datasets_dir / check_id(dataset_id, "dataset")

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_id(run_id, "run")

    def study_dir(self, study_id: str) -> Path:
        return self.studies_dir / check_id(study_id, "study")

    def _subdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def check_id(identifier: str, kind: str) -> str:
    """Return `identifier` if it is a safe folder name for a `kind` ("run", "dataset"), else raise."""
    # fullmatch: with `match`, "$" would also accept an id ending in a newline.
    if not isinstance(identifier, str) or not _ID_PATTERN.fullmatch(identifier) or ".." in identifier:
        if kind == "run":
            raise TLCoreError("run.bad_id", id=repr(identifier))
        if kind == "draft":
            raise TLCoreError("draft.not_found", id=repr(identifier))
        raise TLCoreError("dataset.bad_id", id=repr(identifier))
    return identifier


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    write_bytes_atomic(path, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"))


def read_json(path: Path) -> Any:
    """The JSON value in `path`; `ValueError` for text that is not JSON (or not UTF-8)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply to be read") from None
