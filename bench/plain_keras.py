"""The plain Keras way to do transfer learning, as a whole process: the baseline of `end_to_end.py`.

What the Keras guides do: unpack the zips of class folders, `keras.utils.image_dataset_from_directory`
for each split, a pretrained base with `trainable = False` called in inference mode, global average
pooling and a softmax `Dense`, `compile` with Adam and `fit` with validation after every epoch. The
model is the one tlcore builds for the same options (its default head), so the two reach the same
accuracy; nothing is cached between epochs, as in the guides, so every epoch decodes and resizes the
images again and runs the frozen base over them.

    python bench/plain_keras.py --train train.zip --val val.zip [--epochs 10] [--json]

It prints one JSON object: the validation accuracy of the last and of the best epoch, and the time
from the start of the process (its imports included) to the end of `fit`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

STARTED = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BACKBONES = {
    "mobilenet_v2_0.35": ("MobileNetV2", "mobilenet_v2", {"alpha": 0.35}),
    "mobilenet_0.25": ("MobileNet", "mobilenet", {"alpha": 0.25}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="mobilenet_v2_0.35")
    parser.add_argument("--weights", choices=("imagenet", "none"), default="imagenet")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)
    with tempfile.TemporaryDirectory(prefix="plain-keras-") as folder:
        splits = {}
        for split, source in (("train", args.train), ("val", args.val)):
            with zipfile.ZipFile(source) as archive:
                archive.extractall(Path(folder) / split)
            splits[split] = keras.utils.image_dataset_from_directory(
                Path(folder) / split,
                image_size=size,
                batch_size=args.batch_size,
                seed=args.seed,
                shuffle=split == "train",
                label_mode="int",
            )
        constructor, module, options = BACKBONES[args.backbone]
        base = getattr(keras.applications, constructor)(
            input_shape=(*size, 3),
            include_top=False,
            weights="imagenet" if args.weights == "imagenet" else None,
            **options,
        )
        base.trainable = False
        inputs = keras.Input(shape=(*size, 3))
        x = getattr(keras.applications, module).preprocess_input(inputs)
        x = base(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(len(splits["train"].class_names), activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = model.fit(splits["train"], validation_data=splits["val"], epochs=args.epochs, verbose=0)
    accuracy = history.history["val_accuracy"]
    result = {
        "seconds": time.perf_counter() - STARTED,
        "val_accuracy": float(accuracy[-1]),
        "best_val_accuracy": float(max(accuracy)),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
