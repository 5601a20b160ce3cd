"""Evaluation and prediction: numbers that agree with a count, stored once, from the pixels training saw.

Also the Evaluate page's charts and the page itself, and the `evaluate` / `predict` commands.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import altair_data, run_tlcore
from PIL import Image
from streamlit.testing.v1 import AppTest

from tlcore import runs
from tlcore.datasets import ingest_zip, list_datasets
from tlcore.demo import demo_zip
from tlcore.errors import ImageError, RunError
from tlcore.evaluation import (
    VAL_FILE,
    EvaluationError,
    class_metrics,
    confusion_matrix,
    evaluate,
    held_out_workspace,
    load_evaluation,
)
from tlcore.images import load_image, load_images
from tlcore.predict import Predictor
from ui.eval_charts import confusion_heatmap, heatmap_overlay, top_k_bars

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(train_calibrated):
    return train_calibrated("evaluation-ws", epochs=2)


@pytest.fixture(scope="module")
def evaluated(trained):
    workspace, _, info = trained
    return evaluate(workspace, info.id)


@pytest.fixture(scope="module")
def held_out_zip_bytes() -> bytes:
    """Held-out test data: two of the run's three classes, drawn with another seed."""
    return demo_zip(classes=2, per_class=4, size=40, seed=7)


def test_the_confusion_matrix_agrees_with_a_count_of_the_stored_predictions(trained, evaluated):
    _, dataset, info = trained
    stored = json.loads((info.dir / VAL_FILE).read_text(encoding="utf-8"))
    truth = {item.file: item.label for item in dataset.items if item.split == "val"}
    assert sorted(image["file"] for image in stored["images"]) == sorted(truth)
    counts = np.zeros((3, 3), dtype=int)
    for image in stored["images"]:
        assert image["label"] == truth[image["file"]]
        assert image["predicted"] == int(np.argmax(image["probabilities"]))
        assert image["confidence"] == max(image["probabilities"])
        counts[image["label"], image["predicted"]] += 1
    assert stored["confusion"] == counts.tolist()
    assert [list(row) for row in evaluated.confusion] == counts.tolist()
    assert evaluated.accuracy == pytest.approx(np.trace(counts) / counts.sum())
    for i, row in enumerate(stored["per_class"]):
        precision = counts[i, i] / counts[:, i].sum() if counts[:, i].sum() else 0.0
        recall = counts[i, i] / counts[i, :].sum()
        assert row["name"] == dataset.classes[i] and row["support"] == counts[i, :].sum()
        assert row["precision"] == pytest.approx(precision) and row["recall"] == pytest.approx(recall)
    assert stored["misclassified"] == counts.sum() - np.trace(counts) == len(evaluated.misclassified())


def test_the_test_model_predicts_more_than_one_class(evaluated):
    assert len({image.predicted for image in evaluated.images}) > 1


def test_misclassified_images_come_most_confident_first_with_their_files(evaluated):
    mistakes = evaluated.misclassified()
    assert all(not m.correct for m in mistakes)
    assert [m.confidence for m in mistakes] == sorted((m.confidence for m in mistakes), reverse=True)
    assert all(evaluated.image_path(m).is_file() for m in mistakes)


def test_evaluating_twice_reuses_the_stored_result_until_the_model_changes(trained, evaluated, monkeypatch):
    workspace, _, info = trained

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded again")

    with monkeypatch.context() as patched:
        patched.setattr(Predictor, "load", no_loading)
        again = evaluate(workspace, info.id)
        assert again.cached and again.created == evaluated.created
        assert again.confusion == evaluated.confusion and again.images == evaluated.images
        assert load_evaluation(workspace, info.id) == again
    best = info.dir / "best.keras"
    stat = best.stat()
    os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert load_evaluation(workspace, info.id) is None
        fresh = evaluate(workspace, info.id)
        assert not fresh.cached and fresh.confusion == evaluated.confusion
    finally:
        os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        evaluate(workspace, info.id)  # stored again for the model as the other tests see it


def test_evaluation_predicts_what_try_it_predicts(trained, evaluated):
    workspace, _, info = trained
    predictor = Predictor.load(workspace, info.id)
    paths = [evaluated.image_path(image) for image in evaluated.images]
    tried = predictor.predict(paths)
    np.testing.assert_allclose(
        [p.probabilities for p in tried], [i.probabilities for i in evaluated.images], rtol=0, atol=1e-6
    )


def test_stored_images_are_prepared_exactly_as_training_prepared_them(trained):
    _, dataset, _ = trained
    paths = [dataset.root / item.file for item in dataset.items]
    np.testing.assert_array_equal(np.stack([load_image(p, 32) for p in paths]), load_images(paths, 32))


def test_uploads_get_ingestions_exif_and_colour_handling(workspace, tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(pixels).save(rotated, format="JPEG", quality=95, exif=exif)
    transparent = io.BytesIO()
    rgba = np.dstack([pixels, rng.integers(0, 256, (24, 40), dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(transparent, format="PNG")
    grey = io.BytesIO()
    Image.fromarray(pixels[..., 0], "L").save(grey, format="JPEG")
    uploads = {
        "rotated.jpg": rotated.getvalue(),
        "transparent.png": transparent.getvalue(),
        "grey.jpg": grey.getvalue(),
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in uploads.items():
            zf.writestr(f"a/{name}", data)
            zf.writestr(f"b/{name}", data)
    dataset = ingest_zip(archive.getvalue(), workspace=workspace, name="odd.zip")
    for item in dataset.items:
        upload = uploads[item.source.split("/")[1]]
        np.testing.assert_array_equal(load_image(upload, 32), load_images([dataset.root / item.file], 32)[0])
    assert load_image(uploads["rotated.jpg"], 64).shape == (64, 64, 3)


def test_a_test_zip_is_evaluated_on_all_its_images_and_kept_apart(trained, held_out_zip_bytes):
    workspace, dataset, info = trained
    result = evaluate(workspace, info.id, test_zip=held_out_zip_bytes, test_name="held-out.zip")
    assert result.data["kind"] == "test" and result.data["name"] == "held-out.zip"
    assert len(result.images) == 8 and result.classes == dataset.classes
    assert result.path.name == f"evaluation-test-{result.data['dataset']}.json"
    assert sum(result.confusion[2]) == 0  # no triangles in the test data
    assert [c.support for c in result.per_class] == [4, 4, 0]
    assert [d.id for d in list_datasets(workspace)] == [dataset.id]
    assert [d.id for d in list_datasets(held_out_workspace(workspace))] == [result.data["dataset"]]
    again = evaluate(workspace, info.id, test_zip=held_out_zip_bytes, test_name="held-out.zip")
    assert again.cached
    assert load_evaluation(workspace, info.id, result.data["dataset"]) == again
    assert load_evaluation(workspace, info.id).data["kind"] == "val"


def test_a_test_zip_with_classes_the_run_never_saw_is_refused_by_name(trained):
    workspace, _, info = trained
    archive = io.BytesIO()
    source = zipfile.ZipFile(io.BytesIO(demo_zip(classes=2, per_class=2, size=32, seed=1)))
    with zipfile.ZipFile(archive, "w") as zf:
        for name in source.namelist():
            zf.writestr(name.replace("squares/", "hexagons/"), source.read(name))
    with pytest.raises(EvaluationError, match="hexagons.*circles, squares, triangles"):
        evaluate(workspace, info.id, test_zip=archive.getvalue(), test_name="odd.zip")


def test_a_run_still_training_or_without_a_model_is_refused(trained):
    workspace, _, info = trained
    queued = runs.create_run(info.spec, workspace)
    with pytest.raises(RunError, match="still queued"):
        evaluate(workspace, queued.id)
    with pytest.raises(RunError, match="has not finished its first epoch"):
        Predictor.load(workspace, queued.id)
    runs.update_status(queued.dir, status="stopped")
    with pytest.raises(RunError, match=r"no saved model \(best.keras\): it ended \(stopped\) before"):
        evaluate(workspace, queued.id)
    assert load_evaluation(workspace, queued.id) is None


def test_a_file_that_is_not_an_image_is_refused_with_its_name(trained, tmp_path):
    workspace, _, info = trained
    predictor = Predictor.load(workspace, info.id)
    with pytest.raises(ImageError, match="'notes.txt' cannot be used: not an image"):
        predictor.predict([b"shopping list: eggs, milk"], names=["notes.txt"])
    empty = tmp_path / "nothing.png"
    empty.touch()
    with pytest.raises(ImageError, match="'nothing.png' is empty"):
        predictor.predict([empty])
    with pytest.raises(ImageError, match="cannot be read"):
        predictor.predict([tmp_path / "missing.jpg"])


def test_top_k_is_sorted_and_named(trained, evaluated):
    workspace, dataset, info = trained
    prediction = Predictor.load(workspace, info.id).predict([evaluated.image_path(evaluated.images[0])])[0]
    top = prediction.top(2)
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0] == (prediction.label, prediction.confidence)
    assert {name for name, _ in prediction.top(10)} == set(dataset.classes)
    assert sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert prediction.to_dict(1)["top"] == [{"class": prediction.label, "probability": prediction.confidence}]


def test_grad_cam_gives_a_map_the_size_of_the_input(trained, evaluated):
    workspace, _, info = trained
    predictor = Predictor.load(workspace, info.id)
    heat = predictor.grad_cam(load_image(evaluated.image_path(evaluated.images[0]), 32))
    assert heat.shape == (32, 32) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    overlay = heatmap_overlay(np.zeros((32, 32, 3), np.uint8), np.ones((32, 32), np.float32))
    assert overlay.shape == (32, 32, 3) and overlay[0, 0, 0] > overlay[0, 0, 1]


def test_metrics_follow_the_usual_zero_division_convention():
    matrix = confusion_matrix([0, 0, 1, 1], [0, 0, 0, 0], 3)
    assert matrix.tolist() == [[2, 0, 0], [2, 0, 0], [0, 0, 0]]
    a, b, c = class_metrics(matrix, ["a", "b", "c"])
    assert (a.precision, a.recall, a.f1) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (b.precision, b.recall, b.f1, c.support) == (0.0, 0.0, 0.0, 0)


def test_the_heatmap_shows_every_cell_with_its_count_and_row_share(evaluated):
    chart = confusion_heatmap(evaluated.confusion_frame(), evaluated.classes).to_dict()
    rows = altair_data(chart).to_dict("records")
    assert len(rows) == 9
    for row in rows:
        t, p = evaluated.classes.index(row["true"]), evaluated.classes.index(row["predicted"])
        assert row["count"] == evaluated.confusion[t][p]
        assert row["share"] == pytest.approx(row["count"] / max(1, sum(evaluated.confusion[t])))
    assert chart["layer"][0]["encoding"]["x"]["sort"] == list(evaluated.classes)


def test_top_k_bars_keep_the_order_and_highlight_the_top_class():
    chart = top_k_bars([("cat", 0.7), ("dog", 0.2), ("fox", 0.1)]).to_dict()
    rows = altair_data(chart).to_dict("records")
    assert [r["class"] for r in rows] == ["cat", "dog", "fox"]
    assert chart["layer"][0]["encoding"]["y"]["sort"] == ["cat", "dog", "fox"]


def test_cli_evaluate_prints_the_stored_evaluation_as_json(trained, evaluated):
    workspace, _, info = trained
    result = run_tlcore("evaluate", info.id, "--json", workspace=workspace)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["cached"] is True and data["confusion"] == [list(row) for row in evaluated.confusion]
    text = run_tlcore("evaluate", info.id, workspace=workspace).stdout
    assert "confusion matrix (rows: true class, columns: predicted class)" in text


def test_cli_predict_gives_the_top_classes_of_each_image(trained, evaluated):
    workspace, _, info = trained
    paths = [str(evaluated.image_path(image)) for image in evaluated.images[:2]]
    result = run_tlcore("predict", info.id, *paths, "--top", "2", "--json", workspace=workspace)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert [d["image"] for d in data] == paths and all(len(d["top"]) == 2 for d in data)
    for row, image in zip(data, evaluated.images[:2], strict=True):
        assert row["predicted"] == evaluated.classes[image.predicted]
        assert row["confidence"] == pytest.approx(image.confidence, abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (("predict", "{run}", "{tmp}/notes.txt"), "notes.txt' cannot be used: not an image"),
        (("predict", "{run}", "{tmp}/missing.jpg"), "cannot be read"),
        (("predict", "{run}", "{tmp}/notes.txt", "--top", "0"), "expected at least 1"),
        (("evaluate", "20990101-nothing"), "There is no run '20990101-nothing'"),
        (("evaluate", "{run}", "--data", "{tmp}/missing.zip"), "cannot be opened"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(trained, tmp_path, args, message):
    workspace, _, info = trained
    (tmp_path / "notes.txt").write_text("not an image")
    result = run_tlcore(*(arg.format(run=info.id, tmp=tmp_path) for arg in args), workspace=workspace)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


@pytest.fixture
def page(trained, monkeypatch) -> AppTest:
    workspace, _, info = trained
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    at = AppTest.from_file(str(ROOT / "app_pages" / "evaluate.py"), default_timeout=120)
    at.session_state["run_id"] = info.id
    return at


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_page_shows_a_stored_evaluation_and_the_code(page, evaluated, lang):
    page.session_state["lang"] = lang
    at = page.run()
    assert not at.exception
    assert [tab.label for tab in at.tabs] == (
        ["Evaluate", "Try it", "Export", "Code & reproduce"]
        if lang == "en"
        else ["評価", "試す", "書き出し", "コードと再現"]
    )
    assert at.metric[0].value == f"{evaluated.accuracy:.1%}"
    assert "base_model = keras.applications.MobileNet(" in at.code[0].value


def test_try_it_classifies_a_camera_picture_as_the_predictor_does(page, trained, evaluated):
    workspace, dataset, info = trained
    at = page.run()
    assert not at.camera_input  # the camera starts only when asked for
    at.toggle(key="evaluate.try_camera_on").set_value(True).run()
    photo = dataset.files("val")[0][0].read_bytes()
    at.camera_input(key="evaluate.try_camera").set_value(("camera-input.jpg", photo, "image/jpeg")).run()
    assert not at.exception and not at.error
    expected = Predictor.load(workspace, info.id).predict([photo])[0]
    assert any(f"**{expected.label}**" in markdown.value for markdown in at.markdown)
