"""Keras callbacks that write a run's folder while it trains, one job each.

Like Keras's own `CSVLogger`, `ModelCheckpoint` and `EarlyStopping`, each callback does one thing:

- `MetricsLog`: a line of `metrics.jsonl` per batch and per epoch (`tlcore.metrics_log`);
- `StopWatcher`: honours the run's `STOP` file at the next batch (in a multi-worker job, at the end of
  the epoch, where every worker votes: a worker leaving `fit` alone would leave the others waiting);
- `BestModelKeeper`: keeps the weights of the best epoch by validation accuracy and writes them to
  `best.keras` as the full model;
- `StatusReporter`: `status.json` (where training stands, throttled to once a second, and what
  `best.keras` holds);
- `EpochReport`: hands each epoch's row to a function (the command line prints it);
- `TensorBoardLog`: the same curves, and the learning rate, as TensorBoard event files (`tf.summary`).

`for_run` assembles them for a run; a multi-worker job's other workers write nothing, so they take
the stop watcher alone. The same callbacks serve every phase of a run (they carry the global step,
the best epoch and the epoch times across phases); the trainer tells them a phase begins with
`begin_phase`. Every write into the run folder that fails (a full disk, a read-only workspace) is a
`RunError` saying so, which ends the run as failed; `best.keras` is replaced atomically, so such a
failure never leaves half a model.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tlcore import metrics_log, runs
from tlcore.acceleration import float32_layers
from tlcore.distribute import Distribution
from tlcore.errors import RunError

STATUS_INTERVAL_SECONDS = 1.0
# `best.keras` is written at most this often (and always when a phase ends): on the fast paths an
# epoch can take less time than saving a large model.
BEST_SAVE_INTERVAL_SECONDS = 10.0

EpochRow = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PhaseStart:
    """What a phase is about to train: its name (`tlcore.spec.Phase.name`) and what learns."""

    name: str
    frozen_layers: int
    trainable_params: int


@contextmanager
def run_folder_write(run_dir: Path, file_name: str) -> Iterator[None]:
    """Turn a failed write into the run folder (full disk, read-only workspace) into the run's failure."""
    try:
        yield
    except OSError as exc:
        raise RunError("run.cannot_write", error=exc.strerror or str(exc), file=file_name, folder=str(run_dir)) from exc


class RunCallback(keras.callbacks.Callback):
    """A callback that also hears when a phase of the run begins."""

    def begin_phase(self, phase: PhaseStart) -> None:
        """Called before each phase's `fit`."""


class MetricsLog(RunCallback):
    """Appends a row to `metrics.jsonl` after every batch and every epoch (see `tlcore.metrics_log`)."""

    def __init__(self, run_dir: Path, started: float) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.started = started
        self.phase = ""
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        with run_folder_write(run_dir, runs.METRICS_FILE):
            self.file = open(run_dir / runs.METRICS_FILE, "a", encoding="utf-8")  # kept open for the whole run

    def begin_phase(self, phase: PhaseStart) -> None:
        self.phase = phase.name

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.step = epoch + 1, 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step = batch + 1
        self.global_step += 1
        self._write("batch", logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._write("epoch", logs or {})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        with run_folder_write(self.run_dir, runs.METRICS_FILE):
            self.file.flush()

    def _write(self, kind: str, logs: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        row = metrics_log.make_row(kind, self.phase, self.epoch, self.step, self.global_step, logs, elapsed)
        with run_folder_write(self.run_dir, runs.METRICS_FILE):
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()


class StopWatcher(RunCallback):
    """Stops training when the run's `STOP` file appears; `stop_seen` tells the trainer it did.

    run_dir: None for a multi-worker job's worker other than the chief: it only takes part in the vote.
    distribution: in a multi-worker job, the stop takes effect at the end of the epoch, when every
        worker votes (`Distribution.any_worker`); elsewhere at the next batch.
    """

    def __init__(self, run_dir: Path | None, distribution: Distribution) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.distribution = distribution
        self.stop_seen = False

    @property
    def votes(self) -> bool:
        return self.distribution.kind == "multiworker"

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stop_seen or self.run_dir is None or not runs.stop_requested(self.run_dir):
            return
        self.stop_seen = True
        if not self.votes:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.votes and self.distribution.any_worker(self.stop_seen):
            self.stop_seen = True
            self.model.stop_training = True


class BestModelKeeper(RunCallback):
    """Keeps the best epoch's weights (by validation accuracy) and writes them to `best.keras`.

    Each improvement copies the weights in memory at once (tensor copies, cheap). While `fit` goes on,
    the file is written in a background thread from those copies, into a model of its own (a clone
    of `saved_model`, built on its first write), at most once per improvement and at most every
    `BEST_SAVE_INTERVAL_SECONDS`: the next epoch never waits for a write. When `fit` ends, the best
    weights not yet on disk are written at once. `saved` (validation accuracy, epoch) always
    describes the `best.keras` on disk, and changes only once the file has been renamed into place
    (`keep_best_after_fault` writes it after a fault); a write that failed in the background is
    raised (`RunError`) at the next epoch's end.

    saved_model: the model written (the full model, not the view being fitted).
    mixed_precision: the model computes in mixed precision; it is saved with float32 layers.
    """

    def __init__(self, run_dir: Path, saved_model: keras.Model, mixed_precision: bool = False) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.saved_model = saved_model
        self.mixed_precision = mixed_precision
        status = runs.RunStatus.read(run_dir)
        self.best_val_accuracy, self.best_epoch = status.best_val_accuracy, status.best_epoch
        # What best.keras holds: one attribute, so that a reader in another thread never sees half of it.
        self.saved: tuple[float | None, int | None] = (status.best_val_accuracy, status.best_epoch)
        self.epoch = 0
        self.best_weights: dict[int, Any] | None = None  # id(variable) -> its best value, not yet written
        self.best_is_current = False  # no step since the best epoch: the model holds its weights
        self.last_save = time.monotonic()
        self._writer = _BackgroundWriter(self)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_save = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.best_is_current = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._writer.raise_failure()
        val_accuracy = (logs or {}).get("val_accuracy")
        if val_accuracy is None or (self.best_val_accuracy is not None and val_accuracy <= self.best_val_accuracy):
            return
        self.best_val_accuracy, self.best_epoch = float(val_accuracy), self.epoch
        # Tensor copies (cheap reads that later updates never change) of what this `fit` can change: the
        # variables of the model being fitted (on the fast paths, the head's alone). The rest of the saved
        # model holds still until the phase ends, and the best weights are written by then.
        self.best_weights = {id(w): keras.ops.copy(w) for w in self.model.weights}
        self.best_is_current = True
        if time.monotonic() - self.last_save >= BEST_SAVE_INTERVAL_SECONDS and self._writer.idle():
            self._writer.write(self.best_weights, self.best_val_accuracy, self.best_epoch)
            self.best_weights = None
            self.last_save = time.monotonic()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._writer.finish()
        if self.best_weights is not None:
            self.save()

    def save(self) -> None:
        """Write the kept best weights to `best.keras` as the full model now, then carry on with the current ones.

        Waits for a write under way in the background first. The model is written to a temporary name
        and renamed: a write that fails (`RunError`) leaves the previous `best.keras` whole and no
        partial file, and the best weights stay kept for another try.
        """
        self._writer.finish()
        variables = [w for w in self.saved_model.weights if id(w) in self.best_weights]
        current = None
        if not self.best_is_current:
            current = [keras.ops.copy(w) for w in variables]
            for variable in variables:
                variable.assign(self.best_weights[id(variable)])
        try:
            write_model(self.saved_model, self.run_dir, self.mixed_precision)
        finally:
            if current is not None:
                for variable, value in zip(variables, current, strict=True):
                    variable.assign(value)
        self.best_weights = None
        self.saved = (self.best_val_accuracy, self.best_epoch)
        self.last_save = time.monotonic()

    def wait_for_writes(self) -> None:
        """Wait for a write under way in the background; raise its failure."""
        self._writer.finish()


class _BackgroundWriter:
    """Writes `best.keras` for a `BestModelKeeper` in a thread of its own, one write at a time."""

    def __init__(self, keeper: BestModelKeeper) -> None:
        self.keeper = keeper
        self._thread: threading.Thread | None = None
        self._shadow: keras.Model | None = None  # the model the thread writes, with the copied weights
        self._failure: BaseException | None = None

    def idle(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def write(self, weights: dict[int, Any], val_accuracy: float, epoch: int) -> None:
        """Start writing `weights` (of the best epoch, `epoch`) in the background."""
        self._thread = threading.Thread(
            target=self._run, args=(weights, val_accuracy, epoch), name="tlcore-best-keras", daemon=True
        )
        self._thread.start()

    def finish(self) -> None:
        """Wait for the write under way, if any; raise its failure."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.raise_failure()

    def raise_failure(self) -> None:
        if self._failure is not None and self.idle():
            failure, self._failure = self._failure, None
            raise failure

    def _run(self, weights: dict[int, Any], val_accuracy: float, epoch: int) -> None:
        keeper = self.keeper
        try:
            if self._shadow is None:
                self._shadow = keras.models.clone_model(keeper.saved_model)
            values = [weights.get(id(w), w) for w in keeper.saved_model.weights]
            self._shadow.set_weights([keras.ops.convert_to_numpy(value) for value in values])
            write_model(self._shadow, keeper.run_dir, keeper.mixed_precision)
        except BaseException as exc:  # handed to the training thread, which ends the run with it
            keeper.best_weights = keeper.best_weights or weights
            self._failure = exc
            return
        keeper.saved = (val_accuracy, epoch)


def write_model(model: keras.Model, run_dir: Path, mixed_precision: bool) -> None:
    """Write `model` to the run's `best.keras`: to a temporary name, then renamed, so a reader never sees half
    a model; a write that fails is a `RunError` and leaves no partial file."""
    target = run_dir / runs.BEST_MODEL_FILE
    partial = run_dir / f".{runs.BEST_MODEL_FILE}.{threading.get_ident()}.partial.keras"
    _remember_saving_skipsets()
    try:
        with run_folder_write(run_dir, runs.BEST_MODEL_FILE):
            with float32_layers(model, mixed_precision):
                model.save(partial)
            os.replace(partial, target)
    except BaseException:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise


def _remember_saving_skipsets() -> None:
    """Work around Keras 3's saving computing the same attribute skip-set again for every layer.

    `keras.src.saving.saving_lib.get_attr_skipset` builds a throwaway `Layer()` to list the attributes
    a layer's walk skips, and caches the result under `saving_attr_skipset_<type>` but looks it up under
    `saving_attr_skiplist_<type>`, so the cache never hits: about 4 ms per layer, half the time of
    saving a MobileNetV2. Storing each set under the name it is looked up by (in this thread's Keras
    state) gives the same sets, once.

    The sets are computed in a thread of their own: the throwaway `Optimizer` makes a variable, and
    under a distribution strategy's scope (the training thread's, thread-local) that is a collective
    operation that needs every worker, which may have finished already.
    """
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    kinds = ("Layer", "Functional", "Sequential", "Operation", "Metric", "Optimizer", "Loss")
    missing = [kind for kind in kinds if global_state.get_global_attribute(f"saving_attr_skiplist_{kind}") is None]
    if not missing:
        return
    skipsets: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: skipsets.update({kind: saving_lib.get_attr_skipset(kind) for kind in missing}),
        name="tlcore-skipsets",
    )
    worker.start()
    worker.join()
    for kind, skipset in skipsets.items():
        global_state.set_global_attribute(f"saving_attr_skiplist_{kind}", skipset)


class StatusReporter(RunCallback):
    """Keeps `status.json` current: the phase, where training stands, its pace, and what `best.keras` holds.

    Written at most every `STATUS_INTERVAL_SECONDS` during an epoch, and at once when a phase begins,
    an epoch or a phase ends, or a stop is seen.

    best: the keeper whose `best.keras` the status describes. stop: the watcher whose stop it reports.
    """

    def __init__(
        self, run_dir: Path, started: float, best: BestModelKeeper | None = None, stop: StopWatcher | None = None
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.started = started
        self.best = best
        self.stop = stop
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        self.epoch_started = started
        self.epoch_seconds: list[float] = []
        self.last_write = 0.0
        self.stop_reported = False
        self.activity: runs.Activity | None = None

    def begin_phase(self, phase: PhaseStart) -> None:
        # Until the phase's first step ends, the trainer is tracing its graph: say so, the page would look stuck.
        self.activity = runs.Activity.TRACING
        self._write(
            phase=phase.name,
            frozen_layers=phase.frozen_layers,
            trainable_params=phase.trainable_params,
            activity=self.activity,
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.step = epoch + 1, 0
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step = batch + 1
        self.global_step += 1
        if self.stop is not None and self.stop.stop_seen and not self.stop_reported:
            self.stop_reported = True
            self.write_now(status=runs.RunState.STOPPING)
        elif self.activity is not None or time.monotonic() - self.last_write >= STATUS_INTERVAL_SECONDS:
            self.write_now()

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.activity = runs.Activity.VALIDATING
        self.write_now()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_seconds.append(time.monotonic() - self.epoch_started)
        self.activity = None
        self.write_now()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.write_now()

    def write_now(self, **changes: Any) -> None:
        """Write where training stands now (and what it is doing between steps), with `changes`."""
        seconds = self.epoch_seconds
        if self.activity == runs.Activity.TRACING and self.step:
            self.activity = None  # the first step is done
        self._write(
            activity=self.activity,
            epoch=self.epoch,
            step=self.step,
            global_step=self.global_step,
            elapsed_seconds=round(time.monotonic() - self.started, 3),
            seconds_per_epoch=sum(seconds) / len(seconds) if seconds else None,
            best_val_accuracy=self.best.saved[0] if self.best is not None else None,
            best_epoch=self.best.saved[1] if self.best is not None else None,
            **changes,
        )

    def _write(self, **changes: Any) -> None:
        self.last_write = time.monotonic()
        with run_folder_write(self.run_dir, runs.STATUS_FILE):
            runs.update_status(self.run_dir, **changes)


class EpochReport(RunCallback):
    """Hands every epoch's metrics row (as `metrics.jsonl` holds it) to `report`."""

    def __init__(self, report: EpochRow, started: float) -> None:
        super().__init__()
        self.report = report
        self.started = started
        self.phase = ""
        self.epoch = 0
        self.global_step = 0

    def begin_phase(self, phase: PhaseStart) -> None:
        self.phase = phase.name

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self.params.get("steps") or 0 if self.params else 0
        elapsed = time.monotonic() - self.started
        self.report(metrics_log.make_row("epoch", self.phase, self.epoch, steps, self.global_step, logs or {}, elapsed))


# What TensorBoard's own `tf.summary.scalar` attaches to a value: it shows the curve on its Scalars tab.
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


class TensorBoardLog(RunCallback):
    """Writes the run's curves as TensorBoard event files in `<run>/tensorboard/`, for people who read them there.

    Per batch, `batch/loss` and `batch/accuracy` at the run's global step; per epoch, `epoch/loss`,
    `epoch/accuracy`, `epoch/val_loss`, `epoch/val_accuracy` and `epoch/learning_rate` at the epoch
    number. Both phases of a two-phase run continue one count, as in `metrics.jsonl`, whose values these are.
    Written with TensorFlow's own `tf.summary.write` and the scalar plugin's metadata, so no TensorBoard
    package is needed to write them (only to read them).
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        with run_folder_write(run_dir, runs.TENSORBOARD_FOLDER):
            self.writer = tf.summary.create_file_writer(str(run_dir / runs.TENSORBOARD_FOLDER))
        self.run_dir = run_dir
        self.epoch = 0
        self.global_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1
        self._scalars("batch", ("loss", "accuracy"), logs or {}, self.global_step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            values["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self._scalars("epoch", (*metrics_log.LOGGED, "learning_rate"), values, self.epoch)
        with run_folder_write(self.run_dir, runs.TENSORBOARD_FOLDER):
            self.writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        with run_folder_write(self.run_dir, runs.TENSORBOARD_FOLDER):
            self.writer.flush()

    def _scalars(self, kind: str, names: tuple[str, ...], values: dict[str, Any], step: int) -> None:
        with self.writer.as_default(step=step):
            for name in names:
                value = values.get(name)
                if value is not None and math.isfinite(float(value)):
                    tf.summary.write(f"{kind}/{name}", tf.constant(float(value), tf.float32), metadata=_SCALAR)


def keep_best_after_fault(run_callbacks: list[RunCallback]) -> None:
    """After `fit` raised (Keras then skips `on_train_end`): flush the TensorBoard events, finish the write
    under way, write the best model still held in memory, and the status that names it.

    Best effort: the fault being reported matters more than a second one from these writes.
    """
    keepers = [c for c in run_callbacks if isinstance(c, BestModelKeeper)]
    before = [keeper.saved for keeper in keepers]
    try:
        for log in (c for c in run_callbacks if isinstance(c, TensorBoardLog)):
            with suppress(Exception):
                log.on_train_end()  # the batches since the last epoch's end, to disk
        for keeper in keepers:
            with suppress(Exception):
                keeper.wait_for_writes()
            if keeper.best_weights is not None:
                keeper.save()
        if [keeper.saved for keeper in keepers] != before:
            for reporter in (c for c in run_callbacks if isinstance(c, StatusReporter)):
                reporter.write_now()
    except Exception:  # the original error is the one the run must report
        traceback.print_exc()


def for_run(
    run_dir: Path | None,
    saved_model: keras.Model,
    started: float,
    distribution: Distribution,
    mixed_precision: bool = False,
    report: EpochRow | None = None,
) -> list[RunCallback]:
    """The callbacks of a run, in the order they must hear each event.

    run_dir: None for a multi-worker job's worker other than the chief, which writes nothing: it gets
        only the stop watcher, to vote with the others.
    """
    stop = StopWatcher(run_dir, distribution)
    if run_dir is None:
        return [stop]
    best = BestModelKeeper(run_dir, saved_model, mixed_precision)
    callbacks: list[RunCallback] = [
        MetricsLog(run_dir, started),
        TensorBoardLog(run_dir),
        stop,
        best,
        StatusReporter(run_dir, started, best, stop),
    ]
    if report is not None:
        callbacks.append(EpochReport(report, started))
    return callbacks
