"""The majority-class baseline: the accuracy of a "model" that answers the largest class for every image.

A classifier is worth something only above it. On a validation set whose largest class holds 54 %
of the images, a run at 45.8 % has learned less than nothing, however its curve looks: the app and
the study show this baseline beside every run's accuracy and flag the runs at or below it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tlcore.datasets import Dataset

ACCURACY_TOLERANCE = 1e-6
"""Accuracies closer than this are equal: float32 holds about seven digits."""


@dataclass(frozen=True)
class Baseline:
    """class_name: the largest class of the split (the first in class order on a tie); accuracy: its share."""

    class_name: str
    accuracy: float

    def beaten_by(self, accuracy: float | None) -> bool:
        """Whether `accuracy` is above the baseline (a run at it has learned nothing that helps).

        Keras reports accuracies in float32, so a run at the baseline's 1/3 reads 0.33333334: only a
        difference beyond float32's precision counts as above (one more image right is far more).
        """
        return accuracy is not None and accuracy > self.accuracy + ACCURACY_TOLERANCE


def majority_baseline(dataset: Dataset, split: str = "val") -> Baseline | None:
    """The baseline on `split` of `dataset`; None when the split holds no image."""
    counts = Counter(item.label for item in dataset.items if item.split == split)
    total = sum(counts.values())
    if not total:
        return None
    label = min(counts, key=lambda index: (-counts[index], index))
    return Baseline(dataset.classes[label], counts[label] / total)
