"""The run folder's format: its files, and `status.json` as one typed record, with the words it uses.

A run folder (format 1, see docs/architecture.md) holds `spec.json`, `status.json`, `metrics.jsonl`,
`best.keras`, `labels.txt` and, while it trains, its trainer's lock. `RunStatus` is `status.json`: the
trainer writes it through `RunStatus.updated(...).write(...)` and every reader reads it through
`RunStatus.read`, so the list of fields exists once. `tlcore.runs` re-exports these names.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from tlcore.i18n import Message, msg, readable
from tlcore.workspace import read_json, write_json_atomic


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


class Activity(StrEnum):
    """What a running run is doing between its steps, so a page can say it instead of looking stuck."""

    LOADING = "loading"  # reading the dataset and the starting weights
    BUILDING = "building"  # building the model
    TRACING = "tracing"  # preparing the first training step (graph tracing)
    VALIDATING = "validating"  # running the validation images after an epoch


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
TENSORBOARD_FOLDER = "tensorboard"

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
    awaiting_trainer: the run was started (`runs.start`) and waits in the queue without a process of its
        own, for the workspace's warm trainer (`tlcore.spare`) to claim it; the claim writes `pid`.
    phase: the spec's phase in training (its strategy), or `FEATURE_PASS_PHASE` during a feature pass.
    activity: what the trainer does between steps (`Activity`), None while it trains.
    path, path_note: the current phase's `TrainingPath` and why, a sentence for users.
    features_done, features_total: images of the feature pass computed so far, of all (training +
        validation); features_cached: the pass found its outputs in the cache and computed nothing;
        features_seconds: the time the pass has taken, so far while it runs.
    feature_passes, feature_pass_seconds: the feature passes this run computed (not those it found in
        the cache), over all its phases, and their total time; `features_*` describe the latest only.
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
    awaiting_trainer: bool | None = None
    phase: str | None = None
    activity: Activity | None = None
    path: TrainingPath | None = None
    path_note: Message | None = None
    features_done: int | None = None
    features_total: int | None = None
    features_cached: bool | None = None
    features_seconds: float | None = None
    feature_passes: int | None = None
    feature_pass_seconds: float | None = None
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
