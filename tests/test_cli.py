"""The command line: the same operations as the app, one clear line on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_tlcore


@pytest.fixture(scope="module")
def demo_zip(tmp_path_factory, demo_zip_bytes) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demo.zip"
    path.write_bytes(demo_zip_bytes)
    return path


def test_help_documents_every_subcommand(tmp_path):
    result = run_tlcore("--help", workspace=None)
    for command in ("inspect", "layers", "train", "runs", "stop", "datasets", "backbones"):
        assert command in result.stdout


def test_inspect_reports_classes_and_counts(demo_zip, tmp_path):
    result = run_tlcore("inspect", str(demo_zip), "--json", workspace=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["classes"]) == 3


def test_inspect_of_a_file_that_is_not_a_zip_exits_2_with_one_line(tmp_path):
    bogus = tmp_path / "photos.zip"
    bogus.write_bytes(b"this is not a zip file at all")
    result = run_tlcore("inspect", str(bogus), workspace=tmp_path / "ws")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "zip" in result.stderr.lower()
    stored = tmp_path / "ws" / "datasets"
    assert not stored.exists() or not any(stored.iterdir())  # nothing was stored


def test_layers_of_the_article_setup(tmp_path):
    result = run_tlcore(
        "layers",
        "--backbone",
        "resnet50",
        "--head",
        "flatten",
        "--strategy",
        "finetune",
        "--frozen",
        "168",
        "--json",
        workspace=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["base_layers"] == 175 and data["frozen_base_layers"] == 168
    trainable = sum(row["trainable_params"] for row in data["layers"])
    assert data["parameters"]["trainable"] == trainable
    # conv5_block3's last two convolutions and batch norms plus the Dense(2) on 7*7*2048 features
    expected = (3 * 3 * 512 * 512 + 512) + 2 * 512 + (512 * 2048 + 2048) + 2 * 2048 + (7 * 7 * 2048 * 2 + 2)
    assert data["parameters"]["trainable"] == expected


def test_layers_with_too_many_frozen_layers_exits_2(tmp_path):
    result = run_tlcore(
        "layers", "--backbone", "resnet50", "--strategy", "finetune", "--frozen", "999", workspace=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: frozen_layers must be a whole number from 0 to 175 (ResNet50 has 175 layers); received 999."
    ]


def test_train_then_runs_reports_best_val_accuracy(demo_zip, tmp_path):
    result = run_tlcore(
        "train",
        "--data",
        str(demo_zip),
        "--backbone",
        "mobilenet_0.25",
        "--weights",
        "none",
        "--strategy",
        "transfer",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--json",
        workspace=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "completed"
    listed = json.loads(run_tlcore("runs", "--json", workspace=tmp_path).stdout)
    assert [r["id"] for r in listed] == [run["id"]]
    assert listed[0]["best_val_accuracy"] == run["best_val_accuracy"]
    assert 0.0 <= run["best_val_accuracy"] <= 1.0
    assert listed[0]["path"] in ("features", "prefix", "full") and listed[0]["path_note"]
    if listed[0]["path"] != "full":
        assert listed[0]["features_done"] == listed[0]["features_total"] > 0


@pytest.mark.parametrize("command", [["train"], ["study", "--backbone", "mobilenet_0.25"]])
def test_a_dataset_refused_while_tensorflow_loads_still_gets_its_one_line(command, tmp_path):
    # Both commands ingest their dataset in a thread while TensorFlow is imported, its banner kept off
    # stderr; the refusal must reach stderr whole, once the import is over.
    bogus = tmp_path / "photos.zip"
    bogus.write_bytes(b"this is not a zip file at all")
    result = run_tlcore(*command, "--weights", "none", "--data", str(bogus), workspace=tmp_path / "ws")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "photos.zip" in result.stderr and "zip" in result.stderr.lower()


def test_train_with_unavailable_imagenet_weights_says_where_to_put_the_file(demo_zip, tmp_path):
    keras_home = tmp_path / "kh"
    result = run_tlcore(
        "train",
        "--data",
        str(demo_zip),
        "--backbone",
        "resnet50",
        "--epochs",
        "1",
        workspace=tmp_path / "ws",
        env={"KERAS_HOME": str(keras_home), "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in result.stderr
    assert str(keras_home / "models") in result.stderr
    runs_dir = tmp_path / "ws" / "runs"
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), "a refused run leaves no folder"


def test_stop_of_an_unknown_run_exits_2(tmp_path):
    result = run_tlcore("stop", "20990101-nothing", workspace=tmp_path)
    assert result.returncode == 2
    assert "no run" in result.stderr


def test_bad_flag_values_exit_2_with_one_line(tmp_path, demo_zip):
    result = run_tlcore("train", "--data", str(demo_zip), "--epochs", "zero", workspace=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), "Nothing to train: give a dataset"),
        (("--run", "r1", "--spec", "spec.json"), "--run trains a run that already has its spec"),
        (("--dataset", "0123456789abcdef", "--scale-batch"), "use it with --distribute mirrored or multiworker"),
        (("--spec", "missing.json"), "The spec file 'missing.json' does not exist."),
        (("--data-dir", "photos", "--val", "val.zip"), "--val is a zip of validation images for --data DATA.zip"),
        (
            ("--spec", "spec.json", "--epochs", "3", "--lr", "0.1"),
            "The spec sets the model and training options; leave out --epochs, --lr (or edit the spec file).",
        ),
    ],
)
def test_train_without_a_usable_source_exits_2_and_says_what_to_give(args, expected, tmp_path):
    result = run_tlcore("train", *args, workspace=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_spec_whose_dataset_is_elsewhere_asks_for_the_data(tmp_path):
    spec = {"dataset": "0123456789abcdef", "model": {"backbone": "mobilenet_0.25", "weights": "none", "num_classes": 2}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = run_tlcore("train", "--spec", str(tmp_path / "spec.json"), workspace=tmp_path / "ws")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("give the data with --data DATA.zip, --data-dir DIR or --dataset ID.")
    )
