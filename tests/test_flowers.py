"""Real photos, real ImageNet features: pretraining must show on the flowers dataset.

Uses ../shared/ (five flower classes and genuine MobileNetV2 x0.35 weights); skipped where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tlcore import runs
from tlcore.datasets import ingest_zip
from tlcore.models import ModelSpec
from tlcore.spec import RunSpec
from tlcore.training import train_run
from tlcore.workspace import Workspace

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRAIN_ZIP = SHARED / "datasets" / "flower_photos_224_subset_train.zip"
VAL_ZIP = SHARED / "datasets" / "flower_photos_224_subset_val.zip"
WEIGHTS = SHARED / "keras-home" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TRAIN_ZIP.is_file() and WEIGHTS.is_file()), reason="../shared/ is not on this machine"),
]


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("flowers"))
    return workspace, ingest_zip(TRAIN_ZIP, VAL_ZIP, workspace=workspace)


def _transfer(workspace: Workspace, dataset_id: str, weights: str) -> runs.RunInfo:
    spec = RunSpec(
        dataset=dataset_id,
        epochs=5,
        batch_size=32,
        learning_rate=1e-3,
        model=ModelSpec(
            backbone="mobilenet_v2_0.35", weights=weights, image_size=224, num_classes=5, strategy="transfer"
        ),
    )
    return train_run(workspace, runs.create_run(spec, workspace).id)


def test_imagenet_features_beat_random_features_by_far(flowers):
    workspace, dataset = flowers
    assert dataset.counts()["train"].sum() == 1000
    pretrained = _transfer(workspace, dataset.id, str(WEIGHTS))
    random = _transfer(workspace, dataset.id, "none")
    assert pretrained.status == random.status == "completed"
    assert pretrained.best_val_accuracy >= 0.82  # a linear classifier on these features reaches ~0.87
    assert random.best_val_accuracy <= pretrained.best_val_accuracy - 0.3
    listed = {r.id: r.best_val_accuracy for r in runs.list_runs(workspace)}
    assert listed[pretrained.id] == pretrained.best_val_accuracy
