"""The warm trainer: a spare process that has TensorFlow loaded before the run it will train exists.

Starting Python and importing TensorFlow takes seconds (about 5 s on a 2-core machine, more with a
GPU), which a run started in a fresh process pays before its first batch. So the app keeps one spare
waiting per workspace (`run_queue.ensure_spare`, called by `runs.start`): `python -m tlcore spare`
imports the trainer ahead of time, waits for the next queued run whose turn has come
(`run_queue.claim_next`: creation order, a free slot), claims it, starts the next spare behind it,
trains exactly that run with `tlcore.training` and exits.

A spare runs at a lower CPU priority than the app (`TLCORE_TRAINER_NICE`, 19 unless set): it still takes
every core the app leaves idle, and a page's rerun does not wait behind an epoch.

One run per process keeps every run as it was in a process of its own: no Keras or TensorFlow state
lives from one run to the next (seeds, graphs, memory), and the memory a run took is returned when it
ends. A spare that dies before its claim loses nothing (the runs stay queued; the next `runs.start`
starts a new spare, and that run starts cold); one that dies after it leaves its run `interrupted`,
as any trainer that dies does.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from tlcore import run_queue, runs, settings
from tlcore.errors import TLCoreError
from tlcore.i18n import msg
from tlcore.spec import RunSpec, read_spec_file
from tlcore.workspace import Workspace

# How often a waiting spare looks at the queue: a run waits at most this long for it.
POLL_SECONDS = 0.2
# The longest a spare started behind a run waits for that run's first epoch before importing TensorFlow.
BEHIND_SECONDS = 30.0


def serve(
    workspace: Workspace, lock_fd: int | None = None, poll_seconds: float = POLL_SECONDS, behind: str | None = None
) -> int:
    """Wait for the next run of `workspace`'s queue, train it, and return the exit status (1: it failed).

    lock_fd: the spare lock, already held (handed over by `run_queue.ensure_spare`); None takes it
        here, and a spare started by hand while another waits is refused (`TLCoreError`).
    behind: the run the spare before this one has just claimed. This spare imports TensorFlow only once
        that run has written its first epoch, has ended or lost its trainer, or `BEHIND_SECONDS` have
        passed: on a machine with few cores, an import beside the run's set-up delays its first epoch.
    Returns 0 without training when the workspace's runs folder is removed while it waits.
    """
    # Below the app's pages (`TLCORE_TRAINER_NICE`), before TensorFlow starts its threads, which inherit
    # it; a spare started behind another inherits that one's lowered priority already.
    if behind is None:
        os.nice(settings.trainer_niceness())
    spare_lock = lock_fd if lock_fd is not None else run_queue.take_spare_lock(workspace)
    if spare_lock is None:
        raise TLCoreError("spare.already_waiting", workspace=str(workspace.root))
    try:
        if behind:
            _let_start(workspace.run_dir(behind), poll_seconds)
        trainer = _load_trainer()
        if not isinstance(trainer, BaseException):
            _build_ahead(workspace)
        # What is loaded now lives as long as the process: the run's full garbage collections skip it
        # (about 0.1 s each, several a run, over TensorFlow's objects). The warm-up's garbage is gone
        # already: `keras.backend.clear_session` collects it.
        gc.freeze()
        run_queue.describe_spare(spare_lock, os.getpid(), ready=True)
        claim = _wait_for_turn(workspace, poll_seconds)
        if claim is None:
            return 0
        # Before the next spare starts: it takes over the spare's log.
        _send_output_to(workspace.run_dir(claim.run_id) / runs.LOG_FILE)
    finally:
        os.close(spare_lock)
    try:
        run_queue.ensure_spare(workspace, behind=claim.run_id)
    except OSError:  # no process could be started: the next `runs.start` tries again
        traceback.print_exc()
    if isinstance(trainer, BaseException):
        return _fail(workspace, claim, trainer)
    try:
        _keep_built_ahead_for(workspace, claim.run_id)
        info = trainer.train_run(workspace, claim.run_id, lock_fd=claim.lock_fd, slot=claim.slot_fd)
    finally:
        os.close(claim.lock_fd)
    return 1 if info.status == runs.RunState.FAILED else 0


def _load_trainer() -> ModuleType | BaseException:
    """`tlcore.training`, with Keras and TensorFlow, imported now and warmed up (`_warm_up`); or why
    that failed.

    A spare that cannot load them still claims the next run and fails it with the reason: crashing
    instead would leave the queue waiting for a trainer that never comes.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as the command line's own import
    try:
        from tlcore import training

        _warm_up()
    except Exception as exc:
        traceback.print_exc()
        return exc
    return training


def _warm_up() -> None:
    """Build, fit and run a tiny model once, then forget it.

    The first model a process builds and the first `fit` it traces pay one-off costs (TensorFlow's
    runtime and kernels starting up, Keras's lazy set-up, autograph converting Keras's training step)
    that would otherwise land on the claimed run's first epoch. `clear_session` then resets Keras's
    global state (layer names, the graph); the run seeds everything itself (`training.seed_everything`).
    """
    import keras
    import numpy as np

    from tlcore.models import ModelSpec, build_model

    model = build_model(ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32, num_classes=2))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 0, 1])
    model.fit(images, labels, batch_size=2, epochs=1, validation_data=(images, labels), verbose=0)
    model.predict(images, verbose=0)
    keras.backend.clear_session()


def _build_ahead(workspace: Workspace) -> None:
    """Build the pretrained base of the workspace's latest run (`models.build_base_ahead`): the next run
    most often asks for the same one, and then starts without building it."""
    from tlcore.models import build_base_ahead

    try:
        latest = _latest_spec(workspace)
        if latest is not None:
            build_base_ahead(latest.model, workspace)
    except Exception:  # the run builds its own base, as a cold one does
        traceback.print_exc()


def _keep_built_ahead_for(workspace: Workspace, run_id: str) -> None:
    """Keep the base built ahead if the claimed run asks for it, else drop it. Its objects were frozen
    out of the garbage collector with the rest (`serve`): they are let back in while Keras clears a
    dropped base away, so that its reference cycles are collected, then frozen again."""
    from tlcore.models import keep_built_ahead_for

    gc.unfreeze()
    try:
        keep_built_ahead_for(read_spec_file(workspace.run_dir(run_id) / runs.SPEC_FILE).model, workspace)
    except Exception:  # a damaged spec: the run reports it itself
        traceback.print_exc()
    finally:
        gc.freeze()


def _latest_spec(workspace: Workspace) -> RunSpec | None:
    """The spec of the run created last (run ids begin with their creation time), or None."""
    folder = workspace.root / "runs"  # not `runs_dir`, which would make it
    if not folder.is_dir():
        return None
    latest = max((p for p in folder.iterdir() if (p / runs.SPEC_FILE).is_file()), key=lambda p: p.name, default=None)
    return read_spec_file(latest / runs.SPEC_FILE) if latest is not None else None


def _let_start(run_dir: Path, poll_seconds: float) -> None:
    """Wait until the run in `run_dir` has written its first epoch, has ended or lost its trainer, or
    `BEHIND_SECONDS` have passed."""
    deadline = time.monotonic() + BEHIND_SECONDS
    while time.monotonic() < deadline:
        status = runs.RunStatus.read(run_dir)
        if (status.epoch or 0) >= 1 or status.status not in runs.ACTIVE_STATUSES or not runs.lock_is_held(run_dir):
            return
        time.sleep(poll_seconds)


def _wait_for_turn(workspace: Workspace, poll_seconds: float) -> run_queue.Claim | None:
    """Claim the next run when its turn comes; None when the workspace's runs folder is gone."""
    finished: set[str] = set()
    while (workspace.root / "runs").is_dir():  # not `runs_dir`, which would make it again
        claim = run_queue.claim_next(workspace, finished)
        if claim is not None:
            return claim
        time.sleep(poll_seconds)
    return None


def _send_output_to(log_path: Path) -> None:
    """Write this process's stdout and stderr, from now on, at the end of `log_path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _fail(workspace: Workspace, claim: run_queue.Claim, exc: BaseException) -> int:
    """End the claimed run `failed` with why the trainer could not be loaded, and let go of it."""
    run_dir = workspace.run_dir(claim.run_id)
    try:
        error = msg("run.training_failed", error=f"{type(exc).__name__}: {exc}"[:500])
        runs.update_status(run_dir, status=runs.RunState.FAILED, ended=runs.now_iso(), error=error)
    finally:
        os.close(claim.slot_fd)
        os.close(claim.lock_fd)
    return 1
