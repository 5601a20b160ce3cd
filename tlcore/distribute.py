"""Training one spec on several devices or machines, with TensorFlow's own `tf.distribute`.

A spec says what to train, never where: `python -m tlcore train --spec RUN/spec.json` trains it on
whatever the machine has, and `--distribute` chooses how:

- `"none"`: TensorFlow's default placement (one GPU if there is one, else the CPU's threads);
- `"mirrored"`: `tf.distribute.MirroredStrategy` over every GPU of this machine (or, without a GPU,
  every logical CPU device, which is how the tests run it). Each replica holds a copy of the
  variables; gradients are summed across replicas at every step;
- `"multiworker"`: `tf.distribute.MultiWorkerMirroredStrategy`, the same across several machines
  (or processes), configured through the `TF_CONFIG` environment variable. Every worker runs the
  same command; only the chief (task `chief`, or worker 0 when the cluster has no chief) writes
  the run folder. The others train silently and write nothing.

The batch size of the spec is the *global* batch: each step averages gradients over that many
images whatever the number of replicas, each replica taking its share, so a distributed run
optimises exactly what a single device would (up to floating-point order) and its curves can be
compared with it. `scale_batch` instead keeps the spec's batch on every replica, making the global
batch `replicas` times larger, and raises the learning rates by the same factor (the linear
scaling rule of Goyal et al., 2017): faster epochs, a different optimisation.

Keras 3 does not run `fit` under `MultiWorkerMirroredStrategy` as released (keras-team/keras#20585:
it reduces a nested batch and scalar metrics with `axis=0` across workers, which fails);
`keras_multi_worker_fit` mends the two places, only in a multi-worker trainer process.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlcore.errors import RunError, SpecError
from tlcore.i18n import Message, msg

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

KINDS = ("none", "mirrored", "multiworker")


@dataclass(frozen=True)
class Distribution:
    """Where a run trains.

    kind: one of `KINDS`.
    strategy: the `tf.distribute.Strategy`, or None for TensorFlow's default placement.
    replicas: model copies that take a share of each global batch.
    workers: processes (machines) taking part; 1 unless `kind` is `"multiworker"`.
    worker: this process's task, as `"worker:0"` (or `"chief:0"`); `"local"` outside a cluster.
    is_chief: this process writes the run folder.
    scale_batch: the spec's batch size is per replica (global batch and learning rates × replicas).
    """

    kind: str = "none"
    strategy: Any = None
    replicas: int = 1
    workers: int = 1
    worker: str = "local"
    is_chief: bool = True
    scale_batch: bool = False

    @property
    def batch_factor(self) -> int:
        """What the spec's batch size and learning rates are multiplied by."""
        return self.replicas if self.scale_batch else 1

    def scope(self) -> AbstractContextManager[Any]:
        """Variables created inside are mirrored across replicas; models must be built and compiled in it."""
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def describe(self) -> Message:
        """One sentence for the run's status: how the run is spread, and what a step means."""
        if self.kind == "none":
            return msg("distribute.one_device")
        replicas = msg("count.replicas", n=self.replicas)
        if self.replicas == 1:
            batch = msg("distribute.batch_as_one_device")
        elif self.scale_batch:
            batch = msg("distribute.batch_per_replica", replicas=self.replicas)
        else:
            batch = msg("distribute.batch_split")
        if self.kind == "multiworker":
            workers = msg("count.workers", n=self.workers)
            return msg("distribute.multiworker", replicas=replicas, workers=workers, worker=self.worker, batch=batch)
        return msg("distribute.mirrored", replicas=replicas, batch=batch)

    def status_fields(self) -> dict[str, Any]:
        return {
            "distribute": self.kind,
            "replicas": self.replicas,
            "workers": self.workers,
            "distribute_note": self.describe(),
        }

    def any_worker(self, flag: bool) -> bool:
        """True on every worker when `flag` is true on any of them (a collective: every worker must call it)."""
        if self.kind != "multiworker":
            return flag
        import tensorflow as tf

        votes = self.strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0

    def starves_a_replica(self, images: int, batch_size: int) -> bool:
        """Whether an epoch of `images` in global batches of `batch_size` ends with a batch too small
        to give every replica an image."""
        return 0 < images % batch_size < self.replicas

    def check_in_step(self, summary: Message, job: str) -> None:
        """Raise `RunError` on every worker unless all of them pass the same `summary` and `job` (a collective).

        `summary` says in words what this worker is about to train (compared in English, whatever
        language each worker reads); `job` is everything else that
        must agree (the spec, the images and their labels, the batch, the numeric settings), shown
        in the message by a short hash. Workers that differ (another spec, other data, a cache that
        fits on one machine and not on another) would otherwise drift apart silently or run
        mismatched collectives, which hang or fail with an error that names neither cause.
        """
        if self.kind != "multiworker":
            return
        import tensorflow as tf

        digest = hashlib.sha256(f"{summary.render('en')}\n{job}".encode()).hexdigest()
        # Summed over replicas in float32, which is exact below 2**24: leave room for the replicas.
        bits = 23 - max(self.replicas - 1, 1).bit_length()
        fingerprint = float(int(digest, 16) % (1 << bits))
        values = self.strategy.run(lambda: tf.constant(fingerprint))
        total = float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))
        if self.any_worker(total != fingerprint * self.replicas):
            raise RunError("distribute.workers_differ", worker=self.worker, summary=summary, digest=digest[:12])


def create(kind: str = "none", scale_batch: bool = False) -> Distribution:
    """Make the distribution `kind` (one of `KINDS`).

    Create it before TensorFlow runs anything else in the process: `MultiWorkerMirroredStrategy`
    must configure the runtime's collective ops before they start.

    Raises:
        SpecError: `kind` is unknown, or `"multiworker"` has no usable `TF_CONFIG`.
    """
    if kind not in KINDS:
        raise SpecError("distribute.unknown_kind", kind=repr(kind), choices=", ".join(KINDS))
    if kind == "none":
        return Distribution()
    import tensorflow as tf

    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return Distribution("mirrored", strategy, strategy.num_replicas_in_sync, scale_batch=scale_batch)
    task, workers, is_chief = _cluster_from_tf_config()
    keras_multi_worker_fit()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(
        "multiworker",
        strategy,
        strategy.num_replicas_in_sync,
        workers,
        task,
        is_chief=is_chief,
        scale_batch=scale_batch,
    )


def _cluster_from_tf_config() -> tuple[str, int, bool]:
    """`("worker:1", number of workers, whether this task is the chief)` from `TF_CONFIG`, or `SpecError`
    saying what is wrong."""
    text = os.environ.get("TF_CONFIG", "")
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not text.strip():
        raise SpecError("distribute.no_tf_config", example=example)
    try:
        config = json.loads(text)
        cluster = config["cluster"]
        task_type = str(config["task"]["type"])
        task_index = int(config["task"]["index"])
        tasks = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SpecError("distribute.bad_tf_config", example=example, text=text[:200]) from None
    if task_type not in tasks or not 0 <= task_index < len(tasks[task_type]):
        raise SpecError("distribute.task_not_in_cluster", task=f"{task_type}:{task_index}", cluster=str(tasks))
    others = sorted(set(tasks) - {"chief", "worker"})
    if task_type not in ("chief", "worker") or others:
        unknown = ", ".join(sorted({task_type, *others} - {"chief", "worker"}))
        raise SpecError("distribute.unknown_tasks", tasks=unknown)
    workers = sum(len(tasks.get(name, [])) for name in ("chief", "worker"))
    is_chief = task_type == "chief" or (task_type == "worker" and task_index == 0 and "chief" not in tasks)
    return f"{task_type}:{task_index}", workers, is_chief


def keras_multi_worker_fit() -> None:
    """Let Keras 3's `fit` run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585).

    Keras reduces each step's outputs (the loss and metric values, scalars) with
    `strategy.reduce("MEAN", value, axis=0)` when it sees a multi-worker strategy; a scalar has no
    axis 0, so the first step fails. Reducing with `axis=None` averages the replicas' values, which
    is what Keras does for every other strategy. The symbolic build before `fit` is the other
    failure (it reduces a whole `(x, y)` batch across workers just to learn its shapes);
    `prepare_for_fit` builds the model from a local batch instead.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "_tlcore", False):
        return
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean"):
            return keras_reduce(values, strategy, reduction)

        def mean(value: Any) -> Any:
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.reduce("MEAN", value, axis=None)
            return value

        return tree.map_structure(mean, values)

    reduce_per_replica._tlcore = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def prepare_for_fit(model: keras.Model, distribution: Distribution, data: tf.data.Dataset) -> None:
    """Build a compiled `model` (metrics, loss, optimizer) from the shapes of `data`'s batches, before `fit`.

    Under a strategy, Keras's `fit` first draws a batch from the training data to learn its shapes.
    That starts a pass over the data of its own, so a reshuffling dataset moves on by one epoch:
    every epoch would see the next one's order, and a distributed run would not train as one device
    does. (Under `MultiWorkerMirroredStrategy` the draw fails outright; see above.)
    """
    if distribution.strategy is None:
        # Without a strategy Keras creates the optimizer's and the metrics' variables while it traces its
        # first step, and TensorFlow traces a function that created variables a second time: built
        # beforehand, each step is traced once (for a MobileNetV2 head, about 0.3 s less).
        model._symbolic_build(data_batch=data.element_spec)
        return
    with distribution.scope():
        model._symbolic_build(data_batch=data.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def without_starving_batch(data: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """`data` without a batch too small to give each of `replicas` replicas an image.

    BatchNormalization that trains (training from scratch) cannot normalise an empty share of a
    batch: Keras fails with "Incompatible shapes". Leaving out that last batch drops fewer than
    `replicas` images an epoch, different ones each epoch as the order is reshuffled.
    """
    import tensorflow as tf

    return data.filter(lambda images, labels: tf.shape(labels)[0] >= replicas)


def shard_by_data(data: tf.data.Dataset) -> tf.data.Dataset:
    """Split every global batch between workers element by element (the batches stay those of one device)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)
