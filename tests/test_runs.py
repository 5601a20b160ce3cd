"""What a run's status says to people: time left, training path and feature pass, read from status.json."""

import fcntl
import os
from contextlib import contextmanager

import pytest
from helpers import tiny_model

from tlcore import runs
from tlcore.i18n import msg
from tlcore.spec import RunSpec

MODEL = tiny_model()


@pytest.fixture
def run(workspace, dataset) -> runs.RunInfo:
    return runs.create_run(RunSpec(dataset=dataset.id, model=MODEL, epochs=10), workspace)


@contextmanager
def running(workspace, info: runs.RunInfo, **status):
    """The run as its live trainer would leave it after writing `status` (the trainer holds the run's lock)."""
    with open(info.dir / runs.LOCK_FILE, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs.update_status(info.dir, status="running", pid=os.getpid(), steps_per_epoch=8, total_steps=80, **status)
        yield runs.load_run(workspace, info.id)


def test_a_fast_path_run_expects_the_epochs_left_at_its_epoch_time_not_its_feature_pass(workspace, run):
    # 2 epochs of 10 done, 0.5 s each, after a 59 s feature pass: 4 s left (elapsed / progress would say 4 minutes).
    with running(
        workspace,
        run,
        phase="transfer",
        epoch=3,
        step=0,
        global_step=16,
        elapsed_seconds=60.0,
        seconds_per_epoch=0.5,
        features_done=400,
        features_total=400,
        features_seconds=59.0,
    ) as info:
        assert info.progress == pytest.approx(0.2)
        assert info.eta_seconds == pytest.approx(4.0)
        assert info.features_eta_seconds is None and not info.in_feature_pass


def test_part_of_an_epoch_counts_as_done(workspace, run):
    with running(
        workspace, run, phase="transfer", epoch=3, step=4, global_step=20, elapsed_seconds=30.0, seconds_per_epoch=2.0
    ) as info:
        assert info.eta_seconds == pytest.approx(7.5 * 2.0)


def test_in_the_feature_pass_the_time_left_is_measured_on_the_pass_itself(workspace, run):
    with running(
        workspace,
        run,
        phase="features",
        path="features",
        features_done=100,
        features_total=400,
        features_cached=False,
        features_seconds=10.0,
        elapsed_seconds=12.0,
    ) as info:
        assert info.in_feature_pass and info.features_fraction == pytest.approx(0.25)
        assert info.features_eta_seconds == pytest.approx(30.0)
        assert info.eta_seconds is None  # no epoch has run yet: its length is unknown


def test_a_later_phase_in_its_feature_pass_adds_the_pass_to_the_epochs_left(workspace, run):
    # A two-phase run: 5 head-only epochs of 2 s done, now caching the frozen prefix for fine-tuning.
    with running(
        workspace,
        run,
        phase="features",
        path="prefix",
        epoch=5,
        global_step=40,
        seconds_per_epoch=2.0,
        features_done=100,
        features_total=400,
        features_seconds=10.0,
        elapsed_seconds=40.0,
    ) as info:
        assert info.eta_seconds == pytest.approx(30.0 + 5 * 2.0)


def test_before_anything_is_measured_there_is_no_estimate(workspace, run):
    with running(
        workspace, run, phase="features", features_done=0, features_total=400, features_seconds=0.0, elapsed_seconds=3.0
    ) as info:
        assert info.eta_seconds is None and info.features_eta_seconds is None
        assert info.in_feature_pass and info.features_fraction == 0.0


def test_a_stopping_or_finished_run_has_no_time_left(workspace, run):
    (run.dir / runs.STOP_FILE).touch()
    with running(workspace, run, phase="transfer", epoch=3, global_step=16, seconds_per_epoch=0.5) as info:
        assert info.status == "stopping" and info.eta_seconds is None
    runs.update_status(run.dir, status="completed", global_step=80)
    assert runs.load_run(workspace, run.id).eta_seconds is None


def test_path_and_feature_pass_fields_are_read(workspace, run):
    note = msg("path.features_cached", images=msg("count.images", n=400))
    runs.update_status(
        run.dir,
        status="completed",
        path="features",
        path_note=note,
        features_done=400,
        features_total=400,
        features_cached=True,
        features_seconds=0.0,
    )
    info = runs.load_run(workspace, run.id)
    assert (info.path, info.path_note) == ("features", note)
    assert note.render("en").startswith("Cached features: the outputs of the frozen base for these 400 images were")
    assert (info.features_done, info.features_total, info.features_cached, info.features_seconds) == (
        400,
        400,
        True,
        0.0,
    )
    assert info.to_dict()["path"] == "features" and info.to_dict()["path_note"] == note.render("en")


@pytest.mark.parametrize(
    "damage",
    [
        {
            "path": "sideways",
            "path_note": 42,
            "features_done": "100",
            "features_total": -400,
            "features_cached": "yes",
            "features_seconds": -1.0,
            "seconds_per_epoch": "fast",
        },
        {
            "path": ["features"],
            "path_note": None,
            "features_done": 1.5,
            "features_total": True,
            "features_cached": 1,
            "features_seconds": float("inf"),
            "seconds_per_epoch": float("nan"),
        },
    ],
)
def test_damaged_values_are_unknown_not_a_crash(workspace, run, damage):
    with running(workspace, run, phase="features", global_step=8, elapsed_seconds=5.0, **damage) as info:
        assert info.status == "running"
        assert (info.path, info.path_note) == (None, None)
        assert (info.features_done, info.features_total, info.features_cached, info.features_seconds) == (
            None,
            None,
            None,
            None,
        )
        assert info.seconds_per_epoch is None and info.eta_seconds is None and info.features_eta_seconds is None
        assert not info.in_feature_pass and info.features_fraction == 0.0


def test_a_queued_run_holds_no_process_and_a_stop_ends_it_there(workspace, dataset):
    """A study queues many members at once: a waiting run must not hold a process (each would hold
    TensorFlow's hundreds of MB); the warm trainer (`tlcore.spare`) takes it when its turn comes."""
    with open(workspace.runs_dir / ".slot-0", "w") as slot:
        fcntl.flock(slot, fcntl.LOCK_EX)  # a run ahead is training
        info = runs.start(RunSpec(dataset=dataset.id, model=MODEL, epochs=1), workspace)
        assert runs.load_run(workspace, info.id).status == "queued"
        assert runs.RunStatus.read(info.dir).pid is None and not runs.lock_is_held(info.dir)
        runs.stop(workspace, info.id)
        ended = runs.load_run(workspace, info.id)  # at once: no process had it to see the stop
    assert ended.status == "stopped" and str(ended.error) == "Stopped before training started."


def test_a_run_stopped_before_its_trainer_gets_going_ends_stopped_not_interrupted(workspace, run):
    from tlcore.training import train_run

    runs.stop(workspace, run.id)  # listed as stopping from now on
    ended = train_run(workspace, run.id)
    assert ended.status == "stopped" and str(ended.error) == "Stopped before training started."
