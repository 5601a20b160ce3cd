"""Cached features: run the frozen part of a model once, then train only the part that learns.

With a frozen base (transfer learning) or a frozen prefix of it (fine-tuning the top), the frozen
layers compute the same activations for an image in every epoch: recomputing them is nearly all
of the work of a plain `model.fit` on a CPU. This module splits a model built by
`tlcore.models.build_model` where its frozen part ends, computes the activations that cross that
line once per image, keeps them in a bounded cache (this process's memory and
`workspace/cache/features/` on disk), and builds the small model that trains on them.

The cut. The frozen part is the preprocessing layers plus the first `frozen_layers` layers of the
base (`base.layers[:N]`, in the base's topological order, as `tlcore.models.apply_strategy` freezes
them). Networks are not chains: in ResNet a residual branch skips over layers and in EfficientNet
the squeeze-excite branch rejoins later, so the cut is the *set* of tensors produced by a frozen
layer and consumed by a trainable one (or returned by the base). Freezing ResNet50 at 168 cuts two
tensors: `conv5_block2_out` (waiting for the last residual add) and `conv5_block3_1_relu`. With
the whole base frozen the cut is the base's output, moved past the head's global average pooling
when the head starts with one (pooling has no weights, and the pooled features are 49 times
smaller at 224 pixels).

The trainable part. `Cut.trainable_model()` takes the cut tensors and returns class probabilities:
the base layers after the cut (sharing their variables with the full model), called with
`training=False` so BatchNormalization keeps its ImageNet statistics exactly as in
`tlcore.models.trainable_view`, then the head with the `training` flag of `fit` (its dropout stays
active). Training it trains the full model, which stays the one model a run saves, evaluates and
exports.

The cache. Entries are keyed by everything the activations depend on: the dataset (its id is a
hash of its content and split), the backbone, the image size, the cut, the compute dtype, the
library versions, and a hash of the values of every weight in the frozen part. Hashing the loaded
weights rather than naming the weights file catches every change that matters (another file, a
file replaced in place, another random seed for `weights="none"`) and ignores those that cannot
change the activations. The memory budget bounds what a run may cache and train on (bigger cuts
fall back to the full model, with the reason); the disk budget bounds the folder, evicting the
least recently used entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tlcore import cache_folders, settings
from tlcore.images import decode_files
from tlcore.models import get_base, get_head, preprocessing_layers

if TYPE_CHECKING:
    import tensorflow as tf

    from tlcore.workspace import Workspace

FEATURES_FORMAT = 1
CACHE_FOLDER = "features"
FEATURE_BATCH_SIZE = 32


SPLITS = ("train", "val")

# Head layers without weights or randomness that may join the frozen part: they shrink what is cached.
_FOLDABLE_HEAD_LAYERS = (keras.layers.GlobalAveragePooling2D,)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Budget:
    """Limits of the feature cache, in bytes.

    memory: the most cached activations a run may hold in memory to train on; a cut that needs more
        trains the full model instead. Also bounds what this process keeps between runs.
    disk: the most the cache folder may hold; the least recently used entries are evicted first.
    """

    memory: int = 2 * 2**30
    disk: int = 4 * 2**30

    @classmethod
    def from_env(cls) -> Budget:
        """The budget from `TLCORE_FEATURES_MEMORY_BUDGET` and `TLCORE_FEATURES_DISK_BUDGET`.

        Values are bytes, optionally with a binary unit: `"512M"`, `"2G"`, `"1.5GiB"`; unset means the
        defaults (2 GiB in memory, 4 GiB on disk).
        """
        return cls(memory=settings.features_memory_budget(), disk=settings.features_disk_budget())


class Cut:
    """A model split where its frozen part ends: what to cache, and what trains on the cache.

    Build it with `cut_model`. Attributes:
        frozen_layers: the number of frozen base layers the split was made for.
        names: the cut tensors, as `"<producing layer>:<output index>"` (`"head/avg_pool:0"` when
            the head's pooling joined the frozen part).
        shapes: the shape of each cut tensor for one image.
        suffix_layers: how many base layers run in every training step (0 when the whole base is frozen).
        image_size: the model's square input side in pixels.
    """

    def __init__(self, model: keras.Model, frozen_layers: int) -> None:
        base, head = get_base(model), get_head(model)
        if not 1 <= frozen_layers <= len(base.layers):
            raise ValueError(
                f"A cut needs between 1 and {len(base.layers)} frozen base layers; "
                f"received frozen_layers={frozen_layers!r}."
            )
        self.frozen_layers = frozen_layers
        self.image_size = int(model.input.shape[1])
        self._preprocessing = preprocessing_layers(model)
        self._base = base
        self._pool: keras.layers.Layer | None = None
        self._suffix: keras.Model | None = None
        self._traced: dict[bool, Callable[..., Any]] = {}  # the traced frozen part, by jit_compile

        if frozen_layers == len(base.layers) and isinstance(head.layers[1], _FOLDABLE_HEAD_LAYERS):
            self._pool = head.layers[1]
            self._frozen_base = base
            self._head_part = keras.Model(self._pool.output, head.output, name="head_after_pooling")
            self.names: tuple[str, ...] = (f"head/{self._pool.name}:0",)
            self.shapes: tuple[tuple[int, ...], ...] = (tuple(self._pool.output.shape[1:]),)
            self.suffix_layers = 0
            return

        tensors = crossing_tensors(base, frozen_layers)
        self.names = tuple(_tensor_name(t) for t in tensors)
        self.shapes = tuple(tuple(int(d) for d in t.shape[1:]) for t in tensors)
        self.suffix_layers = len(base.layers) - frozen_layers
        self._head_part = head
        if self.suffix_layers:
            self._frozen_base = keras.Model(base.input, tensors, name="frozen_prefix")
            self._suffix = keras.Model(tensors, base.output, name="trainable_suffix")
        else:
            self._frozen_base = base

    @property
    def bytes_per_image(self) -> int:
        """The cached float32 activations of one image."""
        return sum(4 * int(np.prod(shape)) for shape in self.shapes)

    def frozen_weights_digest(self) -> str:
        """A hash of the values of every weight in the frozen part (preprocessing and frozen base layers)."""
        digest = hashlib.sha256()
        layers = [*self._preprocessing, *self._base.layers[: self.frozen_layers]]
        for layer in layers:
            for variable in layer.weights:
                value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
                digest.update(f"{layer.name}/{variable.name}{value.shape}{value.dtype}".encode())
                digest.update(value.tobytes())
        return digest.hexdigest()

    def compute(
        self,
        images: np.ndarray | Sequence[str | os.PathLike[str]],
        progress: Progress | None = None,
        batch_size: int = FEATURE_BATCH_SIZE,
        jit_compile: bool = False,
    ) -> tuple[np.ndarray, ...]:
        """Run the frozen part over `images` and return the cut's activations, one float32 array per cut tensor.

        images: decoded images (uint8, `(n, size, size, 3)`, such as the decoded-image cache's memory-mapped
            arrays), or image files, decoded on the way by `tlcore.images.decode_files` exactly as every
            other reader decodes them.
        progress: called after every batch with the number of images done so far.
        jit_compile: compile the frozen part with XLA (helps on GPUs, hurts on CPUs).

        Files are decoded in parallel on every core, ahead of the batch the model is computing;
        results go straight into preallocated arrays.
        """
        import tensorflow as tf

        size = self.image_size
        if isinstance(images, np.ndarray) and (images.shape[1:] != (size, size, 3) or images.dtype != np.uint8):
            raise ValueError(
                f"`images` must be uint8 of shape (n, {size}, {size}, 3); received {images.dtype} "
                f"of shape {images.shape}."
            )
        outputs = tuple(np.empty((len(images), *shape), dtype="float32") for shape in self.shapes)
        if not len(images):
            return outputs
        if jit_compile not in self._traced:
            self._traced[jit_compile] = tf.function(
                tf.autograph.experimental.do_not_convert(self._forward_pixels),
                input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8)],
                jit_compile=jit_compile,
            )
        forward = self._traced[jit_compile]
        done = 0
        for batch in self._batches(images, batch_size):
            values = forward(batch)
            count = int(batch.shape[0])
            for target, value in zip(outputs, values, strict=True):
                target[done : done + count] = value.numpy()
            done += count
            if progress is not None:
                progress(done)
        return outputs

    def _batches(self, images: np.ndarray | Sequence[str | os.PathLike[str]], batch_size: int) -> Iterator[Any]:
        """uint8 batches: slices of decoded images, or files decoded in parallel ahead of the model."""
        if isinstance(images, np.ndarray):
            for start in range(0, len(images), batch_size):
                yield images[start : start + batch_size]
            return
        size = self.image_size
        batch: list[np.ndarray] = []
        for pixels in decode_files(images, size):
            batch.append(pixels)
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    def _forward_pixels(self, pixels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        import tensorflow as tf

        return self.forward(tf.cast(pixels, tf.float32))

    def forward(self, images: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The frozen part on a batch of float32 RGB images (0-255): the cut's activations, as float32."""
        import tensorflow as tf

        x = images
        for layer in self._preprocessing:
            x = layer(x)
        x = self._frozen_base(x, training=False)
        if self._pool is not None:
            x = self._pool(x)
        return tuple(tf.cast(value, tf.float32) for value in keras.tree.flatten(x))

    def trainable_model(self) -> keras.Model:
        """The model to `fit` on cached activations: cut tensors in, class probabilities out.

        It shares every variable with the full model. The base layers after the cut run with
        `training=False` (BatchNormalization in inference mode, as in `tlcore.models.trainable_view`);
        the head gets `fit`'s flag, so its dropout is active while training.
        """
        suffix, head_part = self._suffix, self._head_part
        single = len(self.names) == 1

        class _CachedFeaturesView(keras.Model):
            def __init__(self) -> None:
                super().__init__(name="trainable_on_cached_features")
                self.suffix, self.head_part = suffix, head_part

            def call(self, inputs: Any, training: bool | None = None) -> Any:
                x = inputs
                if self.suffix is not None:
                    x = self.suffix(x if single else list(x), training=False)
                return self.head_part(x, training=training)

        return _CachedFeaturesView()

    def identity(self) -> dict[str, Any]:
        """What the cut's activations depend on, apart from the dataset and backbone (see `cache_key`)."""
        return {
            "frozen_layers": self.frozen_layers,
            "names": list(self.names),
            "shapes": [list(shape) for shape in self.shapes],
            "image_size": self.image_size,
            "compute_dtype": str(self._base.layers[-1].compute_dtype),
            "weights_sha256": self.frozen_weights_digest(),
        }


def cut_model(model: keras.Model, frozen_layers: int) -> Cut:
    """Split `model` (as built by `tlcore.models.build_model`) after its first `frozen_layers` base layers."""
    return Cut(model, frozen_layers)


def crossing_tensors(base: keras.Model, frozen_layers: int) -> list[Any]:
    """The tensors that cross from `base.layers[:frozen_layers]` to the layers after them or to the output.

    Each tensor appears once, in the order the trainable layers first use it. Raises `ValueError` if
    the base's layers are not in topological order (a frozen layer would then depend on a trainable one).
    """
    layers = base.layers
    position = {id(layer): index for index, layer in enumerate(layers)}
    uses = [
        (index, tensor)
        for index in range(1, len(layers))  # layer 0 is the input
        for tensor in keras.tree.flatten(layers[index].input)
    ]
    uses += [(len(layers), tensor) for tensor in keras.tree.flatten(base.output)]
    crossing: list[Any] = []
    for consumer, tensor in uses:
        producer = position[id(tensor._keras_history.operation)]
        if producer >= consumer:
            raise ValueError(
                f"The layers of {base.name!r} are not in topological order: layer {consumer} "
                f"({layers[consumer].name!r}) uses the output of layer {producer}."
            )
        crosses = producer < frozen_layers <= consumer
        if crosses and not any(tensor is seen for seen in crossing):
            crossing.append(tensor)
    return crossing


def _tensor_name(tensor: Any) -> str:
    history = tensor._keras_history
    return f"{history.operation.name}:{history.tensor_index}"


def prefix_has_weights(model: keras.Model, frozen_layers: int) -> bool:
    """True if some of the first `frozen_layers` base layers hold weights, i.e. caching saves compute."""
    return any(layer.weights for layer in get_base(model).layers[:frozen_layers])


def cache_key(dataset_id: str, backbone: str, cut: Cut) -> str:
    """The cache entry name for `cut`'s activations over dataset `dataset_id` (hex, 32 characters)."""
    import tensorflow as tf

    identity = {
        "format": FEATURES_FORMAT,
        "dataset": dataset_id,
        "backbone": backbone,
        **cut.identity(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NotKept:
    """Why `FeatureCache.store` left an entry off the disk: it is larger than the whole disk budget, or
    writing it failed (`error`: the system's own words, such as "No space left on device")."""

    over_budget: bool = False
    error: str = ""


@dataclass(frozen=True)
class CachedFeatures:
    """The cut's activations for both splits: `train[i]` and `val[i]` hold the i-th cut tensor."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in (*self.train, *self.val))

    def split(self, name: str) -> tuple[np.ndarray, ...]:
        if name not in SPLITS:
            raise ValueError(f"`name` must be one of {', '.join(SPLITS)}; received {name!r}.")
        return self.train if name == "train" else self.val


# Entries this process holds, most recently used last; shared by every `FeatureCache` in the process.
_memory: OrderedDict[str, CachedFeatures] = OrderedDict()


class FeatureCache:
    """Cached activations in this process's memory and under `workspace/cache/features/<key>/`.

    An entry on disk is a folder of `.npy` files (`train-0.npy`, `val-0.npy`, … one per cut
    tensor) and `meta.json`, kept as `tlcore.cache_folders` keeps every cache entry (written whole,
    least recently used evicted first); an entry that cannot be read is deleted and recomputed.
    """

    def __init__(self, workspace: Workspace, budget: Budget | None = None) -> None:
        self.root = workspace.cache_dir / CACHE_FOLDER
        self.budget = budget if budget is not None else Budget.from_env()

    def load(self, key: str, counts: dict[str, int], shapes: Sequence[tuple[int, ...]]) -> CachedFeatures | None:
        """The entry `key` if memory or disk holds it with the expected image counts and shapes, else None."""
        entry = _memory.get(key)
        if entry is not None and _fits(entry, counts, shapes):
            _memory.move_to_end(key)
            return entry
        _memory.pop(key, None)
        entry = self._load_disk(key, counts, shapes)
        if entry is not None:
            self._remember(key, entry)
        return entry

    def store(self, key: str, entry: CachedFeatures, meta: dict[str, Any] | None = None) -> NotKept | None:
        """Keep `entry` in memory and on disk, within the budget. Returns None once it is on disk, else why not."""
        self._remember(key, entry)
        if entry.nbytes > self.budget.disk:
            return NotKept(over_budget=True)
        target = self.root / key
        if cache_folders.is_complete(target):
            cache_folders.touch(target)
            return None
        try:
            cache_folders.make_room(self.root, self.budget.disk - entry.nbytes)
            staging = cache_folders.staging(self.root, key)
        except OSError as error:
            return NotKept(error=error.strerror or str(error))
        try:
            for split in SPLITS:
                for index, array in enumerate(entry.split(split)):
                    np.save(staging / f"{split}-{index}.npy", array, allow_pickle=False)
            info = {
                "format": FEATURES_FORMAT,
                "bytes": entry.nbytes,
                "counts": {split: len(entry.split(split)[0]) for split in SPLITS},
                "created": time.time(),
                **(meta or {}),
            }
            (staging / cache_folders.META_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
            cache_folders.publish(staging, target)
        except OSError as error:  # a full disk, a read-only workspace: the cache is optional
            shutil.rmtree(staging, ignore_errors=True)
            return NotKept(error=error.strerror or str(error))
        return None

    def disk_usage(self) -> int:
        """Bytes the cache folder holds in complete entries."""
        return sum(size for _, size, _ in cache_folders.entries(self.root))

    def _remember(self, key: str, entry: CachedFeatures) -> None:
        _memory.pop(key, None)
        if entry.nbytes > self.budget.memory:
            return
        while _memory and sum(e.nbytes for e in _memory.values()) + entry.nbytes > self.budget.memory:
            _memory.popitem(last=False)
        _memory[key] = entry

    def _load_disk(self, key: str, counts: dict[str, int], shapes: Sequence[tuple[int, ...]]) -> CachedFeatures | None:
        folder = self.root / key
        if not cache_folders.is_complete(folder):
            return None
        try:
            loaded = {
                split: tuple(
                    np.load(folder / f"{split}-{index}.npy", allow_pickle=False) for index in range(len(shapes))
                )
                for split in SPLITS
            }
        except (OSError, ValueError):
            cache_folders.remove(folder)
            return None
        entry = CachedFeatures(train=loaded["train"], val=loaded["val"])
        if not _fits(entry, counts, shapes):
            cache_folders.remove(folder)
            return None
        cache_folders.touch(folder)
        return entry


def _fits(entry: CachedFeatures, counts: dict[str, int], shapes: Sequence[tuple[int, ...]]) -> bool:
    for split in SPLITS:
        arrays = entry.split(split)
        if len(arrays) != len(shapes):
            return False
        for array, shape in zip(arrays, shapes, strict=True):
            if array.dtype != np.float32 or array.shape != (counts[split], *shape):
                return False
    return True


def shuffled_order(count: int, seed: int) -> tf.data.Dataset:
    """The indices `0..count-1`, reshuffled at every iteration exactly as `tlcore.pipeline` shuffles images.

    Same seed, same buffer, so the fast path sees the same batches in the same order as the full
    path. Make it once per run and pass it to `feature_batches` in every phase: its reshuffling then
    carries on from phase to phase as the full path's pipeline does.
    """
    import tensorflow as tf

    return tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)


def feature_batches(
    inputs: tuple[np.ndarray, ...],
    labels: Sequence[int],
    batch_size: int,
    order: tf.data.Dataset | None = None,
) -> tf.data.Dataset:
    """Batches of `(cut activations, labels)` to `fit` the trainable model on.

    order: the rows to take, as from `shuffled_order`; None takes them in order (for validation).
    """
    import tensorflow as tf

    if any(len(array) != len(labels) for array in inputs):
        raise ValueError(
            f"Every input must have one row per label ({len(labels)}); received {[len(array) for array in inputs]}."
        )
    tensors = tuple(tf.constant(array) for array in inputs)
    targets = tf.constant(list(labels), tf.int32)
    single = len(tensors) == 1

    def gather(rows: tf.Tensor) -> tuple[Any, tf.Tensor]:
        taken = tuple(tf.gather(tensor, rows) for tensor in tensors)
        return (taken[0] if single else taken), tf.gather(targets, rows)

    rows = order if order is not None else tf.data.Dataset.range(len(labels))
    options = tf.data.Options()
    options.deterministic = True
    return rows.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE).with_options(options)
