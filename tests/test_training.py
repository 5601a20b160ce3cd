"""Training runs: what a run folder holds, how runs repeat, the two-phase recipe, renaming and deleting.

How runs stop, die and queue, with real trainer processes, is in `test_hardening.py` (one day in a workspace).
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import pytest
from helpers import tiny_spec

from tlcore import metrics_log, runs
from tlcore.datasets import ingest_zip
from tlcore.errors import RunError, TLCoreError
from tlcore.models import build_base_ahead, build_model, get_base, keep_built_ahead_for
from tlcore.spec import Phase
from tlcore.training import compile_for_phase, train_run
from tlcore.workspace import Workspace

# Two epochs of batch 8 from scratch, unless changed.
quick_run = partial(tiny_spec, strategy="scratch", epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_zip_bytes):
    workspace = Workspace(tmp_path_factory.mktemp("trained"))
    dataset = ingest_zip(_write(tmp_path_factory.mktemp("zips") / "demo.zip", demo_zip_bytes), workspace=workspace)
    info = runs.create_run(quick_run(dataset.id, num_classes=len(dataset.classes)), workspace)
    return workspace, dataset, train_run(workspace, info.id)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


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


def test_a_base_built_ahead_is_taken_by_its_run_which_trains_what_a_cold_run_trains(trained, calibrated_weights):
    # The warm trainer builds the latest run's pretrained base while it waits (`tlcore.spare`).
    workspace, dataset, _ = trained
    spec = tiny_spec(dataset.id, weights=str(calibrated_weights), epochs=2, batch_size=8)
    cold = train_run(workspace, runs.create_run(spec, workspace).id)
    assert build_base_ahead(spec.model, workspace)
    assert keep_built_ahead_for(spec.model, workspace)
    warm = train_run(workspace, runs.create_run(spec, workspace).id)
    assert not keep_built_ahead_for(spec.model, workspace)  # the run took it
    a, b = metrics_log.read_metrics(workspace, cold.id), metrics_log.read_metrics(workspace, warm.id)
    np.testing.assert_array_equal(a["loss"].to_numpy(), b["loss"].to_numpy())
    np.testing.assert_array_equal(a["val_accuracy"].to_numpy(), b["val_accuracy"].to_numpy())


def test_a_base_built_ahead_for_another_model_is_dropped(trained, calibrated_weights):
    workspace, dataset, _ = trained
    assert not build_base_ahead(tiny_spec(dataset.id).model, workspace)  # random weights: nothing to build
    assert build_base_ahead(tiny_spec(dataset.id, weights=str(calibrated_weights)).model, workspace)
    assert not keep_built_ahead_for(tiny_spec(dataset.id, weights=str(calibrated_weights), image_size=48).model)
    assert not keep_built_ahead_for(tiny_spec(dataset.id, weights=str(calibrated_weights)).model)  # dropped


def test_two_phase_recipe_freezes_then_unfreezes_the_top_of_the_base():
    spec = quick_run(
        "unused",
        num_classes=2,
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
    spec = quick_run("x", num_classes=2, strategy="transfer", epochs=3).validated()
    assert spec.phases() == [Phase("transfer", "transfer", None, 3, 1e-3)]


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
        runs.create_run(quick_run("0123456789abcdef", num_classes=2), workspace)


def _tensorboard_scalars(folder) -> dict[str, dict[int, float]]:
    """Every scalar in a run's TensorBoard event files, by tag and step, read with TensorFlow's own reader."""
    import tensorflow as tf

    found: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def test_tensorboard_holds_the_same_curves_as_the_metrics_log_in_both_phases(workspace, demo_zip_bytes, tmp_path):
    dataset = ingest_zip(_write(tmp_path / "demo.zip", demo_zip_bytes), workspace=workspace)
    spec = quick_run(
        dataset.id,
        num_classes=len(dataset.classes),
        strategy="finetune",
        frozen_layers=60,
        epochs=1,
        two_phase=True,
        finetune_epochs=1,
        learning_rate=1e-3,
        finetune_learning_rate=1e-5,
    )
    info = train_run(workspace, runs.create_run(spec, workspace).id)
    assert info.status == "completed", info.error
    scalars = _tensorboard_scalars(info.dir / runs.TENSORBOARD_FOLDER)
    metrics = metrics_log.read_metrics(workspace, info.id)
    batches, epochs = metrics[metrics["kind"] == "batch"], metrics[metrics["kind"] == "epoch"]
    assert list(epochs["phase"]) == ["transfer", "finetune"]
    for name in ("loss", "accuracy"):
        expected = dict(zip(batches["global_step"].astype(int), batches[name].astype("float32"), strict=True))
        assert scalars[f"batch/{name}"] == pytest.approx(expected, rel=0, abs=0)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        expected = dict(zip(epochs["epoch"].astype(int), epochs[name].astype("float32"), strict=True))
        assert scalars[f"epoch/{name}"] == pytest.approx(expected, rel=0, abs=0)
    assert scalars["epoch/learning_rate"] == pytest.approx({1: 1e-3, 2: 1e-5}, rel=1e-6)
    listed = runs.tensorboard_command([info])
    assert listed == f"tensorboard --logdir {info.dir / runs.TENSORBOARD_FOLDER}"
