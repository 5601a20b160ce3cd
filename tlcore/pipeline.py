"""Input pipelines: images from an ingested dataset as batched `tf.data` datasets.

Every image is decoded and resized once, kept in memory as uint8 (a 224-px image is 150 KB, so a
thousand-photo dataset costs 150 MB), then shuffled, augmented, batched and prefetched each epoch.
Models take raw RGB in [0, 255]: the backbone's own scaling is a layer inside the model
(`tlcore.models`), so the same `load_image` serves training, evaluation and prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from tlcore.datasets import Dataset
    from tlcore.spec import Augmentation


def decode_and_resize(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read one stored image file and resize it to `image_size` square, as uint8 RGB."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def load_images(paths: Sequence[str | Path], image_size: int) -> np.ndarray:
    """Decode and resize `paths` into one uint8 array of shape (n, size, size, 3)."""
    import numpy as np
    import tensorflow as tf

    if not paths:
        return np.zeros((0, image_size, image_size, 3), dtype="uint8")
    files = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    images = files.map(lambda p: decode_and_resize(p, image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return np.stack(list(images.as_numpy_iterator()))


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
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation datasets of `(images float32 0-255, labels int32)` batches.

    Training batches are reshuffled every epoch (seeded, so a run is repeatable) and augmented when
    `augmentation` is active; validation batches are neither.
    """
    import tensorflow as tf

    train_paths, train_labels = dataset.files("train")
    val_paths, val_labels = dataset.files("val")
    train_images = load_images(train_paths, image_size)
    val_images = load_images(val_paths, image_size)

    options = tf.data.Options()
    options.deterministic = True

    train = tf.data.Dataset.from_tensor_slices((train_images, tf.constant(train_labels, tf.int32)))
    train = train.shuffle(len(train_paths), seed=seed, reshuffle_each_iteration=True)
    train = train.batch(batch_size).map(_to_float)
    if augmentation is not None and augmentation.active:
        layers = augmentation_layers(augmentation, seed)

        def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            for layer in layers:
                images = layer(images, training=True)
            return images, labels

        train = train.map(augment)
    train = train.prefetch(tf.data.AUTOTUNE).with_options(options)

    val = tf.data.Dataset.from_tensor_slices((val_images, tf.constant(val_labels, tf.int32)))
    val = val.batch(batch_size).map(_to_float).prefetch(tf.data.AUTOTUNE).with_options(options)
    return train, val


def _to_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    import tensorflow as tf

    return tf.cast(images, tf.float32), labels
