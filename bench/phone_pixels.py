"""Benchmark: does decoding phone photos at 1/8 scale change what a model learns from them?

`end_to_end.py` trains on 250 + 250 phone-sized photos (4032×3024) once on each side and finds our
validation accuracy a little lower than plain Keras's. The two sides see different pixels: tlcore
decodes each JPEG at 1/8 scale (its DCT scaling) and shrinks it with an antialiased bilinear filter;
`image_dataset_from_directory` decodes all 12 megapixels and resizes them bilinearly without
antialiasing (`tf.image.resize`). One training run per side cannot tell a difference in the pixels
from the luck of one seed, so this script separates the two:

- **pixels**: how far each side's 224-px images are from the photos they were made from (the
  phone photos are the shared 224-px flowers upscaled), as the mean absolute difference per channel;
- **accuracy**: the frozen MobileNetV2 ×0.35 (ImageNet) runs once over each side's images, then the
  same softmax head is trained on each side's features with several seeds (10 epochs, batch 32,
  Adam 1e-3, as `end_to_end.py`), and the validation accuracies are compared seed by seed.

    KERAS_HOME=../shared/keras-home python bench/phone_pixels.py [--seeds 10] [--json out.json]

The phone zips come from `end_to_end.py`'s cache (`~/.cache/tlcore-bench`); run it once first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from end_to_end import CASES, prepare_data

from tlcore.images import decode, decode_workers

SIZE = 224


def read_zip(path: Path) -> tuple[list[str], list[bytes], list[str]]:
    """Every image of a zip of class folders, in name order: names, bytes and class names."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        return names, [archive.read(n) for n in names], [Path(n).parent.name for n in names]


def ours(blobs: list[bytes]) -> np.ndarray:
    with ThreadPoolExecutor(decode_workers()) as pool:
        return np.stack(list(pool.map(lambda blob: decode(blob, SIZE), blobs)))


def keras_way(blobs: list[bytes]) -> np.ndarray:
    """What `image_dataset_from_directory` gives: a full decode, then `tf.image.resize` (bilinear)."""
    import tensorflow as tf

    def load(blob: tf.Tensor) -> tf.Tensor:
        image = tf.image.decode_image(blob, channels=3, expand_animations=False)
        return tf.image.resize(image, (SIZE, SIZE), method="bilinear")

    data = tf.data.Dataset.from_tensor_slices(blobs).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return np.stack([image.numpy() for image in data])


def features(images: np.ndarray) -> np.ndarray:
    import keras

    base = keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), include_top=False, weights="imagenet", alpha=0.35, pooling="avg"
    )
    scaled = keras.applications.mobilenet_v2.preprocess_input(images.astype("float32"))
    return base.predict(scaled, batch_size=32, verbose=0)


def head_accuracy(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], seed: int) -> float:
    """The last epoch's validation accuracy of a softmax head trained on `train` features."""
    import keras

    keras.utils.set_random_seed(seed)
    classes = int(train[1].max()) + 1
    head = keras.Sequential([keras.Input(train[0].shape[1:]), keras.layers.Dense(classes, activation="softmax")])
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = head.fit(*train, batch_size=32, epochs=10, validation_data=val, verbose=0, shuffle=True)
    return float(history.history["val_accuracy"][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    phone, original = prepare_data(CASES["phone"]), prepare_data(CASES["photos-224"])
    sides: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"ours": {}, "plain Keras": {}}
    pixel_error: dict[str, float] = {}
    for split in ("train", "val"):
        names, blobs, labels = read_zip(getattr(phone, f"{split}_zip"))
        reference_names, reference_blobs, _ = read_zip(getattr(original, f"{split}_zip"))
        if [Path(n).stem for n in names] != [Path(n).stem for n in reference_names]:
            raise SystemExit("The phone photos and the 224-px photos do not pair up by name.")
        reference = ours(reference_blobs).astype("float32")  # 224-px JPEGs: decoded as they are, no resize
        classes = sorted(set(labels))
        targets = np.array([classes.index(label) for label in labels])
        for side, decoder in (("ours", ours), ("plain Keras", keras_way)):
            began = time.perf_counter()
            images = decoder(blobs)
            print(f"{split}: {side} decoded {len(blobs)} photos in {time.perf_counter() - began:.1f} s", flush=True)
            error = float(np.abs(images.astype("float32") - reference).mean())
            pixel_error[side] = pixel_error.get(side, 0.0) + error * len(blobs)
            sides[side][split] = (features(images), targets)
    count = sum(len(sides["ours"][split][1]) for split in ("train", "val"))
    pixel_error = {side: total / count for side, total in pixel_error.items()}
    accuracies = {
        side: [head_accuracy(data["train"], data["val"], seed) for seed in range(args.seeds)]
        for side, data in sides.items()
    }
    gaps = [a - b for a, b in zip(accuracies["ours"], accuracies["plain Keras"], strict=True)]
    result = {
        "photos": count,
        "pixel_error_vs_original": pixel_error,
        "val_accuracy_by_seed": accuracies,
        "mean": {side: statistics.mean(values) for side, values in accuracies.items()},
        "stdev": {side: statistics.stdev(values) for side, values in accuracies.items()},
        "gap_ours_minus_plain": {"mean": statistics.mean(gaps), "min": min(gaps), "max": max(gaps)},
    }
    for side in accuracies:
        print(
            f"{side:12s} pixel error {pixel_error[side]:.2f}/255  val accuracy over {args.seeds} seeds: "
            f"mean {result['mean'][side]:.3f}, sd {result['stdev'][side]:.3f}"
        )
    print(f"ours - plain, seed by seed: mean {statistics.mean(gaps):+.3f} ({min(gaps):+.3f} to {max(gaps):+.3f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
