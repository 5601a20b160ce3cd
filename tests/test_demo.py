"""The demo dataset: generated on the spot, deterministic, in the layout uploads use, and learnable."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from tlcore.datasets import ingest_zip
from tlcore.demo import SHAPES, demo_zip


def images(data: bytes) -> dict[str, list[Image.Image]]:
    """The zip's images by top-level folder."""
    found: dict[str, list[Image.Image]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            found.setdefault(name.split("/")[0], []).append(Image.open(io.BytesIO(archive.read(name))))
    return found


def roundness(image: Image.Image) -> float:
    """The shape's area over the area of the circle around it: 1 for a disc, 0.64 for a square, 0.41 for a triangle."""
    pixels = np.asarray(image, dtype=float)
    background = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
    ys, xs = np.nonzero(np.abs(pixels - background).sum(axis=2) > 180)
    radius = np.hypot(ys - ys.mean(), xs - xs.mean()).max() + 0.5
    return len(ys) / (np.pi * radius**2)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_images():
    assert demo_zip(per_class=4, size=32, seed=3) == demo_zip(per_class=4, size=32, seed=3)
    assert demo_zip(per_class=4, size=32, seed=3) != demo_zip(per_class=4, size=32, seed=4)


def test_the_zip_holds_one_folder_per_shape_at_its_root_with_jpeg_images_of_the_asked_size(demo_zip_bytes):
    found = images(demo_zip_bytes)
    assert sorted(found) == ["circles", "squares", "triangles"]
    for shapes in found.values():
        assert len(shapes) == 8
        assert all(image.format == "JPEG" and image.mode == "RGB" and image.size == (32, 32) for image in shapes)


def test_up_to_six_shapes_can_be_asked_for():
    assert sorted(images(demo_zip(classes=6, per_class=2, size=16))) == sorted(SHAPES)


@pytest.mark.parametrize(
    "arguments, received",
    [
        ({"classes": 1}, "classes=1"),
        ({"classes": 7}, "classes=7"),
        ({"per_class": 1}, "per_class=1"),
        ({"size": 8}, "size=8"),
    ],
)
def test_impossible_arguments_are_refused_quoting_what_was_received(arguments, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        demo_zip(**arguments)


def test_the_demo_zip_ingests_into_a_balanced_dataset_with_nothing_skipped(workspace, demo_zip_bytes):
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    assert dataset.classes == ("circles", "squares", "triangles") and dataset.skipped == ()
    assert dataset.counts()[["train", "val"]].values.tolist() == [[6, 2]] * 3


def test_the_classes_differ_in_shape_so_a_model_can_learn_them():
    # Fit one number per class on one seed, classify another seed's images: shape alone decides.
    centroids = {name: np.mean([roundness(i) for i in shapes]) for name, shapes in images(demo_zip(seed=0)).items()}
    unseen = images(demo_zip(per_class=20, seed=1))
    hits = [
        min(centroids, key=lambda c: abs(centroids[c] - roundness(image))) == name
        for name, shapes in unseen.items()
        for image in shapes
    ]
    assert np.mean(hits) >= 0.95
