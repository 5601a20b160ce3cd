"""The trainer: what runs inside `python -m tlcore train`, turning a run folder's spec into a model.

`train_run` takes the run's lock, waits for a training slot (runs queue), then trains phase by
phase. Each phase applies its strategy (which layers are trainable) and compiles again, because
Keras only reads `trainable` when a model is compiled: changing it on a compiled model silently
changes nothing. Each phase trains on the path `tlcore.paths.choose_path` picks for it (cached
features, a cached frozen prefix, or the full model), and the run's callbacks (`tlcore.callbacks`)
write everything it produces into its folder as it happens: a metrics line per batch and per epoch,
the status, the best model so far by validation accuracy. A `STOP` file is honoured at the next
batch, and the best model is kept.

Acceleration follows the hardware (`tlcore.acceleration`): XLA and mixed precision on GPUs, neither
on a CPU.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from tlcore import callbacks, runs
from tlcore.acceleration import Acceleration, detect_acceleration, set_compute_policy
from tlcore.callbacks import EpochRow, PhaseStart, run_folder_write
from tlcore.datasets import Dataset, load_dataset, stratified_rows
from tlcore.decoded import DecodedCache, DecodedImages
from tlcore.distribute import Distribution, prepare_for_fit, shard_by_data, without_starving_batch
from tlcore.epoch_calls import fit_in_epoch_calls
from tlcore.errors import RunError, TLCoreError
from tlcore.features import Budget, feature_batches, shuffled_order
from tlcore.i18n import Message, msg
from tlcore.models import apply_strategy, base_training_mode, build_model, parameter_counts, trainable_view
from tlcore.paths import FeaturePassStopped, cached_features, plan_path
from tlcore.pipeline import make_pipelines
from tlcore.run_queue import end_before_training, wait_for_turn
from tlcore.runs import Activity, RunState, TrainingPath
from tlcore.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from tlcore.spec import Phase, RunSpec


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_for_phase(
    model: keras.Model,
    spec: RunSpec,
    phase: Phase,
    acceleration: Acceleration | None = None,
) -> tuple[keras.Model, int]:
    """Apply the phase's strategy and compile a fresh trainable view of `model` (the full path).

    `trainable` changes only count after a compile, so every phase compiles again. Returns the view to
    `fit` (see `tlcore.models.trainable_view`) and the number of frozen base layers.
    """
    frozen = apply_strategy(model, phase.strategy, phase.frozen_layers)
    view = trainable_view(model, phase.strategy)
    compile_view(view, spec, phase, acceleration or Acceleration())
    return view, frozen


def compile_view(
    view: keras.Model,
    spec: RunSpec,
    phase: Phase,
    acceleration: Acceleration,
    learning_rate_factor: int = 1,
) -> None:
    """Compile the model a phase fits, with the spec's optimizer at the phase's learning rate."""
    optimizer = make_optimizer(spec.optimizer, phase.learning_rate * learning_rate_factor)
    if acceleration.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    view.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=acceleration.jit_compile,
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_run(
    workspace: Workspace,
    run_id: str,
    lock_fd: int | None = None,
    report: EpochRow | None = None,
    distribution: Distribution | None = None,
    slot: int | None = None,
) -> runs.RunInfo:
    """Train the queued run `run_id` to the end (or to a stop) and return its final state.

    lock_fd: the run's lock, already held by the caller, who lets go of it (a spare that claimed the
        run, `tlcore.spare`; a foreground study); None takes it here, and lets go of it when the run ends.
    slot: a training slot already held (the spare's claim took one); None waits in the queue for one
        here (`tlcore.run_queue.wait_for_turn`). Closed when the run ends.
    report: called with each epoch's metrics row, for a command line that prints progress.
    distribution: where to train (`tlcore.distribute`); None is one device. In a multi-worker job
        only the chief calls this; the other workers call `train_worker`.
    A stop asked for before training began ends the run `stopped`, never refused. A write into the run
    folder that fails (full disk, read-only workspace) fails the run with "Could not write to the run
    folder: …" (`run.cannot_write`); when not even that can be written, `RunError` is raised.
    """
    run_dir = workspace.run_dir(run_id)
    info = runs.load_run(workspace, run_id)
    # The status as written, not as listed: a queued run with a stop request is listed as stopping, and
    # must still end as stopped here rather than be refused (which would leave it interrupted).
    written = runs.RunStatus.read(run_dir)
    if written.status == RunState.STOPPED and written.started is None and runs.stop_requested(run_dir):
        return info  # `runs.stop` ended it already: no process held it
    if written.status != RunState.QUEUED:
        raise RunError("run.not_queued", id=run_id, status=RunState(info.status).message)
    lock = _acquire_run_lock(run_dir, lock_fd)
    try:
        with run_folder_write(run_dir, runs.STATUS_FILE):
            if slot is None:
                slot = wait_for_turn(workspace, run_dir)
            elif runs.stop_requested(run_dir):  # asked for between the spare's claim and now
                end_before_training(run_dir)
                return runs.load_run(workspace, run_id)
        if slot is not None:
            _train(workspace, run_dir, info.spec, report, distribution or Distribution())
    except TLCoreError as exc:
        _record_failure(run_dir, exc.message)
    except Exception as exc:  # any failure must end as a readable status, not a dead run
        traceback.print_exc()
        _record_failure(run_dir, msg("run.training_failed", error=error_summary(exc)))
    finally:
        if slot is not None:
            os.close(slot)
        if lock_fd is None:
            os.close(lock)
    return runs.load_run(workspace, run_id)


def train_worker(workspace: Workspace, spec: RunSpec, distribution: Distribution) -> str:
    """Take part in a multi-worker job as a worker other than the chief: train in step, write nothing.

    The dataset must be in this worker's `workspace` (its feature cache is kept there too). The worker
    stops when the chief does. Returns how the job ended, `"completed"` or `"stopped"`; a failure
    raises here as it does on the chief.
    """
    if distribution.is_chief:
        raise RunError("run.chief_trains_run_folder")
    return _train(workspace, None, spec.validated(), None, distribution)


def error_summary(exc: BaseException) -> str:
    """`"TypeName: the line that says what went wrong"`, at most 500 characters.

    TensorFlow's errors from a compiled step start with "Graph execution error:" and the graph's
    Python call stack; the cause is the line after them.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0] == "Graph execution error:":
        noise = ("Detected at node", "File ", "[[", "0 successful operations", "0 derived errors")
        causes = [line for line in lines[1:] if not line.startswith(noise) and "root error(s) found" not in line]
        lines = [re.sub(r"^\(\d+\) [A-Z_]+:\s*", "", causes[0])] if causes else lines
    if len(lines) > 1 and lines[0].endswith(":"):  # "...tasks are unhealthy:" followed by which
        lines[0] = f"{lines[0]} {lines[1]}"
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()[:500]


class _RunData:
    """A run's images and labels, its decoded images (from the decoded-image cache) and its full-model
    pipelines, each made at most once and only when a phase needs them.

    `paths` are every image of both splits: a feature pass covers the whole dataset even for a run on
    part of it (`RunSpec.train_fraction`), so that runs on every fraction share one cache entry and
    take their `rows` from it. `labels` are those of the images the run trains and validates on.
    """

    def __init__(self, workspace: Workspace, dataset: Dataset, spec: RunSpec, batch_size: int) -> None:
        self.workspace = workspace
        self.dataset = dataset
        self.spec = spec
        self.batch_size = batch_size  # the global batch
        self.paths = {split: dataset.files(split)[0] for split in ("train", "val")}
        self.labels = {split: dataset.files(split)[1] for split in ("train", "val")}
        self.rows: list[int] | None = None
        if spec.train_fraction < 1:
            self.rows = stratified_rows(self.labels["train"], spec.train_fraction, spec.seed)
            self.labels["train"] = [self.labels["train"][row] for row in self.rows]
        self._decoded: DecodedImages | None = None
        self._looked_up = False
        self._pipelines: tuple[tf.data.Dataset, tf.data.Dataset] | None = None

    def count(self, split: str) -> int:
        return len(self.labels[split])

    def cached_count(self) -> int:
        """The images a feature pass runs over: all of both splits."""
        return len(self.paths["train"]) + len(self.paths["val"])

    def training_rows(self, activations: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """The cached training activations of the images this run trains on."""
        return activations if self.rows is None else tuple(array[self.rows] for array in activations)

    def decoded(self) -> DecodedImages | None:
        """The dataset's decoded images at the run's input size; None when the cache cannot hold them."""
        if not self._looked_up:
            self._decoded = DecodedCache(self.workspace).ensure(self.dataset, self.spec.model.image_size)
            self._looked_up = True
        return self._decoded

    def images(self, split: str) -> np.ndarray | list[Path]:
        """What the feature pass reads for `split`: its decoded images, else its image files."""
        decoded = self.decoded()
        return decoded.split(split) if decoded is not None else self.paths[split]

    def pipelines(self) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        if self._pipelines is None:
            spec = self.spec
            self._pipelines = make_pipelines(
                self.dataset,
                spec.model.image_size,
                self.batch_size,
                spec.seed,
                spec.augmentation,
                self.rows,
                self.decoded(),
            )
        return self._pipelines


def _train(
    workspace: Workspace,
    run_dir: Path | None,
    spec: RunSpec,
    report: EpochRow | None,
    distribution: Distribution,
) -> str:
    """Train `spec` phase by phase and return `"completed"` or `"stopped"`; `run_dir` None is a multi-worker
    job's non-chief worker (writes nothing)."""
    started = time.monotonic()
    status = _status_writer(run_dir)
    status(
        status=RunState.RUNNING,
        started=runs.now_iso(),
        phase=spec.phases()[0].name,
        activity=Activity.LOADING,
        **distribution.status_fields(),
    )
    seed_everything(spec.seed)
    acceleration = detect_acceleration()
    dataset = load_dataset(workspace, spec.dataset)
    dataset.check_source()
    data = _RunData(workspace, dataset, spec, spec.batch_size * distribution.batch_factor)
    status(activity=Activity.BUILDING)
    with distribution.scope():
        model = build_model(spec.model, workspace)
        if acceleration.mixed_precision:
            set_compute_policy(model, "mixed_float16")
        run_callbacks = callbacks.for_run(
            run_dir, model, started, distribution, mixed_precision=acceleration.mixed_precision, report=report
        )
        stop = next(c for c in run_callbacks if isinstance(c, callbacks.StopWatcher))
        trained = _train_phases(
            workspace, run_dir, spec, model, data, run_callbacks, distribution, acceleration, started
        )
    final = RunState.STOPPED if stop.stop_seen else RunState.COMPLETED
    changes: dict[str, Any] = {}
    if stop.stop_seen and not trained:
        changes["error"] = msg("run.stopped_during_feature_pass")
    status(status=final, ended=runs.now_iso(), elapsed_seconds=time.monotonic() - started, **changes)
    return final


def _train_phases(
    workspace: Workspace,
    run_dir: Path | None,
    spec: RunSpec,
    model: keras.Model,
    data: _RunData,
    run_callbacks: list[callbacks.RunCallback],
    distribution: Distribution,
    acceleration: Acceleration,
    started: float,
) -> bool:
    """Fit every phase of `spec` in turn, each on its path; False when a stop came before the first `fit`."""
    status = _status_writer(run_dir)
    stop = next(c for c in run_callbacks if isinstance(c, callbacks.StopWatcher))
    budget = Budget.from_env()
    # Training BatchNormalization (from scratch) cannot take a replica's empty share of a last, tiny batch.
    starved = base_training_mode(spec.model.strategy) is None and distribution.starves_a_replica(
        data.count("train"), data.batch_size
    )
    steps_per_epoch = math.ceil(data.count("train") / data.batch_size) - starved
    status(
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * spec.total_epochs,
        global_batch_size=data.batch_size,
        setup_seconds=round(time.monotonic() - started, 3),
        feature_passes=0,
        feature_pass_seconds=0.0,
    )
    job = _job_description(spec, data, acceleration) if distribution.kind == "multiworker" else ""
    order = None  # the fast paths' epoch order, made once so that reshuffling continues across phases

    def feature_pass_stop() -> bool:
        # A multi-worker job stops when the pass ends instead, where every worker learns of it.
        return run_dir is not None and distribution.kind != "multiworker" and runs.stop_requested(run_dir)

    first_epoch = 0
    trained = False
    passes, pass_seconds = 0, 0.0
    for phase in spec.phases():
        frozen = apply_strategy(model, phase.strategy, phase.frozen_layers)
        path, note, cut = plan_path(spec, phase, model, data.cached_count(), budget)
        status(path=path, path_note=note)
        summary = msg(
            "distribute.phase_summary",
            phase=phase.name,
            train=data.count("train"),
            val=data.count("val"),
            classes=len(data.dataset.classes),
            frozen=frozen,
            path=str(path),
        )
        distribution.check_in_step(summary, job)
        if cut is None:
            view = trainable_view(model, phase.strategy)
            train_data, val_data = data.pipelines()
        else:
            try:
                cached, note = cached_features(
                    workspace,
                    spec,
                    cut,
                    {split: len(data.paths[split]) for split in ("train", "val")},
                    data.images,
                    budget,
                    path,
                    acceleration.jit_compile,
                    started,
                    status,
                    stop_requested=feature_pass_stop,
                )
            except FeaturePassStopped:
                stop.stop_seen = True
                break
            latest = runs.RunStatus.read(run_dir) if run_dir is not None else None
            if latest is not None and latest.features_cached is False:  # computed, not found in the cache
                passes, pass_seconds = passes + 1, pass_seconds + (latest.features_seconds or 0.0)
                status(feature_passes=passes, feature_pass_seconds=round(pass_seconds, 3))
            asked = distribution.kind == "multiworker" and run_dir is not None and runs.stop_requested(run_dir)
            if distribution.any_worker(asked):
                stop.stop_seen = True
                break
            view = cut.trainable_model()
            order = order if order is not None else shuffled_order(data.count("train"), spec.seed)
            train_data = feature_batches(data.training_rows(cached.train), data.labels["train"], data.batch_size, order)
            val_data = feature_batches(cached.val, data.labels["val"], data.batch_size)
            status(path=path, path_note=note)
        if starved:
            train_data = without_starving_batch(train_data, distribution.replicas)
        if distribution.kind != "none":
            train_data, val_data = shard_by_data(train_data), shard_by_data(val_data)
        compile_view(view, spec, phase, acceleration, learning_rate_factor=distribution.batch_factor)
        status(learning_rate=phase.learning_rate * distribution.batch_factor)
        prepare_for_fit(view, distribution, train_data)
        start = PhaseStart(phase.name, frozen, parameter_counts(model)["trainable"])
        for callback in run_callbacks:
            callback.begin_phase(start)
        try:
            if path == TrainingPath.FEATURES and distribution.kind == "none" and not starved:
                fit_in_epoch_calls(view, train_data, val_data, first_epoch, first_epoch + phase.epochs, run_callbacks)
            else:
                view.fit(
                    train_data,
                    validation_data=val_data,
                    initial_epoch=first_epoch,
                    epochs=first_epoch + phase.epochs,
                    callbacks=run_callbacks,
                    verbose=0,
                    shuffle=False,  # both pipelines reshuffle every epoch themselves
                )
        except BaseException:
            callbacks.keep_best_after_fault(run_callbacks)
            raise
        trained = True
        first_epoch += phase.epochs
        if stop.stop_seen:
            break
    return trained


def _acquire_run_lock(run_dir: Path, lock_fd: int | None) -> int:
    if lock_fd is not None:
        return lock_fd
    fd = os.open(run_dir / runs.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError("run.already_training", id=run_dir.name) from None
    return fd


def _job_description(spec: RunSpec, data: _RunData, acceleration: Acceleration) -> str:
    """What every worker of a multi-worker job must agree on, beyond the phase: the spec (but where its
    dataset came from and the run's display name), each image's name, class and split, the global
    batch, the acceleration."""
    items = hashlib.sha256()
    for item in data.dataset.items:
        items.update(json.dumps([item.source, item.label, item.split]).encode())
    return json.dumps(
        {
            "spec": {**spec.to_dict(), "dataset": None, "name": None},
            "classes": list(data.dataset.classes),
            "items": items.hexdigest(),
            "global_batch_size": data.batch_size,
            "acceleration": [acceleration.jit_compile, acceleration.mixed_precision],
        },
        sort_keys=True,
    )


def _status_writer(run_dir: Path | None) -> Callable[..., Any]:
    """`runs.update_status` for `run_dir` (a failed write raises `RunError`), or a no-op for a worker
    that writes nothing."""
    if run_dir is None:
        return lambda **changes: None

    def write(**changes: Any) -> None:
        with run_folder_write(run_dir, runs.STATUS_FILE):
            runs.update_status(run_dir, **changes)

    return write


def _record_failure(run_dir: Path, error: Message) -> None:
    """End the run as `failed` with `error`.

    If even that write fails, the `RunError` raised here ends the trainer; once its process (and so
    the run's lock) is gone, `runs.load_run` lists the run as `interrupted`, never as running.
    """
    with run_folder_write(run_dir, runs.STATUS_FILE):
        runs.update_status(run_dir, status=RunState.FAILED, ended=runs.now_iso(), error=error)
