"""The Data page: uploads refused with a message or ingested with a report, the demo, picking a dataset."""

import io
import zipfile
from pathlib import Path

import pytest
from helpers import button, chart_data, unescaped
from streamlit.testing.v1 import AppTest

from tlcore import datasets
from tlcore.demo import demo_zip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(workspace, monkeypatch) -> AppTest:
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    return at.switch_page("app_pages/data.py").run()


def unpack_demo(folder: Path) -> None:
    """The demo dataset as class folders of JPEGs (`circles/`, `squares/`) in `folder`, as on a server."""
    with zipfile.ZipFile(io.BytesIO(demo_zip(classes=2, per_class=3, size=24, seed=1))) as archive:
        archive.extractall(folder)


def test_a_file_that_is_not_a_zip_is_refused_with_a_message_and_nothing_is_kept(app, workspace):
    app.file_uploader(key="data.train_zip").set_value(("photos.zip", b"these are not zip bytes", "application/zip"))
    button(app.run(), "Add dataset").click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert app.error[0].value.startswith("Error:") and "photos.zip" in app.error[0].value
    assert datasets.list_datasets(workspace) == []
    assert app.session_state["dataset_id"] is None


def test_add_is_disabled_until_a_zip_is_uploaded(app):
    assert button(app, "Add dataset").disabled


def test_demo_dataset_is_ingested_and_its_classes_are_charted(app, workspace):
    button(app, "Demo dataset").click().run()
    assert not app.exception
    (dataset,) = datasets.list_datasets(workspace)
    assert app.session_state["dataset_id"] == dataset.id
    assert app.success[0].value.startswith("Added demo.zip")
    counts = dataset.counts()
    chart = chart_data(app)[0]
    assert chart.groupby("class")["images"].sum().to_dict() == dict(zip(counts["class"], counts["total"], strict=True))
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Classes"] == str(len(dataset.classes))
    assert metrics["Training images"] == str(counts["train"].sum())
    assert metrics["Validation images"] == str(counts["val"].sum())
    # Sample images: one row per class.
    assert len(app.get("image")) == len(dataset.classes)


def test_a_train_zip_and_a_val_zip_become_one_dataset(app, workspace):
    app.file_uploader(key="data.train_zip").set_value(("train.zip", demo_zip(per_class=6, size=32), "application/zip"))
    app.file_uploader(key="data.val_zip").set_value(
        ("val.zip", demo_zip(per_class=3, size=32, seed=1), "application/zip")
    )
    button(app.run(), "Add dataset").click().run()
    assert not app.exception and not app.error
    (dataset,) = datasets.list_datasets(workspace)
    assert dataset.counts()["val"].tolist() == [3, 3, 3]
    assert {m.label: m.value for m in app.metric}["Validation images"] == "9"


def test_an_earlier_dataset_can_be_picked_again(app, workspace):
    first = datasets.ingest_zip(demo_zip(classes=2, per_class=4, size=32), workspace=workspace, name="two.zip")
    second = datasets.ingest_zip(demo_zip(classes=4, per_class=4, size=32), workspace=workspace, name="four.zip")
    app.run()
    picker = app.selectbox(key="data.pick")
    assert sorted(option.split(" · ")[0] for option in picker.options) == ["four.zip", "two.zip"]
    picker.set_value(first.id).run()
    assert app.session_state["dataset_id"] == first.id
    assert {m.label: m.value for m in app.metric}["Classes"] == "2"
    assert "two.zip" in app.sidebar.markdown[-1].value
    picker = app.selectbox(key="data.pick")
    picker.set_value(second.id).run()
    assert {m.label: m.value for m in app.metric}["Classes"] == "4"


def test_skipped_files_are_listed_with_their_reason(app, workspace):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, zipfile.ZipFile(io.BytesIO(demo_zip(per_class=4, size=32))) as demo:
        for info in demo.infolist():
            archive.writestr(info, demo.read(info))
        archive.writestr("circles/notes.txt", "not an image")
    app.file_uploader(key="data.train_zip").set_value(("with-notes.zip", buffer.getvalue(), "application/zip"))
    button(app.run(), "Add dataset").click().run()
    (skipped_files,) = [expander for expander in app.expander if expander.label.startswith("Skipped files")]
    assert skipped_files.label == "Skipped files (1)"
    skipped = skipped_files.dataframe[0].value
    assert skipped["path"].str.contains("notes.txt").any()
    assert skipped["reason"].str.len().min() > 0


def test_the_data_page_speaks_japanese(app):
    app.session_state["lang"] = "ja"
    button(app.run(), "デモデータセット").click().run()
    assert app.title[0].value == "データ"
    assert {m.label for m in app.metric} == {"クラス数", "学習用画像", "検証用画像"}


def test_without_allowed_server_folders_the_page_says_how_an_operator_allows_some(app, monkeypatch):
    monkeypatch.delenv("TLCORE_DATA_DIRS", raising=False)
    app.run()
    assert any("TLCORE_DATA_DIRS" in info.value for info in app.info)
    assert not [b for b in app.button if b.label == "Register folder"]


def test_an_allowed_server_folder_is_registered_and_read_in_place(workspace, monkeypatch, tmp_path):
    server = tmp_path / "server"
    unpack_demo(server / "shapes")
    monkeypatch.setenv("TLCORE_DATA_DIRS", str(server))
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at = at.switch_page("app_pages/data.py").run()
    picker = at.selectbox(key="data.folder")
    shapes = str((server / "shapes").resolve())
    assert picker.options == [shapes]  # not the folder above it, nor its class folders
    picker.set_value(shapes)
    button(at.run(), "Register folder").click().run()
    assert not at.exception and not at.error
    (dataset,) = datasets.list_datasets(workspace)
    assert dataset.classes == ("circles", "squares") and str(dataset.source_dir) == shapes
    assert all(item.in_place for item in dataset.items)
    assert at.session_state["dataset_id"] == dataset.id
    assert any(unescaped(caption.value) == f"Read in place from the server folder {shapes}." for caption in at.caption)
    assert not at.warning

    last = dataset.items[-1]  # not among the samples shown first
    dataset.path(last).unlink()
    at.run()
    assert not at.exception
    assert unescaped(at.warning[0].value).startswith(f"Some images of this dataset have gone from {shapes}")
