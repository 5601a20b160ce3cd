"""Evaluation of a finished run: accuracy, per-class precision / recall / F1, the confusion matrix, the mistakes.

A run is evaluated on the validation split of the dataset it trained on, or on an extra test zip of
class folders that the user gives. The model sees the images exactly as in training: read from the
decoded-image cache when it holds the dataset at the model's input size (`tlcore.decoded`), else
decoded now by the same function (`tlcore.images.load_images`, see `tlcore.predict`).

Results are kept in the run folder, so evaluating twice costs nothing and the app, the CLI and the
tests read the same numbers:

- `evaluation.json`: the validation split;
- `evaluation-test-<dataset-id>.json`: a test zip (its dataset id is a hash of the zip's bytes).

Each file holds the metrics and one record per image (stored file, path inside the upload, true
label, predicted label, confidence, every class probability), and the key it was computed for: the
data evaluated and `best.keras`'s modification time and size. A file whose key no longer matches
(the model was replaced) is recomputed.

A test zip is ingested like any upload (safely, content-addressed), but into `cache/test-data/`, a
workspace of its own, so held-out test images never appear among the datasets one can train on.
All of its images are evaluated, whatever split ingestion gave them; its class folders must be
classes of the run (a subset is fine).

Conventions: rows of the confusion matrix are true classes, columns predicted classes. A class that
is never predicted has precision 0, a class with no images recall 0, and F1 is 0 where precision +
recall is 0 (scikit-learn's `zero_division=0`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.decoded import DecodedCache, DecodedImages
from tlcore.errors import EvaluationError, TLCoreError
from tlcore.i18n import language_from_environment, msg
from tlcore.predict import Predictor, model_file, model_stamp
from tlcore.wording import columns, display_width
from tlcore.workspace import Workspace, read_json, write_json_atomic

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from tlcore.datasets import Dataset, Item, ZipSource

EVALUATION_FORMAT = 1
VAL_FILE = "evaluation.json"
TEST_DATA_FOLDER = "test-data"
CHUNK = 64  # images decoded and predicted at a time: bounds memory, paces the progress bar

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class, and its number of images (support)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ImageResult:
    """What the model said about one evaluated image.

    file: the stored image, relative to the dataset folder (`files/000012.jpg`).
    source: its path inside the uploaded zip, as people know it.
    label, predicted: class indices (into `Evaluation.classes`).
    confidence: the predicted class's probability.
    probabilities: one per class.
    """

    file: str
    source: str
    label: int
    predicted: int
    confidence: float
    probabilities: tuple[float, ...]

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class Evaluation:
    """A run's evaluation on one set of images.

    data: what was evaluated: `kind` ("val" or "test"), `dataset` (id), `name` (the upload's name).
    model: `best.keras`'s `mtime_ns` and `size` when it was evaluated.
    confusion: `confusion[t][p]` counts images of true class t predicted as p.
    dataset: the dataset the `images` come from (where each image is read from).
    cached: True when read back from the run folder rather than computed now.
    """

    run_id: str
    classes: tuple[str, ...]
    data: dict[str, Any]
    model: dict[str, int]
    accuracy: float
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]
    images: tuple[ImageResult, ...] = field(repr=False)
    created: str
    path: Path
    dataset: Dataset = field(repr=False)
    cached: bool = False

    @property
    def macro(self) -> dict[str, float]:
        """Unweighted means of precision, recall and F1 over the classes."""
        n = len(self.per_class)
        return {key: sum(getattr(c, key) for c in self.per_class) / n for key in ("precision", "recall", "f1")}

    def misclassified(self) -> list[ImageResult]:
        """The wrongly classified images, the most confident mistakes first."""
        wrong = [image for image in self.images if not image.correct]
        return sorted(wrong, key=lambda image: (-image.confidence, image.file))

    def image_path(self, image: ImageResult) -> Path:
        """Where `image` is read from: the dataset's folder, or the server folder for images read in place."""
        item = self._items.get((image.file, image.source))
        return self.dataset.path(item) if item is not None else self.dataset.root / image.file

    @functools.cached_property
    def _items(self) -> dict[tuple[str, str], Item]:
        return {(item.file, item.source): item for item in self.dataset.items}

    def per_class_frame(self) -> pd.DataFrame:
        """Columns `class`, `precision`, `recall`, `f1`, `support`, one row per class."""
        import pandas as pd

        rows = [
            {"class": c.name, "precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
            for c in self.per_class
        ]
        return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion matrix in long form: columns `true`, `predicted`, `count` (every cell, zeros too)."""
        import pandas as pd

        rows = [
            {"true": self.classes[t], "predicted": self.classes[p], "count": count}
            for t, row in enumerate(self.confusion)
            for p, count in enumerate(row)
        ]
        return pd.DataFrame(rows, columns=["true", "predicted", "count"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in the run folder (and printed by `evaluate --json`)."""
        return {
            "format": EVALUATION_FORMAT,
            "run": self.run_id,
            "created": self.created,
            "data": self.data,
            "model": self.model,
            "classes": list(self.classes),
            "accuracy": self.accuracy,
            "macro": self.macro,
            "per_class": [asdict(c) for c in self.per_class],
            "confusion": [list(row) for row in self.confusion],
            "misclassified": len(self.misclassified()),
            "images": [{**asdict(image), "probabilities": list(image.probabilities)} for image in self.images],
        }

    def summary(self, lang: str | None = None) -> str:
        """The evaluation as readable text in `lang` (None: the environment's language): accuracy, the
        per-class table, the confusion matrix."""
        lang = lang or language_from_environment()
        images = msg("count.images", n=len(self.images))
        if self.data["kind"] == "val":
            title = msg("evaluation.summary_val", run=self.run_id, name=self.data["name"], images=images)
        else:
            title = msg("evaluation.summary_test", run=self.run_id, name=self.data["name"], images=images)
        accuracy = msg(
            "evaluation.summary_accuracy", accuracy=f"{self.accuracy:.4f}", misclassified=len(self.misclassified())
        )
        stored = " " + msg("evaluation.stored_result").render(lang) if self.cached else ""
        lines = [title.render(lang) + stored, accuracy.render(lang), ""]
        headings = [
            msg("evaluation.column_class"),
            msg("evaluation.column_precision"),
            msg("evaluation.column_recall"),
            msg("evaluation.column_f1"),
            msg("evaluation.column_support"),
        ]
        header = [heading.render(lang) for heading in headings]
        rows = [
            [c.name, f"{c.precision:9.4f}", f"{c.recall:6.4f}", f"{c.f1:6.4f}", f"{c.support:7d}"]
            for c in self.per_class
        ]
        macro = self.macro
        average = msg("evaluation.macro_average").render(lang)
        rows.append([average, f"{macro['precision']:9.4f}", f"{macro['recall']:6.4f}", f"{macro['f1']:6.4f}"])
        lines += columns([header, *rows])
        lines += ["", msg("evaluation.confusion_matrix").render(lang)]
        width = max(display_width(header[0]), *(display_width(name) for name in self.classes))
        cell = max(5, *(len(str(n)) for row in self.confusion for n in row))
        lines.append(" " * width + "  " + " ".join(f"{i:>{cell}}" for i in range(len(self.classes))))
        for i, (name, row) in enumerate(zip(self.classes, self.confusion, strict=True)):
            padded = name + " " * (width - display_width(name))
            lines.append(f"{padded}  " + " ".join(f"{n:>{cell}}" for n in row) + f"   ({i})")
        lines += ["", msg("evaluation.summary_predictions", path=str(self.path)).render(lang)]
        return "\n".join(lines)


def evaluate(
    workspace: Workspace,
    run_id: str,
    test_zip: ZipSource | None = None,
    test_name: str | None = None,
    predictor: Predictor | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate a finished run, or return its stored evaluation if the model has not changed since.

    Args:
        test_zip: a zip of class folders to evaluate on (path, bytes or binary file object); None
            evaluates the validation split of the run's own dataset.
        test_name: the test zip's file name, for messages and the report (default: its own name).
        predictor: the run's already loaded model, to save loading it again (used if it is current).
        progress: called as `progress(done, total)` while images are predicted.

    Raises:
        RunError: the run is still training, or has no saved model.
        DatasetError: the test zip was refused (see `tlcore.datasets.ingest_zip`), or an image of a
            dataset read in place from a server folder has gone from it.
        EvaluationError: the test zip's classes are not the run's.
    """
    info = runs.load_run(workspace, run_id)
    path = model_file(info, require_finished=True)
    stamp = model_stamp(path)
    dataset, kind = _data(workspace, info, test_zip, test_name)
    result_path = info.dir / result_file(kind, dataset.id)
    stored = _read(result_path, info.id, dataset, kind, stamp)
    if stored is not None:
        return stored

    if predictor is None or predictor.run_id != info.id or predictor.stamp != stamp:
        predictor = Predictor.load(workspace, info.id, require_finished=True)
    label_map = _label_map(dataset, predictor.classes, kind, info.name)
    items = [item for item in dataset.items if kind == "test" or item.split == "val"]
    if not items:
        raise EvaluationError("evaluation.no_images", name=dataset.name)
    dataset.check_source()
    decoded = DecodedCache(workspace if kind == "val" else held_out_workspace(workspace)).load(
        dataset, predictor.image_size
    )
    probabilities = _predict_items(predictor, dataset, items, decoded, progress)
    labels = [label_map[item.label] for item in items]
    evaluation = _build(info.id, predictor.classes, dataset, kind, stamp, items, labels, probabilities, result_path)
    write_json_atomic(result_path, evaluation.to_dict())
    return evaluation


def load_evaluation(workspace: Workspace, run_id: str, test_dataset: str | None = None) -> Evaluation | None:
    """The run's stored evaluation (validation split, or the test data `test_dataset`) if still current.

    None when there is none, or when `best.keras` changed after it was computed. Never computes.
    """
    from tlcore.datasets import load_dataset

    info = runs.load_run(workspace, run_id)
    try:
        stamp = model_stamp(model_file(info, require_finished=True))
        if test_dataset is None:
            dataset, kind = load_dataset(workspace, info.spec.dataset), "val"
        else:
            dataset, kind = load_dataset(held_out_workspace(workspace), test_dataset), "test"
    except (TLCoreError, OSError):
        return None
    return _read(info.dir / result_file(kind, dataset.id), info.id, dataset, kind, stamp)


def result_file(kind: str, dataset_id: str) -> str:
    """The file name an evaluation is stored under in the run folder."""
    return VAL_FILE if kind == "val" else f"evaluation-test-{dataset_id}.json"


def held_out_workspace(workspace: Workspace) -> Workspace:
    """Where test zips are ingested: a workspace inside the cache, apart from the training datasets."""
    return Workspace(workspace.cache_dir / TEST_DATA_FOLDER)


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows true classes, columns predicted classes."""
    import numpy as np

    matrix = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(matrix, (np.asarray(labels, dtype="int64"), np.asarray(predicted, dtype="int64")), 1)
    return matrix


def class_metrics(matrix: np.ndarray, classes: Sequence[str]) -> list[ClassMetrics]:
    """Precision, recall, F1 and support of every class, from a confusion matrix."""
    rows = []
    for i, name in enumerate(classes):
        hits = int(matrix[i, i])
        predicted = int(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassMetrics(name, precision, recall, f1, support))
    return rows


def _data(
    workspace: Workspace, info: runs.RunInfo, test_zip: ZipSource | None, test_name: str | None
) -> tuple[Dataset, str]:
    from tlcore.datasets import ingest_zip, load_dataset

    if test_zip is None:
        return load_dataset(workspace, info.spec.dataset), "val"
    return ingest_zip(test_zip, workspace=held_out_workspace(workspace), name=test_name), "test"


def _label_map(dataset: Dataset, classes: Sequence[str], kind: str, run_name: str) -> dict[int, int]:
    """Dataset label index -> run output index, matching class folders by name."""
    unknown = [name for name in dataset.classes if name not in classes]
    if unknown:
        names, known = ", ".join(unknown), ", ".join(classes)
        if kind == "test":
            raise EvaluationError(
                "evaluation.unknown_test_classes", name=dataset.name, run=run_name, unknown=names, classes=known
            )
        raise EvaluationError(
            "evaluation.unknown_dataset_classes", name=dataset.name, run=run_name, unknown=names, classes=known
        )
    return {index: classes.index(name) for index, name in enumerate(dataset.classes)}


def _predict_items(
    predictor: Predictor,
    dataset: Dataset,
    items: Sequence[Any],
    decoded: DecodedImages | None,
    progress: Progress | None,
) -> np.ndarray:
    """Probabilities for `items`, a chunk at a time: their pixels from the decoded-image cache when it holds
    them (`decoded`), else decoded now, the same way."""
    import numpy as np

    from tlcore.images import load_images

    parts = []
    for start in range(0, len(items), CHUNK):
        if progress is not None:
            progress(start, len(items))
        chunk = items[start : start + CHUNK]
        if decoded is not None:
            images = decoded.of_items(chunk)
        else:
            images = load_images([dataset.path(item) for item in chunk], predictor.image_size)
        parts.append(predictor.probabilities(images))
    if progress is not None:
        progress(len(items), len(items))
    return np.concatenate(parts)


def _build(
    run_id: str,
    classes: Sequence[str],
    dataset: Dataset,
    kind: str,
    stamp: dict[str, int],
    items: Sequence[Any],
    labels: Sequence[int],
    probabilities: np.ndarray,
    path: Path,
) -> Evaluation:
    from tlcore.runs import now_iso

    predicted = [int(row.argmax()) for row in probabilities]
    matrix = confusion_matrix(labels, predicted, len(classes))
    images = tuple(
        ImageResult(item.file, item.source, label, guess, float(row[guess]), tuple(float(p) for p in row))
        for item, label, guess, row in zip(items, labels, predicted, probabilities, strict=True)
    )
    return Evaluation(
        run_id=run_id,
        classes=tuple(classes),
        data={"kind": kind, "dataset": dataset.id, "name": dataset.name, "images": len(items)},
        model=stamp,
        accuracy=float(sum(image.correct for image in images) / len(images)),
        per_class=tuple(class_metrics(matrix, classes)),
        confusion=tuple(tuple(int(n) for n in row) for row in matrix),
        images=images,
        created=now_iso(),
        path=path,
        dataset=dataset,
    )


def _read(path: Path, run_id: str, dataset: Dataset, kind: str, stamp: dict[str, int]) -> Evaluation | None:
    """The evaluation stored at `path` if it was computed for this data and this model, else None."""
    try:
        data = read_json(path)
        if (
            data.get("format") != EVALUATION_FORMAT
            or data.get("model") != stamp
            or data["data"].get("dataset") != dataset.id
            or data["data"].get("kind") != kind
        ):
            return None
        return Evaluation(
            run_id=run_id,
            classes=tuple(data["classes"]),
            data=data["data"],
            model=data["model"],
            accuracy=float(data["accuracy"]),
            per_class=tuple(ClassMetrics(**c) for c in data["per_class"]),
            confusion=tuple(tuple(int(n) for n in row) for row in data["confusion"]),
            images=tuple(
                ImageResult(**{**image, "probabilities": tuple(image["probabilities"])}) for image in data["images"]
            ),
            created=data["created"],
            path=path,
            dataset=dataset,
            cached=True,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
