"""Input pipelines: images from an ingested dataset as batched `tf.data` datasets.

Every image is decoded and resized once. Given the dataset's decoded images (`tlcore.decoded`, the
memory-mapped cache every run of the dataset shares), each batch is gathered from them; without,
they are decoded into memory as uint8 (a 224-px image is 150 KB, so a thousand-photo dataset costs
150 MB). Either way they are shuffled, augmented, batched and prefetched each epoch. A dataset read
in place from a server folder (`tlcore.datasets.ingest_folder`), or one whose decoded images would
exceed `TLCORE_PIPELINE_MEMORY` bytes (default 4 GiB), is streamed when the cache cannot hold it:
files are read and decoded in parallel, ahead of the model, every epoch, in the same seeded order,
so the batches are the same in all three cases.
Models take raw RGB in [0, 255]: the backbone's own scaling is a layer inside the model
(`tlcore.models`), and images are decoded by `tlcore.images`, as for evaluation and prediction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tlcore import images, settings

if TYPE_CHECKING:
    import tensorflow as tf

    from tlcore.datasets import Dataset
    from tlcore.decoded import DecodedImages
    from tlcore.spec import Augmentation


def streams_from_disk(dataset: Dataset, image_size: int) -> bool:
    """Whether `make_pipelines`, without decoded images, reads `dataset` from disk every epoch rather than
    keeping it in memory."""
    if dataset.source_dir is not None:
        return True
    return len(dataset.items) * image_size * image_size * 3 > settings.pipeline_memory()


def augmentation_layers(augmentation: Augmentation, seed: int) -> list:
    """The Keras preprocessing layers for `augmentation`, seeded, in a fixed order."""
    import keras

    layers = []
    if augmentation.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if augmentation.rotation:
        layers.append(keras.layers.RandomRotation(augmentation.rotation, fill_mode="reflect", seed=seed + 1))
    if augmentation.zoom:
        layers.append(keras.layers.RandomZoom(augmentation.zoom, fill_mode="reflect", seed=seed + 2))
    if augmentation.contrast:
        layers.append(keras.layers.RandomContrast(augmentation.contrast, seed=seed + 3))
    return layers


def make_pipelines(
    dataset: Dataset,
    image_size: int,
    batch_size: int,
    seed: int,
    augmentation: Augmentation | None = None,
    train_rows: Sequence[int] | None = None,
    decoded: DecodedImages | None = None,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation datasets of `(images float32 0-255, labels int32)` batches.

    Training batches are reshuffled every epoch (seeded, so a run is repeatable) and augmented when
    `augmentation` is active; validation batches are neither.
    train_rows: the training images to use, as rows of `dataset.files("train")` (a run on part of
        the data, `tlcore.datasets.stratified_rows`); None uses them all.
    decoded: the dataset's images decoded at `image_size` (`tlcore.decoded.DecodedCache.ensure`); None
        decodes them here.
    """
    import tensorflow as tf

    shape = (image_size, image_size, 3)
    streamed = decoded is None and streams_from_disk(dataset, image_size)

    def examples(split: str, rows: Sequence[int] | None = None) -> tf.data.Dataset:
        """`(image, row of the decoded images or file name; label)` pairs, of `rows` of the split (None: all);
        shuffling rows or file names shuffles like images (same seed, same count)."""
        paths, labels = dataset.files(split)
        indices = np.arange(len(paths)) if rows is None else np.asarray(rows, dtype=np.int64)
        paths, labels = [paths[i] for i in indices], [labels[i] for i in indices]
        if decoded is not None:
            sources = indices
        elif streamed:
            sources = [str(p) for p in paths]
        else:
            sources = images.load_images(paths, image_size)
        return tf.data.Dataset.from_tensor_slices((sources, tf.constant(labels, tf.int32)))

    def decode(path: np.bytes_) -> np.ndarray:
        return images.decode_file(os.fsdecode(path), image_size)

    def decoded_each(pairs: tf.data.Dataset) -> tf.data.Dataset:
        if not streamed:
            return pairs

        def read(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pixels = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
            return tf.ensure_shape(pixels, shape), label

        return pairs.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def gathered(batches: tf.data.Dataset, split: str) -> tf.data.Dataset:
        if decoded is None:
            return batches
        array = decoded.split(split)

        def gather(rows: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            pixels = tf.numpy_function(lambda r: array[r], [rows], tf.uint8, stateful=False)
            return tf.ensure_shape(pixels, (None, *shape)), labels

        return batches.map(gather)

    options = tf.data.Options()
    options.deterministic = True

    train_count = len(dataset.files("train")[1]) if train_rows is None else len(train_rows)
    train = examples("train", train_rows).shuffle(train_count, seed=seed, reshuffle_each_iteration=True)
    train = gathered(decoded_each(train).batch(batch_size), "train").map(_to_float)
    if augmentation is not None and augmentation.active:
        layers = augmentation_layers(augmentation, seed)

        def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            for layer in layers:
                images = layer(images, training=True)
            return images, labels

        train = train.map(augment)
    train = train.prefetch(tf.data.AUTOTUNE).with_options(options)

    val = gathered(decoded_each(examples("val")).batch(batch_size), "val").map(_to_float)
    val = val.prefetch(tf.data.AUTOTUNE).with_options(options)
    return train, val


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    import tensorflow as tf

    return tf.cast(images, tf.float32), labels
