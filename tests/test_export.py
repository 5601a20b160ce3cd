"""Export: every format, loaded in a clean Python process without tlcore, predicts what the app predicts.

Tolerances (largest absolute difference of class probabilities from `tlcore.predict`'s on the same
images): Keras 1e-6, SavedModel 1e-5, TFLite float32 1e-4. Dynamic-range quantized TFLite must give
the app's top-1 class wherever the app's top class leads the next by more than 0.5 (8-bit weights
can tip an image the model is unsure about; see `tlcore.export`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from helpers import run_tlcore

from tlcore import export, runs
from tlcore.errors import RunError
from tlcore.export import (
    FILES,
    FORMATS,
    QUANT_DECISIVE_MARGIN,
    TOLERANCES,
    ExportError,
    export_run,
    load_export,
    parse_formats,
)
from tlcore.images import load_image
from tlcore.predict import Predictor

# Loads one exported file with nothing but TensorFlow/Keras and writes its probabilities.
CLEAN_PREDICT = textwrap.dedent("""
    import sys
    sys.modules["tlcore"] = None  # as on a machine without tlcore: any import of it fails
    import numpy as np
    fmt, path, images_file, out_file = sys.argv[1:]
    images = np.load(images_file).astype("float32")
    if fmt == "keras":
        import keras
        model = keras.models.load_model(path)  # safe_mode on
        probabilities = model.predict(images, verbose=0)
    elif fmt == "savedmodel":
        import tensorflow as tf
        model = tf.saved_model.load(path)  # keep a reference: its variables live as long as it does
        probabilities = model.serve(tf.constant(images)).numpy()
    elif fmt == "onnx":
        import onnxruntime  # no TensorFlow at all
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        probabilities = session.run(None, {session.get_inputs()[0].name: images})[0]
    else:
        import tensorflow as tf
        interpreter = tf.lite.Interpreter(model_path=path)
        source = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(source["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.save(out_file, probabilities)
""")


@pytest.fixture(scope="module")
def trained(train_calibrated):
    return train_calibrated("export-ws", epochs=10)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    workspace, _, info = trained
    return export_run(workspace, info.id, ["all"], out_dir=tmp_path_factory.mktemp("out"), archive=True)


@pytest.fixture(scope="module")
def app_predictions(trained, tmp_path_factory):
    """The images the app would feed the model (every stored image, prepared as an upload) and its output."""
    workspace, dataset, info = trained
    predictor = Predictor.load(workspace, info.id)
    paths = [dataset.root / item.file for item in dataset.items]
    images = np.stack([load_image(path, 32) for path in paths])
    expected = np.array([p.probabilities for p in predictor.predict(paths)])
    images_file = tmp_path_factory.mktemp("images") / "images.npy"
    np.save(images_file, images)
    return images_file, expected


def test_the_test_model_is_not_a_constant(app_predictions):
    _, expected = app_predictions
    assert expected.std(axis=0).max() > 1e-3
    assert len(set(expected.argmax(axis=1))) > 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_in_a_clean_process_predicts_what_the_app_predicts(fmt, exported, app_predictions, tmp_path):
    images_file, expected = app_predictions
    out_file = tmp_path / "probabilities.npy"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", CLEAN_PREDICT, fmt, str(exported.files[fmt]), str(images_file), str(out_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(out_file)
    assert got.shape == expected.shape
    if TOLERANCES[fmt] is None:
        ranked = np.sort(expected, axis=1)
        decisive = ranked[:, -1] - ranked[:, -2] > QUANT_DECISIVE_MARGIN
        assert decisive.sum() >= len(expected) // 3, "too few decisive images for a meaningful check"
        assert (got.argmax(axis=1) == expected.argmax(axis=1))[decisive].all()
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCES[fmt])


def test_the_export_checks_itself_and_says_so(exported):
    assert set(exported.checks) == set(FORMATS)
    for fmt, check in exported.checks.items():
        assert check.passed, check
        assert check.tolerance == TOLERANCES[fmt]
    readme = exported.files["readme"].read_text(encoding="utf-8")
    assert "pixel values 0-255" in readme and "leads by more than 0.5" in readme and "≤ 1e-06" in readme


def test_all_formats_come_with_labels_and_one_zip(trained, exported):
    _, dataset, info = trained
    assert exported.files["labels"].read_text(encoding="utf-8") == "\n".join(dataset.classes) + "\n"
    assert (exported.out_dir / FILES["savedmodel"] / "saved_model.pb").is_file()
    with zipfile.ZipFile(exported.files["zip"]) as archive:
        names = set(archive.namelist())
    assert {
        "model.keras",
        "model.tflite",
        "model_quant.tflite",
        "labels.txt",
        "README.txt",
        "saved_model/saved_model.pb",
        "model.onnx",
    } <= names
    assert exported.files["zip"].name == f"{info.id}.zip"
    leftovers = [p.name for p in exported.out_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_exporting_again_reuses_current_files(trained, exported):
    workspace, _, info = trained
    before = {fmt: exported.files[fmt].stat().st_mtime_ns for fmt in FORMATS}
    again = export_run(workspace, info.id, ["all"], out_dir=exported.out_dir, archive=True)
    assert again.reused == FORMATS
    assert {fmt: again.files[fmt].stat().st_mtime_ns for fmt in FORMATS} == before
    assert again.checks == exported.checks


def test_the_default_destination_is_the_run_folder_and_it_can_be_read_back(trained):
    workspace, _, info = trained
    assert load_export(workspace, info.id) is None
    result = export_run(workspace, info.id, ["keras"])
    assert result.files["keras"] == info.dir / "exports" / "model.keras"
    assert result.files["keras"].read_bytes() == (info.dir / "best.keras").read_bytes()
    shown = load_export(workspace, info.id)
    assert shown is not None and set(shown.checks) == {"keras"} and "zip" not in shown.files
    assert not any((workspace.tmp_dir).iterdir())


def test_unknown_formats_are_refused_by_name():
    with pytest.raises(ExportError, match="'tfjs'.*keras, savedmodel, tflite, tflite-quant, onnx, all"):
        parse_formats(["tfjs"])
    assert parse_formats(["tflite", "keras"]) == ("keras", "tflite")
    assert parse_formats(["all"]) == FORMATS


def test_a_run_still_training_or_without_a_model_cannot_be_exported(trained):
    workspace, _, info = trained
    queued = runs.create_run(info.spec, workspace)
    with pytest.raises(RunError, match="still queued"):
        export_run(workspace, queued.id, ["keras"])
    runs.update_status(queued.dir, status="failed", error="boom")
    with pytest.raises(RunError, match=r"no saved model \(best.keras\)"):
        export_run(workspace, queued.id, ["keras"])
    assert not (queued.dir / "exports").exists()


def test_a_model_the_onnx_converter_cannot_handle_is_said_in_one_sentence_and_the_rest_is_written(
    trained, tmp_path, monkeypatch
):
    workspace, _, info = trained

    def cannot_convert(saved_model):
        raise ExportError("export.onnx_failed", reason="Unsupported ops: FancyOp")

    monkeypatch.setattr(export, "onnx_bytes", cannot_convert)
    result = export_run(workspace, info.id, ["tflite", "onnx"], out_dir=tmp_path / "out")
    assert set(result.failed) == {"onnx"} and not result.passed
    assert result.failed["onnx"].render("en") == (
        "ONNX was not exported: tf2onnx cannot convert this model (Unsupported ops: FancyOp); "
        "the other formats are written."
    )
    assert result.checks["tflite"].passed and "onnx" not in result.files
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert "Unsupported ops: FancyOp" in result.summary("en") and "FancyOp" in result.summary("ja")
    assert (
        "tflite" in (tmp_path / "out" / "README.txt").read_text()
        and "model.onnx" not in (tmp_path / "out" / "README.txt").read_text()
    )


def test_an_export_folder_that_is_a_file_is_refused(trained, tmp_path):
    workspace, _, info = trained
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="is a file"):
        export_run(workspace, info.id, ["keras"], out_dir=blocker)


def test_cli_export_writes_the_format_asked_for_as_json(trained, tmp_path):
    workspace, _, info = trained
    result = run_tlcore(
        "export", info.id, "--format", "tflite-quant", "--out", str(tmp_path / "cli-out"), "--json", workspace=workspace
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert set(data["files"]) == {"tflite-quant", "labels", "readme"}
    assert data["checks"]["tflite-quant"]["passed"] is True
    assert data["checks"]["tflite-quant"]["criterion"] == (
        "same top-1 class wherever the app's top class leads by more than 0.5"
    )
    assert sorted(p.name for p in (tmp_path / "cli-out").iterdir()) == [
        "README.txt",
        "export.json",
        "labels.txt",
        "model_quant.tflite",
    ]


def test_cli_export_of_an_unknown_format_exits_2_with_one_line(trained):
    workspace, _, info = trained
    result = run_tlcore("export", info.id, "--format", "tfjs", workspace=workspace)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "tfjs" in result.stderr
