"""Input pipelines: images from an ingested dataset as batched `tf.data` datasets.

Every image is decoded and resized once, kept in memory as uint8 (a 224-px image is 150 KB, so a
thousand-photo dataset costs 150 MB), then shuffled, augmented, batched and prefetched each epoch.
A dataset read in place from a server folder (`tlcore.datasets.ingest_folder`), or one whose decoded
images would exceed `TLCORE_PIPELINE_MEMORY` bytes (default 4 GiB), is streamed instead: files are
read and decoded in parallel, ahead of the model, every epoch, in the same seeded order, so the
batches are the same as in memory.
Models take raw RGB in [0, 255]: the backbone's own scaling is a layer inside the model
(`tlcore.models`), and images are decoded by `tlcore.images`, as for evaluation and prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore import images, settings

if TYPE_CHECKING:
    import tensorflow as tf

    from tlcore.datasets import Dataset
    from tlcore.spec import Augmentation


def streams_from_disk(dataset: Dataset, image_size: int) -> bool:
    """Whether `make_pipelines` reads `dataset` from disk every epoch rather than keeping it in memory."""
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
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation datasets of `(images float32 0-255, labels int32)` batches.

    Training batches are reshuffled every epoch (seeded, so a run is repeatable) and augmented when
    `augmentation` is active; validation batches are neither.
    train_rows: the training images to use, as rows of `dataset.files("train")` (a run on part of
        the data, `tlcore.datasets.stratified_rows`); None uses them all.
    """
    import tensorflow as tf

    train_paths, train_labels = dataset.files("train")
    if train_rows is not None:
        train_paths, train_labels = [train_paths[i] for i in train_rows], [train_labels[i] for i in train_rows]
    val_paths, val_labels = dataset.files("val")
    streamed = streams_from_disk(dataset, image_size)

    def examples(paths: list[Path], labels: list[int]) -> tf.data.Dataset:
        """`(image or file name, label)` pairs; shuffling file names shuffles like images (same seed, same count)."""
        sources = [str(p) for p in paths] if streamed else images.load_images(paths, image_size)
        return tf.data.Dataset.from_tensor_slices((sources, tf.constant(labels, tf.int32)))

    def decoded(pairs: tf.data.Dataset) -> tf.data.Dataset:
        if not streamed:
            return pairs
        return pairs.map(
            lambda path, label: (images.decode_file(path, image_size), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    options = tf.data.Options()
    options.deterministic = True

    train = examples(train_paths, train_labels).shuffle(len(train_paths), seed=seed, reshuffle_each_iteration=True)
    train = decoded(train).batch(batch_size).map(_to_float)
    if augmentation is not None and augmentation.active:
        layers = augmentation_layers(augmentation, seed)

        def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            for layer in layers:
                images = layer(images, training=True)
            return images, labels

        train = train.map(augment)
    train = train.prefetch(tf.data.AUTOTUNE).with_options(options)

    val = decoded(examples(val_paths, val_labels)).batch(batch_size).map(_to_float)
    val = val.prefetch(tf.data.AUTOTUNE).with_options(options)
    return train, val


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    import tensorflow as tf

    return tf.cast(images, tf.float32), labels
