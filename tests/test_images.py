"""Images become the pixels a model sees in one way, whichever way they come in, and once per dataset and size."""

from __future__ import annotations

import errno
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_spec
from PIL import Image

from tlcore import decoded, export, features, runs
from tlcore.datasets import ingest_zip
from tlcore.decoded import DecodedCache
from tlcore.evaluation import evaluate
from tlcore.images import decode, load_image, load_images
from tlcore.pipeline import make_pipelines
from tlcore.predict import Predictor
from tlcore.training import train_run
from tlcore.workspace import Workspace

SIZE = 64


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like RGB image: smooth shapes of colour with a little grain."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 6, (height, width, 3))
    return np.clip(np.asarray(coarse, dtype=np.float64) + grain, 0, 255).astype(np.uint8)


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploads() -> dict[str, bytes]:
    """Per class: a photo far larger than the input (decoded by DCT scaling), a PNG, a JPEG to be rotated."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display: stored as a converted PNG
    files = {}
    for label, name in enumerate(("cats", "dogs")):
        for i in range(3):
            seed = 10 * label + i
            files[f"{name}/big{i}.jpg"] = encoded(photo(1600, 1200, seed), "JPEG", quality=90)
            files[f"{name}/flat{i}.png"] = encoded(photo(300, 200, seed + 100), "PNG")
            files[f"{name}/turned{i}.jpg"] = encoded(photo(480, 320, seed + 200), "JPEG", quality=90, exif=exif)
    return files


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_training_evaluation_prediction_and_the_export_check_see_the_same_pixels(tmp_path, uploads, monkeypatch):
    workspace = Workspace(tmp_path / "ws")
    dataset = ingest_zip(zipped(uploads), workspace=workspace, name="photos.zip")
    val, train = dataset.files("val")[0], dataset.files("train")[0]
    expected = np.stack([decode(path.read_bytes(), SIZE) for path in val])
    seen: dict[str, list[np.ndarray]] = {"feature pass": [], "model": []}
    compute, probabilities = features.Cut.compute, Predictor.probabilities

    def recording_compute(self, images, *args, **kwargs):
        seen["feature pass"].append(np.array(images))
        return compute(self, images, *args, **kwargs)

    def recording_probabilities(self, images, *args, **kwargs):
        seen["model"].append(np.array(images))
        return probabilities(self, images, *args, **kwargs)

    monkeypatch.setattr(features.Cut, "compute", recording_compute)
    monkeypatch.setattr(Predictor, "probabilities", recording_probabilities)
    spec = tiny_spec(dataset.id, num_classes=2, image_size=SIZE, epochs=1, batch_size=4)
    info = train_run(workspace, runs.create_run(spec, workspace).id)
    assert info.status == "completed", info.error
    np.testing.assert_array_equal(seen["feature pass"][1], expected, err_msg="the feature pass")

    cached = DecodedCache(workspace).load(dataset, SIZE)
    for name, pipelines in {
        "the decoded-image cache": make_pipelines(dataset, SIZE, 4, 0, decoded=cached),
        "memory": make_pipelines(dataset, SIZE, 4, 0),
    }.items():
        batches = np.concatenate([images.numpy() for images, _ in pipelines[1]])
        np.testing.assert_array_equal(batches.astype(np.uint8), expected, err_msg=f"batches from {name}")
    monkeypatch.setenv("TLCORE_PIPELINE_MEMORY", "1")  # streamed from disk, decoded every epoch
    streamed = np.concatenate([images.numpy() for images, _ in make_pipelines(dataset, SIZE, 4, 0)[1]])
    np.testing.assert_array_equal(streamed.astype(np.uint8), expected, err_msg="batches streamed from disk")

    seen["model"].clear()
    evaluate(workspace, info.id)
    np.testing.assert_array_equal(np.concatenate(seen["model"]), expected, err_msg="evaluation")

    predictor = Predictor.load(workspace, info.id)
    sources = {item.file: uploads[item.source] for item in dataset.items}
    seen["model"].clear()
    predictor.predict(val)  # `tlcore predict` and "Try it" on a validation image
    predictor.predict([sources[path.relative_to(dataset.root).as_posix()] for path in val])  # the photos as uploaded
    np.testing.assert_array_equal(seen["model"][0], expected, err_msg="prediction of stored images")
    np.testing.assert_array_equal(seen["model"][1], expected, err_msg="prediction of the uploads")

    checked = export.check_images(workspace, runs.load_run(workspace, info.id), predictor)
    np.testing.assert_array_equal(checked, load_images(val + train, SIZE), err_msg="the export check")
    np.testing.assert_array_equal(checked[: len(val)], expected, err_msg="the export check")


def test_an_ingestion_decodes_each_photo_once_for_the_default_input_size(tmp_path, uploads, monkeypatch):
    workspace = Workspace(tmp_path / "ws")
    dataset = ingest_zip(zipped(uploads), workspace=workspace, name="photos.zip")
    calls = []
    monkeypatch.setattr(decoded, "decode_files", lambda *args: calls.append(args) or iter(()))
    found = DecodedCache(workspace).ensure(dataset, decoded.INGEST_SIZE)
    assert calls == [], "training at 224 px decodes nothing again"
    for split in ("train", "val"):
        paths = dataset.files(split)[0]
        np.testing.assert_array_equal(found.split(split), np.stack([load_image(p, 224) for p in paths]))


def test_a_photo_far_larger_than_the_input_decodes_at_scale_to_nearly_the_average_of_its_pixels():
    import tensorflow as tf

    data = encoded(photo(2400, 1800, seed=5), "JPEG", quality=90)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
    exact = tf.image.resize(full, (224, 224), method="area").numpy()  # the exact average of the full-size pixels
    error = np.abs(decode(data, 224) - exact)
    # Decoded at 1/8 scale (300x225), then resized: within a grey level on average, a few at most. (A full
    # decode and TensorFlow's antialiased resize, as before, came within a third of one on this image, and
    # further than the scaled decode on the shared flower photos: see bench/README.md.)
    assert error.mean() < 1.0 and error.max() <= 4.0


def test_a_dataset_over_the_budget_or_on_a_full_disk_is_decoded_as_it_streams(tmp_path, uploads, monkeypatch):
    workspace = Workspace(tmp_path / "ws")
    monkeypatch.setenv("TLCORE_DECODED_CACHE_BUDGET", "100K")
    dataset = ingest_zip(zipped(uploads), workspace=workspace, name="photos.zip")
    assert DecodedCache(workspace).ensure(dataset, SIZE) is None
    assert not (workspace.cache_dir / "decoded").exists() or not any((workspace.cache_dir / "decoded").iterdir())
    monkeypatch.delenv("TLCORE_DECODED_CACHE_BUDGET")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(decoded, "_write_npy", full_disk)
    assert DecodedCache(workspace).ensure(dataset, SIZE) is None
    assert [p.name for p in (workspace.cache_dir / "decoded").iterdir()] == [], "nothing half written is left"
    spec = tiny_spec(dataset.id, num_classes=2, image_size=SIZE, epochs=1, batch_size=4)
    assert train_run(workspace, runs.create_run(spec, workspace).id).status == "completed"


def test_a_damaged_entry_is_dropped_and_decoded_again(tmp_path, uploads):
    workspace = Workspace(tmp_path / "ws")
    dataset = ingest_zip(zipped(uploads), workspace=workspace, name="photos.zip")
    first = np.array(DecodedCache(workspace).ensure(dataset, SIZE).split("val"))  # a copy: the file is cut below
    entry = workspace.cache_dir / "decoded" / decoded.entry_key(dataset.id, SIZE)
    with open(entry / "val.npy", "r+b") as handle:
        handle.truncate(1000)
    assert DecodedCache(workspace).load(dataset, SIZE) is None and not entry.exists()
    again = DecodedCache(workspace).ensure(dataset, SIZE)
    np.testing.assert_array_equal(again.split("val"), first)


def test_images_decoded_for_an_evaluation_come_from_the_cache_in_any_order(tmp_path, uploads):
    workspace = Workspace(tmp_path / "ws")
    dataset = ingest_zip(zipped(uploads), workspace=workspace, name="photos.zip")
    cached = DecodedCache(workspace).ensure(dataset, SIZE)
    items = list(reversed(dataset.items))
    expected = np.stack([decode(Path(dataset.path(item)).read_bytes(), SIZE) for item in items])
    np.testing.assert_array_equal(cached.of_items(items), expected)
