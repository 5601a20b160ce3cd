"""Zip ingestion: the layouts people upload, the images they contain, and the zips that must be refused.

Every corpus is generated in memory, from tiny images, here and in `corpus.py` (which also holds the table
of refused uploads that `test_hostile_uploads.py` sends through the command line): nothing binary is committed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import unicodedata
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from corpus import PNG, REFUSED_ZIPS, class_entries, classes_zip, image_bytes, make_zip, png, zip_with_raw_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tlcore.datasets import (
    Dataset,
    Limits,
    archive,
    delete_dataset,
    ingest_zip,
    list_datasets,
    load_dataset,
)
from tlcore.errors import DatasetError
from tlcore.workspace import Workspace

# ---------------------------------------------------------------------------------------------
# Helpers (the zips themselves are built by `corpus.py`)


def understate_entries(data: bytes) -> bytes:
    """Claim a single entry in the end record, as a zip made to slip past a count check would."""
    at = data.rfind(b"PK\x05\x06")
    return data[: at + 8] + struct.pack("<HH", 1, 1) + data[at + 12 :]


def ingest(workspace: Workspace, data: bytes, **kwargs) -> Dataset:
    return ingest_zip(data, workspace=workspace, name=kwargs.pop("name", "upload.zip"), **kwargs)


def skipped(dataset: Dataset) -> dict[str, str]:
    return {s.path: s.reason.render("en") for s in dataset.skipped}


def by_source(dataset: Dataset) -> dict[str, tuple[str, str]]:
    return {item.source: (dataset.classes[item.label], item.split) for item in dataset.items}


def stored_image(dataset: Dataset, source: str) -> Image.Image:
    (item,) = [item for item in dataset.items if item.source == source]
    image = Image.open(dataset.root / item.file)
    image.load()
    return image


def assert_nothing_written(workspace: Workspace) -> None:
    assert list(workspace.datasets_dir.iterdir()) == []
    assert list(workspace.tmp_dir.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Layouts


def test_class_folders_at_the_root_become_sorted_classes_with_a_seeded_split(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes, name="shapes.zip")
    assert dataset.classes == ("circles", "squares", "triangles")
    assert dataset.name == "shapes.zip"
    assert dataset.split_source == "seeded"
    counts = dataset.counts()
    assert list(counts.columns) == ["class", "train", "val", "total"]
    assert counts["total"].tolist() == [8, 8, 8]
    assert counts["val"].tolist() == [2, 2, 2]  # 20% of 8, per class


@pytest.mark.parametrize("prefix", ["photos/", "a/b/c/", "データ/2024/"])
def test_images_inside_wrapper_folders_of_any_depth_are_found(workspace, prefix):
    data = classes_zip("cats", "dogs", prefix=prefix, extra={"README.txt": b"hello", "__MACOSX/._x": b"junk"})
    dataset = ingest(workspace, data)
    assert dataset.classes == ("cats", "dogs")
    assert len(dataset.items) == 6
    assert skipped(dataset)["README.txt"] == "not inside a class folder"


def test_images_in_subfolders_of_a_class_folder_belong_to_that_class(workspace):
    data = make_zip(
        {"cats/1.png": PNG, "cats/2019/2.png": PNG, "cats/2019/x/3.png": PNG, "dogs/1.png": PNG, "dogs/2.png": PNG}
    )
    dataset = ingest(workspace, data)
    assert by_source(dataset)["cats/2019/x/3.png"][0] == "cats"
    assert dataset.counts()["total"].tolist() == [3, 2]


@pytest.mark.parametrize(
    "train, val", [("train", "val"), ("Train", "VALIDATION"), ("train", "valid"), ("TRAIN", "Val"), ("train", "test")]
)
def test_train_and_validation_folders_are_used_as_the_given_split(workspace, train, val):
    entries = {f"{train}/{c}/{i}.png": PNG for c in ("cats", "dogs") for i in range(3)}
    entries |= {f"{val}/{c}/{i}.png": PNG for c in ("cats", "dogs") for i in range(2)}
    dataset = ingest(workspace, make_zip(entries))
    assert dataset.split_source == "given"
    assert dataset.counts()[["train", "val"]].values.tolist() == [[3, 2], [3, 2]]
    assert all(split == "val" for source, (_, split) in by_source(dataset).items() if source.startswith(val))


def test_a_test_folder_next_to_a_val_folder_is_kept_apart_and_never_trained_on(workspace):
    entries = {
        f"{split}/{c}/{i}.png": PNG for split in ("train", "val", "test") for c in ("cats", "dogs") for i in range(2)
    }
    dataset = ingest(workspace, make_zip(entries))
    assert list(dataset.counts().columns) == ["class", "train", "val", "test", "total"]
    train_files, _ = dataset.files("train")
    test_files, test_labels = dataset.files("test")
    assert len(test_files) == 4 and sorted(test_labels) == [0, 0, 1, 1]
    assert not set(train_files) & set(test_files)


def test_a_separate_validation_zip_provides_the_validation_split(workspace, tmp_path):
    val_path = tmp_path / "val.zip"
    val_path.write_bytes(classes_zip("cats", "dogs", per_class=1))
    dataset = ingest_zip(classes_zip("cats", "dogs"), val_path, workspace=workspace)
    assert dataset.split_source == "given"
    assert dataset.counts()[["train", "val"]].values.tolist() == [[3, 1], [3, 1]]


def test_seeded_split_is_reproducible_stratified_and_changes_with_the_seed(tmp_path, demo_zip_bytes):
    first = ingest(Workspace(tmp_path / "a"), demo_zip_bytes, seed=0)
    again = ingest(Workspace(tmp_path / "b"), demo_zip_bytes, seed=0)
    other = ingest(Workspace(tmp_path / "c"), demo_zip_bytes, seed=1)
    assert by_source(first) == by_source(again)
    assert first.id == again.id != other.id
    assert by_source(first) != by_source(other)
    assert other.counts()["val"].tolist() == [2, 2, 2]


def test_every_class_keeps_at_least_one_validation_and_one_training_image(workspace):
    dataset = ingest(workspace, classes_zip("cats", "dogs", per_class=2), val_fraction=0.05)
    assert dataset.counts()[["train", "val"]].values.tolist() == [[1, 1], [1, 1]]
    dataset = ingest(workspace, classes_zip("cats", "dogs", per_class=2), val_fraction=0.95)
    assert dataset.counts()[["train", "val"]].values.tolist() == [[1, 1], [1, 1]]


def test_the_split_is_stored_and_reloads_unchanged(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes)
    assert load_dataset(workspace, dataset.id) == dataset
    manifest = json.loads((dataset.root / "manifest.json").read_text(encoding="utf-8"))
    assert {item["split"] for item in manifest["items"]} == {"train", "val"}


# ---------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize(
    "fmt, mode, save",
    [
        ("PNG", "RGB", {}),
        ("JPEG", "RGB", {}),
        ("BMP", "RGB", {}),
        ("GIF", "P", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("TIFF", "RGB", {}),
        ("JPEG", "CMYK", {}),
        ("JPEG", "L", {}),
        ("PNG", "I;16", {}),
        ("PNG", "P", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "LA", {}),
        ("PNG", "L", {}),
        ("BMP", "1", {}),
        ("TIFF", "CMYK", {}),
    ],
)
def test_every_supported_format_and_colour_mode_is_stored_as_8_bit_rgb_jpeg_or_png(workspace, fmt, mode, save):
    sample = image_bytes(fmt, mode, (8, 6), **save)
    # Misleading names: formats are recognised by content, not by extension.
    data = make_zip({"a/x.txt": sample, "a/noext": sample, "b/1.png": PNG, "b/2.png": PNG})
    dataset = ingest(workspace, data)
    assert dataset.counts()["total"].tolist() == [2, 2]
    image = stored_image(dataset, "a/x.txt")
    assert image.format in ("JPEG", "PNG") and image.mode == "RGB" and image.size == (8, 6)


def test_a_plain_rgb_jpeg_is_stored_byte_for_byte(workspace):
    jpeg = image_bytes("JPEG", "RGB", (8, 8))
    dataset = ingest(workspace, make_zip({"a/1.jpg": jpeg, "a/2.jpg": jpeg, "b/1.png": PNG, "b/2.png": PNG}))
    item = next(item for item in dataset.items if item.source == "a/1.jpg")
    assert item.file.endswith(".jpg")
    assert (dataset.root / item.file).read_bytes() == jpeg


def test_an_exif_rotated_photo_is_stored_upright(workspace):
    photo = Image.new("RGB", (16, 8), (220, 20, 20))
    photo.paste((20, 20, 220), (8, 0, 16, 8))  # left half red, right half blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    dataset = ingest(
        workspace, make_zip({"a/1.jpg": buffer.getvalue(), "a/2.png": PNG, "b/1.png": PNG, "b/2.png": PNG})
    )
    upright = stored_image(dataset, "a/1.jpg")
    assert upright.format == "PNG" and upright.size == (8, 16)
    top, bottom = upright.getpixel((4, 2)), upright.getpixel((4, 13))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_transparent_pixels_become_white_and_16_bit_grey_keeps_its_brightness(workspace):
    clear = image_bytes("PNG", "RGBA", color=(0, 0, 0, 0))
    grey16 = image_bytes("PNG", "I;16", color=128 * 257)
    data = make_zip({"a/clear.png": clear, "a/grey.png": grey16, "b/1.png": PNG, "b/2.png": PNG})
    dataset = ingest(workspace, data)
    assert stored_image(dataset, "a/clear.png").getpixel((0, 0)) == (255, 255, 255)
    assert stored_image(dataset, "a/grey.png").getpixel((0, 0)) == (128, 128, 128)


def test_an_animated_gif_keeps_its_first_frame(workspace):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    dataset = ingest(
        workspace, make_zip({"a/anim.gif": buffer.getvalue(), "a/2.png": PNG, "b/1.png": PNG, "b/2.png": PNG})
    )
    red, green, blue = stored_image(dataset, "a/anim.gif").getpixel((0, 0))
    assert red > 200 and blue < 50


# ---------------------------------------------------------------------------------------------
# Files that are skipped, with their reason


def test_unusable_files_are_skipped_and_listed_with_their_reason(workspace):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG")
    noisy_jpeg = buffer.getvalue()
    data = classes_zip(
        "cats",
        "dogs",
        extra={
            "notes.txt": b"loose file at the root",
            "cats/readme.txt": b"not an image",
            "cats/cut.png": PNG[: len(PNG) // 2],
            "cats/garbled.jpg": image_bytes("JPEG")[:20] + b"\x00" * 200,
            "cats/cut.jpg": noisy_jpeg[: len(noisy_jpeg) * 2 // 3],
            "cats/nested.zip": classes_zip("x", "y"),
            "cats/nested.tar.gz": b"\x1f\x8b\x08\x00" + b"\x00" * 30,
            "cats/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "__MACOSX/cats/._1.png": b"\x00\x05\x16\x07",
            "__MACOSX/dogs/._1.png": b"\x00\x05\x16\x07",
            ".git/config": b"[core]",
            "dogs/Thumbs.db": b"\xd0\xcf\x11\xe0",
            "dogs/desktop.ini": b"[.ShellClassInfo]",
            "birds/": b"",
            "fish/about.txt": b"no fish yet",
        },
    )
    dataset = ingest(workspace, data)
    reasons = skipped(dataset)
    assert dataset.classes == ("cats", "dogs") and len(dataset.items) == 6
    assert reasons["notes.txt"] == "not inside a class folder"
    assert reasons["cats/readme.txt"].startswith("not an image")
    assert reasons["cats/cut.png"].startswith("damaged")
    assert reasons["cats/garbled.jpg"].startswith("damaged")
    assert reasons["cats/cut.jpg"].startswith("damaged or truncated image")
    assert reasons["cats/nested.zip"] == reasons["cats/nested.tar.gz"] == "archive inside the zip (not unpacked)"
    assert reasons["cats/.DS_Store"] == "hidden file"
    assert reasons["__MACOSX/"] == "macOS metadata folder (2 files)"
    assert reasons[".git/"] == "hidden folder (1 file)"
    assert reasons["dogs/Thumbs.db"] == reasons["dogs/desktop.ini"] == "Windows system file"
    assert reasons["birds/"].startswith("empty class folder")
    assert reasons["fish/"].startswith("empty class folder")
    assert reasons["fish/about.txt"].startswith("not an image")


def test_loose_files_next_to_train_and_val_folders_are_skipped(workspace):
    entries = {f"{split}/{c}/{i}.png": PNG for split in ("train", "val") for c in ("cats", "dogs") for i in range(2)}
    entries |= {"train/loose.png": PNG, "extras/cats/1.png": PNG}
    reasons = skipped(ingest(workspace, make_zip(entries)))
    assert reasons["train/loose.png"] == "not inside a class folder"
    assert reasons["extras/cats/1.png"] == "outside the train and validation folders"


def test_images_over_the_pixel_limit_are_skipped_without_being_decoded(workspace):
    data = classes_zip("cats", "dogs", extra={"cats/big.png": image_bytes(size=(40, 40))})
    reasons = skipped(ingest(workspace, data, limits=Limits(max_image_pixels=1000)))
    assert reasons["cats/big.png"] == "too many pixels (40×40, the limit is 1,000)"


@pytest.mark.parametrize("side", [10_000, 50_000])  # above Pillow's warning and its error threshold
def test_decompression_bombs_are_skipped_without_changing_global_state(workspace, side):
    filters_before, limit_before = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    dataset = ingest(
        workspace,
        classes_zip("cats", "dogs", extra={"cats/bomb.png": png(side, side)}),
        limits=Limits(max_image_pixels=10**10),
    )
    assert skipped(dataset)["cats/bomb.png"].startswith("too many pixels")
    assert warnings.filters == filters_before and Image.MAX_IMAGE_PIXELS == limit_before


def test_file_names_that_differ_only_in_case_are_both_kept(workspace):
    data = make_zip(
        {"cats/A.png": PNG, "cats/a.png": image_bytes(color=(1, 2, 3)), "dogs/1.png": PNG, "dogs/2.png": PNG}
    )
    dataset = ingest(workspace, data)
    assert {"cats/A.png", "cats/a.png"} <= set(by_source(dataset))
    assert len({item.file for item in dataset.items}) == 4


# ---------------------------------------------------------------------------------------------
# Class names


def test_japanese_class_names_in_utf8_are_kept(workspace):
    dataset = ingest(workspace, classes_zip("猫", "犬", "ソフトクリーム"))
    assert dataset.classes == ("ソフトクリーム", "犬", "猫")
    assert "犬" in dataset.summary()


@pytest.mark.parametrize("encoding", ["cp932", "utf-8"])
def test_class_names_from_zips_without_the_utf8_flag_are_recovered(workspace, encoding):
    # "ソ" and "表" end in byte 0x5C ("\\") in cp932: they must not be taken for separators.
    names = ["ソフト", "表紙", "犬"]
    data = zip_with_raw_names({f"{c}/{i}.png".encode(encoding): PNG for c in names for i in range(2)})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert not any(info.flag_bits & 0x800 for info in archive.infolist())
    dataset = ingest(workspace, data)
    assert dataset.classes == tuple(sorted(names))
    assert all(s.startswith(tuple(names)) for s in by_source(dataset))


def test_class_names_are_nfc_normalised_and_stripped(workspace):
    decomposed = unicodedata.normalize("NFD", "がっこう")
    assert decomposed != "がっこう"
    data = make_zip({f"{decomposed}/1.png": PNG, "がっこう/2.png": PNG, " Café /1.png": PNG, "Café/2.png": PNG})
    dataset = ingest(workspace, data)
    assert dataset.classes == ("Café", "がっこう")
    assert dataset.counts()["total"].tolist() == [2, 2]


def test_a_folder_whose_name_is_blank_is_skipped_not_made_a_class(workspace):
    reasons = skipped(ingest(workspace, classes_zip("cats", "dogs", extra={"  /1.png": PNG, "\t/2.png": PNG})))
    assert reasons["  /"].startswith("folder name cannot be a class name")


# ---------------------------------------------------------------------------------------------
# Refusals: one kind sentence, nothing written


# The uploads refused with the default limits, which the command line refuses too (`test_hostile_uploads.py`).
REFUSALS = {name: (build, Limits(), expected) for name, (build, expected) in REFUSED_ZIPS.items()}

# Uploads refused only under tighter limits than the defaults (which the command line cannot set).
REFUSALS |= {
    "a_class_below_the_configured_minimum": (
        lambda: classes_zip("cats", "dogs"),
        Limits(min_images_per_class=5),
        "Class 'cats' in 'upload.zip' has only 3 images (and 1 more class)",
    ),
    "a_zip_over_the_size_limit": (
        lambda: classes_zip("cats", "dogs"),
        Limits(max_zip_bytes=500),
        "more than the 500 bytes an upload may be",
    ),
    "too_many_unpacked_bytes": (
        lambda: classes_zip("cats", "dogs"),
        Limits(max_total_bytes=len(PNG) * 3),
        "unpacks to more than",
    ),
    "an_entry_over_the_size_limit": (
        lambda: classes_zip("cats", "dogs"),
        Limits(max_entry_bytes=len(PNG) - 1),
        "'cats/0.png' unpacks to",
    ),
    "too_many_files": (
        lambda: classes_zip("cats", "dogs"),
        Limits(max_files=5),
        "lists 6 files and folders in 336 bytes, more than the 5 allowed",
    ),
    "too_many_files_understated_by_the_end_record": (
        lambda: understate_entries(classes_zip("cats", "dogs")),
        Limits(max_files=5),
        "holds 6 files and folders",
    ),
    "a_central_directory_too_big_for_the_file_limit": (
        lambda: make_zip([(f"cats/{'x' * 2000}{i}.png", PNG) for i in range(3)]),
        Limits(max_files=5),
        "lists 3 files and folders in 6.0 KB, more than the 5 allowed",
    ),
    "too_many_pixels_in_all": (
        lambda: classes_zip("cats", "dogs"),
        Limits(max_total_pixels=5 * 64),
        "more than 320 pixels in all",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_uploads_say_why_in_one_sentence_and_leave_nothing_behind(workspace, tmp_path, case):
    build, limits, expected = REFUSALS[case]
    with pytest.raises(DatasetError) as refusal:
        ingest(workspace, build(), limits=limits)
    message = str(refusal.value)
    assert expected in message
    assert "\n" not in message and message.endswith(".")
    assert_nothing_written(workspace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_a_zip_with_dotdot_entry_is_refused_and_nothing_is_written_anywhere(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    workspace = Workspace(outer / "ws")
    data = make_zip(class_entries("cats", "dogs", image=PNG) + [("../../escaped.png", PNG), ("cats/../../up.png", PNG)])
    with pytest.raises(DatasetError, match="points outside"):
        ingest_zip(data, workspace=workspace)
    assert sorted(p.name for p in outer.iterdir()) in ([], ["ws"])
    assert not (tmp_path / "escaped.png").exists()
    assert_nothing_written(workspace)


def test_a_split_zip_cannot_be_combined_with_a_validation_zip(workspace):
    entries = {f"{split}/{c}/{i}.png": PNG for split in ("train", "val") for c in ("cats", "dogs") for i in range(2)}
    with pytest.raises(DatasetError, match="separate validation zip"):
        ingest_zip(make_zip(entries), classes_zip("cats", "dogs"), workspace=workspace)
    assert_nothing_written(workspace)


def test_a_class_only_in_the_validation_zip_is_refused(workspace):
    with pytest.raises(DatasetError, match="Class 'birds' in 'upload.zip' has 0 training and 1 validation"):
        ingest_zip(
            classes_zip("cats", "dogs"),
            classes_zip("cats", "dogs", "birds", per_class=1),
            workspace=workspace,
            name="upload.zip",
        )
    assert_nothing_written(workspace)


@pytest.mark.parametrize("val_fraction", [0, 1, 1.5, -0.1, "0.2"])
def test_an_impossible_validation_fraction_is_refused(workspace, demo_zip_bytes, val_fraction):
    with pytest.raises(DatasetError, match=f"but {val_fraction!r} was given"):
        ingest(workspace, demo_zip_bytes, val_fraction=val_fraction)
    assert_nothing_written(workspace)


def test_a_missing_path_or_a_folder_is_refused_with_its_name(workspace, tmp_path):
    with pytest.raises(DatasetError, match="cannot be opened"):
        ingest_zip(tmp_path / "nope.zip", workspace=workspace)
    with pytest.raises(DatasetError, match="is a folder"):
        ingest_zip(tmp_path, workspace=workspace)


def test_entry_bytes_are_counted_as_they_are_read_not_only_trusted_from_headers(workspace, monkeypatch):
    monkeypatch.setattr(archive, "check_entry", lambda *args: None)  # as if a header had lied
    data = make_zip(class_entries("cats", "dogs", image=PNG) + [("cats/zeros.png", bytes(3 * 1024))])
    with pytest.raises(DatasetError, match="'cats/zeros.png' unpacks to more than the 2.0 KB one file may be"):
        ingest(workspace, data, limits=Limits(max_entry_bytes=2048))
    assert_nothing_written(workspace)


def test_an_unexpected_error_during_ingestion_leaves_nothing_behind(workspace, demo_zip_bytes):
    def progress(done: int, total: int) -> None:
        if done == 5:
            raise RuntimeError("the browser went away")

    with pytest.raises(RuntimeError, match="browser went away"):
        ingest(workspace, demo_zip_bytes, progress=progress)
    assert_nothing_written(workspace)


# ---------------------------------------------------------------------------------------------
# Content addressing, inputs, progress


def test_the_same_zip_twice_is_the_same_dataset_in_one_folder_without_rework(workspace, demo_zip_bytes, tmp_path):
    first = ingest(workspace, demo_zip_bytes)
    path = tmp_path / "again.zip"
    path.write_bytes(demo_zip_bytes)
    calls = []
    second = ingest_zip(path, workspace=workspace, progress=lambda done, total: calls.append(done))
    assert second == first and calls == []
    assert [p.name for p in workspace.datasets_dir.iterdir()] == [first.id]
    assert len(first.id) == 16 and first.fingerprint == first.id


def test_an_uploaded_file_object_is_read_from_its_start_and_named_after_itself(workspace, demo_zip_bytes):
    class UploadedFile(io.BytesIO):
        name = "my shapes.zip"

    upload = UploadedFile(demo_zip_bytes)
    upload.seek(0, os.SEEK_END)  # Streamlit may already have read it
    dataset = ingest_zip(upload, workspace=workspace)
    assert dataset.name == "my shapes.zip" and len(dataset.items) == 24


def test_progress_is_reported_for_every_entry(workspace, demo_zip_bytes):
    calls = []
    ingest(workspace, demo_zip_bytes, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 24) for done in range(25)]


# ---------------------------------------------------------------------------------------------
# Reading, listing and deleting


def test_files_and_labels_of_each_split_point_at_stored_images(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes)
    paths, labels = dataset.files("train")
    assert len(paths) == len(labels) == 18 and sorted(set(labels)) == [0, 1, 2]
    assert all(path.is_absolute() and path.is_file() and path.parent == dataset.root / "files" for path in paths)
    with pytest.raises(ValueError, match="Received: split='validation'"):
        dataset.files("validation")


def test_sample_files_are_from_the_class_and_the_same_every_time(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes)
    sample = dataset.sample_files("squares", 3)
    assert len(sample) == 3 and sample == dataset.sample_files("squares", 3)
    square_files = {dataset.root / item.file for item in dataset.items if item.label == 1}
    assert set(sample) <= square_files
    assert len(dataset.sample_files("squares", 100)) == 8
    with pytest.raises(ValueError, match="'hexagons' is not a class"):
        dataset.sample_files("hexagons", 1)


def test_the_report_is_json_and_the_summary_is_readable(workspace):
    dataset = ingest(workspace, classes_zip("cats", "犬", extra={"cats/notes.txt": b"x"}), name="pets.zip")
    report = json.loads(json.dumps(dataset.report()))
    assert report["id"] == dataset.id and report["name"] == "pets.zip"
    assert report["classes"] == ["cats", "犬"] and report["split_source"] == "seeded"
    assert report["counts"]["犬"] == {"train": 2, "val": 1, "total": 3}
    assert report["totals"] == {"train": 4, "val": 2, "total": 6, "classes": 2, "skipped": 1}
    assert report["skipped"] == [{"path": "cats/notes.txt", "reason": report["skipped"][0]["reason"]}]
    summary = dataset.summary()
    assert "'pets.zip'" in summary and "2 classes, 6 images (4 train, 2 val)" in summary
    assert "cats/notes.txt: not an image" in summary


def test_datasets_are_listed_newest_first_and_damaged_ones_are_left_out(workspace, demo_zip_bytes):
    older = ingest(workspace, classes_zip("cats", "dogs"))
    newer = ingest(workspace, demo_zip_bytes)
    manifest = older.root / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "created": "2000-01-01T00:00:00+00:00"}), encoding="utf-8")
    damaged = workspace.datasets_dir / "0123456789abcdef"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json", encoding="utf-8")
    assert [d.id for d in list_datasets(workspace)] == [newer.id, older.id]


@pytest.mark.parametrize("manifest", [None, "{not json", "[]", json.dumps({"format": 1, "id": "0123456789abcdef"})])
def test_loading_a_missing_or_damaged_dataset_says_so(workspace, manifest):
    folder = workspace.datasets_dir / "0123456789abcdef"
    if manifest is not None:
        folder.mkdir()
        (folder / "manifest.json").write_text(manifest, encoding="utf-8")
    with pytest.raises(DatasetError, match="no dataset" if manifest is None else "is damaged"):
        load_dataset(workspace, "0123456789abcdef")


def test_a_manifest_cannot_point_outside_its_dataset(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes)
    manifest = dataset.root / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["items"][0]["file"] = "../../../etc/passwd"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DatasetError, match="is damaged"):
        load_dataset(workspace, dataset.id)


def test_an_id_that_is_not_a_folder_name_is_refused(workspace):
    with pytest.raises(DatasetError, match="not a valid dataset id"):
        load_dataset(workspace, "../runs")


def test_a_deleted_dataset_is_gone_and_can_be_ingested_again(workspace, demo_zip_bytes):
    dataset = ingest(workspace, demo_zip_bytes)
    delete_dataset(workspace, dataset.id)
    assert list_datasets(workspace) == [] and list(workspace.tmp_dir.iterdir()) == []
    with pytest.raises(DatasetError, match="no dataset"):
        delete_dataset(workspace, dataset.id)
    assert ingest(workspace, demo_zip_bytes).id == dataset.id


# ---------------------------------------------------------------------------------------------
# Properties over names and layouts

# Escaping parts are rare among them, so that many examples get past the refusals.
_TRICKY_PARTS = [
    "cats",
    "dogs",
    "Dogs",
    "猫",
    "e\u0301",
    "é",
    " cats ",
    "\u3000",
    "train",
    "val",
    "test",
    "Valid",
    "__MACOSX",
    ".hidden",
    "Thumbs.db",
    "x\x00y",
    "",
    ".",
] * 3 + ["..", "C:", "a\\..", "..\\.."]
_CONTENTS = {"png": PNG, "jpeg": image_bytes("JPEG"), "junk": b"\x89PNG\r\n\x1a\n junk", "empty": b""}


@contextlib.contextmanager
def _sandbox():
    """An outer folder holding only the workspace, also the current directory while it is open."""
    with tempfile.TemporaryDirectory() as outer, contextlib.chdir(outer):
        yield Path(outer), Workspace(Path(outer) / "ws")


@pytest.mark.filterwarnings("ignore:Duplicate name")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.tuples(
            st.lists(st.one_of(st.sampled_from(_TRICKY_PARTS), st.text(max_size=6)), min_size=1, max_size=4).map(
                "/".join
            ),
            st.sampled_from(sorted(_CONTENTS)),
        ),
        max_size=10,
    ),
    with_valid_classes=st.booleans(),
)
def test_any_entry_names_give_a_dataset_or_a_dataset_error_and_nothing_outside_the_workspace(
    entries, with_valid_classes
):
    if with_valid_classes:  # so that the odd names also meet layouts that would otherwise be accepted
        entries = [(f"{c}/{i}.png", "png") for c in ("cats", "dogs") for i in range(2)] + entries
    with _sandbox() as (outer, workspace):
        try:
            data = make_zip([(zipfile.ZipInfo(name), _CONTENTS[kind]) for name, kind in entries])
            dataset = ingest_zip(data, workspace=workspace)
        except DatasetError:
            assert list(workspace.datasets_dir.iterdir()) == []
        else:
            assert all(
                name and name == name.strip() and name == unicodedata.normalize("NFC", name) for name in dataset.classes
            )
            assert all((dataset.root / item.file).resolve().is_relative_to(dataset.root) for item in dataset.items)
        assert [p.name for p in outer.iterdir()] == ["ws"]
        assert list(workspace.tmp_dir.iterdir()) == []


def _usable_class_name(name: str) -> bool:
    shown = unicodedata.normalize("NFC", name).strip()
    return (
        bool(shown)
        and not shown.startswith(".")
        and not name.startswith(".")
        and shown != "__MACOSX"
        and shown.casefold() not in ("train", "val", "validation", "valid", "test")
        and not (len(shown) > 1 and shown[1] == ":")
    )


_class_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(_usable_class_name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(_class_names, min_size=2, max_size=4, unique_by=lambda n: unicodedata.normalize("NFC", n).strip()),
    wrappers=st.lists(st.sampled_from(["data", "データ", "My Photos"]), max_size=2),
    split_folders=st.booleans(),
)
def test_class_names_are_the_nfc_folder_names_in_any_layout(names, wrappers, split_folders):
    prefix = "".join(f"{w}/" for w in wrappers)
    if split_folders:
        entries = [
            (f"{prefix}{split}/{name}/{i}.png", PNG) for split in ("train", "val") for name in names for i in range(2)
        ]
    else:
        entries = [(f"{prefix}{name}/{i}.png", PNG) for name in names for i in range(2)]
    with _sandbox() as (outer, workspace):
        dataset = ingest_zip(make_zip(entries), workspace=workspace)
        assert dataset.classes == tuple(sorted(unicodedata.normalize("NFC", n).strip() for n in names))
        assert dataset.split_source == ("given" if split_folders else "seeded")
        assert [p.name for p in outer.iterdir()] == ["ws"]
