"""The training queue: runs train in the order they were started, at most `TLCORE_MAX_CONCURRENT` at once.

A run's trainer process waits here for a slot before it builds anything. Slots are `flock`s on
`runs/.slot-<k>`, so a trainer that dies frees its slot at once; a run takes a slot only when no older
queued run with a live trainer is still waiting.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tlcore import settings
from tlcore.i18n import msg
from tlcore.runs import RunState, RunStatus, lock_is_held, now_iso, stop_requested, update_status
from tlcore.workspace import Workspace


def wait_for_slot(workspace: Workspace, run_dir: Path, poll_seconds: float = 0.5) -> int | None:
    """Block until this run may train; return the slot lock's fd, or None if a stop came first.

    Runs train in creation order, at most `TLCORE_MAX_CONCURRENT` at a time. Slots are `flock`s, so a
    trainer that dies frees its slot at once.
    """
    slots = [workspace.runs_dir / f".slot-{k}" for k in range(settings.max_concurrent())]
    while True:
        if stop_requested(run_dir):
            return None
        if _first_in_queue(workspace, run_dir):
            for slot in slots:
                fd = os.open(slot, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
        time.sleep(poll_seconds)


def wait_for_turn(workspace: Workspace, run_dir: Path) -> int | None:
    """Record this process as the run's trainer, then wait for a slot (`wait_for_slot`).

    Returns the slot's fd; when a stop comes first, ends the run as stopped and returns None. It needs
    no TensorFlow, so `python -m tlcore train --run` waits here before importing it: a queued run then
    costs tens of megabytes instead of hundreds, which matters when a study queues a dozen members.
    """
    update_status(run_dir, pid=os.getpid())
    slot = wait_for_slot(workspace, run_dir)
    if slot is None:
        end_before_training(run_dir)
    return slot


def end_before_training(run_dir: Path) -> None:
    """End a run that was stopped before its first step as stopped (it has nothing to keep)."""
    update_status(run_dir, status=RunState.STOPPED, ended=now_iso(), error=msg("run.stopped_before_training"))


def _first_in_queue(workspace: Workspace, run_dir: Path) -> bool:
    """True if no older queued run with a live process is waiting."""
    mine = RunStatus.read(run_dir).created or ""
    for other in workspace.runs_dir.iterdir():
        if other == run_dir or not other.is_dir() or other.name.startswith("."):
            continue
        status = RunStatus.read(other)
        if status.status != RunState.QUEUED or status.pid is None:
            continue
        if (status.created or "", other.name) < (mine, run_dir.name) and lock_is_held(other):
            return False
    return True
