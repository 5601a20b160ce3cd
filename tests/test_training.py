"""Training runs: what a run folder holds, and how runs stop, die, queue and repeat."""

from __future__ import annotations

import os
import signal
import time

import keras
import numpy as np
import pytest

from tlcore import metrics_log, runs
from tlcore.datasets import ingest_zip
from tlcore.errors import RunError, TLCoreError
from tlcore.models import ModelSpec, build_model, get_base
from tlcore.spec import Phase, RunSpec
from tlcore.training import compile_for_phase, train_run
from tlcore.workspace import Workspace


def tiny_spec(dataset_id: str, classes: int, **changes) -> RunSpec:
    model = ModelSpec(
        backbone="mobilenet_0.25",
        weights="none",
        image_size=32,
        num_classes=classes,
        strategy=changes.pop("strategy", "scratch"),
        frozen_layers=changes.pop("frozen_layers", None),
    )
    return RunSpec(
        dataset=dataset_id,
        model=model,
        epochs=changes.pop("epochs", 2),
        batch_size=changes.pop("batch_size", 8),
        **changes,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_zip_bytes):
    workspace = Workspace(tmp_path_factory.mktemp("trained"))
    dataset = ingest_zip(_write(tmp_path_factory.mktemp("zips") / "demo.zip", demo_zip_bytes), workspace=workspace)
    info = runs.create_run(tiny_spec(dataset.id, len(dataset.classes)), workspace)
    return workspace, dataset, train_run(workspace, info.id)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _wait(predicate, timeout: float = 120.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def test_a_finished_run_folder_holds_spec_metrics_labels_and_best_model(trained):
    workspace, dataset, info = trained
    assert info.status == "completed", info.error
    assert info.progress == 1.0 and info.epoch == 2
    assert (info.dir / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1] == list(dataset.classes)
    metrics = metrics_log.read_metrics(workspace, info.id)
    epochs = metrics[metrics["kind"] == "epoch"]
    batches = metrics[metrics["kind"] == "batch"]
    assert list(epochs["epoch"]) == [1, 2]
    assert epochs["val_accuracy"].notna().all() and epochs["val_loss"].notna().all()
    assert len(batches) == 2 * info.steps_per_epoch
    assert info.best_val_accuracy == pytest.approx(epochs["val_accuracy"].max())
    model = keras.models.load_model(info.dir / "best.keras")  # safe_mode stays on
    probabilities = model.predict(np.full((1, 32, 32, 3), 128.0, "float32"), verbose=0)
    assert probabilities.shape == (1, len(dataset.classes))
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_the_same_spec_trains_the_same_curve(trained):
    workspace, dataset, first = trained
    again = runs.create_run(first.spec, workspace)
    second = train_run(workspace, again.id)
    a = metrics_log.read_metrics(workspace, first.id)
    b = metrics_log.read_metrics(workspace, second.id)
    np.testing.assert_allclose(a["loss"].to_numpy(), b["loss"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a["val_accuracy"].to_numpy(), b["val_accuracy"].to_numpy())


def test_two_phase_recipe_freezes_then_unfreezes_the_top_of_the_base():
    spec = tiny_spec(
        "unused",
        2,
        strategy="finetune",
        frozen_layers=60,
        two_phase=True,
        finetune_epochs=1,
        finetune_learning_rate=1e-2,
        learning_rate=1e-2,
    ).validated()
    model = build_model(spec.model, load_weights=False)
    base = get_base(model)
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1] * 4)
    before = [w.numpy().copy() for w in base.weights]

    transfer, finetune = spec.phases()
    assert (transfer.strategy, finetune.strategy, finetune.frozen_layers) == ("transfer", "finetune", 60)
    view, frozen = compile_for_phase(model, spec, transfer)
    view.fit(images, labels, epochs=1, verbose=0)
    assert frozen == len(base.layers)
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(base.weights, before, strict=True)), (
        "transfer moved the base"
    )

    view, frozen = compile_for_phase(model, spec, finetune)
    view.fit(images, labels, epochs=1, verbose=0)
    assert frozen == 60
    original = {id(w): b for w, b in zip(base.weights, before, strict=True)}
    moved = {
        index
        for index, layer in enumerate(base.layers)
        for w in layer.weights
        if not np.array_equal(w.numpy(), original[id(w)])
    }
    assert moved, "fine-tuning did not change the top of the base: was the model recompiled?"
    assert min(moved) >= 60, f"frozen layers {sorted(i for i in moved if i < 60)} changed"


def test_phases_of_a_plain_run():
    spec = tiny_spec("x", 2, strategy="transfer", epochs=3).validated()
    assert spec.phases() == [Phase("transfer", "transfer", None, 3, 1e-3)]


def test_stop_is_honoured_within_an_epoch_and_keeps_the_best_model(workspace, demo_zip_bytes, tmp_path):
    dataset = ingest_zip(_write(tmp_path / "demo.zip", demo_zip_bytes), workspace=workspace)
    spec = tiny_spec(dataset.id, len(dataset.classes), epochs=200, batch_size=2)
    info = runs.start(spec, workspace)
    _wait(lambda: runs.load_run(workspace, info.id).step >= 2)
    runs.stop(workspace, info.id)
    runs.stop(workspace, info.id)  # pressing Stop twice is harmless
    final = _wait(lambda: (i := runs.load_run(workspace, info.id)).status in runs.FINISHED_STATUSES and i)
    assert final.status == "stopped"
    metrics = metrics_log.read_metrics(workspace, info.id)
    assert metrics["epoch"].max() < 200
    assert (final.dir / "best.keras").is_file()
    assert final.best_val_accuracy is not None
    with pytest.raises(RunError, match="not running"):
        runs.stop(workspace, info.id)


def test_a_killed_trainer_leaves_an_interrupted_run_with_its_metrics(workspace, demo_zip_bytes, tmp_path):
    dataset = ingest_zip(_write(tmp_path / "demo.zip", demo_zip_bytes), workspace=workspace)
    info = runs.start(tiny_spec(dataset.id, len(dataset.classes), epochs=200, batch_size=2), workspace)
    _wait(lambda: runs.load_run(workspace, info.id).step >= 2)
    pid = runs.RunStatus.read(info.dir).pid
    os.kill(pid, signal.SIGKILL)
    final = _wait(lambda: (i := runs.load_run(workspace, info.id)).status == "interrupted" and i)
    assert "ended unexpectedly" in final.error.render("en")
    assert len(metrics_log.read_metrics(workspace, info.id)) >= 2
    assert [r.status for r in runs.list_runs(workspace)] == ["interrupted"]


def test_runs_queue_and_train_one_at_a_time(workspace, demo_zip_bytes, tmp_path):
    dataset = ingest_zip(_write(tmp_path / "demo.zip", demo_zip_bytes), workspace=workspace)
    spec = tiny_spec(dataset.id, len(dataset.classes), epochs=1)
    first = runs.start(spec, workspace)
    second = runs.start(spec, workspace)
    _wait(lambda: runs.load_run(workspace, first.id).status == "running")
    assert runs.load_run(workspace, second.id).status == "queued"
    done = _wait(
        lambda: all(runs.load_run(workspace, i.id).status == "completed" for i in (first, second)), timeout=180
    )
    assert done
    a, b = runs.load_run(workspace, first.id), runs.load_run(workspace, second.id)
    assert a.ended <= b.started


def test_a_damaged_run_folder_is_listed_as_damaged_without_hiding_others(trained):
    workspace, _, info = trained
    broken = workspace.runs_dir / "20990101-000000-broken"
    broken.mkdir()
    (broken / "spec.json").write_text("{not json", encoding="utf-8")
    listed = {r.id: r for r in runs.list_runs(workspace)}
    assert listed[broken.name].status == "damaged"
    assert listed[info.id].status == "completed"


def test_rename_and_delete(trained):
    workspace, _, info = trained
    extra = runs.create_run(info.spec, workspace)
    assert runs.rename(workspace, extra.id, "  my   baseline ").name == "my baseline"
    assert runs.load_run(workspace, extra.id).name == "my baseline"
    with pytest.raises(RunError, match="stop it before deleting"):
        runs.delete(workspace, extra.id)  # still queued
    runs.update_status(extra.dir, status="stopped")
    runs.delete(workspace, extra.id)
    assert not extra.dir.exists()
    assert info.id in [r.id for r in runs.list_runs(workspace)]


@pytest.mark.parametrize("bad_id", ["../escape", "/etc", "a/b", ".hidden", ""])
def test_run_ids_cannot_name_paths_outside_the_workspace(trained, bad_id):
    workspace, _, _ = trained
    with pytest.raises(TLCoreError):
        runs.load_run(workspace, bad_id)


def test_a_spec_naming_a_missing_dataset_is_refused(workspace):
    with pytest.raises(TLCoreError, match="0123456789abcdef"):
        runs.create_run(tiny_spec("0123456789abcdef", 2), workspace)
