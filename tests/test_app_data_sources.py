"""The Data page's other ways in: a folder dropped from the desktop, and the camera, class by class."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import button
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlcore import datasets
from tlcore.datasets import drafts

ROOT = Path(__file__).resolve().parents[1]


def jpeg(seed: int, size: int = 24) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def folder_files(top: str = "flowers") -> list[tuple[str, bytes, str]]:
    """A folder of two class folders as a browser sends it: every path starts with the folder's name."""
    files = [
        (f"{top}/{name}/{i}.jpg", jpeg(10 * k + i), "image/jpeg")
        for k, name in enumerate(("daisy", "tulip"))
        for i in range(3)
    ]
    return [*files, (f"{top}/.DS_Store", b"\x00\x00\x00\x01Bud1", "application/octet-stream")]


@pytest.fixture
def app(workspace, monkeypatch) -> AppTest:
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    return at.switch_page("app_pages/data.py").run()


def test_a_dropped_folder_is_the_same_dataset_as_the_same_images_zipped(app, workspace):
    app.button_group(key="data.source").set_value("folder").run()
    uploader = app.file_uploader(key="data.train_folder")
    assert uploader.accept_directory
    assert button(app, "Add folder").disabled
    uploader.set_value(folder_files())
    button(app.run(), "Add folder").click().run()
    assert not app.exception and not app.error
    (dataset,) = datasets.list_datasets(workspace)
    assert app.session_state["dataset_id"] == dataset.id
    assert app.success[0].value.startswith("Added flowers")
    assert dataset.classes == ("daisy", "tulip")
    assert [skipped.path for skipped in dataset.skipped] == ["flowers/.DS_Store"]

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path, data, _ in folder_files():
            zipped.writestr(path, data)
    assert datasets.ingest_zip(archive.getvalue(), workspace=workspace, name="flowers.zip").id == dataset.id


def test_a_training_folder_and_a_validation_folder_become_one_dataset(app, workspace):
    app.button_group(key="data.source").set_value("folder").run()
    app.file_uploader(key="data.train_folder").set_value(folder_files("train-photos")[:-1])
    app.file_uploader(key="data.val_folder").set_value(folder_files("val-photos")[:-1])
    button(app.run(), "Add folder").click().run()
    assert not app.exception and not app.error
    (dataset,) = datasets.list_datasets(workspace)
    assert dataset.split_source == "given"
    assert dataset.counts()[["train", "val"]].sum().to_dict() == {"train": 6, "val": 6}


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ([("photos/a.jpg", jpeg(1), "image/jpeg"), ("photos/b.jpg", jpeg(2), "image/jpeg")], "no class folders"),
        ([("photos/notes.txt", b"hello", "text/plain"), ("photos/x/y.txt", b"hi", "text/plain")], "no images"),
    ],
    ids=["loose images", "no images at all"],
)
def test_a_folder_that_is_not_a_dataset_is_refused_with_a_message_and_nothing_is_kept(app, workspace, files, says):
    app.button_group(key="data.source").set_value("folder").run()
    app.file_uploader(key="data.train_folder").set_value(files)
    button(app.run(), "Add folder").click().run()
    assert not app.exception
    assert len(app.error) == 1 and says in app.error[0].value and "photos" in app.error[0].value
    assert datasets.list_datasets(workspace) == []


def test_the_folder_section_speaks_japanese_with_a_note_on_streamlits_own_words(app):
    app.session_state["lang"] = "ja"
    app.button_group(key="data.source").set_value("folder").run()
    assert app.file_uploader(key="data.train_folder").label == "データセットのフォルダー（または学習用フォルダー）"
    assert any("Drag and drop directories here" in caption.value for caption in app.caption)


def start_draft(app: AppTest, base: str | None = None) -> AppTest:
    app.button_group(key="data.source").set_value("camera").run()
    if base is not None:
        app.selectbox(key="camera.base").set_value(base).run()
    return button(app, "Start taking pictures").click().run()


def add_class(app: AppTest, name: str) -> AppTest:
    app.text_input[0].input(name)
    return button(app, "Add class").click().run()


def take(app: AppTest, seed: int) -> AppTest:
    return app.camera_input(key="camera.shot").set_value((f"shot-{seed}.jpg", jpeg(seed), "image/jpeg")).run()


def test_pictures_build_a_dataset_class_by_class_and_a_bad_shot_can_be_removed(app, workspace):
    start_draft(app)
    add_class(app, "mug")
    assert app.radio(key="camera.class").value == "mug"
    for seed in range(3):
        take(app, seed)
    add_class(app, "plate")
    for seed in range(10, 13):
        take(app, seed)
    assert not app.exception and not app.error
    (draft,) = drafts.list_drafts(workspace)
    assert draft.counts() == {"mug": 3, "plate": 3}
    assert app.radio(key="camera.class").options == ["mug (3)", "plate (3)"]

    bad = draft.shots_of("plate")[-1]
    button(app, "Remove").click().run()  # the newest picture is shown first
    assert drafts.load_draft(workspace, draft.id).counts() == {"mug": 3, "plate": 2}
    assert not (draft.root / bad.file).exists()
    assert app.radio(key="camera.class").options == ["mug (3)", "plate (2)"]

    button(app, "Make dataset").click().run()
    assert not app.exception and not app.error
    (dataset,) = datasets.list_datasets(workspace)
    assert app.session_state["dataset_id"] == dataset.id
    assert dataset.counts().set_index("class")["total"].to_dict() == {"mug": 3, "plate": 2}
    assert drafts.list_drafts(workspace) == []


def test_a_picture_with_no_class_chosen_is_refused_and_nothing_is_kept(app, workspace):
    start_draft(app)
    take(app, 1)
    assert not app.exception
    assert len(app.error) == 1 and "No class is chosen" in app.error[0].value
    (draft,) = drafts.list_drafts(workspace)
    assert draft.shots == ()


def test_the_same_picture_twice_is_kept_once_and_the_page_says_why_the_count_did_not_grow(app, workspace):
    start_draft(app)
    add_class(app, "mug")
    take(app, 1)
    app.camera_input(key="camera.shot").set_value(None).run()  # "Clear photo"
    take(app, 1)
    assert not app.exception and not app.error
    assert app.radio(key="camera.class").options == ["mug (1)"]
    assert any("already in mug" in notice.value for notice in app.info)


def test_a_refresh_keeps_the_pictures_taken(app, workspace, monkeypatch):
    start_draft(app)
    add_class(app, "mug")
    take(app, 1)
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    fresh.switch_page("app_pages/data.py").run()
    fresh.button_group(key="data.source").set_value("camera").run()
    button(fresh, "Continue").click().run()
    assert fresh.radio(key="camera.class").options == ["mug (1)"]


def test_extending_a_dataset_makes_a_new_one_and_leaves_the_old_one(app, workspace):
    start_draft(app)
    add_class(app, "mug")
    for seed in range(3):
        take(app, seed)
    add_class(app, "plate")
    for seed in range(10, 13):
        take(app, seed)
    button(app, "Make dataset").click().run()
    (first,) = datasets.list_datasets(workspace)

    start_draft(app, base=first.id)
    assert app.radio(key="camera.class").options == ["mug (0)", "plate (0)"]
    add_class(app, "bowl")
    for seed in range(20, 23):
        take(app, seed)
    button(app, "Make dataset").click().run()
    assert not app.exception and not app.error
    extended = next(dataset for dataset in datasets.list_datasets(workspace) if dataset.id != first.id)
    assert app.session_state["dataset_id"] == extended.id
    assert extended.classes == ("bowl", "mug", "plate")
    assert datasets.load_dataset(workspace, first.id).classes == ("mug", "plate")
