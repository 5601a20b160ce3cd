"""The fast paths: cached features and frozen prefixes train the same model as the full path, faster."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import tiny_model, tiny_spec

from tlcore import callbacks, features, metrics_log, runs, training
from tlcore.acceleration import Acceleration, detect_acceleration
from tlcore.datasets import ingest_zip
from tlcore.distribute import Distribution
from tlcore.features import Budget, CachedFeatures, FeatureCache, cache_key, cut_model
from tlcore.i18n import Message
from tlcore.models import ModelSpec, apply_strategy, build_model, get_base
from tlcore.paths import choose_path
from tlcore.spec import Augmentation
from tlcore.training import train_run
from tlcore.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


# Three epochs of batch 4 that learn, transfer learning unless changed.
tiny_run = partial(tiny_spec, epochs=3, batch_size=4, learning_rate=1e-2, seed=3)


def built(spec: ModelSpec, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_model(spec, load_weights=False)
    apply_strategy(model, spec.strategy, spec.frozen_layers)
    return model


@pytest.fixture(autouse=True)
def cold_memory_cache():
    """Every test starts with nothing cached in this process's memory."""
    features._memory.clear()
    yield
    features._memory.clear()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_zip_bytes):
    workspace = Workspace(tmp_path_factory.mktemp("features"))
    archive = tmp_path_factory.mktemp("zips") / "demo.zip"
    archive.write_bytes(demo_zip_bytes)
    return workspace, ingest_zip(archive, workspace=workspace)


def pixels(n: int = 5, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("uint8")


# The cut


def _assert_cut_computes_the_full_model(model: keras.Model, frozen: int) -> features.Cut:
    cut = cut_model(model, frozen)
    images = pixels()
    cached = cut.compute(images)
    assert [a.shape[1:] for a in cached] == list(cut.shapes)
    head_input = cached[0] if len(cached) == 1 else list(cached)
    expected = model(images.astype("float32"), training=False)
    np.testing.assert_allclose(cut.trainable_model()(head_input, training=False), expected, rtol=1e-5, atol=1e-6)
    return cut


def test_freezing_resnet50_at_168_cuts_the_two_tensors_that_enter_the_last_residual_unit():
    model = built(
        ModelSpec(
            backbone="resnet50",
            weights="none",
            image_size=32,
            num_classes=2,
            strategy="finetune",
            frozen_layers=168,
            pooling="flatten",
        )
    )
    cut = _assert_cut_computes_the_full_model(model, 168)
    assert set(cut.names) == {"conv5_block2_out:0", "conv5_block3_1_relu:0"}
    assert cut.suffix_layers == 175 - 168


@pytest.mark.parametrize(
    "backbone, frozen",
    [
        ("efficientnet_b0", 155),  # inside squeeze-excite: three tensors cross, two of them skip ahead
        ("mobilenet_v2_0.35", 100),  # the tutorial's cut, inside an inverted residual block
        ("mobilenet_v2_0.35", 154),  # the whole base: the cut moves past the head's pooling
    ],
)
def test_the_trainable_part_on_cached_activations_computes_what_the_full_model_computes(backbone, frozen):
    spec = ModelSpec(
        backbone=backbone,
        weights="none",
        image_size=32,
        num_classes=4,
        strategy="finetune",
        frozen_layers=frozen,
        dropout=0.5,
        hidden_units=8,
    )
    _assert_cut_computes_the_full_model(built(spec), frozen)


def test_a_flatten_head_caches_the_base_output_and_trains_the_whole_head():
    model = built(tiny_model(pooling="flatten"))
    cut = cut_model(model, len(get_base(model).layers))
    assert cut.names == ("conv_pw_13_relu:0",) and cut.shapes == ((1, 1, 256),)


def test_the_trainable_part_learns_only_what_the_strategy_leaves_trainable():
    model = built(tiny_model(strategy="finetune", frozen_layers=60))
    cut = cut_model(model, 60)
    view = cut.trainable_model()
    (cached,) = cut.compute(pixels(1))  # MobileNet is a chain: one tensor crosses
    view(cached, training=False)
    assert {id(w) for w in view.trainable_weights} == {id(w) for w in model.trainable_weights}
    assert all(
        index >= 60
        for index, layer in enumerate(get_base(model).layers)
        for w in layer.trainable_weights
        if id(w) in {id(v) for v in view.trainable_weights}
    )


def test_images_decoded_on_the_way_give_the_same_features_as_decoded_images(demo):
    from tlcore.images import load_images

    _, dataset = demo
    paths = dataset.files("train")[0]
    cut = cut_model(built(tiny_model()), 86)
    seen = []
    from_files = cut.compute(paths, progress=seen.append, batch_size=4)
    np.testing.assert_array_equal(from_files[0], cut.compute(load_images(paths, 32))[0])
    assert seen[-1] == len(paths) and seen == sorted(seen)


def test_a_cut_outside_the_base_is_refused_quoting_the_value():
    with pytest.raises(ValueError, match="received frozen_layers=0"):
        cut_model(built(tiny_model()), 0)


# Same model, same results


def _train_both_ways(workspace, spec, monkeypatch):
    results = {}
    for fast in ("0", "1"):
        monkeypatch.setenv("TLCORE_FAST_PATH", fast)
        info = train_run(workspace, runs.create_run(spec, workspace).id)
        assert info.status == "completed", info.error
        results[fast] = info
    return results["0"], results["1"]


@pytest.mark.parametrize(
    "changes, path",
    [
        ({"strategy": "transfer", "dropout": 0.3, "hidden_units": 16}, "features"),
        ({"strategy": "finetune", "frozen_layers": 60, "two_phase": True, "finetune_epochs": 2}, "prefix"),
        # Half of each class: the fast path takes its rows from the whole dataset's cached features.
        ({"strategy": "finetune", "frozen_layers": 60, "train_fraction": 0.5}, "prefix"),
    ],
)
def test_the_fast_path_trains_exactly_what_the_full_model_trains(demo, monkeypatch, changes, path):
    workspace, dataset = demo
    full, fast = _train_both_ways(workspace, tiny_run(dataset.id, **changes), monkeypatch)
    assert runs.RunStatus.read(full.dir).path == "full"
    assert runs.RunStatus.read(fast.dir).path == path
    a, b = metrics_log.read_metrics(workspace, full.id), metrics_log.read_metrics(workspace, fast.id)
    assert list(a["kind"]) == list(b["kind"]) and list(a["step"]) == list(b["step"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["val_accuracy"], b["val_accuracy"])
    images = pixels(6).astype("float32")
    predictions = [keras.models.load_model(info.dir / "best.keras").predict(images, verbose=0) for info in (full, fast)]
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-5, atol=1e-6)


def test_a_head_trained_on_cached_features_predicts_like_one_trained_through_the_full_model(demo):
    from tlcore.pipeline import make_pipelines

    _, dataset = demo
    spec = tiny_run(dataset.id, dropout=0.2, hidden_units=16, learning_rate=5e-2).validated()
    phase = spec.phases()[0]
    trained = []
    for fast in (False, True):
        training.seed_everything(spec.seed)
        model = build_model(spec.model, load_weights=False)
        train, val = make_pipelines(dataset, 32, spec.batch_size, spec.seed)
        if fast:
            apply_strategy(model, phase.strategy, None)
            cut = cut_model(model, len(get_base(model).layers))
            view = cut.trainable_model()
            training.compile_view(view, spec, phase, Acceleration())
            paths, labels = dataset.files("train")
            order = features.shuffled_order(len(labels), spec.seed)
            train = features.feature_batches(cut.compute(paths), labels, spec.batch_size, order)
        else:
            view, _ = training.compile_for_phase(model, spec, phase)
        before = [w.numpy().copy() for w in model.weights]
        view.fit(train, epochs=4, verbose=0, shuffle=False)
        assert any(not np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before, strict=True)), (
            "nothing learned"
        )
        trained.append(model)
    images = pixels(8).astype("float32")
    np.testing.assert_allclose(
        trained[1].predict(images, verbose=0), trained[0].predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_best_keras_from_the_fast_path_is_the_full_model_taking_raw_pixels(demo, monkeypatch):
    workspace, dataset = demo
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")
    info = train_run(workspace, runs.create_run(tiny_run(dataset.id, epochs=1), workspace).id)
    model = keras.models.load_model(info.dir / "best.keras")
    assert [layer.name for layer in model.layers] == ["image", "rescale", "base", "head"]
    assert model.input_shape == (None, 32, 32, 3)
    probabilities = model.predict(pixels(2).astype("float32"), verbose=0)
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def _callbacks_after_a_best_then_a_worse_epoch(
    run_dir: Path,
) -> tuple[keras.callbacks.CallbackList, list[callbacks.RunCallback], keras.Layer, np.ndarray]:
    model = built(tiny_model())
    run_callbacks = callbacks.for_run(run_dir, model, 0.0, Distribution())
    events = keras.callbacks.CallbackList(run_callbacks, model=model)
    dense = model.get_layer("head").get_layer("predictions")
    events.on_train_begin()
    events.on_epoch_begin(0)
    events.on_epoch_end(0, {"val_accuracy": 0.9})  # the best epoch: kept in memory, not written yet
    best = dense.kernel.numpy().copy()
    events.on_train_batch_end(0, {"loss": 1.0})
    events.on_epoch_begin(1)
    dense.kernel.assign(best + 1.0)  # a later, worse epoch
    events.on_epoch_end(1, {"val_accuracy": 0.5})
    return events, run_callbacks, dense, best


def _saved_kernel(run_dir: Path) -> np.ndarray:
    return keras.models.load_model(run_dir / "best.keras").get_layer("head").get_layer("predictions").kernel.numpy()


def test_best_keras_holds_the_best_epochs_weights_even_when_written_after_later_epochs(tmp_path):
    events, _, dense, best = _callbacks_after_a_best_then_a_worse_epoch(tmp_path)
    assert not (tmp_path / "best.keras").exists()
    assert runs.RunStatus.read(tmp_path).best_epoch is None, "the status names only a model on disk"
    events.on_train_end()
    np.testing.assert_array_equal(_saved_kernel(tmp_path), best)
    np.testing.assert_array_equal(dense.kernel.numpy(), best + 1.0)
    assert runs.RunStatus.read(tmp_path).best_epoch == 1


def test_a_fault_during_fit_still_leaves_the_best_model_the_status_names(tmp_path):
    _, run_callbacks, _, best = _callbacks_after_a_best_then_a_worse_epoch(tmp_path)
    callbacks.keep_best_after_fault(run_callbacks)  # what the trainer does when fit raises
    np.testing.assert_array_equal(_saved_kernel(tmp_path), best)
    status = runs.RunStatus.read(tmp_path)
    assert (status.best_epoch, status.best_val_accuracy) == (1, 0.9)


def test_best_keras_is_written_in_the_background_while_the_next_epoch_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "BEST_SAVE_INTERVAL_SECONDS", 0.0)
    writing, release = threading.Event(), threading.Event()
    write = callbacks.write_model

    def held_write(*args):
        writing.set()
        assert release.wait(timeout=120)
        write(*args)

    monkeypatch.setattr(callbacks, "write_model", held_write)
    model = built(tiny_model())
    events = keras.callbacks.CallbackList(callbacks.for_run(tmp_path, model, 0.0, Distribution()), model=model)
    dense = model.get_layer("head").get_layer("predictions")
    events.on_train_begin()
    events.on_epoch_begin(0)
    events.on_epoch_end(0, {"val_accuracy": 0.9})  # returns at once: the write waits in the background
    best = dense.kernel.numpy().copy()
    assert writing.wait(timeout=120)
    events.on_epoch_begin(1)
    dense.kernel.assign(best + 1.0)  # the next epoch trains meanwhile
    events.on_train_batch_end(0, {"loss": 1.0})
    assert runs.RunStatus.read(tmp_path).best_epoch is None, "the status names only a model on disk"
    release.set()
    events.on_epoch_end(1, {"val_accuracy": 0.5})
    events.on_train_end()
    np.testing.assert_array_equal(_saved_kernel(tmp_path), best)
    assert runs.RunStatus.read(tmp_path).best_epoch == 1
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


# The cache


def test_a_second_run_reuses_the_features_from_disk_and_trains_the_same(demo, monkeypatch):
    workspace, dataset = demo
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")
    spec = tiny_run(dataset.id, seed=11)
    first = train_run(workspace, runs.create_run(spec, workspace).id)
    features._memory.clear()  # a new trainer process: only the disk remembers
    second = train_run(workspace, runs.create_run(spec, workspace).id)
    status = runs.RunStatus.read(second.dir)
    assert runs.RunStatus.read(first.dir).features_cached is False
    assert status.features_cached is True and status.features_done == status.features_total == 24
    assert "already cached" in status.path_note.render("en")
    a, b = metrics_log.read_metrics(workspace, first.id), metrics_log.read_metrics(workspace, second.id)
    np.testing.assert_array_equal(a["loss"], b["loss"])


def test_the_cache_key_changes_with_everything_the_features_depend_on(tmp_path):
    reference = built(tiny_model(strategy="finetune", frozen_layers=60), seed=0)
    key = cache_key("dataset-a", "mobilenet_0.25", cut_model(reference, 60))
    same = built(tiny_model(strategy="finetune", frozen_layers=60), seed=0)
    assert cache_key("dataset-a", "mobilenet_0.25", cut_model(same, 60)) == key

    weights_file = tmp_path / "base.weights.h5"
    get_base(reference).save_weights(weights_file)
    from_file = build_model(tiny_model(strategy="finetune", frozen_layers=60, weights=str(weights_file)))
    assert cache_key("dataset-a", "mobilenet_0.25", cut_model(from_file, 60)) == key

    changed = {
        "dataset": cache_key("dataset-b", "mobilenet_0.25", cut_model(reference, 60)),
        "backbone": cache_key(
            "dataset-a",
            "mobilenet_0.5",
            cut_model(built(tiny_model(backbone="mobilenet_0.5", strategy="finetune", frozen_layers=60)), 60),
        ),
        "random weights": cache_key(
            "dataset-a",
            "mobilenet_0.25",
            cut_model(built(tiny_model(strategy="finetune", frozen_layers=60), seed=1), 60),
        ),
        "image size": cache_key(
            "dataset-a",
            "mobilenet_0.25",
            cut_model(built(tiny_model(image_size=48, strategy="finetune", frozen_layers=60)), 60),
        ),
        "cut": cache_key("dataset-a", "mobilenet_0.25", cut_model(reference, 40)),
    }
    base = get_base(reference)
    base.layers[1].weights[0].assign(base.layers[1].weights[0] * 1.5)
    base.save_weights(weights_file)  # the same weights file, rewritten with other values
    rewritten = build_model(tiny_model(strategy="finetune", frozen_layers=60, weights=str(weights_file)))
    changed["weights file"] = cache_key("dataset-a", "mobilenet_0.25", cut_model(rewritten, 60))
    assert all(value != key for value in changed.values()), changed
    assert len(set(changed.values())) == len(changed)


def _entry(rows: int, seed: int = 0) -> CachedFeatures:
    rng = np.random.default_rng(seed)
    return CachedFeatures(
        train=(rng.random((rows, 256), dtype="float32"),), val=(rng.random((2, 256), dtype="float32"),)
    )


def test_the_disk_cache_evicts_the_least_recently_used_entries_beyond_its_budget(workspace):
    one = _entry(8).nbytes
    cache = FeatureCache(workspace, Budget(memory=0, disk=int(2.5 * one)))
    counts, shapes = {"train": 8, "val": 2}, [(256,)]
    for key in ("a", "b"):
        assert cache.store(key, _entry(8)) is None
    past = os.stat(cache.root / "a" / "meta.json").st_mtime - 60
    os.utime(cache.root / "b" / "meta.json", (past, past))  # b was used longest ago...
    os.utime(cache.root / "a" / "meta.json", (past - 60, past - 60))
    assert cache.load("a", counts, shapes) is not None  # ...until a is used now
    assert cache.store("c", _entry(8)) is None
    assert sorted(p.name for p in cache.root.iterdir()) == ["a", "c"]
    assert cache.disk_usage() <= cache.budget.disk
    assert cache.store("big", _entry(32)).over_budget, "an entry larger than the whole budget is not written"


def test_a_damaged_or_mismatched_cache_entry_is_dropped_and_recomputed(workspace):
    cache = FeatureCache(workspace, Budget(memory=0, disk=2**30))
    cache.store("k", _entry(8))
    assert cache.load("k", {"train": 9, "val": 2}, [(256,)]) is None  # not the expected images
    assert not (cache.root / "k").exists()
    cache.store("k", _entry(8))
    (cache.root / "k" / "train-0.npy").write_bytes(b"damaged")
    assert cache.load("k", {"train": 8, "val": 2}, [(256,)]) is None
    assert not (cache.root / "k").exists()


def test_memory_holds_entries_within_its_budget_and_serves_them_before_the_disk(workspace):
    entry = _entry(8)
    cache = FeatureCache(workspace, Budget(memory=entry.nbytes, disk=2**30))
    cache.store("a", entry)
    cache.store("b", _entry(8, seed=1))
    assert list(features._memory) == ["b"]
    assert cache.load("b", {"train": 8, "val": 2}, [(256,)]) is features._memory["b"]


# Which path, and why


@pytest.mark.parametrize(
    "changes, path, words",
    [
        ({}, "features", "Cached features: the frozen base runs once"),
        ({"strategy": "finetune", "frozen_layers": 60}, "prefix", "Cached prefix: the 60 frozen base layers run once"),
        ({"strategy": "finetune", "frozen_layers": 86}, "features", "each epoch trains only the head"),
        ({"augmentation": Augmentation(flip=True)}, "full", "Augmentation is on: the frozen base runs every epoch"),
        (
            {"strategy": "finetune", "frozen_layers": 60, "augmentation": Augmentation(zoom=0.1)},
            "full",
            "Augmentation is on: the frozen layers run every epoch",
        ),
        ({"strategy": "scratch"}, "full", "Training from scratch"),
        ({"strategy": "finetune", "frozen_layers": 0}, "full", "No base layer with weights is frozen"),
    ],
)
def test_each_run_says_which_path_it_takes_and_why(changes, path, words):
    spec = tiny_run("x", **changes).validated()
    chosen, reason = choose_path(spec)
    assert chosen == path and words in reason.render("en")


def test_a_frozen_prefix_without_weights_is_not_worth_caching():
    spec = tiny_run("x", strategy="finetune", frozen_layers=1).validated()
    model = built(spec.model)
    assert choose_path(spec, model=model, image_count=24)[0] == "full"


def test_a_cache_over_the_memory_budget_falls_back_to_the_full_model_and_says_so():
    spec = tiny_run("x", strategy="finetune", frozen_layers=20).validated()
    model = built(spec.model)
    per_image = cut_model(model, 20).bytes_per_image
    path, reason = choose_path(spec, model=model, image_count=1000, budget=Budget(memory=999 * per_image))
    assert path == "full"
    reason = reason.render("en")
    assert "20 frozen layers' outputs for 1,000 images would take" in reason and "memory budget" in reason
    assert choose_path(spec, model=model, image_count=999, budget=Budget(memory=999 * per_image))[0] == "prefix"


def test_a_run_over_budget_trains_the_full_model_and_its_status_says_why(demo, monkeypatch):
    workspace, dataset = demo
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")
    monkeypatch.setenv("TLCORE_FEATURES_MEMORY_BUDGET", "1K")
    info = train_run(workspace, runs.create_run(tiny_run(dataset.id, epochs=1), workspace).id)
    status = runs.RunStatus.read(info.dir)
    assert info.status == "completed"
    assert status.path == "full" and "memory budget" in info.path_note.render("en")
    assert status.features_total is None


def test_features_a_full_disk_cannot_hold_are_said_to_be_unwritten_not_over_budget(
    tmp_path, demo_zip_bytes, monkeypatch
):
    # Issue 17: on a full disk the Train page said "They take 360 KiB, more than the 4.0 GiB disk budget".
    workspace = Workspace(tmp_path / "ws")
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full_disk)
    info = train_run(workspace, runs.create_run(tiny_run(dataset.id, epochs=1), workspace).id)
    assert info.status == "completed" and info.path == "features"
    note = info.path_note.render("en")
    assert note.endswith(
        "They could not be written to the disk (No space left on device), so they are not kept for the next run."
    )
    assert "budget" not in note
    assert "ディスクに書き込めなかった" in info.path_note.render("ja")
    assert list((workspace.cache_dir / "features").iterdir()) == [], "nothing half written is left"


# Progress and stop during the feature pass


def test_the_feature_pass_shows_its_own_progress_and_honours_stop(demo, monkeypatch):
    workspace, dataset = demo
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")
    info = runs.create_run(tiny_run(dataset.id, seed=21), workspace)
    seen = {}
    compute = features.Cut.compute

    def compute_then_stop(self, images, progress=None, **kwargs):
        seen.update(runs.RunStatus.read(info.dir).to_json())
        (info.dir / runs.STOP_FILE).touch()
        return compute(self, images, progress, **kwargs)

    monkeypatch.setattr(features.Cut, "compute", compute_then_stop)
    final = train_run(workspace, info.id)
    assert seen["phase"] == "features" and seen["features_done"] == 0 and seen["features_total"] == 24
    assert seen["features_seconds"] == 0.0  # the pass's own clock, which the time left is measured on
    note = Message.from_json(seen["path_note"])
    assert seen["path"] == "features" and note.render("en").startswith("Cached features")
    assert final.status == "stopped" and "feature pass" in final.error.render("en")
    assert metrics_log.read_metrics(workspace, info.id).empty
    assert not (final.dir / "best.keras").exists()


# Hardware


def test_a_cpu_gets_neither_xla_nor_mixed_precision():
    assert detect_acceleration() == Acceleration(jit_compile=False, mixed_precision=False)


def test_mixed_precision_trains_and_still_saves_a_float32_model(demo, monkeypatch):
    workspace, dataset = demo
    monkeypatch.setenv("TLCORE_FAST_PATH", "1")
    monkeypatch.setattr(training, "detect_acceleration", lambda: Acceleration(mixed_precision=True))
    info = train_run(workspace, runs.create_run(tiny_run(dataset.id, epochs=1, seed=5), workspace).id)
    assert info.status == "completed", info.error
    model = keras.models.load_model(info.dir / "best.keras")
    base = get_base(model)
    assert {layer.dtype_policy.name for layer in [*model.layers, *base.layers]} == {"float32"}
    assert np.isfinite(model.predict(pixels(2).astype("float32"), verbose=0)).all()


# The benchmark


def test_the_benchmark_runs_in_smoke_mode():
    result = subprocess.run(
        [sys.executable, "bench/fast_path.py", "--smoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "TLCORE_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "transfer-mobilenet_0.25" in result.stdout and "feature pass mobilenet_0.25" in result.stdout


def test_the_end_to_end_benchmark_runs_in_smoke_mode():
    result = subprocess.run(
        [sys.executable, "bench/end_to_end.py", "--smoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "TLCORE_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "phone (36 images): ours" in result.stdout and "of raw" in result.stdout
