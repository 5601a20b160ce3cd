"""The Train page: settings become a RunSpec, Start and Stop, and the live view of a run read from disk.

Runs are made with `runs.create_run` (a folder, no process) and moved along by writing the run folder
as the trainer would; one test starts a real training process and waits for it.
"""

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import button, tiny_model, unescaped, wait_for
from streamlit.testing.v1 import AppTest

from tlcore import datasets, paths, runs
from tlcore.baseline import majority_baseline
from tlcore.errors import RunError
from tlcore.models import ModelSpec
from tlcore.runs import RunState
from tlcore.spec import Augmentation, RunSpec

ROOT = Path(__file__).resolve().parents[1]
MODEL = tiny_model()


def open_train_page(at: AppTest, dataset: datasets.Dataset | None = None, model: ModelSpec | None = MODEL) -> AppTest:
    at.run()
    if dataset is not None:
        at.session_state["dataset_id"] = dataset.id
        at.session_state["model_spec"] = model
    return at.switch_page("app_pages/train.py").run()


def write_metrics(info: runs.RunInfo, epochs: int, steps: int) -> None:
    """Metrics lines for `epochs` epochs of `steps` batches, as the trainer appends them."""
    lines = []
    for epoch in range(1, epochs + 1):
        for step in range(1, steps + 1):
            global_step = (epoch - 1) * steps + step
            lines.append(
                {
                    "kind": "batch",
                    "phase": "transfer",
                    "epoch": epoch,
                    "step": step,
                    "global_step": global_step,
                    "loss": 1.0 / global_step,
                    "accuracy": 0.3,
                    "elapsed": global_step,
                }
            )
        lines.append(
            {
                "kind": "epoch",
                "phase": "transfer",
                "epoch": epoch,
                "step": steps,
                "global_step": epoch * steps,
                "loss": 0.9 / epoch,
                "accuracy": 0.3 * epoch,
                "val_loss": 1.0 / epoch,
                "val_accuracy": 0.25 * epoch,
                "elapsed": epoch * steps,
            }
        )
    (info.dir / runs.METRICS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


def trained_run(workspace, dataset, status: str, epochs: int = 2, steps: int = 3, **fields) -> runs.RunInfo:
    """A run whose folder says it trained `epochs` epochs of `steps` batches and is now `status`."""
    info = runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, epochs=epochs, name=f"{status} run"), workspace)
    write_metrics(info, epochs, steps)
    runs.update_status(
        info.dir,
        status=status,
        steps_per_epoch=steps,
        total_steps=steps * epochs,
        epoch=epochs,
        best_val_accuracy=0.25 * epochs,
        best_epoch=epochs,
        **fields,
    )
    return info


@contextmanager
def live_trainer(info: runs.RunInfo):
    """Holds the run's lock as its trainer process would, so the run is not taken for a dead one."""
    with open(info.dir / runs.LOCK_FILE, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def captions(at: AppTest) -> list[str]:
    """The main area's captions as they read (the values they quote are escaped Markdown)."""
    return [unescaped(caption.value) for caption in at.main.caption]


def test_the_train_page_asks_for_a_dataset_first(app):
    at = open_train_page(app)
    assert at.info[0].value == "Choose a dataset first."
    assert at.get("page_link")[0].proto.label == "Data"
    assert at.info[-1].value == "No runs yet."


def test_the_settings_become_the_run_spec_that_is_started(app, workspace, dataset, monkeypatch):
    started = []

    def fake_start(spec, ws):  # the folder without the process
        started.append(spec)
        return runs.create_run(spec, ws)

    monkeypatch.setattr(runs, "start", fake_start)
    at = open_train_page(app, dataset)
    at.number_input(key="train.epochs").set_value(3)
    at.selectbox(key="train.batch_size").set_value(16)
    at.select_slider(key="train.learning_rate").set_value(3e-4)
    at.selectbox(key="train.optimizer").set_value("sgd")
    at.slider(key="train.rotation").set_value(0.1)
    at.text_input(key="train.name").set_value("  first try ")
    button(at.run(), "Start training").click().run()
    assert not at.exception and not at.error
    assert started == [
        RunSpec(
            dataset=dataset.id,
            model=MODEL,
            epochs=3,
            batch_size=16,
            optimizer="sgd",
            learning_rate=3e-4,
            augmentation=Augmentation(rotation=0.1),
            name="first try",
        )
    ]
    (info,) = runs.list_runs(workspace)
    assert at.session_state["run_id"] == info.id
    assert at.query_params["run"] == info.id
    assert any(m.value.startswith("### first try") for m in at.markdown)


def test_the_model_gets_as_many_outputs_as_the_dataset_has_classes(app, dataset, monkeypatch):
    started = []
    monkeypatch.setattr(runs, "start", lambda spec, ws: started.append(spec) or runs.create_run(spec, ws))
    at = open_train_page(app, dataset, model=ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32))
    button(at, "Start training").click().run()
    assert started[0].model.num_classes == len(dataset.classes)


def test_the_two_phase_recipe_needs_fine_tuning_and_sets_its_own_rate(app, dataset, monkeypatch):
    at = open_train_page(app, dataset)  # transfer learning: the recipe is not offered
    assert not [toggle for toggle in at.toggle if toggle.key == "train.two_phase"]

    started = []
    monkeypatch.setattr(runs, "start", lambda spec, ws: started.append(spec) or runs.create_run(spec, ws))
    finetune = tiny_model(strategy="finetune", frozen_layers=40)
    at = open_train_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60), dataset, model=finetune)
    at.toggle(key="train.two_phase").set_value(True).run()
    at.number_input(key="train.finetune_epochs").set_value(2)
    at.select_slider(key="train.finetune_learning_rate").set_value(1e-5)
    button(at.run(), "Start training").click().run()
    (spec,) = started
    assert (spec.two_phase, spec.finetune_epochs, spec.finetune_learning_rate) == (True, 2, 1e-5)
    assert spec.total_epochs == 5 + 2


def test_a_refused_start_says_why_and_keeps_the_settings(app, dataset, monkeypatch):
    def refuse(spec, ws):
        raise RunError("The trainer could not be started: no more processes.")

    monkeypatch.setattr(runs, "start", refuse)
    at = open_train_page(app, dataset)
    at.number_input(key="train.epochs").set_value(7)
    button(at.run(), "Start training").click().run()
    assert not at.exception
    assert at.error[0].value == "Error: The trainer could not be started: no more processes."
    assert at.number_input(key="train.epochs").value == 7


def test_a_queued_run_shows_as_queued_and_is_found_again_from_its_url(app, workspace, dataset):
    info = runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, name="waiting"), workspace)
    app.query_params["run"] = info.id
    at = open_train_page(app)
    assert at.session_state["run_id"] == info.id
    assert any(m.value == "### waiting  \n:gray-badge[Queued]" for m in at.markdown)
    assert at.get("progress")[0].proto.text.startswith("Waiting in the queue for ")
    assert button(at, "Stop")


def test_a_running_run_shows_progress_with_eta_and_can_be_stopped(app, workspace, dataset):
    info = runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, epochs=2, name="busy"), workspace)
    with open(info.dir / runs.LOCK_FILE, "r+") as lock:  # stands in for the trainer process
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_metrics(info, epochs=1, steps=3)
        # One epoch of two is done, in 30 s; the 100 s so far include setting up.
        runs.update_status(
            info.dir,
            status="running",
            pid=os.getpid(),
            epoch=2,
            step=0,
            steps_per_epoch=3,
            total_steps=6,
            global_step=3,
            elapsed_seconds=100.0,
            seconds_per_epoch=30.0,
        )
        at = open_train_page(app)
        progress = at.get("progress")[0].proto
        assert progress.value == 50
        assert "about 30s left" in progress.text
        button(at, "Stop").click().run()
        assert (info.dir / "STOP").exists()
        assert runs.load_run(workspace, info.id).status == "stopping"
        assert any(":orange-badge[Stopping]" in m.value for m in at.markdown)
        at.run()  # the next poll
        assert button(at, "Stop").disabled


def test_a_finished_run_shows_its_curves_and_best_accuracy(app, workspace, dataset):
    info = trained_run(workspace, dataset, "completed")
    at = open_train_page(app)
    assert at.session_state["run_id"] == info.id
    assert at.get("progress")[0].proto.value == 100
    assert {m.label: m.value for m in at.metric}["Best validation accuracy"] == "50.0%"
    titles = [json.loads(chart.proto.spec)["title"]["text"] for chart in at.get("vega_lite_chart")]
    assert titles == ["loss", "accuracy"]


def test_the_best_accuracy_is_set_against_guessing_and_a_level_run_gets_no_arrow_of_gain(app, workspace, dataset):
    info = trained_run(workspace, dataset, "completed")  # 50 % on three classes of equal size
    best = {m.label: m for m in open_train_page(app).metric}["Best validation accuracy"]
    assert best.proto.delta == "+16.7 points against guessing the largest class"
    assert (best.proto.direction, best.proto.color) == (best.proto.MetricDirection.UP, best.proto.MetricColor.GREEN)

    runs.update_status(info.dir, best_val_accuracy=majority_baseline(dataset).accuracy)
    best = {m.label: m for m in app.run().metric}["Best validation accuracy"]
    assert best.proto.delta == "+0.0 points against guessing the largest class"
    assert (best.proto.direction, best.proto.color) == (best.proto.MetricDirection.NONE, best.proto.MetricColor.GRAY)
    assert app.warning[0].value.startswith("No better than guessing")


def test_a_failed_run_shows_its_error(app, workspace, dataset):
    trained_run(workspace, dataset, "failed", error="Training failed: out of memory")
    at = open_train_page(app)
    assert unescaped(at.error[0].value) == "Message from the run: Training failed: out of memory"


def test_the_run_selector_switches_the_run_shown_and_the_url(app, workspace, dataset):
    trained_run(workspace, dataset, "completed")
    trained_run(workspace, dataset, "stopped")
    newest, other = runs.list_runs(workspace)
    at = open_train_page(app)
    assert at.session_state["run_id"] == newest.id  # nothing running: the newest
    at.selectbox(key="train.run").set_value(other.id).run()
    assert at.session_state["run_id"] == other.id
    assert at.query_params["run"] == other.id
    assert f"{other.name} ({other.status.capitalize()})" in at.sidebar.markdown[-1].value


def test_a_real_run_trains_to_the_end_while_the_page_polls_it(app, workspace, dataset):
    at = open_train_page(app, dataset)
    at.number_input(key="train.epochs").set_value(2)
    at.toggle(key="train.flip").set_value(False)
    button(at.run(), "Start training").click().run()
    assert not at.error
    run_id = at.session_state["run_id"]

    def polled_until_it_ends() -> bool:
        if not runs.is_active(runs.load_run(workspace, run_id)):
            return True
        started = time.monotonic()
        at.run()
        assert time.monotonic() - started < 2.0  # a poll stays quick while training runs
        return False

    wait_for(polled_until_it_ends, timeout=240, interval=1, what="the run to end")
    info = runs.load_run(workspace, run_id)
    assert info.status == "completed", info.error
    at.run()
    assert any(":green-badge[Completed]" in m.value for m in at.markdown)
    assert len(at.get("vega_lite_chart")) == 2
    assert info.best_val_accuracy is not None
    at.switch_page("app_pages/compare.py").run()
    table, details = (frame.value for frame in at.dataframe[:2])
    assert details["id"].tolist() == [run_id]
    assert table["best_val_accuracy"].iloc[0] == pytest.approx(info.best_val_accuracy)


def test_a_damaged_run_shows_what_is_wrong_with_it(app, workspace):
    (workspace.runs_dir / "broken-run").mkdir()
    at = open_train_page(app)
    assert not at.exception
    assert at.error[0].value == "Message from the run: spec.json is missing"


def test_missing_imagenet_weights_offline_refuse_the_start_with_the_fix(app, workspace, dataset, tmp_path, monkeypatch):
    from tlcore import backbones

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    backbone = backbones.get_backbone("mobilenet_0.5")
    at = open_train_page(
        app, dataset, model=ModelSpec(backbone="mobilenet_0.5", weights="imagenet", image_size=32, num_classes=3)
    )
    assert button(at, "Start training").disabled
    (warning,) = [w.value for w in at.warning if backbone.weights_file(32) in w.value]
    assert str(tmp_path / "empty-keras-home" / "models") in warning
    assert runs.list_runs(workspace) == []


def test_a_run_in_the_feature_pass_shows_its_own_progress_with_the_counts(app, workspace, dataset):
    info = runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, epochs=2, name="first pass"), workspace)
    path, note = paths.choose_path(info.spec)
    with live_trainer(info):
        # 312 images in 6 s: the other 183 take about 3.5 s more. No epoch has run, so the run's end is unknown.
        runs.update_status(
            info.dir,
            status="running",
            pid=os.getpid(),
            phase="features",
            path=path,
            path_note=note,
            features_done=312,
            features_total=495,
            features_cached=False,
            features_seconds=6.0,
            steps_per_epoch=3,
            total_steps=6,
            elapsed_seconds=8.0,
        )
        at = open_train_page(app)
        features, epochs = (bar.proto for bar in at.get("progress"))
        assert features.value == 63
        assert features.text == "Computing the frozen base's features: 312 / 495 images · about 4s left"
        assert epochs.value == 0 and epochs.text.startswith("Epoch 1 / 2")  # the epoch under way, counted from 1
        assert "left" not in epochs.text
        assert f":green-badge[Fast path] {note}" in captions(at)

        at.session_state["lang"] = "ja"
        features = at.run().get("progress")[0].proto
        assert features.text == "凍結したベースの特徴量を計算中：312 / 495 枚 · 残り約 4秒"

        runs.update_status(
            info.dir, phase="transfer", features_done=495, features_seconds=9.5, global_step=1, step=1, epoch=1
        )
        at.session_state["lang"] = "en"
        (epochs,) = (bar.proto for bar in at.run().get("progress"))  # the pass is over: its bar is gone
        assert epochs.text.startswith("Epoch 1 / 2 · step 1 / 3")


def test_a_finished_fast_path_run_shows_its_path_and_why(app, workspace, dataset):
    note = "Cached features: the frozen base ran once over the 24 images (3 s); each epoch trains only the head."
    trained_run(
        workspace,
        dataset,
        "completed",
        path="features",
        path_note=note,
        features_done=24,
        features_total=24,
        features_cached=False,
        features_seconds=3.2,
    )
    at = open_train_page(app)
    assert f":green-badge[Fast path] {note}" in captions(at)
    assert len(at.get("progress")) == 1


def test_an_augmented_run_says_the_frozen_base_runs_every_epoch(app, workspace, dataset):
    spec = RunSpec(dataset=dataset.id, model=MODEL, epochs=2, augmentation=Augmentation(flip=True), name="flipped")
    info = runs.create_run(spec, workspace)
    path, note = paths.choose_path(info.spec)
    runs.update_status(
        info.dir, status="completed", path=path, path_note=note, epoch=2, steps_per_epoch=3, total_steps=6
    )
    at = open_train_page(app)
    (shown,) = [caption for caption in captions(at) if "badge[" in caption]
    assert shown.startswith(":gray-badge[Full network every epoch] Augmentation is on:")
    assert "the frozen base runs every epoch" in shown


def test_a_status_with_damaged_feature_fields_still_renders(app, workspace, dataset):
    info = runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, epochs=2, name="damaged"), workspace)
    with live_trainer(info):
        runs.update_status(
            info.dir,
            status="running",
            pid=os.getpid(),
            phase="features",
            path="sideways",
            path_note=["not", "a", "sentence"],
            features_done="312",
            features_total=-495,
            features_cached="yes",
            features_seconds=float("nan"),
            seconds_per_epoch="fast",
            steps_per_epoch=3,
            total_steps=6,
        )
        at = open_train_page(app)
        assert not at.exception and not at.error
        (epochs,) = (bar.proto for bar in at.get("progress"))
        assert "Epoch 1 / 2" in epochs.text and "left" not in epochs.text
        assert not any("badge[" in caption for caption in captions(at))


def test_reruns_leave_keras_alone(app, workspace, dataset, monkeypatch):
    """Streamlit resets Keras after every script run once it is imported, with a full garbage collection
    (0.25 to 0.7 s holding the GIL on a server that has Keras loaded) that stalls every other session's
    page: the app's reruns and polls must not pay it (`ui.cached.leave_keras_alone`)."""
    import keras

    resets = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: resets.append(args))
    at = open_train_page(app, dataset)
    at.run()
    assert not at.exception and resets == []


def test_a_run_just_started_is_looked_at_often_until_its_curves_are_drawn(tmp_path):
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from ui.pace import FIRST_CURVES_POLL_SECONDS, FIRST_CURVES_WINDOW_SECONDS, POLL_SECONDS, poll_seconds

    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    info = runs.RunInfo(id="r", dir=tmp_path, name="r", spec=None, status=RunState.RUNNING, created=created.isoformat())
    # On cached features the first epoch validates before its rows are written; once it has ended,
    # its curves are drawn.
    validating = replace(info, path=runs.TrainingPath.FEATURES, epoch=1, step=8)
    with_curves = replace(validating, seconds_per_epoch=0.05)
    soon, later = created + timedelta(seconds=2), created + timedelta(seconds=FIRST_CURVES_WINDOW_SECONDS + 1)
    assert poll_seconds(info, now=soon) == FIRST_CURVES_POLL_SECONDS
    assert poll_seconds(validating, now=soon) == FIRST_CURVES_POLL_SECONDS
    # Through the full model, each batch's row is written as it trains: curves from the first batch.
    full_path_batch = replace(info, path=runs.TrainingPath.FULL, epoch=1, step=1)
    assert poll_seconds(full_path_batch, now=soon) == POLL_SECONDS
    assert poll_seconds(with_curves, now=soon) == POLL_SECONDS  # the curves are there: usual pace
    assert poll_seconds(info, now=later) == POLL_SECONDS  # a long queue or feature pass
    ended = replace(with_curves, status=RunState.COMPLETED)
    assert poll_seconds(ended, now=soon) is None
