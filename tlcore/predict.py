"""Prediction: a run's model loaded once, fed the same pixels training fed it.

The app's "Try it", `python -m tlcore predict`, evaluation and the export checks all go through this
module, so they can never disagree about the same photo. Every image is prepared by `tlcore.images`,
exactly as the training data was: a new image (a file or uploaded bytes) by `images.load_image`, an
image already stored in a dataset by `images.load_images`.

A run's model (`best.keras`) takes raw RGB pixels in [0, 255] and returns softmax probabilities: its
preprocessing is inside it, so nothing else is needed. It is loaded with Keras's `safe_mode` on.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.errors import RunError
from tlcore.i18n import Message, literal, msg
from tlcore.images import ImageSource, load_image, source_name

if TYPE_CHECKING:
    import keras
    import numpy as np

    from tlcore.workspace import Workspace

DEFAULT_TOP_K = 5
BATCH_SIZE = 32


@dataclass(frozen=True)
class Prediction:
    """The class probabilities the model gives one image.

    name: the image's file name (or the name it was uploaded under).
    classes: the run's class names, in output order.
    probabilities: one per class, summing to 1.
    """

    name: str
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def index(self) -> int:
        """The index of the most probable class."""
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def label(self) -> str:
        return self.classes[self.index]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.index]

    def top(self, k: int = DEFAULT_TOP_K) -> list[tuple[str, float]]:
        """The `k` most probable classes as `(class, probability)`, most probable first."""
        order = sorted(range(len(self.probabilities)), key=lambda i: (-self.probabilities[i], i))
        return [(self.classes[i], self.probabilities[i]) for i in order[: max(1, k)]]

    def to_dict(self, k: int = DEFAULT_TOP_K) -> dict[str, Any]:
        return {
            "image": self.name,
            "predicted": self.label,
            "confidence": self.confidence,
            "top": [{"class": name, "probability": p} for name, p in self.top(k)],
        }


def model_stamp(path: Path) -> dict[str, int]:
    """Modification time and size of a model file: they change whenever the trainer replaces it."""
    stat = path.stat()
    return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def model_file(info: runs.RunInfo, require_finished: bool = True) -> Path:
    """The run's `best.keras`, or a `RunError` saying why there is none to use.

    require_finished: refuse runs still queued or training (evaluation and export want a model that
        no longer changes); trying a model out works on any run that has saved one.
    """
    if info.spec is None:
        raise RunError("model.damaged_run", id=info.id, error=info.error or literal(""))
    status = runs.RunState(info.status).message
    if require_finished and info.active:
        raise RunError("model.run_not_finished", name=info.name, status=status)
    path = info.dir / runs.BEST_MODEL_FILE
    if not path.is_file():
        if info.active:
            raise RunError("model.none_saved_yet", name=info.name, file=runs.BEST_MODEL_FILE)
        raise RunError("model.none_saved", name=info.name, file=runs.BEST_MODEL_FILE, status=status)
    return path


def _load_failure(path: Path, exc: Exception) -> Message:
    """Why Keras could not load the model file `path`, in a few words."""
    if not zipfile.is_zipfile(path):
        return msg("model.not_keras_file", file=path.name)
    message = " ".join(str(exc).split())
    if "safe_mode" in message:
        return msg("model.carries_code", file=path.name)
    return literal(f"{type(exc).__name__}: {message[:120]}")


def read_labels(run_dir: Path) -> tuple[str, ...]:
    """The class names of a run, in the model's output order (`labels.txt`)."""
    try:
        text = (run_dir / runs.LABELS_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise RunError(
            "model.labels_unreadable", id=run_dir.name, file=runs.LABELS_FILE, error=exc.strerror or str(exc)
        ) from None
    return tuple(line for line in text.split("\n") if line)


class Predictor:
    """A run's model, loaded once, with its class names and input size.

    Build one with `Predictor.load`; it is current for as long as `stamp` matches `model_stamp` of the
    run's `best.keras` (the app caches it on that key).
    """

    def __init__(
        self, run_id: str, model: keras.Model, classes: Sequence[str], image_size: int, stamp: dict[str, int]
    ) -> None:
        self.run_id = run_id
        self.model = model
        self.classes = tuple(classes)
        self.image_size = image_size
        self.stamp = stamp

    @classmethod
    def load(cls, workspace: Workspace, run_id: str, require_finished: bool = False) -> Predictor:
        """Load the run's `best.keras` (safe_mode on); see `model_file` for `require_finished`."""
        import keras

        info = runs.load_run(workspace, run_id)
        path = model_file(info, require_finished)
        classes = read_labels(info.dir)
        stamp = model_stamp(path)
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            IndexError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
        ) as exc:
            # Whatever a damaged or crafted file makes Keras raise: ValueError (not a zip, safe mode
            # refusing a Lambda layer, bad JSON), KeyError (no config.json), TypeError (unknown class)...
            raise RunError("model.unloadable", name=info.name, reason=_load_failure(path, exc)) from None
        if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
            raise RunError("model.not_a_classifier", name=info.name, outputs=len(model.outputs))
        outputs = int(model.outputs[0].shape[-1])
        if outputs != len(classes):
            raise RunError(
                "model.labels_mismatch",
                name=info.name,
                outputs=outputs,
                file=runs.LABELS_FILE,
                classes=msg("count.classes", n=len(classes)),
            )
        return cls(info.id, model, classes, info.spec.model.image_size, stamp)

    def probabilities(self, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Class probabilities, shape (n, classes), for uint8 images of shape (n, size, size, 3)."""
        import numpy as np

        if len(images) == 0:
            return np.zeros((0, len(self.classes)), dtype="float32")
        return self.model.predict(images.astype("float32"), batch_size=batch_size, verbose=0)

    def predict(self, sources: Sequence[ImageSource], names: Sequence[str] | None = None) -> list[Prediction]:
        """Predict each image in `sources`; `names` label them (default: their file names)."""
        import numpy as np

        if names is None:
            names = [source_name(source, f"image {i + 1}") for i, source in enumerate(sources)]
        images = np.zeros((len(sources), self.image_size, self.image_size, 3), dtype="uint8")
        for i, (source, name) in enumerate(zip(sources, names, strict=True)):
            images[i] = load_image(source, self.image_size, name)
        return [
            Prediction(name, self.classes, tuple(float(p) for p in row))
            for name, row in zip(names, self.probabilities(images), strict=True)
        ]

    def grad_cam(self, image: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """A Grad-CAM heat map (Selvaraju et al., ICCV 2017) of where `image` made the model see a class.

        image: one uint8 image of shape (size, size, 3), as `tlcore.images.load_image` returns it.
        class_index: the class to explain; None explains the predicted class.
        Returns: float32 (size, size) in [0, 1], 1 where the base's last feature map pushed the class most.
            The map is as coarse as that feature map (7×7 for a 224-px ResNet50, 1×1 at 32 px).
        """
        import numpy as np
        import tensorflow as tf

        from tlcore.models import get_base, get_head, preprocessing_layers

        x = tf.convert_to_tensor(image[None].astype("float32"))
        for layer in preprocessing_layers(self.model):
            x = layer(x)
        features = get_base(self.model)(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(features)
            probabilities = get_head(self.model)(features, training=False)
            if class_index is None:
                class_index = int(tf.argmax(probabilities[0]))
            score = probabilities[:, class_index]
        gradients = tape.gradient(score, features)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))[0]
        peak = float(tf.reduce_max(cam))
        cam = cam / peak if peak > 0 else cam
        resized = tf.image.resize(cam[..., None], (self.image_size, self.image_size), method="bilinear")
        return np.clip(resized.numpy()[..., 0], 0.0, 1.0).astype("float32")
