"""The trainer: what runs inside `python -m tlcore train`, turning a run folder's spec into a model.

`train_run` takes the run's lock, waits for a training slot (runs queue), then trains phase by
phase. Each phase applies its strategy (which layers are trainable) and compiles the model again,
because Keras only reads `trainable` when a model is compiled: changing it on a compiled model
silently changes nothing. A Keras callback (`RunRecorder`) writes everything a run produces into
its folder as it happens: a metrics line per batch and per epoch, the status, the best model so
far by validation accuracy. A `STOP` file is honoured at the next batch, and the best model is kept.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import keras

from tlcore import runs
from tlcore.errors import RunError, TLCoreError
from tlcore.workspace import Workspace, read_json

if TYPE_CHECKING:
    from tlcore.spec import Phase, RunSpec

STATUS_INTERVAL_SECONDS = 1.0

EpochReport = Callable[[dict[str, Any]], None]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_for_phase(model: keras.Model, spec: RunSpec, phase: Phase) -> tuple[keras.Model, int]:
    """Apply the phase's strategy and compile a fresh trainable view of `model`.

    `trainable` changes only count after a compile, so every phase compiles again. Returns the view to
    `fit` (see `tlcore.models.trainable_view`) and the number of frozen base layers.
    """
    from tlcore.models import apply_strategy, trainable_view

    frozen = apply_strategy(model, phase.strategy, phase.frozen_layers)
    view = trainable_view(model, phase.strategy)
    view.compile(
        optimizer=make_optimizer(spec.optimizer, phase.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return view, frozen


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _acquire_run_lock(run_dir: Path, lock_fd: int | None) -> int:
    if lock_fd is not None:
        return lock_fd
    fd = os.open(run_dir / runs.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError(f"Run {run_dir.name!r} is already being trained by another process.") from None
    return fd


def train_run(
    workspace: Workspace,
    run_id: str,
    lock_fd: int | None = None,
    report: EpochReport | None = None,
) -> runs.RunInfo:
    """Train the queued run `run_id` to the end (or to a stop) and return its final state.

    lock_fd: the run's lock, already held (handed over by `runs.start`); None takes it here.
    report: called with each epoch's metrics row, for a command line that prints progress.
    """
    run_dir = workspace.run_dir(run_id)
    info = runs.load_run(workspace, run_id)
    if info.status != "queued":
        raise RunError(f"Run {run_id!r} is {info.status}; only a queued run can be trained.")
    lock = _acquire_run_lock(run_dir, lock_fd)
    runs.update_status(run_dir, pid=os.getpid())
    slot = runs.wait_for_slot(workspace, run_dir)
    try:
        if slot is None:
            runs.update_status(run_dir, status="stopped", ended=runs.now_iso(),
                                error="Stopped before training started.")
        else:
            _train(workspace, run_dir, info.spec, report)
    except TLCoreError as exc:
        runs.update_status(run_dir, status="failed", ended=runs.now_iso(), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure must end as a readable status, not a dead run
        traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        runs.update_status(run_dir, status="failed", ended=runs.now_iso(),
                            error=f"Training failed: {type(exc).__name__}: {message}"[:500])
    finally:
        if slot is not None:
            os.close(slot)
        if lock_fd is None:
            os.close(lock)
    return runs.load_run(workspace, run_id)


def _train(workspace: Workspace, run_dir: Path, spec: RunSpec, report: EpochReport | None) -> None:
    from tlcore.datasets import load_dataset
    from tlcore.models import build_model, parameter_counts
    from tlcore.pipeline import make_pipelines

    started = time.monotonic()
    runs.update_status(run_dir, status="running", started=runs.now_iso(), phase=spec.phases()[0].name)
    seed_everything(spec.seed)
    dataset = load_dataset(workspace, spec.dataset)
    train_data, val_data = make_pipelines(dataset, spec.model.image_size, spec.batch_size, spec.seed,
                                          spec.augmentation)
    model = build_model(spec.model, workspace)
    steps_per_epoch = math.ceil(len(dataset.files("train")[0]) / spec.batch_size)
    recorder = RunRecorder(run_dir, model, started, report)
    runs.update_status(run_dir, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * spec.total_epochs,
                        path_note="Full model: every epoch runs the whole network on every image.")

    first_epoch = 0
    for phase in spec.phases():
        view, frozen = compile_for_phase(model, spec, phase)
        recorder.begin_phase(phase.name, frozen, parameter_counts(model)["trainable"])
        view.fit(train_data, validation_data=val_data, initial_epoch=first_epoch,
                  epochs=first_epoch + phase.epochs, callbacks=[recorder], verbose=0,
                  shuffle=False)  # the pipeline reshuffles every epoch itself
        first_epoch += phase.epochs
        if recorder.stop_seen:
            break
    final = "stopped" if recorder.stop_seen else "completed"
    runs.update_status(run_dir, status=final, ended=runs.now_iso(), elapsed_seconds=time.monotonic() - started)


class RunRecorder(keras.callbacks.Callback):
    """Writes a run's metrics, status and best model into its folder while Keras trains.

    Per batch: a metrics line (loss and accuracy are Keras's running means over the epoch so far), a
    throttled status update, and a look for the `STOP` file. Per epoch: a metrics line with the
    validation results, and `best.keras` replaced when validation accuracy improves.

    saved_model: the model written to `best.keras` (the plain model, not the view being fitted).
    """

    def __init__(
        self,
        run_dir: Path,
        saved_model: keras.Model,
        started: float,
        report: EpochReport | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.saved_model = saved_model
        self.started = started
        self.report = report
        self.metrics_file = open(run_dir / runs.METRICS_FILE, "a", encoding="utf-8")
        self.phase = ""
        self.global_step = 0
        self.epoch = 0
        self.step = 0
        self.epoch_started = started
        self.epoch_seconds: list[float] = []
        self.best_val_accuracy: float | None = None
        self.best_epoch: int | None = None
        self.last_status_write = 0.0
        self.stop_seen = False
        self._resume_best()

    def _resume_best(self) -> None:
        status = runs.read_status(self.run_dir)
        self.best_val_accuracy = status.get("best_val_accuracy")
        self.best_epoch = status.get("best_epoch")

    def begin_phase(self, phase: str, frozen_layers: int, trainable_params: int) -> None:
        self.phase = phase
        runs.update_status(self.run_dir, phase=phase, frozen_layers=frozen_layers,
                            trainable_params=trainable_params)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1
        self.step = 0
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.global_step += 1
        self.step = batch + 1
        self._write({"kind": "batch", "loss": logs.get("loss"), "accuracy": logs.get("accuracy")})
        if runs.stop_requested(self.run_dir) and not self.stop_seen:
            self.stop_seen = True
            self.model.stop_training = True
            self._status(force=True, status="stopping")
        else:
            self._status()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.epoch_seconds.append(time.monotonic() - self.epoch_started)
        row = self._write({
            "kind": "epoch",
            "loss": logs.get("loss"),
            "accuracy": logs.get("accuracy"),
            "val_loss": logs.get("val_loss"),
            "val_accuracy": logs.get("val_accuracy"),
        })
        val_accuracy = logs.get("val_accuracy")
        if val_accuracy is not None and (self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy):
            self.best_val_accuracy = float(val_accuracy)
            self.best_epoch = self.epoch
            self._save_best()
        self._status(force=True)
        if self.report is not None:
            self.report(row)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.metrics_file.flush()

    def _write(self, values: dict[str, Any]) -> dict[str, Any]:
        row = {
            "kind": values.pop("kind"),
            "phase": self.phase,
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            **{key: _number(value) for key, value in values.items()},
            "elapsed": round(time.monotonic() - self.started, 3),
        }
        self.metrics_file.write(json.dumps(row) + "\n")
        self.metrics_file.flush()
        return row

    def _status(self, force: bool = False, **changes: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last_status_write < STATUS_INTERVAL_SECONDS:
            return
        self.last_status_write = now
        runs.update_status(
            self.run_dir,
            epoch=self.epoch,
            step=self.step,
            global_step=self.global_step,
            elapsed_seconds=round(now - self.started, 3),
            seconds_per_epoch=(sum(self.epoch_seconds) / len(self.epoch_seconds)) if self.epoch_seconds else None,
            best_val_accuracy=self.best_val_accuracy,
            best_epoch=self.best_epoch,
            **changes,
        )

    def _save_best(self) -> None:
        target = self.run_dir / runs.BEST_MODEL_FILE
        partial = self.run_dir / f".{runs.BEST_MODEL_FILE}.partial.keras"
        self.saved_model.save(partial)
        os.replace(partial, target)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def read_spec_file(path: Path) -> dict[str, Any]:
    """Read a spec JSON file for `train --spec`, with a clear error for a bad file."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise RunError(f"The spec file {str(path)!r} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"The spec file {str(path)!r} is not valid JSON ({exc}).") from None
    return data
