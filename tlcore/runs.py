"""Runs: one folder per training run, and the operations on it.

A run is data on disk (see `docs/architecture.md`): `spec.json` says what to train, `status.json`
where it stands, `metrics.jsonl` how it went, `best.keras` what it learned. The app, the CLI and the
tests all read the same files, so a browser refresh or a server restart loses nothing.

Training happens in a process of its own, never in the app's. `start` queues a run for the
workspace's warm trainer (`tlcore.spare`, see `tlcore.run_queue`), a process that has TensorFlow loaded
already; `python -m tlcore train` trains in the foreground. The process that trains a run holds an
exclusive `flock` on its `run.lock` for its whole life, so anyone can tell a live run from one whose
process died (the lock is free): such runs are listed as `interrupted`. Only the trainer writes
`status.json` while it lives; `stop` drops a `STOP` file that the trainer honours at its next batch,
and ends a queued run that no process holds at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tlcore import settings
from tlcore.errors import RunError, SpecError, TLCoreError
from tlcore.i18n import DEFAULT_LANGUAGE, Message, msg
from tlcore.run_folder import (
    ACTIVE_STATUSES as ACTIVE_STATUSES,
)
from tlcore.run_folder import (
    BEST_MODEL_FILE as BEST_MODEL_FILE,
)
from tlcore.run_folder import (
    FEATURE_PASS_PHASE as FEATURE_PASS_PHASE,
)
from tlcore.run_folder import (
    FINISHED_STATUSES as FINISHED_STATUSES,
)
from tlcore.run_folder import (
    LABELS_FILE as LABELS_FILE,
)
from tlcore.run_folder import (
    LOCK_FILE as LOCK_FILE,
)
from tlcore.run_folder import (
    LOG_FILE as LOG_FILE,
)
from tlcore.run_folder import (
    METRICS_FILE as METRICS_FILE,
)
from tlcore.run_folder import (
    NAME_FILE as NAME_FILE,
)
from tlcore.run_folder import (
    SPEC_FILE as SPEC_FILE,
)
from tlcore.run_folder import (
    STATUS_FILE as STATUS_FILE,
)
from tlcore.run_folder import (
    STATUS_FORMAT as STATUS_FORMAT,
)
from tlcore.run_folder import (
    STOP_FILE as STOP_FILE,
)
from tlcore.run_folder import (
    TENSORBOARD_FOLDER as TENSORBOARD_FOLDER,
)
from tlcore.run_folder import (
    Activity as Activity,
)
from tlcore.run_folder import (
    RunState as RunState,
)
from tlcore.run_folder import (
    RunStatus as RunStatus,
)
from tlcore.run_folder import (
    TrainingPath as TrainingPath,
)
from tlcore.spec import RunSpec
from tlcore.workspace import Workspace, read_json, write_bytes_atomic, write_json_atomic


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
    feature_passes, feature_pass_seconds: the feature passes the run computed, over all its phases, and
        their time (a pass found in the cache is not counted).
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
    activity: Activity | None = None
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
    feature_passes: int | None = None
    feature_pass_seconds: float | None = None

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
            activity=status.activity if state in (RunState.RUNNING, RunState.STOPPING) else None,
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
            feature_passes=status.feature_passes,
            feature_pass_seconds=status.feature_pass_seconds,
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
    """Validate `spec` and write a new run folder in state `queued`. No process is started, and no
    trainer takes it but the caller's (`tlcore.training.train_run`)."""
    return _create_run(spec, workspace, RunStatus())


def _create_run(spec: RunSpec, workspace: Workspace, status: RunStatus) -> RunInfo:
    """`create_run`, the new run's status starting from `status`."""
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
        status.updated(status=RunState.QUEUED, created=now_iso(), total_epochs=spec.total_epochs).write(staging)
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
    """Create a run and queue it: the workspace's warm trainer takes it when its turn comes.

    The run waits as a folder, without a process (at most `TLCORE_MAX_QUEUED` runs wait: beyond that,
    `RunError`). If no spare is waiting for the workspace's queue (the first start, after a restart,
    after a spare died), one is started now, and this run starts cold.
    """
    from tlcore import run_queue  # the queue builds on this module

    settings.trainer_niceness()  # a bad value is refused here, before the run exists, not in its trainer
    with run_queue.joining(workspace):
        info = _create_run(spec, workspace, RunStatus(awaiting_trainer=True))
    try:
        run_queue.ensure_spare(workspace)
    except OSError as exc:
        # Nothing would ever take the run: end it with the reason (unless a trainer took it meanwhile).
        _end_unclaimed(info.dir, status=RunState.FAILED, error=msg("run.cannot_start", error=str(exc)))
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
    if status.status == RunState.QUEUED and status.pid is None and (run_dir / STOP_FILE).exists():
        status = end_stopped_while_queued(run_dir) or status
    state = status.status
    if state in (RunState.QUEUED, RunState.RUNNING) and (run_dir / STOP_FILE).exists():
        state = RunState.STOPPING
    return RunInfo.from_status(run_id, run_dir, name or spec.name or run_id, spec, state, status)


def _damaged(run_id: str, run_dir: Path, name: str, spec: RunSpec | None, reason: Message) -> RunInfo:
    return RunInfo(id=run_id, dir=run_dir, name=name or run_id, spec=spec, status=RunState.DAMAGED, error=reason)


def _process_died(run_dir: Path, status: RunStatus) -> bool:
    # A queued run that no process has claimed yet (no pid) is waiting, not dead.
    if status.status == RunState.QUEUED and status.pid is None:
        return False
    return not lock_is_held(run_dir)


def end_stopped_while_queued(run_dir: Path) -> RunStatus | None:
    """End a queued run that no process has claimed, and whose stop was asked for, as `stopped`.

    No trainer holds such a run to see its `STOP` file, so whoever finds it ends it: `stop` itself, a
    listing, a spare looking at the queue. Returns the new status, or None when a process holds the
    run (its trainer honours the stop) or the run is not one of those.
    """
    if not (run_dir / STOP_FILE).exists():
        return None
    return _end_unclaimed(run_dir, status=RunState.STOPPED, error=msg("run.stopped_before_training"))


def _end_unclaimed(run_dir: Path, **changes: Any) -> RunStatus | None:
    """Write `changes` (an end: stopped, failed) to a queued run that no process has claimed, holding its
    lock meanwhile so that no trainer claims it halfway; None when it is claimed or not queued."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status = RunStatus.read(run_dir)
        if status.status != RunState.QUEUED or status.pid is not None:
            return None
        ended = status.updated(ended=now_iso(), **changes)
        ended.write(run_dir)
        return ended
    except OSError:  # held by a trainer, or the workspace cannot be written: the status stays as it is
        return None
    finally:
        os.close(fd)


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


def tensorboard_command(infos: list[RunInfo]) -> str:
    """The command that opens these runs' curves in TensorBoard: `--logdir` for one run, `--logdir_spec`
    naming each run by its id for several (display names may hold the commas and colons the spec splits on)."""
    folders = [info.dir / TENSORBOARD_FOLDER for info in infos]
    if len(folders) == 1:
        return f"tensorboard --logdir {shlex.quote(str(folders[0]))}"
    spec = ",".join(f"{info.id}:{folder}" for info, folder in zip(infos, folders, strict=True))
    return f"tensorboard --logdir_spec {shlex.quote(spec)}"


def stop(workspace: Workspace, run_id: str) -> RunInfo:
    """Ask a queued or running run to stop; it keeps the best model learned so far.

    A running run stops at its trainer's next batch. A queued run that no process holds yet ends
    `stopped` here and now, so it never starts; one that a trainer has just claimed ends `stopped`
    before it trains.
    """
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
