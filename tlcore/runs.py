"""Runs: one folder per training run, and the operations on it.

A run is data on disk (see `docs/architecture.md`): `spec.json` says what to train, `status.json`
where it stands, `metrics.jsonl` how it went, `best.keras` what it learned. The app, the CLI and the
tests all read the same files, so a browser refresh or a server restart loses nothing.

Training happens in its own process (`python -m tlcore train --run DIR`), started by `start`. That
process holds an exclusive `flock` on the run's `run.lock` for its whole life, so anyone can tell a
live run from one whose process died (the lock is free): such runs are listed as `interrupted`.
Only the trainer writes `status.json` while it lives; `stop` drops a `STOP` file that the trainer
honours at its next batch.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import typing
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from tlcore.errors import RunError, SpecError, TLCoreError
from tlcore.i18n import DEFAULT_LANGUAGE, Message, msg, readable
from tlcore.spec import RunSpec
from tlcore.workspace import Workspace, read_json, write_bytes_atomic, write_json_atomic


class RunState(StrEnum):
    """Where a run stands. `DAMAGED` is never written: it is how a run folder that cannot be read is listed."""

    QUEUED = "queued"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    DAMAGED = "damaged"

    @property
    def message(self) -> Message:
        """The state in words, for sentences such as "Run 'x' is still running"."""
        return {
            RunState.QUEUED: msg("status.queued"),
            RunState.RUNNING: msg("status.running"),
            RunState.STOPPING: msg("status.stopping"),
            RunState.STOPPED: msg("status.stopped"),
            RunState.COMPLETED: msg("status.completed"),
            RunState.FAILED: msg("status.failed"),
            RunState.INTERRUPTED: msg("status.interrupted"),
            RunState.DAMAGED: msg("status.damaged"),
        }[self]


class TrainingPath(StrEnum):
    """How a phase trains (`tlcore.paths.choose_path`): on cached features of the whole frozen base, on
    cached activations of a frozen prefix, or through the full model every epoch."""

    FEATURES = "features"
    PREFIX = "prefix"
    FULL = "full"


ACTIVE_STATUSES = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.STOPPING})
FINISHED_STATUSES = frozenset({RunState.STOPPED, RunState.COMPLETED, RunState.FAILED, RunState.INTERRUPTED})
STATUS_FORMAT = 1

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
BEST_MODEL_FILE = "best.keras"
LABELS_FILE = "labels.txt"
NAME_FILE = "name.txt"
STOP_FILE = "STOP"
LOCK_FILE = "run.lock"
LOG_FILE = "trainer.log"

# The phase the status shows during a fast path's one-off pass over the frozen layers.
FEATURE_PASS_PHASE = "features"


@dataclass(frozen=True)
class RunStatus:
    """`status.json`: where a run stands, written by its trainer (and by `start`, `load_run` for a dead one).

    Every field is optional. Reading is forgiving: the file is written only by tlcore, but a damaged one
    must not break a page, so a value of the wrong type (or a negative or infinite number) reads as
    unknown (None), and fields this version does not know are ignored.

    status: a `RunState` (never `DAMAGED`).
    created, started, ended: ISO times. error: the sentence that ended a run early. pid: the trainer process.
    phase: the spec's phase in training (its strategy), or `FEATURE_PASS_PHASE` during a feature pass.
    path, path_note: the current phase's `TrainingPath` and why, a sentence for users.
    features_done, features_total: images of the feature pass computed so far, of all (training +
        validation); features_cached: the pass found its outputs in the cache and computed nothing;
        features_seconds: the time the pass has taken, so far while it runs.
    setup_seconds: from the start of training to a built model.
    epoch, total_epochs, step, steps_per_epoch, global_step, total_steps: where training stands
        (epochs from 1, steps are batches).
    seconds_per_epoch: the mean time of the epochs done, validation included.
    elapsed_seconds: since training started (the wait in the queue not counted), feature pass included.
    best_val_accuracy, best_epoch: what `best.keras` holds.
    frozen_layers, trainable_params: of the current phase.
    distribute, replicas, workers, distribute_note: where the run trains (`tlcore.distribute`).
    global_batch_size: images per step over all replicas. learning_rate: the current phase's, as used.

    The sentences (`error`, `path_note`, `distribute_note`) are `Message`s, stored as `Message.to_json()`:
    a plain string (as run folders written before messages hold) reads as a literal, and a message this
    version cannot render reads as unknown.
    """

    status: RunState | None = None
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    error: Message | None = None
    pid: int | None = None
    phase: str | None = None
    path: TrainingPath | None = None
    path_note: Message | None = None
    features_done: int | None = None
    features_total: int | None = None
    features_cached: bool | None = None
    features_seconds: float | None = None
    setup_seconds: float | None = None
    epoch: int | None = None
    total_epochs: int | None = None
    step: int | None = None
    steps_per_epoch: int | None = None
    global_step: int | None = None
    total_steps: int | None = None
    seconds_per_epoch: float | None = None
    elapsed_seconds: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    frozen_layers: int | None = None
    trainable_params: int | None = None
    distribute: str | None = None
    replicas: int | None = None
    workers: int | None = None
    distribute_note: Message | None = None
    global_batch_size: int | None = None
    learning_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields that are known, with the format version."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        known = {k: v.to_json() if isinstance(v, Message) else v for k, v in values.items() if v is not None}
        return {"format": STATUS_FORMAT, **known}

    @classmethod
    def from_json(cls, data: Any) -> RunStatus:
        """Read what `to_json` wrote; anything that is not a JSON object reads as an empty status."""
        if not isinstance(data, dict):
            return cls()
        return cls(**{name: _known(kind, data.get(name)) for name, kind in _field_kinds().items()})

    def updated(self, **changes: Any) -> RunStatus:
        """A copy with `changes` (field names only: a misspelt one is a `TypeError`)."""
        return replace(self, **changes)

    @classmethod
    def read(cls, run_dir: Path) -> RunStatus:
        """The run's status; a missing or unreadable file reads as an empty status."""
        try:
            return cls.from_json(read_json(run_dir / STATUS_FILE))
        except (OSError, ValueError):
            return cls()

    def write(self, run_dir: Path) -> None:
        """Replace the run's `status.json` atomically."""
        write_json_atomic(run_dir / STATUS_FILE, self.to_json())


@functools.cache
def _field_kinds() -> dict[str, type]:
    """Each `RunStatus` field and the type its values must have (`X | None` -> X)."""
    hints = typing.get_type_hints(RunStatus)
    return {name: next(arg for arg in typing.get_args(hint) if arg is not type(None)) for name, hint in hints.items()}


def _known(kind: type, value: Any) -> Any:
    """`value` as `kind`, or None when it is not one (a bool is not a number; numbers are finite and >= 0)."""
    if value is None:
        return None
    if kind is Message:
        return readable(Message.from_json(value))
    if issubclass(kind, StrEnum):
        try:
            return kind(value) if isinstance(value, str) else None
        except ValueError:
            return None
    if kind is bool or isinstance(value, bool):
        return value if kind is bool and isinstance(value, bool) else None
    if kind is str:
        return value if isinstance(value, str) else None
    if kind is int:
        return value if isinstance(value, int) and value >= 0 else None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) and number >= 0 else None
    return None


@dataclass(frozen=True)
class RunInfo:
    """A run as people see it: what it is, where it stands, how well it did.

    eta_seconds: time left while running: the remaining epochs at the measured `seconds_per_epoch`,
        plus, during a feature pass, what is left of it at its measured rate; None until both are known.
    error: the sentence that ended the run early, or why its folder cannot be read.
    path, path_note: the training path of the current phase and why, in words.
    The sentences (`error`, `path_note`) are `Message`s, rendered where they are shown (`to_dict` renders
    them, in English unless told another language).
    features_done, features_total, features_cached, features_seconds: the feature pass of a fast path,
        in images (`features_cached` when the outputs came from the cache, not computed);
        `features_eta_seconds` is what is left of it while it runs.
    """

    id: str
    dir: Path
    name: str
    spec: RunSpec | None
    status: RunState
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    error: Message | None = None
    phase: str | None = None
    epoch: int = 0
    total_epochs: int = 0
    steps_per_epoch: int | None = None
    step: int = 0
    progress: float = 0.0
    eta_seconds: float | None = None
    elapsed_seconds: float | None = None
    seconds_per_epoch: float | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    trainable_params: int | None = None
    frozen_layers: int | None = None
    path: TrainingPath | None = None
    path_note: Message | None = None
    features_done: int | None = None
    features_total: int | None = None
    features_cached: bool | None = None
    features_seconds: float | None = None
    features_eta_seconds: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def in_feature_pass(self) -> bool:
        """True while the trainer runs the frozen layers once over the images, before a fast path's epochs."""
        return self.active and self.phase == FEATURE_PASS_PHASE and bool(self.features_total)

    @property
    def features_fraction(self) -> float:
        """How much of the feature pass is done, from 0 to 1."""
        if not self.features_total:
            return 0.0
        return min(1.0, (self.features_done or 0) / self.features_total)

    @classmethod
    def from_status(
        cls, run_id: str, run_dir: Path, name: str, spec: RunSpec, state: RunState, status: RunStatus
    ) -> RunInfo:
        """The run as people see it, from its spec and its (already checked) status."""
        total_epochs = status.total_epochs or spec.total_epochs
        if state == RunState.COMPLETED:
            progress = 1.0
        elif status.total_steps:
            progress = min(1.0, (status.global_step or 0) / status.total_steps)
        else:
            progress = 0.0
        features_eta = eta = None
        if state == RunState.RUNNING:
            # Not elapsed / progress: a fast path spends most of its time in the one-off feature pass,
            # which that ratio would charge to every remaining epoch.
            eta = _epochs_left_seconds(
                total_epochs, status.steps_per_epoch, status.global_step or 0, status.seconds_per_epoch
            )
            if status.phase == FEATURE_PASS_PHASE:
                features_eta = _feature_pass_left_seconds(
                    status.features_done, status.features_total, status.features_seconds
                )
                eta = None if eta is None or features_eta is None else eta + features_eta
        return cls(
            id=run_id,
            dir=run_dir,
            name=name,
            spec=spec,
            status=state,
            created=status.created,
            started=status.started,
            ended=status.ended,
            error=status.error,
            phase=status.phase,
            epoch=status.epoch or 0,
            total_epochs=total_epochs,
            steps_per_epoch=status.steps_per_epoch,
            step=status.step or 0,
            progress=progress,
            eta_seconds=eta,
            elapsed_seconds=status.elapsed_seconds,
            seconds_per_epoch=status.seconds_per_epoch,
            best_val_accuracy=status.best_val_accuracy,
            best_epoch=status.best_epoch,
            trainable_params=status.trainable_params,
            frozen_layers=status.frozen_layers,
            path=status.path,
            path_note=status.path_note,
            features_done=status.features_done,
            features_total=status.features_total,
            features_cached=status.features_cached,
            features_seconds=status.features_seconds,
            features_eta_seconds=features_eta,
        )

    def to_dict(self, lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        """The run as JSON-able data (the CLI's `--json`), its sentences rendered in `lang`."""
        data = {key: getattr(self, key) for key in self.__dataclass_fields__}
        data["dir"] = str(self.dir)
        data["spec"] = self.spec.to_dict() if self.spec is not None else None
        for key, value in data.items():
            if isinstance(value, Message):
                data[key] = value.render(lang)
        return data


def is_active(info: RunInfo) -> bool:
    return info.active


def now_iso() -> str:
    # Milliseconds, so runs started within the same second still queue in the order they came.
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _new_run_id(spec: RunSpec) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{stamp}-{spec.model.backbone}-{spec.model.strategy}-{secrets.token_hex(2)}"


def library_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def create_run(spec: RunSpec, workspace: Workspace) -> RunInfo:
    """Validate `spec` and write a new run folder in state `queued`. No process is started."""
    from tlcore.backbones import check_weights_available, get_backbone
    from tlcore.datasets import load_dataset

    spec = spec.validated()
    dataset = load_dataset(workspace, spec.dataset)
    check_weights_available(get_backbone(spec.model.backbone), spec.model.weights, spec.model.image_size, workspace)
    if spec.model.num_classes != len(dataset.classes):
        raise SpecError(
            "run.outputs_mismatch",
            outputs=spec.model.num_classes,
            name=dataset.name,
            classes=msg("count.classes", n=len(dataset.classes)),
        )
    run_id = _new_run_id(spec)
    staging: Path | None = None
    try:
        # A staging folder of its own, so that two sessions starting runs at once never share one.
        staging = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=workspace.tmp_dir))
        write_json_atomic(staging / SPEC_FILE, {**spec.to_dict(), "versions": library_versions()})
        write_bytes_atomic(staging / LABELS_FILE, ("\n".join(dataset.classes) + "\n").encode("utf-8"))
        RunStatus(status=RunState.QUEUED, created=now_iso(), total_epochs=spec.total_epochs).write(staging)
        (staging / METRICS_FILE).touch()
        (staging / LOCK_FILE).touch()
        run_id = _publish_run(staging, run_id, workspace)
    except OSError as exc:
        raise RunError("run.cannot_create", folder=str(workspace.runs_dir), error=exc.strerror or str(exc)) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return load_run(workspace, run_id)


def _publish_run(staging: Path, run_id: str, workspace: Workspace) -> str:
    """Rename the staged run folder to `runs/<run_id>`, with a suffix if that id is already taken.

    Ids are made from the time and a little randomness, so two runs started at the same moment can
    draw the same one; `rename` never replaces a run folder (it holds files), so the second simply
    takes the next free suffix.
    """
    for attempt in range(1, 100):
        candidate = run_id if attempt == 1 else f"{run_id}-{attempt}"
        try:
            os.rename(staging, workspace.run_dir(candidate))
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue
            raise
        return candidate
    raise RunError("run.no_free_id", id=run_id)


def start(spec: RunSpec, workspace: Workspace) -> RunInfo:
    """Create a run and start its trainer process; it queues behind any run already training.

    The run's lock is taken here and handed to the child, so there is no moment at which a started
    run looks dead to `list_runs`.
    """
    info = create_run(spec, workspace)
    lock_fd = os.open(info.dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with open(info.dir / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tlcore",
                    "--workspace",
                    str(workspace.root),
                    "train",
                    "--run",
                    info.id,
                    "--lock-fd",
                    str(lock_fd),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock_fd,),
                start_new_session=True,
                cwd=workspace.root,
            )
        update_status(info.dir, pid=process.pid)
    except OSError as exc:
        update_status(
            info.dir,
            status=RunState.FAILED,
            ended=now_iso(),
            error=msg("run.cannot_start", error=str(exc)),
        )
    finally:
        os.close(lock_fd)
    return load_run(workspace, info.id)


def update_status(run_dir: Path, **changes: Any) -> RunStatus:
    """Change some fields of the run's `status.json` (`RunStatus` names them) and return the new status."""
    status = RunStatus.read(run_dir).updated(**changes)
    status.write(run_dir)
    return status


def lock_is_held(run_dir: Path) -> bool:
    """True while some process holds the run's lock, i.e. its trainer is alive."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def load_run(workspace: Workspace, run_id: str) -> RunInfo:
    """Read one run folder. A folder that cannot be read is returned with status `damaged`."""
    run_dir = workspace.run_dir(run_id)
    if not run_dir.is_dir():
        raise RunError("run.not_found", id=run_id, folder=str(workspace.runs_dir))
    name = _read_name(run_dir)
    try:
        spec = RunSpec.from_dict(read_json(run_dir / SPEC_FILE))
        spec.validated()  # a spec.json that parses but could never have been written by create_run
    except (OSError, ValueError, TypeError, AttributeError, TLCoreError) as exc:
        if isinstance(exc, FileNotFoundError):
            return _damaged(run_id, run_dir, name, None, msg("run.spec_missing"))
        return _damaged(run_id, run_dir, name, None, msg("run.spec_unreadable", error=str(exc)[:470]))
    status = RunStatus.read(run_dir)
    if status.status in ACTIVE_STATUSES and _process_died(run_dir, status):
        # The trainer writes its last status and only then lets go of the lock: read again, so that a
        # run that finished between the first read and the lock check is not taken for a dead one.
        status = RunStatus.read(run_dir)
        if status.status in ACTIVE_STATUSES:
            status = _mark_interrupted(run_dir, status)
    if status.status not in ACTIVE_STATUSES | FINISHED_STATUSES:
        return _damaged(run_id, run_dir, name, spec, msg("run.status_unreadable"))
    state = status.status
    if state in (RunState.QUEUED, RunState.RUNNING) and (run_dir / STOP_FILE).exists():
        state = RunState.STOPPING
    return RunInfo.from_status(run_id, run_dir, name or spec.name or run_id, spec, state, status)


def _damaged(run_id: str, run_dir: Path, name: str, spec: RunSpec | None, reason: Message) -> RunInfo:
    return RunInfo(id=run_id, dir=run_dir, name=name or run_id, spec=spec, status=RunState.DAMAGED, error=reason)


def _process_died(run_dir: Path, status: RunStatus) -> bool:
    # A run created without a process (no pid yet) is waiting to be started, not dead.
    if status.status == RunState.QUEUED and status.pid is None:
        return False
    return not lock_is_held(run_dir)


def _mark_interrupted(run_dir: Path, status: RunStatus) -> RunStatus:
    interrupted = status.updated(
        status=RunState.INTERRUPTED,
        ended=now_iso(),
        error=msg("run.interrupted"),
    )
    with contextlib.suppress(OSError):  # a full disk or a read-only workspace: still tell the truth
        interrupted.write(run_dir)
    return interrupted


def _epochs_left_seconds(
    total_epochs: int, steps_per_epoch: int | None, global_step: int, seconds_per_epoch: float | None
) -> float | None:
    """The epochs still to train (the current one in part) at the measured time per epoch."""
    if seconds_per_epoch is None or not steps_per_epoch:
        return None
    return max(0.0, total_epochs - global_step / steps_per_epoch) * seconds_per_epoch


def _feature_pass_left_seconds(done: int | None, total: int | None, seconds: float | None) -> float | None:
    """The images the feature pass has still to go through, at its rate so far."""
    if not done or total is None or not seconds:
        return None
    return max(0, total - done) * seconds / done


def _read_name(run_dir: Path) -> str:
    try:
        return (run_dir / NAME_FILE).read_text(encoding="utf-8", errors="replace").strip()[:200]
    except OSError:
        return ""


def list_runs(workspace: Workspace) -> list[RunInfo]:
    """Every run in the workspace, newest first; unreadable folders are listed as `damaged`."""
    runs = []
    for run_dir in sorted(workspace.runs_dir.iterdir(), reverse=True):
        if not run_dir.is_dir() or run_dir.name.startswith("."):
            continue
        try:
            runs.append(load_run(workspace, run_dir.name))
        except TLCoreError:
            continue  # not a run id: not a run folder
        except Exception as exc:
            runs.append(
                RunInfo(
                    id=run_dir.name,
                    dir=run_dir,
                    name=run_dir.name,
                    spec=None,
                    status=RunState.DAMAGED,
                    error=msg("run.folder_unreadable", error=f"{type(exc).__name__}: {exc}"[:460]),
                )
            )
    return runs


def stop(workspace: Workspace, run_id: str) -> RunInfo:
    """Ask a queued or running run to stop; it keeps the best model learned so far."""
    info = load_run(workspace, run_id)
    if not info.active:
        raise RunError("run.not_running", id=run_id, status=RunState(info.status).message)
    (info.dir / STOP_FILE).touch()
    return load_run(workspace, run_id)


def stop_requested(run_dir: Path) -> bool:
    return (run_dir / STOP_FILE).exists()


def rename(workspace: Workspace, run_id: str, name: str) -> RunInfo:
    """Give a run a display name (its id, the folder name, stays the same)."""
    name = " ".join(str(name).split())
    if not name or len(name) > 200:
        raise RunError("run.bad_name")
    run_dir = workspace.run_dir(run_id)
    if not run_dir.is_dir():
        raise RunError("run.not_found", id=run_id, folder=str(workspace.runs_dir))
    write_bytes_atomic(run_dir / NAME_FILE, name.encode("utf-8"))
    return load_run(workspace, run_id)


def delete(workspace: Workspace, run_id: str) -> None:
    """Delete a finished run's folder. Active runs must be stopped first."""
    info = load_run(workspace, run_id)
    if info.active:
        raise RunError("run.still_active", name=info.name, status=RunState(info.status).message)
    trash = workspace.tmp_dir / f"deleted-{run_id}-{secrets.token_hex(3)}"
    os.replace(info.dir, trash)
    shutil.rmtree(trash, ignore_errors=True)
