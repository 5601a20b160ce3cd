"""The queue and its warm trainer: Stop right after Start, what a queued run costs, a spare that dies.

A run the app starts (`runs.start`) waits as a folder until the workspace's spare (`tlcore.spare`), a
process with TensorFlow already loaded, claims it. These tests start real spares over the tiny demo
data; a test that holds `runs/.slot-0` itself keeps every run of its workspace queued meanwhile.
How runs queue, die and stop mid-run in a whole day of use is in `test_hardening.py`.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from helpers import ROOT, button, flock_held, tiny_spec, wait_for
from streamlit.testing.v1 import AppTest

from tlcore import metrics_log, run_queue, runs
from tlcore.datasets import ingest_zip
from tlcore.errors import RunError, TLCoreError
from tlcore.workspace import Workspace

# Transfer learning trains on cached features: a stop is seen within a batch of the feature pass or of
# the head's `fit`, and 1000 epochs outlast any delay tested.
long_run = partial(tiny_spec, epochs=1000, batch_size=2)
short_run = partial(tiny_spec, epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def queue_workspace(tmp_path_factory, demo_zip_bytes) -> tuple[Workspace, str]:
    workspace = Workspace(tmp_path_factory.mktemp("queue") / "ws")
    return workspace, ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip").id


def finished(workspace: Workspace, run_id: str) -> runs.RunInfo | None:
    info = runs.load_run(workspace, run_id)
    return info if info.status in runs.FINISHED_STATUSES else None


def warm_spare(workspace: Workspace) -> int:
    """Start a spare for `workspace` if none waits, and wait until it has TensorFlow loaded; its pid."""
    run_queue.ensure_spare(workspace)
    return wait_for(lambda: run_queue.warm_spare(workspace), timeout=120, what="the spare to load TensorFlow")


@contextmanager
def slot_taken(workspace: Workspace):
    """Hold the only training slot (`TLCORE_MAX_CONCURRENT` is 1), as a run training elsewhere would."""
    with open(workspace.runs_dir / ".slot-0", "a+") as slot:
        fcntl.flock(slot, fcntl.LOCK_EX)
        yield


def processes_of(workspace: Workspace) -> list[int]:
    """The pids of the processes started for `workspace` (spares and the runs they train)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tlcore" in command and str(workspace.root).encode() in command:
            found.append(int(entry.name))
    return found


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.35, 1.0, 3.0])
def test_stop_pressed_right_after_start_ends_the_run_stopped(queue_workspace, delay):
    workspace, dataset_id = queue_workspace
    warm_spare(workspace)
    info = runs.start(long_run(dataset_id, name=f"stopped after {delay}s"), workspace)
    time.sleep(delay)
    runs.stop(workspace, info.id)
    ended = wait_for(lambda: finished(workspace, info.id), timeout=120, what="the stopped run to end")
    assert ended.status == "stopped", (ended.status, ended.error)
    log = info.dir / runs.LOG_FILE
    assert not log.exists() or "only a queued run can be trained" not in log.read_text(encoding="utf-8")
    wait_for(lambda: not runs.lock_is_held(info.dir), timeout=60, what="its trainer to let go of the run")
    assert runs.load_run(workspace, info.id).status == "stopped"  # and it stays so once the trainer is gone


def test_a_queued_run_costs_a_folder_and_a_stopped_one_never_starts(queue_workspace):
    workspace, dataset_id = queue_workspace
    first = runs.start(long_run(dataset_id, name="trains"), workspace)
    wait_for(lambda: runs.load_run(workspace, first.id).status == "running", timeout=120, what="the first run to train")
    queued = [runs.start(short_run(dataset_id, name=f"queued {k}"), workspace) for k in range(3)]
    assert [runs.load_run(workspace, info.id).status for info in queued] == ["queued"] * 3
    # The run training and one spare waiting: no process per queued run, whatever the length of the queue.
    assert len(processes_of(workspace)) == 2
    assert all(folder_bytes(info.dir) < 16 * 1024 for info in queued)

    stopped = runs.stop(workspace, queued[0].id)
    assert stopped.status == "stopped"  # at once: no process had it
    runs.stop(workspace, first.id)
    last = wait_for(lambda: finished(workspace, queued[2].id), timeout=240, what="the runs behind it to train")
    assert last.status == "completed", last.error
    assert runs.load_run(workspace, queued[1].id).status == "completed"
    never = runs.load_run(workspace, queued[0].id)
    assert (never.status, never.started, never.error.render("en")) == (
        "stopped",
        None,
        "Stopped before training started.",
    )
    assert metrics_log.read_metrics(workspace, never.id).empty and runs.RunStatus.read(never.dir).pid is None


def test_a_spare_that_dies_loses_nothing_and_the_train_page_starts_another(queue_workspace, monkeypatch):
    workspace, dataset_id = queue_workspace
    with slot_taken(workspace):
        info = runs.start(short_run(dataset_id, name="outlives its spare"), workspace)
        spare_lock = workspace.runs_dir / run_queue.SPARE_LOCK
        os.kill(int(spare_lock.read_text().split()[0]), signal.SIGKILL)
        wait_for(lambda: not flock_held(spare_lock), timeout=30, what="the killed spare to let go")
        assert runs.load_run(workspace, info.id).status == "queued"  # not interrupted: no process had claimed it

        monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.run()
        at.switch_page("app_pages/train.py").run()
        assert not at.exception
        assert flock_held(spare_lock)  # the page saw a run waiting for a spare, and started one
        assert button(at, "Stop")
    ended = wait_for(lambda: finished(workspace, info.id), timeout=240, what="the run to train once the slot is free")
    assert ended.status == "completed", ended.error


def test_the_command_line_trains_in_its_own_process_behind_the_runs_queued_before_and_alike(queue_workspace):
    workspace, dataset_id = queue_workspace
    with slot_taken(workspace):
        ahead = runs.start(short_run(dataset_id, name="queued first"), workspace)
        command = [sys.executable, "-m", "tlcore", "train", "--dataset", dataset_id, "--backbone", "mobilenet_0.25"]
        command += ["--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8"]
        command += ["--workspace", str(workspace.root)]
        env = {**os.environ, "TLCORE_OFFLINE": "1", "PYTHONPATH": str(ROOT), "TLCORE_LANG": "en"}
        foreground = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        cli_run = wait_for(
            lambda: [info for info in runs.list_runs(workspace) if info.active and info.id != ahead.id],
            timeout=120,
            what="the command line's run to wait in the queue",
        )
    output, _ = foreground.communicate(timeout=300)
    assert foreground.returncode == 0, output
    first, second = runs.load_run(workspace, ahead.id), runs.load_run(workspace, cli_run[0].id)
    assert first.status == second.status == "completed", output
    assert first.ended <= second.started  # the run queued before it trained first
    assert runs.RunStatus.read(second.dir).pid == foreground.pid  # in the command line's own process
    # The same spec, trained by a spare that warmed up before its claim and in a fresh process: the same run.
    curves = [metrics_log.read_metrics(workspace, info.id).drop(columns="elapsed") for info in (first, second)]
    assert curves[0].equals(curves[1])


def test_the_queue_takes_at_most_its_cap_and_says_so(workspace, dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_QUEUED", "2")
    with open(workspace.runs_dir / run_queue.SPARE_LOCK, "a+") as spare:
        fcntl.flock(spare, fcntl.LOCK_EX)  # a spare that is still loading: nothing claims the runs yet
        waiting = [runs.start(short_run(dataset.id), workspace) for _ in range(2)]
        before = sorted(path.name for path in workspace.runs_dir.iterdir())
        with pytest.raises(RunError) as refused:
            runs.start(short_run(dataset.id), workspace)
        assert refused.value.render("en") == (
            "2 runs are already waiting in the queue, and TLCORE_MAX_QUEUED allows 2. "
            "Start this run again once one of them has begun training, or stop one of them."
        )
        assert sorted(path.name for path in workspace.runs_dir.iterdir()) == before  # no folder was made
        runs.stop(workspace, waiting[0].id)
        assert runs.start(short_run(dataset.id), workspace).status == "queued"


def test_the_next_spare_loads_tensorflow_only_once_the_run_ahead_has_its_first_epoch(tmp_path):
    # On 2 cores, a spare importing TensorFlow beside a run's set-up would delay that run's first epoch.
    workspace = Workspace(tmp_path / "ws")
    ahead = workspace.runs_dir / "ahead"
    ahead.mkdir(parents=True)
    runs.update_status(ahead, status=runs.RunState.RUNNING, pid=os.getpid())
    with open(ahead / runs.LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # its trainer is alive
        pid = run_queue.ensure_spare(workspace, behind="ahead")
        try:
            time.sleep(3)
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "tensorflow" not in maps and run_queue.warm_spare(workspace) is None
            runs.update_status(ahead, epoch=1)
            assert wait_for(lambda: run_queue.warm_spare(workspace), timeout=120, what="the spare to load") == pid
        finally:
            os.kill(pid, signal.SIGKILL)


def test_trainers_run_below_the_app_and_the_spare_behind_a_run_no_lower(workspace, dataset, monkeypatch):
    # Pages stay quick while a run trains: the app's trainers take the CPU the app leaves idle.
    monkeypatch.setenv("TLCORE_TRAINER_NICE", "5")
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    first = warm_spare(workspace)
    assert os.getpriority(os.PRIO_PROCESS, first) == expected
    info = runs.start(short_run(dataset.id, name="trains below the app"), workspace)
    assert wait_for(lambda: finished(workspace, info.id), timeout=240, what="the run to end").status == "completed"
    second = wait_for(lambda: run_queue.warm_spare(workspace), timeout=120, what="the spare behind it to load")
    assert second != first and os.getpriority(os.PRIO_PROCESS, second) == expected


def test_a_trainer_priority_that_is_not_one_is_refused_where_start_is_clicked(workspace, dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_TRAINER_NICE", "lowest")
    with pytest.raises(TLCoreError, match="TLCORE_TRAINER_NICE.*'lowest'"):
        runs.start(short_run(dataset.id), workspace)
    assert runs.list_runs(workspace) == []  # refused before the run existed: nothing waits for a trainer
