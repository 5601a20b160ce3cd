"""Show the code: the generated plain Keras script reads like the article, and really runs."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import zipfile

import keras
import pytest
from helpers import run_tlcore, tiny_spec

from tlcore import runs
from tlcore.backbones import BACKBONES
from tlcore.codegen import generate_script, run_script, script_name
from tlcore.datasets import ingest_zip
from tlcore.models import ModelSpec, Strategy, build_model, parameter_counts
from tlcore.spec import Augmentation, RunSpec
from tlcore.training import train_run
from tlcore.workspace import Workspace


def article_spec(**changes) -> RunSpec:
    model = ModelSpec(
        backbone="resnet50",
        weights="imagenet",
        image_size=224,
        num_classes=2,
        pooling="flatten",
        strategy="finetune",
        frozen_layers=168,
    )
    return RunSpec(dataset="0123456789abcdef", model=model, **changes)


@pytest.fixture(scope="module")
def two_phase_run(tmp_path_factory, demo_zip_bytes):
    """A tiny finished two-phase run (random weights), with most head and training options on."""
    workspace = Workspace(tmp_path_factory.mktemp("codegen-ws"))
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    spec = tiny_spec(
        dataset.id,
        pooling="flatten",
        dropout=0.2,
        hidden_units=16,
        strategy="finetune",
        frozen_layers=60,
        epochs=1,
        batch_size=8,
        optimizer="sgd",
        learning_rate=1e-2,
        two_phase=True,
        finetune_epochs=1,
        finetune_learning_rate=1e-3,
        augmentation=Augmentation(flip=True, rotation=0.05),
        seed=3,
    )
    info = train_run(workspace, runs.create_run(spec, workspace).id)
    assert info.status == "completed", info.error
    return workspace, dataset, info


def test_the_article_preset_reads_like_the_article():
    script = generate_script(article_spec(), ["cats", "dogs"], run_id="20240101-000000-resnet50")
    for line in (
        "base_model = keras.applications.ResNet50(",
        'include_top=False, weights="imagenet", input_shape=IMAGE_SIZE + (3,)',
        "x = keras.applications.resnet50.preprocess_input(inputs)",
        "x = keras.layers.Flatten()(x)",
        'outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(x)',
        "for layer in base_model.layers[:168]:\n    layer.trainable = False",
        "optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE)",
        "model.fit(train_ds, validation_data=val_ds, epochs=EPOCHS)",
        'CLASS_NAMES = ["cats", "dogs"]',
        "IMAGE_SIZE = (224, 224)",
        "BATCH_SIZE = 32",
        "EPOCHS = 5",
        "LEARNING_RATE = 0.001",
        "python train_20240101-000000-resnet50.py IMAGES_FOLDER",
        "model.save(MODEL_FILE)",
    ):
        assert line in script, line
    assert "model.layers[:168]" in script  # named in the comment that maps the loop to the article's
    compile(script, "train.py", "exec")


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_backbone_and_strategy_gives_valid_python(backbone, strategy):
    model = ModelSpec(
        backbone=backbone,
        weights="none" if strategy == "scratch" else "imagenet",
        image_size=64,
        num_classes=4,
        strategy=strategy,
        frozen_layers=5 if strategy == "finetune" else None,
        dropout=0.3,
        hidden_units=32,
    )
    script = generate_script(
        RunSpec(dataset="x", model=model, optimizer="rmsprop"),
        list("abcd"),
        run_id="20240101-000000-x",
        run_name='a """tricky""" \\ name\'',
    )
    compile(script, "train.py", "exec")
    assert 'a \\"\\"\\"tricky' in script
    assert ("weights=None" if strategy == "scratch" else 'weights="imagenet"') in script
    assert ("base_model(x)" if strategy == "scratch" else "base_model(x, training=False)") in script
    assert ("base_model.trainable = False" in script) == (strategy == "transfer")


KINDS = {
    "transfer": {"strategy": "transfer"},
    "finetune": {"strategy": "finetune", "frozen_layers": 60},
    "scratch": {"strategy": "scratch"},
    "two-phase": {"strategy": "finetune", "frozen_layers": 60, "two_phase": True, "finetune_epochs": 1},
}

# Runs every generated script in one Python process (TensorFlow is imported once), each with its own
# arguments, as `python SCRIPT IMAGES_FOLDER MODEL_FILE` would; prints what failed, if anything.
RUN_SCRIPTS = """
import json, runpy, sys, traceback
failed = {}
for script, images, model_file in json.loads(sys.argv[1]):
    sys.argv = [script, images, model_file]
    try:
        runpy.run_path(script, run_name="__main__")
    except BaseException:
        failed[f"{script} on {images}"] = traceback.format_exc()[-2000:]
print(json.dumps(failed))
"""


def test_the_script_trains_on_class_folders_and_on_train_and_val_folders_for_every_kind_of_run(
    workspace, demo_zip_bytes, tmp_path
):
    """Both layouts the script's docstring promises, for every kind of run (random weights: offline)."""
    class_folders, split_folders = tmp_path / "class-folders", tmp_path / "split-folders"
    with zipfile.ZipFile(io.BytesIO(demo_zip_bytes)) as archive:
        archive.extractall(class_folders)
        for index, name in enumerate(n for n in archive.namelist() if not n.endswith("/")):
            target = split_folders / ("val" if index % 3 == 0 else "train") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    jobs, expected = [], {}
    for kind, changes in KINDS.items():
        spec = tiny_spec(dataset.id, num_classes=len(dataset.classes), epochs=1, batch_size=8, **changes)
        script = tmp_path / f"train_{kind}.py"
        script.write_text(generate_script(spec, dataset.classes, dataset=dataset), encoding="utf-8")
        model = build_model(spec.model.validated(), load_weights=False)
        for layout in (class_folders, split_folders):
            model_file = tmp_path / f"{kind}-{layout.name}.keras"
            jobs.append((str(script), str(layout), str(model_file)))
            expected[model_file] = parameter_counts(model)["trainable"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPTS, json.dumps(jobs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
    assert "Found 16 files belonging to 3 classes" in result.stdout  # train/ of the split folders, as given
    for model_file, trainable in expected.items():
        model = keras.models.load_model(model_file)  # safe_mode on
        assert sum(math.prod(w.shape) for w in model.trainable_weights) == trainable, model_file.name
        assert model.output.shape[-1] == len(dataset.classes)


def test_the_generated_script_runs_and_saves_the_runs_model(two_phase_run, demo_zip_bytes, tmp_path):
    workspace, dataset, info = two_phase_run
    script = run_script(workspace, info.id)
    for expected in (
        "keras.optimizers.SGD(learning_rate=FINETUNE_LEARNING_RATE, momentum=0.9)",
        "initial_epoch=EPOCHS, epochs=EPOCHS + FINETUNE_EPOCHS",
        "base_model.trainable = False",
        "for layer in base_model.layers[:60]:",
        'keras.layers.Dense(16, activation="relu")',
        "keras.layers.Dropout(0.2)",
        'keras.layers.RandomFlip("horizontal", seed=SEED)',
        "weights=None",
        "alpha=0.25",
        "SEED = 3",
        "FINETUNE_EPOCHS = 1",
        "validation_split=0.2",
    ):
        assert expected in script, expected
    images = tmp_path / "images"
    with zipfile.ZipFile(io.BytesIO(demo_zip_bytes)) as archive:
        archive.extractall(images)
    (tmp_path / script_name(info.id)).write_text(script, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, script_name(info.id), str(images), "trained.keras"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model = keras.models.load_model(tmp_path / "trained.keras")  # safe_mode on
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert trainable == info.trainable_params
    assert model.output.shape[-1] == len(dataset.classes)


def test_cli_code_prints_writes_and_reports_the_script(two_phase_run, tmp_path):
    workspace, _, info = two_phase_run
    expected = run_script(workspace, info.id)
    printed = run_tlcore("code", info.id, workspace=workspace)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == expected
    target = tmp_path / "train.py"
    written = run_tlcore("code", info.id, "--out", str(target), "--json", workspace=workspace)
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout) == {"run": info.id, "file": str(target), "script": expected}
    assert target.read_text(encoding="utf-8") == expected


def test_cli_code_of_an_unknown_run_exits_2_with_one_line(tmp_path):
    result = run_tlcore("code", "20990101-nothing", workspace=Workspace(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no run" in result.stderr
