"""The trainer: what runs inside `python -m tlcore train`, turning a run folder's spec into a model.

`train_run` takes the run's lock, waits for a training slot (runs queue), then trains phase by
phase. Each phase applies its strategy (which layers are trainable) and compiles again, because
Keras only reads `trainable` when a model is compiled: changing it on a compiled model silently
changes nothing. A Keras callback (`RunRecorder`) writes everything a run produces into its folder
as it happens: a metrics line per batch and per epoch, the status, the best model so far by
validation accuracy. A `STOP` file is honoured at the next batch, and the best model is kept.

Each phase takes one of three paths (`choose_path` says which, and why, in words for the user):
- `"features"`: the whole base is frozen and images are not augmented, so the base computes the
  same features for an image in every epoch. It runs once over the dataset (its outputs are cached
  by `tlcore.features`), and each epoch trains only the head on them;
- `"prefix"`: fine-tuning without augmentation: the frozen first layers run once, their
  activations at the cut are cached, and each epoch runs only the trainable rest of the base and
  the head;
- `"full"`: every epoch runs the whole model on every image (training from scratch, augmentation
  on, nothing frozen, or a cache that would not fit its memory budget).
The fast paths give the same model as the full one: the same layers and variables learn, from the
same batches in the same order, with BatchNormalization in inference mode and the head's dropout
active, and `best.keras` is always the full model (preprocessing, base and head).

Acceleration follows the hardware (`detect_acceleration`): on a GPU, XLA compiles the training and
feature steps, and mixed precision (float16 compute, float32 weights) is used on GPUs with tensor
cores (compute capability 7.0 or newer); `best.keras` is saved with float32 layers either way. On a
CPU both stay off: XLA does not speed up these convolutions there and float16 is emulated, slower.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from tlcore import runs, settings
from tlcore.distribute import Distribution
from tlcore.errors import RunError, TLCoreError
from tlcore.workspace import Workspace, read_json

if TYPE_CHECKING:
    import tensorflow as tf

    from tlcore.datasets import Dataset
    from tlcore.features import Budget, CachedFeatures, Cut
    from tlcore.spec import Phase, RunSpec

STATUS_INTERVAL_SECONDS = 1.0
# `best.keras` is written at most this often (and always when a phase ends): on the fast paths an
# epoch can take less time than saving a large model.
BEST_SAVE_INTERVAL_SECONDS = 10.0

PATH_FULL = "full"
PATH_FEATURES = "features"
PATH_PREFIX = "prefix"

EpochReport = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Acceleration:
    """What the hardware makes worth using.

    jit_compile: compile training and feature steps with XLA.
    mixed_precision: compute in float16 with float32 weights (`"mixed_float16"`).
    """

    jit_compile: bool = False
    mixed_precision: bool = False


def detect_acceleration() -> Acceleration:
    """XLA on any GPU, mixed precision on GPUs with tensor cores (compute capability 7.0+), neither on a CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Acceleration()
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return Acceleration(jit_compile=True, mixed_precision=tuple(capability) >= (7, 0))


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
    from tlcore.models import apply_strategy, trainable_view

    frozen = apply_strategy(model, phase.strategy, phase.frozen_layers)
    view = trainable_view(model, phase.strategy)
    _compile(view, spec, phase, acceleration or Acceleration())
    return view, frozen


def _compile(
    view: keras.Model,
    spec: RunSpec,
    phase: Phase,
    acceleration: Acceleration,
    learning_rate_factor: int = 1,
) -> None:
    optimizer = make_optimizer(spec.optimizer, phase.learning_rate * learning_rate_factor)
    if acceleration.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    view.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=acceleration.jit_compile,
    )


def set_compute_policy(model: keras.Model, policy: str) -> None:
    """Give every layer of `model` the dtype policy `policy` (`"mixed_float16"` or `"float32"`).

    The classifier keeps float32 whatever the policy, so its softmax stays numerically sound. Only
    the compute dtype changes: the variables stay float32, so switching back loses nothing.
    """
    from tlcore.models import PREDICTIONS_LAYER_NAME, get_base, get_head, preprocessing_layers

    layers = [*preprocessing_layers(model), *get_base(model).layers[1:], *get_head(model).layers[1:]]
    for layer in layers:
        layer.dtype_policy = "float32" if layer.name == PREDICTIONS_LAYER_NAME else policy


@contextmanager
def _float32_layers(model: keras.Model, mixed: bool) -> Iterator[None]:
    """Within the block, `model`'s layers say float32 (for saving a model that loads anywhere)."""
    if mixed:
        set_compute_policy(model, "float32")
    try:
        yield
    finally:
        if mixed:
            set_compute_policy(model, "mixed_float16")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def fast_path_enabled() -> bool:
    """False when `TLCORE_FAST_PATH=0`: every phase then trains the full model."""
    return settings.fast_path()


def choose_path(
    spec: RunSpec,
    phase: Phase | None = None,
    model: keras.Model | None = None,
    image_count: int | None = None,
    budget: Budget | None = None,
) -> tuple[str, str]:
    """Which path a phase trains on (`"features"`, `"prefix"` or `"full"`) and why, as a sentence for users.

    phase: one of `spec.phases()`; None means the first.
    model: the built model (`tlcore.models.build_model`, random weights suffice). Without it the
        answer is from the spec alone, assuming the frozen layers hold weights and the cache fits.
    image_count: training plus validation images; with `model`, checks that the cache fits `budget`.
    budget: the feature cache's limits; None reads them from the environment.
    """
    path, reason, _ = _plan(spec, phase or spec.phases()[0], model, image_count, budget)
    return path, reason


def _plan(
    spec: RunSpec,
    phase: Phase,
    model: keras.Model | None,
    image_count: int | None,
    budget: Budget | None,
) -> tuple[str, str, Cut | None]:
    from tlcore.backbones import get_backbone
    from tlcore.features import Budget, cut_model, format_bytes, prefix_has_weights
    from tlcore.models import frozen_count, get_base

    if model is not None:
        base_layers = len(get_base(model).layers)
    else:
        base_layers = get_backbone(spec.model.backbone).base_layers
    frozen = frozen_count(phase.strategy, phase.frozen_layers, base_layers)
    whole_base = frozen == base_layers
    if not fast_path_enabled():
        return PATH_FULL, "The fast path is turned off (TLCORE_FAST_PATH=0): the whole network runs every epoch.", None
    if phase.strategy == "scratch":
        return PATH_FULL, "Training from scratch: every layer learns, so the whole network runs every epoch.", None
    if spec.augmentation.active:
        part = "frozen base runs" if whole_base else "frozen layers run"
        return (
            PATH_FULL,
            f"Augmentation is on: the {part} every epoch, because every epoch sees different images.",
            None,
        )
    if frozen == 0 or (model is not None and not prefix_has_weights(model, frozen)):
        return PATH_FULL, "No base layer with weights is frozen: the whole network runs every epoch.", None
    path = PATH_FEATURES if whole_base else PATH_PREFIX
    cut = None
    if model is not None:
        cut = cut_model(model, frozen)
        if image_count is not None:
            budget = budget or Budget.from_env()
            size = cut.bytes_per_image * image_count
            if size > budget.memory:
                part = "frozen base's outputs" if whole_base else f"{frozen} frozen layers' outputs"
                return (
                    PATH_FULL,
                    f"The {part} for {image_count:,} images would take {format_bytes(size)}, "
                    f"more than the feature cache's {format_bytes(budget.memory)} memory budget: "
                    "the whole network runs every epoch.",
                    None,
                )
    images = "the images" if image_count is None else f"the {image_count:,} images"
    return path, _fast_note(path, frozen, base_layers - frozen, "planned", images), cut


def _fast_note(path: str, frozen: int, suffix_layers: int, state: str, images: str, seconds: float = 0.0) -> str:
    """The path note of a fast path: `state` is `"planned"`, `"computed"` (in `seconds`) or `"cached"`."""
    if path == PATH_FEATURES:
        label, subject, verb = "Cached features", "the frozen base", "runs"
        rest = "each epoch trains only the head."
    else:
        label, subject, verb = "Cached prefix", f"the {frozen} frozen base layers", "run"
        rest = f"each epoch runs only the last {suffix_layers} base layers and the head."
    if state == "planned":
        return f"{label}: {subject} {verb} once over {images}, then {rest}"
    if state == "computed":
        return f"{label}: {subject} ran once over {images} ({seconds:.0f} s); {rest}"
    return f"{label}: the outputs of {subject} for {images} were already cached; {rest}"


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
    distribution: Distribution | None = None,
) -> runs.RunInfo:
    """Train the queued run `run_id` to the end (or to a stop) and return its final state.

    lock_fd: the run's lock, already held (handed over by `runs.start`); None takes it here.
    report: called with each epoch's metrics row, for a command line that prints progress.
    distribution: where to train (`tlcore.distribute`); None is one device. In a multi-worker job
        only the chief calls this; the other workers call `train_worker`.
    A write into the run folder that fails (full disk, read-only workspace) fails the run with "Could
    not write to the run folder: …"; when not even that can be written, `RunError` is raised.
    """
    run_dir = workspace.run_dir(run_id)
    info = runs.load_run(workspace, run_id)
    if info.status != "queued":
        raise RunError(f"Run {run_id!r} is {info.status}; only a queued run can be trained.")
    lock = _acquire_run_lock(run_dir, lock_fd)
    slot: int | None = None
    try:
        status = _status_writer(run_dir)
        status(pid=os.getpid())
        slot = runs.wait_for_slot(workspace, run_dir)
        if slot is None:
            status(status="stopped", ended=runs.now_iso(), error="Stopped before training started.")
        else:
            _train(workspace, run_dir, info.spec, report, distribution or Distribution())
    except TLCoreError as exc:
        _record_failure(run_dir, str(exc))
    except Exception as exc:
        traceback.print_exc()
        _record_failure(run_dir, f"Training failed: {error_summary(exc)}")
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
        raise RunError("The chief of a multi-worker job trains a run folder (`train_run`), not `train_worker`.")
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


class _Stopped(Exception):
    """A stop request arrived during the feature pass."""


class _RunData:
    """A run's image files and labels, and its full-model pipelines, built at most once."""

    def __init__(self, dataset: Dataset, spec: RunSpec, batch_size: int) -> None:
        self.dataset = dataset
        self.spec = spec
        self.batch_size = batch_size  # the global batch
        self.paths = {split: dataset.files(split)[0] for split in ("train", "val")}
        self.labels = {split: dataset.files(split)[1] for split in ("train", "val")}
        self._pipelines: tuple[tf.data.Dataset, tf.data.Dataset] | None = None

    def count(self, split: str) -> int:
        return len(self.labels[split])

    def pipelines(self) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        from tlcore.pipeline import make_pipelines

        if self._pipelines is None:
            spec = self.spec
            self._pipelines = make_pipelines(
                self.dataset, spec.model.image_size, self.batch_size, spec.seed, spec.augmentation
            )
        return self._pipelines


def _train(
    workspace: Workspace,
    run_dir: Path | None,
    spec: RunSpec,
    report: EpochReport | None,
    distribution: Distribution,
) -> str:
    """Train `spec` phase by phase and return `"completed"` or `"stopped"`; `run_dir` None is a multi-worker
    job's non-chief worker (writes nothing)."""
    from tlcore.datasets import load_dataset

    started = time.monotonic()
    status = _status_writer(run_dir)
    status(status="running", started=runs.now_iso(), phase=spec.phases()[0].name, **distribution.status_fields())
    seed_everything(spec.seed)
    acceleration = detect_acceleration()
    dataset = load_dataset(workspace, spec.dataset)
    dataset.check_source()
    data = _RunData(dataset, spec, spec.batch_size * distribution.batch_factor)
    with distribution.scope():
        return _train_phases(workspace, run_dir, spec, report, distribution, acceleration, data, started, status)


def _train_phases(
    workspace: Workspace,
    run_dir: Path | None,
    spec: RunSpec,
    report: EpochReport | None,
    distribution: Distribution,
    acceleration: Acceleration,
    data: _RunData,
    started: float,
    status: Callable[..., Any],
) -> str:
    from tlcore.distribute import prepare_for_fit, shard_by_data, without_starving_batch
    from tlcore.features import Budget, feature_batches, shuffled_order
    from tlcore.models import apply_strategy, base_training_mode, build_model, parameter_counts, trainable_view

    model = build_model(spec.model, workspace)
    if acceleration.mixed_precision:
        set_compute_policy(model, "mixed_float16")
    budget = Budget.from_env()
    # Training BatchNormalization (from scratch) cannot take a replica's empty share of a last, tiny batch.
    starved = base_training_mode(spec.model.strategy) is None and distribution.starves_a_replica(
        data.count("train"), data.batch_size
    )
    steps_per_epoch = math.ceil(data.count("train") / data.batch_size) - starved
    recorder: RunRecorder | WorkerRecorder
    if run_dir is None:
        recorder = WorkerRecorder(distribution)
    else:
        recorder = RunRecorder(
            run_dir, model, started, report, mixed_precision=acceleration.mixed_precision, distribution=distribution
        )
    status(
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * spec.total_epochs,
        global_batch_size=data.batch_size,
        setup_seconds=round(time.monotonic() - started, 3),
    )

    job = _job_description(spec, data, acceleration) if distribution.kind == "multiworker" else ""
    order = None  # the fast paths' epoch order, made once so that reshuffling continues across phases
    first_epoch = 0
    for phase in spec.phases():
        frozen = apply_strategy(model, phase.strategy, phase.frozen_layers)
        image_count = data.count("train") + data.count("val")
        path, note, cut = _plan(spec, phase, model, image_count, budget)
        status(path=path, path_note=note)
        distribution.check_in_step(
            f"phase {phase.name}, {data.count('train')} training and {data.count('val')} validation images "
            f"in {len(data.dataset.classes)} classes, {frozen} frozen layers, {path} path",
            job,
        )
        if cut is None:
            view = trainable_view(model, phase.strategy)
            train_data, val_data = data.pipelines()
        else:
            try:
                cached, note = _cached_features(
                    workspace,
                    run_dir,
                    spec,
                    cut,
                    data,
                    budget,
                    acceleration,
                    path,
                    started,
                    honour_stop=distribution.kind != "multiworker",
                )
            except _Stopped:
                recorder.stop_seen = True
                break
            # A multi-worker job's workers each compute their own features; they learn of a stop here.
            if distribution.any_worker(
                distribution.kind == "multiworker" and run_dir is not None and runs.stop_requested(run_dir)
            ):
                recorder.stop_seen = True
                break
            view = cut.trainable_model()
            order = order if order is not None else shuffled_order(data.count("train"), spec.seed)
            train_data = feature_batches(cached.train, data.labels["train"], data.batch_size, order)
            val_data = feature_batches(cached.val, data.labels["val"], data.batch_size)
            status(path=path, path_note=note)
        if starved:
            train_data = without_starving_batch(train_data, distribution.replicas)
        if distribution.kind != "none":
            train_data, val_data = shard_by_data(train_data), shard_by_data(val_data)
        _compile(view, spec, phase, acceleration, learning_rate_factor=distribution.batch_factor)
        status(learning_rate=phase.learning_rate * distribution.batch_factor)
        prepare_for_fit(view, distribution, train_data)
        recorder.begin_phase(phase.name, frozen, parameter_counts(model)["trainable"])
        try:
            view.fit(
                train_data,
                validation_data=val_data,
                initial_epoch=first_epoch,
                epochs=first_epoch + phase.epochs,
                callbacks=[recorder],
                verbose=0,
                shuffle=False,
            )  # both pipelines reshuffle every epoch themselves
        except BaseException:
            recorder.keep_best_after_fault()
            raise
        first_epoch += phase.epochs
        if recorder.stop_seen:
            break
    final = "stopped" if recorder.stop_seen else "completed"
    changes: dict[str, Any] = {}
    if recorder.stop_seen and recorder.global_step == 0:
        changes["error"] = "Stopped during the feature pass, before the first epoch."
    status(status=final, ended=runs.now_iso(), elapsed_seconds=time.monotonic() - started, **changes)
    return final


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
        with _run_folder_write(run_dir, runs.STATUS_FILE):
            runs.update_status(run_dir, **changes)

    return write


@contextmanager
def _run_folder_write(run_dir: Path, file_name: str) -> Iterator[None]:
    """Turn a failed write into the run folder (full disk, read-only workspace) into the run's failure."""
    try:
        yield
    except OSError as exc:
        raise RunError(
            f"Could not write to the run folder: {exc.strerror or exc} ({file_name} in {str(run_dir)!r}); "
            "free some disk space or make the workspace writable, then start the run again."
        ) from exc


def _record_failure(run_dir: Path, error: str) -> None:
    """End the run as `failed` with `error`.

    If even that write fails, the `RunError` raised here ends the trainer; once its process (and so
    the run's lock) is gone, `runs.load_run` lists the run as `interrupted`, never as running.
    """
    with _run_folder_write(run_dir, runs.STATUS_FILE):
        runs.update_status(run_dir, status="failed", ended=runs.now_iso(), error=error)


def _cached_features(
    workspace: Workspace,
    run_dir: Path | None,
    spec: RunSpec,
    cut: Cut,
    data: _RunData,
    budget: Budget,
    acceleration: Acceleration,
    path: str,
    started: float,
    honour_stop: bool = True,
) -> tuple[CachedFeatures, str]:
    """The cut's activations over both splits, from the cache or computed now, and the path note saying which.

    While computing, the status shows `phase: "features"` with `features_done` / `features_total`
    (images) and `features_seconds` so far (the rate the ETA uses), and a stop request ends the pass
    (`_Stopped`) when `honour_stop` (a multi-worker job stops when the pass ends instead, where every
    worker learns of it). `run_dir` None writes nothing.
    """
    from tlcore.features import CachedFeatures, FeatureCache, cache_key, format_bytes

    status = _status_writer(run_dir)

    counts = {split: data.count(split) for split in ("train", "val")}
    total = counts["train"] + counts["val"]
    images = f"the {total:,} images"
    suffix_layers = cut.suffix_layers
    cache = FeatureCache(workspace, budget)
    key = cache_key(spec.dataset, spec.model.backbone, cut)
    entry = cache.load(key, counts, cut.shapes)
    if entry is not None:
        status(features_done=total, features_total=total, features_cached=True, features_seconds=0.0)
        return entry, _fast_note(path, cut.frozen_layers, suffix_layers, "cached", f"these {total:,} images")

    began = time.monotonic()
    status(phase="features", features_done=0, features_total=total, features_cached=False, features_seconds=0.0)
    last_write = began

    def progress(done: int) -> None:
        nonlocal last_write
        if honour_stop and run_dir is not None and runs.stop_requested(run_dir):
            status(status="stopping", features_done=done)
            raise _Stopped
        now = time.monotonic()
        if now - last_write >= STATUS_INTERVAL_SECONDS:
            last_write = now
            status(features_done=done, features_seconds=round(now - began, 3), elapsed_seconds=round(now - started, 3))

    train = cut.compute(data.paths["train"], progress, jit_compile=acceleration.jit_compile)
    val = cut.compute(
        data.paths["val"], lambda done: progress(counts["train"] + done), jit_compile=acceleration.jit_compile
    )
    entry = CachedFeatures(train=train, val=val)
    seconds = time.monotonic() - began
    on_disk = cache.store(
        key,
        entry,
        meta={
            "dataset": spec.dataset,
            "backbone": spec.model.backbone,
            "frozen_layers": cut.frozen_layers,
            "cut": list(cut.names),
        },
    )
    status(features_done=total, features_seconds=round(seconds, 3))
    note = _fast_note(path, cut.frozen_layers, suffix_layers, "computed", images, seconds)
    if not on_disk:
        note += (
            f" They take {format_bytes(entry.nbytes)}, more than the {format_bytes(budget.disk)} disk "
            "budget, so they are not kept for the next run."
        )
    return entry, note


class RunRecorder(keras.callbacks.Callback):
    """Writes a run's metrics, status and best model into its folder while Keras trains.

    Per batch: a metrics line (loss and accuracy are Keras's running means over the epoch so far), a
    throttled status update, and a look for the `STOP` file. Per epoch: a metrics line with the
    validation results; when validation accuracy improves, the weights are kept in memory and
    `best.keras` is replaced, at most every `BEST_SAVE_INTERVAL_SECONDS` and always when `fit` ends
    (a fast-path epoch can be shorter than writing a large model). The status's `best_val_accuracy`
    and `best_epoch` always describe the `best.keras` on disk, even after a crash.

    saved_model: the model written to `best.keras` (the full model, not the view being fitted).
    mixed_precision: the model computes in mixed precision; it is saved with float32 layers.
    distribution: in a multi-worker job, a stop request takes effect at the end of the epoch, when
        every worker votes (`Distribution.any_worker`): a worker leaving `fit` alone would leave the
        others waiting for it forever.
    """

    def __init__(
        self,
        run_dir: Path,
        saved_model: keras.Model,
        started: float,
        report: EpochReport | None = None,
        mixed_precision: bool = False,
        distribution: Distribution | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.distribution = distribution or Distribution()
        self.saved_model = saved_model
        self.mixed_precision = mixed_precision
        self.started = started
        self.report = report
        with _run_folder_write(run_dir, runs.METRICS_FILE):
            self.metrics_file = open(run_dir / runs.METRICS_FILE, "a", encoding="utf-8")
        self.phase = ""
        self.global_step = 0
        self.epoch = 0
        self.step = 0
        self.epoch_started = started
        self.epoch_seconds: list[float] = []
        self.best_val_accuracy: float | None = None  # the best epoch seen
        self.best_epoch: int | None = None
        self.saved_val_accuracy: float | None = None  # the epoch best.keras holds
        self.saved_epoch: int | None = None
        self.last_status_write = 0.0
        self.last_best_save = started
        self.best_weights: list[Any] | None = None  # best weights not yet written to best.keras
        self.best_is_current = False  # no step since the best epoch: the model holds its weights
        self.stop_seen = False
        self._resume_best()

    def _resume_best(self) -> None:
        status = runs.read_status(self.run_dir)
        self.best_val_accuracy = self.saved_val_accuracy = status.get("best_val_accuracy")
        self.best_epoch = self.saved_epoch = status.get("best_epoch")

    def begin_phase(self, phase: str, frozen_layers: int, trainable_params: int) -> None:
        self.phase = phase
        with _run_folder_write(self.run_dir, runs.STATUS_FILE):
            runs.update_status(
                self.run_dir, phase=phase, frozen_layers=frozen_layers, trainable_params=trainable_params
            )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_best_save = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1
        self.step = 0
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.global_step += 1
        self.step = batch + 1
        self.best_is_current = False
        self._write({"kind": "batch", "loss": logs.get("loss"), "accuracy": logs.get("accuracy")})
        if runs.stop_requested(self.run_dir) and not self.stop_seen:
            self.stop_seen = True
            if self.distribution.kind != "multiworker":
                self.model.stop_training = True
            self._status(force=True, status="stopping")
        else:
            self._status()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.epoch_seconds.append(time.monotonic() - self.epoch_started)
        row = self._write(
            {
                "kind": "epoch",
                "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"),
                "val_loss": logs.get("val_loss"),
                "val_accuracy": logs.get("val_accuracy"),
            }
        )
        val_accuracy = logs.get("val_accuracy")
        if val_accuracy is not None and (self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy):
            self.best_val_accuracy = float(val_accuracy)
            self.best_epoch = self.epoch
            # Tensor copies: cheap reads that later updates of the variables never change (copy on write).
            self.best_weights = [keras.ops.copy(w) for w in self.saved_model.weights]
            self.best_is_current = True
            if time.monotonic() - self.last_best_save >= BEST_SAVE_INTERVAL_SECONDS:
                self._save_best()
        self._status(force=True)
        if self.report is not None:
            self.report(row)
        if self.distribution.kind == "multiworker" and self.distribution.any_worker(self.stop_seen):
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_weights is not None:
            self._save_best()
            self._status(force=True)
        self.metrics_file.flush()

    def keep_best_after_fault(self) -> None:
        """Write the best model still held in memory after `fit` raised (Keras skips `on_train_end` then).

        Best effort: the fault being reported matters more than a second one from this write.
        """
        if self.best_weights is None:
            return
        try:
            self._save_best()
            self._status(force=True)
        except Exception:
            traceback.print_exc()

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
        with _run_folder_write(self.run_dir, runs.METRICS_FILE):
            self.metrics_file.write(json.dumps(row) + "\n")
            self.metrics_file.flush()
        return row

    def _status(self, force: bool = False, **changes: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last_status_write < STATUS_INTERVAL_SECONDS:
            return
        self.last_status_write = now
        with _run_folder_write(self.run_dir, runs.STATUS_FILE):
            runs.update_status(
                self.run_dir,
                epoch=self.epoch,
                step=self.step,
                global_step=self.global_step,
                elapsed_seconds=round(now - self.started, 3),
                seconds_per_epoch=(sum(self.epoch_seconds) / len(self.epoch_seconds)) if self.epoch_seconds else None,
                best_val_accuracy=self.saved_val_accuracy,
                best_epoch=self.saved_epoch,
                **changes,
            )

    def _save_best(self) -> None:
        """Write the kept best weights to `best.keras` as the full model, then carry on with the current ones.

        The model is written to a temporary name and renamed: a write that fails (`RunError`) leaves the
        previous `best.keras` whole and no partial file, and the best weights stay kept for another try.
        """
        variables = self.saved_model.weights
        current = None
        if not self.best_is_current:
            current = [keras.ops.copy(w) for w in variables]
            for variable, value in zip(variables, self.best_weights, strict=True):
                variable.assign(value)
        target = self.run_dir / runs.BEST_MODEL_FILE
        partial = self.run_dir / f".{runs.BEST_MODEL_FILE}.partial.keras"
        try:
            with _run_folder_write(self.run_dir, runs.BEST_MODEL_FILE):
                with _float32_layers(self.saved_model, self.mixed_precision):
                    self.saved_model.save(partial)
                os.replace(partial, target)
        except BaseException:
            with suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
        finally:
            if current is not None:
                for variable, value in zip(variables, current, strict=True):
                    variable.assign(value)
        self.best_weights = None
        self.saved_val_accuracy, self.saved_epoch = self.best_val_accuracy, self.best_epoch
        self.last_best_save = time.monotonic()


class WorkerRecorder(keras.callbacks.Callback):
    """A multi-worker job's non-chief worker in place of `RunRecorder`: writes nothing, stops with the chief."""

    def __init__(self, distribution: Distribution) -> None:
        super().__init__()
        self.distribution = distribution
        self.global_step = 0
        self.stop_seen = False

    def begin_phase(self, phase: str, frozen_layers: int, trainable_params: int) -> None:
        """Nothing to record: the chief records the phase."""

    def keep_best_after_fault(self) -> None:
        """Nothing to keep: the chief keeps the best model."""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.distribution.any_worker(False):
            self.stop_seen = True
            self.model.stop_training = True


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
