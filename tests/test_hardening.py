"""Hardening: faults in the middle of a run, many users at once, safe server defaults, identifiers.

What people do to a training tool: press Stop (twice), kill the trainer, restart the server, refresh
the browser, fill the disk, start runs from two tabs at the same moment, and leave damaged folders in
the workspace. After each, a run's status tells the truth, what it had learned is intact, other runs
are untouched, and the app starts and lists everything.

Real trainer processes are tiny (MobileNet 0.25, random weights, 32×32 demo images) and few: one
scenario (`day`) has a server process start three runs, two of them from two sessions at the same
moment, and kills the server; the first trainer is then killed, the second stopped twice, the third
completes. Its tests each check one claim about what is left. A fourth trainer, in a workspace of its
own, runs on a disk that fills up (its metrics writes fail with ENOSPC, injected in that process).

Root ignores file permissions (these tests run as root), so a workspace that cannot be written is
made real with `RLIMIT_FSIZE` (every write fails with "File too large", for any user) in a
subprocess, or with a file where a folder must be; a `chmod` test runs only for other users.
"""

from __future__ import annotations

import ast
import errno
import fcntl
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import button, run_tlcore, tiny_spec, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from tlcore import metrics_log, runs
from tlcore.datasets import Limits, ingest_zip, list_datasets
from tlcore.errors import RunError, TLCoreError
from tlcore.i18n import LANGUAGES, Message
from tlcore.workspace import Workspace, check_id, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024**2

# ---------------------------------------------------------------------------------------------
# Helpers


# A run from scratch that trains in a second an epoch; 200 epochs of batch 2 outlast any test that stops it.
scratch_run = partial(tiny_spec, strategy="scratch", epochs=200, batch_size=2)


def finished(workspace: Workspace, run_id: str) -> runs.RunInfo | None:
    info = runs.load_run(workspace, run_id)
    return info if info.status in runs.FINISHED_STATUSES else None


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes, to show that a folder was left alone."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def metrics_lines(run_dir: Path, torn_last_line_allowed: bool) -> list[dict]:
    """The rows of metrics.jsonl; every line parses (the last may be torn by a kill)."""
    lines = (run_dir / runs.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            assert torn_last_line_allowed and number == len(lines), f"line {number} of {len(lines)} is damaged"
    return rows


def assert_metrics_intact(run_dir: Path, torn_last_line_allowed: bool = False) -> list[dict]:
    rows = metrics_lines(run_dir, torn_last_line_allowed)
    batches = [row["global_step"] for row in rows if row["kind"] == "batch"]
    assert batches == list(range(1, len(batches) + 1)), "batch rows lost or repeated"
    assert any(row["kind"] == "epoch" and row["val_accuracy"] is not None for row in rows)
    return rows


def assert_best_model_intact(info: runs.RunInfo, rows: list[dict], classes: int = 3) -> None:
    """best.keras loads with Keras's safe mode (the default) and is the epoch the status names."""
    import keras

    model = keras.models.load_model(info.dir / runs.BEST_MODEL_FILE)  # safe_mode=True by default
    probabilities = model.predict(np.full((1, 32, 32, 3), 128.0, "float32"), verbose=0)
    assert probabilities.shape == (1, classes)
    epochs = {row["epoch"]: row["val_accuracy"] for row in rows if row["kind"] == "epoch"}
    assert info.best_epoch in epochs and info.best_val_accuracy == pytest.approx(epochs[info.best_epoch])


def made_run(workspace: Workspace, dataset_id: str, name: str, status: str = "completed") -> runs.RunInfo:
    """A finished run as the trainer leaves it (spec, metrics, status, a model file), without training."""
    info = runs.create_run(scratch_run(dataset_id, name=name, epochs=2), workspace)
    rows = [
        {
            "kind": "epoch",
            "phase": "scratch",
            "epoch": e,
            "step": 9,
            "global_step": 9 * e,
            "loss": 1 / e,
            "accuracy": 0.5,
            "val_loss": 1.0,
            "val_accuracy": 0.3 * e,
            "elapsed": 2.0 * e,
        }
        for e in (1, 2)
    ]
    (info.dir / runs.METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    (info.dir / runs.BEST_MODEL_FILE).write_bytes(b"PK\x03\x04 stands in for a model")
    runs.update_status(info.dir, status=status, best_val_accuracy=0.6, best_epoch=2, ended=runs.now_iso())
    return runs.load_run(workspace, info.id)


def damage(workspace: Workspace, good: runs.RunInfo) -> dict[str, Path]:
    """Folders that a crash, a full disk or a careless hand leave behind, next to good ones."""
    folders = {
        name: workspace.runs_dir / f"20000101-000000-{name}"
        for name in ("bad-json", "no-status", "bad-values", "bad-bytes")
    }
    for folder in folders.values():
        folder.mkdir()
        shutil.copy(good.dir / runs.SPEC_FILE, folder / runs.SPEC_FILE)
    (folders["bad-json"] / runs.SPEC_FILE).write_text('{"dataset": "x", "model": {"backbo', encoding="utf-8")
    write_json_atomic(
        folders["bad-values"] / runs.STATUS_FILE,
        {
            "status": "completed",
            "epoch": "three",
            "total_epochs": [2],
            "best_val_accuracy": "high",
            "total_steps": 0,
            "elapsed_seconds": 1e999,
            "error": {"not": "text"},
        },
    )
    (folders["bad-values"] / runs.METRICS_FILE).write_text(
        '{"kind": "epoch", "epoch": "x", "loss": "low", "val_accuracy": null}\n[1, 2]\n"text"\n' + "[" * 100_000 + "\n"
    )
    write_json_atomic(folders["bad-bytes"] / runs.STATUS_FILE, {"status": "completed"})
    (folders["bad-bytes"] / runs.METRICS_FILE).write_bytes(b'{"kind": "epoch", "epoch": 1}\n\xff\xfe\x00garbage\n')
    (folders["bad-bytes"] / runs.NAME_FILE).write_bytes(b"caf\xe9 run")
    bad_dataset = workspace.datasets_dir / "0123456789abcdef"
    bad_dataset.mkdir()
    (bad_dataset / "manifest.json").write_text('{"format": 1, "id": "0123456789abcdef", "classes": [', "utf-8")
    return folders


def app_page(workspace: Workspace, page: str | None = None, query: dict[str, str] | None = None) -> AppTest:
    """The app as a browser opening (or refreshing) it, on `page`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLCORE_WORKSPACE", str(workspace.root))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        if page is not None:
            at.switch_page(page).run()
    return at


def train_page_options(at: AppTest) -> list[str]:
    return list(at.selectbox(key="train.run").options)


def no_writes() -> None:
    """Run in a child process before it starts: every write of a byte fails ("File too large")."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


# ---------------------------------------------------------------------------------------------
# One day in a workspace: the server starts three runs (two from two sessions at the same moment) and
# is killed; the restarted server finds them queued behind each other; a browser refreshes mid-run;
# the first trainer is killed, the second is stopped twice, the third completes. Meanwhile, in a
# workspace of its own, a trainer's disk fills up.

_SERVER = """
import json, sys, threading, time
from tlcore import runs
from tlcore.spec import RunSpec
from tlcore.workspace import Workspace
workspace, specs = Workspace(sys.argv[1]), [RunSpec.from_dict(s) for s in json.loads(sys.argv[2])]
started, barrier = {}, threading.Barrier(2)
def session(spec):
    barrier.wait()
    started[spec.name] = runs.start(spec, workspace).id
threads = [threading.Thread(target=session, args=(spec,)) for spec in specs[:2]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
started[specs[2].name] = runs.start(specs[2], workspace).id
print(json.dumps(started), flush=True)
time.sleep(600)
"""

_FILLING_DISK_TRAINER = """
import builtins, errno, io, os, sys
real_open, full = builtins.open, [False]

class FillsUp:
    # metrics.jsonl on a disk that fills up once the first epoch's line is written
    def __init__(self, handle):
        self.handle = handle
    def write(self, text):
        if full[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.handle.write(text)
        full[0] = '"kind": "epoch"' in text
        return written
    def __getattr__(self, name):
        return getattr(self.handle, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc_info):
        self.handle.close()

def open_on_a_filling_disk(file, mode="r", *args, **kwargs):
    handle = real_open(file, mode, *args, **kwargs)
    if os.path.basename(str(file)) == "metrics.jsonl" and ("a" in mode or "w" in mode):
        return FillsUp(handle)
    return handle

builtins.open = io.open = open_on_a_filling_disk
from tlcore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _python(code: str, *args: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TLCORE_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        )


@pytest.fixture(scope="module")
def disk_filling(tmp_path_factory, demo_zip_bytes):
    """The trainer (`python -m tlcore train --run`) of a run whose disk fills up after one epoch.

    `start()` launches it; the day's scenario does so once its own first run trains, so that the two
    share the two cores where they would otherwise wait for each other.
    """
    workspace = Workspace(tmp_path_factory.mktemp("disk-full") / "ws")
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    other = made_run(workspace, dataset.id, "other")
    info = runs.create_run(scratch_run(dataset.id, name="disk fills up", epochs=3, batch_size=6), workspace)
    trainer: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        if not trainer:
            trainer.append(
                _python(
                    _FILLING_DISK_TRAINER,
                    "train",
                    "--run",
                    info.id,
                    "--workspace",
                    str(workspace.root),
                    log=workspace.root.parent / "trainer.log",
                )
            )
        return trainer[0]

    yield SimpleNamespace(workspace=workspace, run_id=info.id, other=other, before=snapshot(other.dir), start=start)
    for process in trainer:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()


@pytest.fixture(scope="module")
def day(tmp_path_factory, demo_zip_bytes, disk_filling):
    workspace = Workspace(tmp_path_factory.mktemp("day") / "ws")
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    earlier = made_run(workspace, dataset.id, "finished earlier")
    damaged = damage(workspace, earlier)
    untouched = {path: snapshot(path) for path in [earlier.dir, *damaged.values()]}

    specs = [
        scratch_run(dataset.id, name="session A"),
        scratch_run(dataset.id, name="session B"),
        scratch_run(dataset.id, name="started last", epochs=2, batch_size=6),
    ]
    server = _python(
        _SERVER,
        str(workspace.root),
        json.dumps([spec.to_dict() for spec in specs]),
        log=workspace.root.parent / "server.log",
    )
    try:
        ids = json.loads(server.stdout.readline())
    finally:
        server.kill()  # SIGKILL: the server gets no chance to tidy up
        server.wait()
        server.stdout.close()
    restarted = Workspace(workspace.root)  # what a new server process sees
    after_restart = {info.id: info.status for info in runs.list_runs(restarted)}

    def first_trains() -> list[runs.RunInfo] | None:
        infos = [runs.load_run(restarted, ids[name]) for name in ("session A", "session B", "started last")]
        training = [info for info in infos if not metrics_log.read_metrics(restarted, info.id).empty]
        return infos if training else None

    queue = wait_for(first_trains, what="the first run to train")
    disk_filling.start()
    first, second = sorted(queue[:2], key=lambda info: info.status != "running")
    last = queue[2]

    def into_second_epoch(info: runs.RunInfo) -> bool:
        now = runs.load_run(restarted, info.id)
        return now.status == "running" and now.epoch >= 2 and (info.dir / runs.BEST_MODEL_FILE).is_file()

    wait_for(lambda: into_second_epoch(first), what="the first run's second epoch")
    during = SimpleNamespace(
        train=app_page(restarted, "app_pages/train.py"),  # a browser refresh mid-run
        compare=app_page(restarted, "app_pages/compare.py"),
    )
    os.kill(runs.RunStatus.read(first.dir).pid, signal.SIGKILL)
    killed = wait_for(lambda: finished(restarted, first.id), what="the killed run to be listed as ended")

    wait_for(lambda: into_second_epoch(second), what="the queued run to train after the killed one")
    runs.stop(restarted, second.id)
    runs.stop(restarted, second.id)  # pressed twice
    stopped = wait_for(lambda: finished(restarted, second.id), what="the stopped run to end")
    completed = wait_for(lambda: finished(restarted, last.id), what="the last run to complete")
    return SimpleNamespace(
        workspace=restarted,
        dataset=dataset,
        earlier=earlier,
        damaged=damaged,
        untouched=untouched,
        ids=ids,
        after_restart=after_restart,
        queue=queue,
        killed=killed,
        stopped=stopped,
        completed=completed,
        during=during,
    )


def test_runs_keep_training_after_their_server_is_killed_and_the_restarted_server_lists_them(day):
    for name, run_id in day.ids.items():
        assert day.after_restart[run_id] in ("queued", "running"), name  # alive, not "interrupted"
    assert len(day.after_restart) == 3 + 1 + 4  # the three, the earlier run and the damaged folders
    assert day.completed.status == "completed", day.completed.error
    rows = assert_metrics_intact(day.completed.dir)
    assert [row["epoch"] for row in rows if row["kind"] == "epoch"] == [1, 2]
    assert_best_model_intact(day.completed, rows)


def test_two_sessions_starting_runs_at_once_get_a_queue_with_a_folder_each(day):
    assert len(set(day.ids.values())) == 3
    assert sorted(info.status for info in day.queue) == ["queued", "queued", "running"]
    assert day.queue[2].status == "queued"  # the run started last waits behind both
    for name, run_id in day.ids.items():  # each folder holds its own run, whole
        run_dir = day.workspace.run_dir(run_id)
        assert json.loads((run_dir / runs.SPEC_FILE).read_text(encoding="utf-8"))["name"] == name
        assert (run_dir / runs.LABELS_FILE).read_text(encoding="utf-8").split() == list(day.dataset.classes)


def test_a_killed_trainer_leaves_an_interrupted_run_with_its_metrics_and_best_model(day):
    info = day.killed
    assert info.status == "interrupted"
    assert "ended unexpectedly" in info.error.render("en")
    assert not runs.lock_is_held(info.dir)
    assert len(metrics_log.read_metrics(day.workspace, info.id)) >= 2
    rows = assert_metrics_intact(info.dir, torn_last_line_allowed=True)
    assert_best_model_intact(info, rows)
    assert runs.RunStatus.read(info.dir).status == "interrupted"  # written down, not only shown
    assert {r.id: r.status for r in runs.list_runs(day.workspace)}[info.id] == "interrupted"


def test_runs_queue_and_train_one_at_a_time_the_next_as_soon_as_the_one_ahead_is_killed(day):
    assert day.stopped.started > day.killed.started
    assert not metrics_log.read_metrics(day.workspace, day.stopped.id).empty
    assert day.stopped.ended <= day.completed.started  # the last run waited for the one ahead of it to end


def test_stop_pressed_twice_mid_run_is_honoured_and_keeps_the_metrics_and_the_best_model(day):
    info = day.stopped
    assert info.status == "stopped" and info.error is None
    rows = assert_metrics_intact(info.dir)
    assert max(row["epoch"] for row in rows) < 200
    assert (info.dir / runs.BEST_MODEL_FILE).is_file() and info.best_val_accuracy is not None
    assert_best_model_intact(info, rows)
    with pytest.raises(RunError, match="not running"):  # and a third press, once it has ended, is refused
        runs.stop(day.workspace, info.id)


def test_faults_in_some_runs_leave_every_other_run_folder_byte_for_byte_untouched(day):
    for folder, files in day.untouched.items():
        assert snapshot(folder) == files, f"{folder.name} changed"


def test_refreshing_the_browser_mid_run_shows_one_run_running_and_two_queued(day):
    train, compare = day.during.train, day.during.compare
    assert not train.exception and not compare.exception
    options = train_page_options(train)
    assert any(option.startswith(f"{day.killed.name} · Running") for option in options), options
    for info in (day.stopped, day.completed):
        assert any(option.startswith(f"{info.name} · Queued") for option in options), options


def test_after_the_faults_the_app_starts_and_lists_every_run_with_its_true_status(day):
    home = app_page(day.workspace)
    assert not home.exception
    train = app_page(day.workspace, "app_pages/train.py")
    assert not train.exception
    options = train_page_options(train)
    expected = {
        day.killed.name: "Interrupted",
        day.stopped.name: "Stopped",
        day.completed.name: "Completed",
        "finished earlier": "Completed",
        **{f"20000101-000000-{name}": "Damaged" for name in ("bad-json", "no-status")},
    }
    for name, status in expected.items():
        assert any(option.startswith(f"{name} · {status}") for option in options), (name, options)
    assert len(options) == 8  # and the folders with bad values or bad bytes are listed too
    listed = {info.id: info.status for info in runs.list_runs(day.workspace)}
    assert listed[day.damaged["bad-json"].name] == "damaged" and listed[day.earlier.id] == "completed"
    compare = app_page(day.workspace, "app_pages/compare.py")
    assert not compare.exception
    assert len(compare.selectbox(key="compare.target").options) == 8
    data = app_page(day.workspace, "app_pages/data.py")
    assert not data.exception
    assert [d.id for d in list_datasets(day.workspace)] == [day.dataset.id]


def test_after_the_faults_the_command_line_lists_every_run(day):
    result = run_tlcore("runs", "--json", workspace=day.workspace)
    assert result.returncode == 0, result.stderr
    statuses = {row["id"]: row["status"] for row in json.loads(result.stdout)}
    assert statuses[day.killed.id] == "interrupted" and statuses[day.stopped.id] == "stopped"
    assert statuses[day.completed.id] == "completed" and statuses[day.earlier.id] == "completed"
    assert len(statuses) == 8


@pytest.fixture(scope="module")
def disk_full(disk_filling):
    returncode = disk_filling.start().wait(timeout=300)
    return SimpleNamespace(
        workspace=disk_filling.workspace,
        info=runs.load_run(disk_filling.workspace, disk_filling.run_id),
        other=disk_filling.other,
        before=disk_filling.before,
        returncode=returncode,
    )


def test_a_full_disk_mid_run_fails_the_run_with_the_reason_and_keeps_what_was_written(disk_full):
    info = disk_full.info
    assert info.status == "failed" and disk_full.returncode == 1
    assert "No space left on device" in info.error.render("en")
    assert not runs.lock_is_held(info.dir)
    rows = assert_metrics_intact(info.dir)
    assert [row["kind"] for row in rows].count("epoch") == 1  # everything up to the fault, nothing after
    assert_best_model_intact(info, rows)
    assert [r.status for r in runs.list_runs(disk_full.workspace) if r.id == info.id] == ["failed"]
    assert snapshot(disk_full.other.dir) == disk_full.before


def test_a_full_disk_is_reported_as_a_write_to_the_run_folder_that_failed(disk_full):
    error = disk_full.info.error.render("en")
    assert error.startswith("Could not write to the run folder: No space left on device (metrics.jsonl in ")
    assert error.endswith("free some disk space or make the workspace writable, then start the run again.")
    assert str(disk_full.info.dir) in error and "\n" not in error
    assert [p.name for p in disk_full.info.dir.iterdir() if "partial" in p.name or p.suffix == ".tmp"] == []


def test_a_best_model_write_that_fails_keeps_the_previous_best_keras_whole_and_no_partial_file(
    workspace, dataset, monkeypatch
):
    import keras

    from tlcore import callbacks
    from tlcore.distribute import Distribution

    info = runs.create_run(scratch_run(dataset.id), workspace)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    recorder = keras.callbacks.CallbackList(
        callbacks.for_run(info.dir, model, time.monotonic(), Distribution()), model=model
    )
    first = [w.numpy() for w in model.weights]
    recorder.on_train_begin()
    recorder.on_epoch_begin(0)
    recorder.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5})
    recorder.on_train_end()  # epoch 1's model is written
    saved = (info.dir / runs.BEST_MODEL_FILE).read_bytes()

    for weight in model.weights:  # epoch 2 learns, and validates better
        weight.assign(weight.numpy() + 1.0)
    current = [w.numpy() for w in model.weights]
    recorder.on_epoch_begin(1)
    recorder.on_epoch_end(1, {"loss": 0.5, "accuracy": 0.9, "val_loss": 0.5, "val_accuracy": 0.9})

    def fills_the_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half of a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model, "save", fills_the_disk)
    with pytest.raises(RunError, match=r"^Could not write to the run folder: No space left on device \(best\.keras"):
        recorder.on_train_end()
    assert (info.dir / runs.BEST_MODEL_FILE).read_bytes() == saved
    assert sorted(p.name for p in info.dir.iterdir()) == sorted(
        [
            runs.SPEC_FILE,
            runs.STATUS_FILE,
            runs.METRICS_FILE,
            runs.LABELS_FILE,
            runs.LOCK_FILE,
            runs.BEST_MODEL_FILE,
            runs.TENSORBOARD_FOLDER,
        ]
    )
    loaded = keras.models.load_model(info.dir / runs.BEST_MODEL_FILE)
    for on_disk, expected in zip(loaded.weights, first, strict=True):
        np.testing.assert_array_equal(on_disk.numpy(), expected)
    for in_memory, expected in zip(model.weights, current, strict=True):  # training goes on from where it was
        np.testing.assert_array_equal(in_memory.numpy(), expected)
    status = runs.RunStatus.read(info.dir)
    assert (status.best_epoch, status.best_val_accuracy) == (1, 0.5)  # what best.keras holds


def test_a_trainer_that_cannot_even_record_its_failure_leaves_an_interrupted_run_not_a_running_one(
    workspace, dataset, monkeypatch
):
    from tlcore import training

    info = runs.create_run(scratch_run(dataset.id, name="disk full to the end"), workspace)
    write_status, full = runs.update_status, []

    def update_on_a_full_disk(run_dir: Path, **changes):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_status(run_dir, **changes)

    def fills_the_disk_while_training(*args, **kwargs):
        runs.update_status(info.dir, status="running", started=runs.now_iso())
        full.append(True)
        runs.update_status(info.dir, epoch=1)

    monkeypatch.setattr(runs, "update_status", update_on_a_full_disk)
    monkeypatch.setattr(training, "_train", fills_the_disk_while_training)
    with pytest.raises(RunError, match=r"^Could not write to the run folder: No space left on device \(status\.json"):
        training.train_run(workspace, info.id)
    assert runs.RunStatus.read(info.dir).status == "running"  # the last word that reached the disk
    assert not runs.lock_is_held(info.dir)
    listed = runs.load_run(workspace, info.id)
    assert listed.status == "interrupted" and "ended unexpectedly" in listed.error.render("en")


# ---------------------------------------------------------------------------------------------
# Many users, without trainers


def test_stop_pressed_in_two_tabs_and_again_after_the_end_never_shows_an_error(workspace, dataset, monkeypatch):
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    info = runs.create_run(scratch_run(dataset.id, name="busy"), workspace)

    with open(info.dir / runs.LOCK_FILE, "r+") as lock:  # stands in for the trainer process
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs.update_status(info.dir, status="running", pid=os.getpid(), epoch=1)
        tabs = [app_page(workspace, "app_pages/train.py") for _ in range(3)]
        assert not any(button(at, "Stop").disabled for at in tabs)
        for at in tabs[:2]:
            button(at, "Stop").click().run()
            assert not at.exception and not at.error
            assert runs.load_run(workspace, info.id).status == "stopping"
            assert any(":orange-badge[Stopping]" in markdown.value for markdown in at.markdown)
        runs.update_status(info.dir, status="stopped", ended=runs.now_iso())  # the trainer honours the stop
    button(tabs[2], "Stop").click().run()  # a tab that still showed the run running
    assert not tabs[2].exception and not tabs[2].error
    assert runs.load_run(workspace, info.id).status == "stopped"


def test_runs_created_at_the_same_moment_with_the_same_id_get_folders_of_their_own(workspace, dataset, monkeypatch):
    # Ids are the time to the millisecond and 16 random bits: two tabs can draw the same one.
    monkeypatch.setattr(runs, "_new_run_id", lambda spec: "20990101-000000-mobilenet_0.25-scratch-beef")
    barrier = threading.Barrier(3)
    made: dict[str, runs.RunInfo] = {}
    errors: list[BaseException] = []

    def session(name: str) -> None:
        barrier.wait()
        try:
            made[name] = runs.create_run(scratch_run(dataset.id, name=name), workspace)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=session, args=(f"tab {n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({info.id for info in made.values()}) == 3
    for name, info in made.items():
        assert runs.load_run(workspace, info.id).spec.name == name
    assert list(workspace.tmp_dir.iterdir()) == []


def test_a_run_that_finishes_while_the_app_looks_at_it_is_completed_not_interrupted(workspace, dataset, monkeypatch):
    info = runs.create_run(scratch_run(dataset.id), workspace)
    runs.update_status(info.dir, status="running", pid=999_999)

    def trainer_writes_completed_then_exits(run_dir: Path) -> bool:
        # What happens between the app reading status.json and checking the lock: the trainer
        # writes its last status, exits, and its lock is free.
        runs.update_status(run_dir, status="completed", ended=runs.now_iso())
        return False

    monkeypatch.setattr(runs, "lock_is_held", trainer_writes_completed_then_exits)
    assert runs.load_run(workspace, info.id).status == "completed"
    assert runs.RunStatus.read(info.dir).status == "completed"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_STATUS = st.fixed_dictionaries(
    {"status": st.sampled_from([*runs.ACTIVE_STATUSES, *runs.FINISHED_STATUSES, "x"])},
    optional=dict.fromkeys(
        (
            "epoch",
            "total_epochs",
            "total_steps",
            "global_step",
            "step",
            "best_val_accuracy",
            "best_epoch",
            "error",
            "elapsed_seconds",
            "steps_per_epoch",
            "created",
        ),
        _JSON,
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    spec=st.one_of(st.none(), st.binary(max_size=40), _JSON.map(lambda v: json.dumps(v).encode())),
    status=st.one_of(
        st.none(),
        st.binary(max_size=40),
        _STATUS.map(lambda v: json.dumps(v).encode()),
        _JSON.map(lambda v: json.dumps(v).encode()),
    ),
    metrics=st.lists(st.one_of(st.binary(max_size=30), _JSON.map(lambda v: json.dumps(v).encode())), max_size=4),
)
def test_a_corrupt_run_folder_never_breaks_the_listing_or_the_metrics(tmp_path_factory, spec, status, metrics):
    workspace = Workspace(tmp_path_factory.mktemp("corrupt"))
    good = workspace.runs_dir / "20000101-000000-good"
    bad = workspace.runs_dir / "20000101-000000-bad"
    for folder in (good, bad):
        folder.mkdir()
    good_spec = scratch_run("0123456789abcdef", name="good").to_dict()
    write_json_atomic(good / runs.SPEC_FILE, good_spec)
    write_json_atomic(good / runs.STATUS_FILE, {"status": "completed", "best_val_accuracy": 0.5})
    for name, content in ((runs.SPEC_FILE, spec), (runs.STATUS_FILE, status)):
        if content is not None:
            (bad / name).write_bytes(content)
    (bad / runs.METRICS_FILE).write_bytes(b"\n".join(metrics))
    listed = {info.id: info for info in runs.list_runs(workspace)}
    assert listed[good.name].status == "completed" and listed[good.name].best_val_accuracy == 0.5
    info = listed[bad.name]
    assert info.status in (*runs.ACTIVE_STATUSES, *runs.FINISHED_STATUSES, "damaged")
    assert info.best_val_accuracy is None or isinstance(info.best_val_accuracy, float)
    assert isinstance(info.epoch, int) and isinstance(info.error, (Message, type(None)))
    assert info.error is None or all(info.error.render(lang) for lang in LANGUAGES)
    frame = metrics_log.read_metrics(workspace, bad.name)
    for column in ("epoch", "loss", "val_accuracy", "global_step"):
        assert all(isinstance(v, (int, float, np.integer, np.floating)) for v in frame[column]), column


# ---------------------------------------------------------------------------------------------
# Writes that fail: a workspace that cannot be written


def test_a_workspace_that_cannot_be_written_still_lists_a_dead_run_as_interrupted(workspace, dataset):
    info = runs.create_run(scratch_run(dataset.id, name="lost its trainer"), workspace)
    runs.update_status(info.dir, status="running", pid=999_999)  # its trainer died; nobody holds the lock
    status_before = (info.dir / runs.STATUS_FILE).read_bytes()
    result = run_tlcore("runs", "--json", workspace=workspace, preexec_fn=no_writes)
    assert result.returncode == 0, result.stderr
    assert [row["status"] for row in json.loads(result.stdout)] == ["interrupted"]
    assert (info.dir / runs.STATUS_FILE).read_bytes() == status_before  # unchanged, and still readable
    assert runs.load_run(workspace, info.id).status == "interrupted"  # written once it can be
    assert runs.RunStatus.read(info.dir).status == "interrupted"


def test_uploading_into_a_workspace_that_cannot_be_written_says_so_in_one_line(workspace, demo_zip_bytes, tmp_path):
    upload = tmp_path / "demo.zip"
    upload.write_bytes(demo_zip_bytes)
    result = run_tlcore("inspect", str(upload), workspace=workspace, preexec_fn=no_writes)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "could not be stored in the workspace" in result.stderr and "File too large" in result.stderr
    assert list(workspace.datasets_dir.iterdir()) == [] and list(workspace.tmp_dir.iterdir()) == []


def test_starting_a_run_where_no_folder_can_be_made_says_so_in_one_sentence(workspace, dataset):
    shutil.rmtree(workspace.tmp_dir)
    (workspace.root / "tmp").write_text("a file where the staging folder must be")  # root ignores chmod
    with pytest.raises(RunError, match="could not be written") as refusal:
        runs.start(scratch_run(dataset.id), workspace)
    assert "\n" not in str(refusal.value)
    assert list(workspace.runs_dir.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root writes through file permissions; the RLIMIT_FSIZE and "
    "file-instead-of-folder tests above cover this as root",
)
def test_a_read_only_workspace_lists_runs_and_refuses_new_ones(workspace, dataset):
    earlier = made_run(workspace, dataset.id, "earlier")
    dead = runs.create_run(scratch_run(dataset.id, name="dead"), workspace)
    runs.update_status(dead.dir, status="running", pid=999_999)
    folders = [workspace.root, *(p for p in workspace.root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        statuses = {info.name: info.status for info in runs.list_runs(workspace)}
        assert statuses == {"earlier": "completed", "dead": "interrupted"}
        with pytest.raises(RunError, match="could not be written"):
            runs.create_run(scratch_run(dataset.id), workspace)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert earlier.dir.is_dir()


# ---------------------------------------------------------------------------------------------
# The app with a damaged workspace and hostile URLs


def test_the_app_starts_and_lists_the_good_runs_and_datasets_next_to_damaged_ones(workspace, dataset):
    good = made_run(workspace, dataset.id, "good run")
    damage(workspace, good)
    (workspace.runs_dir / "not a run id").mkdir()  # a folder no run id can name is not listed
    for page in (None, "app_pages/train.py", "app_pages/compare.py", "app_pages/data.py"):
        at = app_page(workspace, page, query={"run": "../../../etc"})
        assert not at.exception, (page, at.exception)
    options = train_page_options(app_page(workspace, "app_pages/train.py"))
    assert any(option.startswith("good run · Completed") for option in options)
    assert len(options) == 5
    data = app_page(workspace, "app_pages/data.py")
    assert len(data.selectbox(key="data.pick").options) == 1  # the damaged dataset is left out


# ---------------------------------------------------------------------------------------------
# Safe defaults


def _config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_the_server_config_listens_on_localhost_with_xsrf_on_uploads_capped_and_no_usage_stats():
    config = _config()
    assert config["server"]["address"] in ("localhost", "127.0.0.1")
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"].get("enableCORS", True) is True
    upload_mib = config["server"]["maxUploadSize"]
    assert 0 < upload_mib * MIB <= Limits().max_zip_bytes  # never more than tlcore would accept
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] in ("type", "none")  # no traceback, no message text


def test_streamlit_reads_those_settings_from_the_project_folder(tmp_path):
    # Misspelt keys are ignored by Streamlit with a warning only: ask Streamlit itself.
    code = (
        "import json; from streamlit import config; config.get_config_options(force_reparse=True); "
        "print(json.dumps({k: config.get_option(k) for k in ('server.address', 'server.enableXsrfProtection', "
        "'server.enableCORS', 'server.maxUploadSize', 'browser.gatherUsageStats', 'client.showErrorDetails')}))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options == {
        "server.address": _config()["server"]["address"],
        "server.enableXsrfProtection": True,
        "server.enableCORS": True,
        "server.maxUploadSize": _config()["server"]["maxUploadSize"],
        "browser.gatherUsageStats": False,
        "client.showErrorDetails": _config()["client"]["showErrorDetails"],
    }


_FAILING_PAGE = """
import streamlit as st
st.error("Error: a message of ours, with what to do.")
raise ValueError(f"a bug's message naming a server path: {__file__}")
"""

_OPEN_PAGE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1]).run()
shown = at.exception[0].proto
print(json.dumps({"errors": [e.value for e in at.error], "exceptions": len(at.exception), "type": shown.type,
                  "message": shown.message, "trace": list(shown.stack_trace)}))
"""


def test_an_unexpected_error_reaches_the_browser_without_its_traceback_or_text_but_our_messages_do(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(_FAILING_PAGE, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")}
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_PAGE, str(page)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, "HOME": str(tmp_path)},
    )  # the project's config, as `streamlit run`
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["errors"] == ["Error: a message of ours, with what to do."]
    assert shown["exceptions"] == 1 and shown["trace"] == []
    assert str(tmp_path) not in shown["message"] and "a bug's message" not in shown["message"]
    console = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # without the terminal colours
    assert "ValueError: a bug's message" in console  # the details are in the server's log


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


_LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_a_started_server_listens_on_loopback_only_and_refuses_uploads_without_its_xsrf_token(tmp_path):
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLIT_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "HOME": str(tmp_path), "TLCORE_WORKSPACE": str(tmp_path / "ws"), "TLCORE_OFFLINE": "1"},
    )
    try:
        addresses = wait_for(lambda: _listening_addresses(port), timeout=60, what="the server to listen")
        assert addresses <= _LOOPBACK, addresses
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as response:
            assert response.status == 200
        upload = urllib.request.Request(
            f"http://127.0.0.1:{port}/_stcore/upload_file/session/file",
            data=b"PK",
            method="PUT",
            headers={"Content-Type": "application/zip"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(upload, timeout=10)
        assert refused.value.code == 403
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@settings(max_examples=300, deadline=None)
@given(
    identifier=st.one_of(
        st.text(max_size=90),
        st.sampled_from(
            [
                "abc\n",
                "run\n",
                "../x",
                "..",
                ".",
                "",
                "a/b",
                "a\\b",
                "C:",
                "/etc",
                "~",
                "x" * 81,
                "a..b",
                "-rf",
                ".hidden",
                "ok\x00",
                "ok\r",
                "ok ",
                "ｆｕｌｌ",
            ]
        ),
    )
)
def test_run_and_dataset_ids_can_only_name_a_folder_directly_inside_the_workspace(identifier):
    workspace = Workspace("/nonexistent-workspace-for-ids")
    for kind, parent in (("run", workspace.root / "runs"), ("dataset", workspace.root / "datasets")):
        try:
            check_id(identifier, kind)
        except TLCoreError as refusal:
            assert "\n" not in str(refusal)
            continue
        path = parent / identifier
        assert path.parent == parent and path.name == identifier
        assert os.path.normpath(path) == str(path)  # no "..", "." or separators left to resolve
        assert identifier.isascii() and identifier.isprintable() and identifier == identifier.strip()


def test_the_command_line_refuses_a_run_id_that_names_a_path(workspace):
    for bad in ("../../etc", "abc\n", "/tmp"):
        result = run_tlcore("stop", bad, workspace=workspace)
        assert result.returncode == 2 and "not a valid run id" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


_UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
_UNSAFE_CALLS = {
    "eval",
    "exec",
    "__import__",
    "enable_unsafe_deserialization",
    "read_pickle",
    "Lambda",
    "unsafe_load",
    "load_model_legacy",
}
_UNSAFE_KEYWORDS = {("safe_mode", False), ("allow_pickle", True), ("shell", True)}


def _app_sources() -> list[Path]:
    return [
        ROOT / "app.py",
        *sorted((ROOT / "tlcore").rglob("*.py")),
        *sorted((ROOT / "ui").rglob("*.py")),
        *sorted((ROOT / "app_pages").rglob("*.py")),
    ]


def test_no_code_path_unpickles_or_executes_what_a_user_supplies():
    problems = []
    for path in _app_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                problems += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in _UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _UNSAFE_MODULES:
                problems.append(f"{where} imports from {node.module}")
            elif isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in _UNSAFE_CALLS:
                    problems.append(f"{where} calls {name}")
                for keyword in node.keywords:
                    if (
                        isinstance(keyword.value, ast.Constant)
                        and (keyword.arg, keyword.value.value) in _UNSAFE_KEYWORDS
                    ):
                        problems.append(f"{where} passes {keyword.arg}={keyword.value.value}")
    assert problems == []
    assert len(_app_sources()) > 10  # the scan saw the code


@pytest.fixture
def hostile_models(workspace, dataset, tmp_path):
    """Completed runs whose best.keras is garbage, or a model carrying code that writes a file."""
    import keras

    marker = tmp_path / "the-code-ran"
    garbage = made_run(workspace, dataset.id, "garbage model")
    carrying_code = made_run(workspace, dataset.id, "model carrying code")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x, path=str(marker): (open(path, "w").close(), x)[1])(inputs)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(outputs))).save(
        carrying_code.dir / runs.BEST_MODEL_FILE
    )
    marker.unlink()  # building the model ran the code once, here, on purpose
    two_outputs = made_run(workspace, dataset.id, "model with two outputs")
    features = keras.layers.Flatten()(inputs := keras.Input((32, 32, 3)))
    keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(features), keras.layers.Dense(1)(features)]).save(
        two_outputs.dir / runs.BEST_MODEL_FILE
    )
    return SimpleNamespace(
        workspace=workspace, garbage=garbage, carrying_code=carrying_code, two_outputs=two_outputs, marker=marker
    )


def test_a_model_file_carrying_code_is_refused_and_its_code_never_runs(hostile_models):
    import importlib

    from tlcore.predict import Predictor

    for path in _app_sources():  # importing every module must not switch Keras's safe mode off
        if path.parent.name in ("tlcore", "ui") and path.stem != "__main__":
            importlib.import_module(f"{path.parent.name}.{path.stem}")
    for info in (hostile_models.carrying_code, hostile_models.garbage):
        with pytest.raises(RunError):
            Predictor.load(hostile_models.workspace, info.id)
    assert not hostile_models.marker.exists()


_REFUSED_MODELS = {
    "carrying_code": "best.keras carries Python code, which is never run",
    "garbage": "best.keras is not a Keras model file",
}


def _refusal(info: runs.RunInfo, reason: str) -> str:
    return f"The model of run {info.name!r} cannot be loaded safely ({reason}); train it again or delete the run."


@pytest.mark.parametrize("which", _REFUSED_MODELS)
def test_a_model_file_that_cannot_be_loaded_safely_is_refused_in_one_sentence(hostile_models, which):
    from tlcore.predict import Predictor

    info = getattr(hostile_models, which)
    with pytest.raises(TLCoreError) as refusal:
        Predictor.load(hostile_models.workspace, info.id)
    assert str(refusal.value) == _refusal(info, _REFUSED_MODELS[which])
    assert not hostile_models.marker.exists()


def test_a_model_file_that_is_not_a_classifier_is_refused_in_one_sentence(hostile_models):
    from tlcore.predict import Predictor

    info = hostile_models.two_outputs
    with pytest.raises(TLCoreError) as refusal:
        Predictor.load(hostile_models.workspace, info.id)
    assert str(refusal.value) == (
        f"The model of run {info.name!r} is not a classifier of this app (it has 2 outputs, "
        "not one vector of class probabilities); train it again or delete the run."
    )


def test_the_evaluate_page_refuses_a_model_that_cannot_be_loaded_safely_with_a_message(hostile_models, monkeypatch):
    monkeypatch.setenv("TLCORE_WORKSPACE", str(hostile_models.workspace.root))
    at = app_page(hostile_models.workspace, "app_pages/evaluate.py")
    for which, reason in _REFUSED_MODELS.items():
        info = getattr(hostile_models, which)
        at.selectbox(key="evaluate.run").set_value(info.id).run()
        assert not at.exception
        assert [error.value for error in at.error] == [f"Error: {_refusal(info, reason)}"]  # on the "Try it" tab
    assert not hostile_models.marker.exists()
