"""The training queue: runs train in the order they were started, at most `TLCORE_MAX_CONCURRENT` at once.

A queued run costs its folder and nothing more. A run the app starts (`runs.start`) waits without a
process of its own (`RunStatus.awaiting_trainer`) until the workspace's warm trainer (`tlcore.spare`,
started by `ensure_spare`) claims it; a run trained in the foreground (`python -m tlcore train`) waits
in its own process. Both kinds wait in one line, oldest first (`waiting_line`), and only the first in
line may take a slot. At most `TLCORE_MAX_QUEUED` runs wait (`joining`).

Everything is held by `flock`s, which the kernel lets go of the moment a process dies:
- `runs/<id>/run.lock`, held by the process that trains the run: claiming a run is taking its lock, and
  a claimed run whose lock is free has lost its trainer (`runs.load_run` lists it `interrupted`);
- `runs/.slot-<k>`, one per run training at once, held by its trainer;
- `runs/.spare.lock`, held by the one spare waiting for the next run (the file holds its pid, then
  `ready` once it has loaded TensorFlow: `warm_spare`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tlcore import settings
from tlcore.errors import RunError
from tlcore.i18n import msg
from tlcore.runs import (
    FINISHED_STATUSES,
    LOCK_FILE,
    RunState,
    RunStatus,
    end_stopped_while_queued,
    lock_is_held,
    now_iso,
    stop_requested,
    update_status,
)
from tlcore.workspace import Workspace

SPARE_LOCK = ".spare.lock"
SPARE_LOG = ".spare.log"


@dataclass(frozen=True)
class Claim:
    """A run a spare has claimed: its id, and the file descriptors of its run lock and its slot, now held."""

    run_id: str
    lock_fd: int
    slot_fd: int


class InLine(NamedTuple):
    """A run waiting for its turn: its folder, and whether a process holds it (else it awaits a spare)."""

    run_dir: Path
    held: bool


def waiting_line(workspace: Workspace, finished: set[str] | None = None) -> list[InLine]:
    """The runs waiting for their turn to train, oldest first.

    A run is in line while its status is `queued`, no stop was asked for, and something will train it:
    it awaits the warm trainer and nobody has claimed it yet, or its process holds its lock (a
    foreground trainer waiting for a slot, or a spare that has claimed it). A claimed run whose process
    died is not in line: it is interrupted. A stopped run that no process holds is ended here, since no
    trainer will ever see its STOP file.
    finished: ids of runs known to have ended, skipped without reading their folders; the ended runs
        found are added to it, so a process that watches the queue for hours reads each one once.
    """
    line = []
    for run_dir in workspace.runs_dir.iterdir():
        if run_dir.name.startswith(".") or (finished is not None and run_dir.name in finished):
            continue
        status = RunStatus.read(run_dir)
        if status.status in FINISHED_STATUSES and finished is not None:
            finished.add(run_dir.name)
        if status.status != RunState.QUEUED:
            continue
        unclaimed = status.pid is None
        if stop_requested(run_dir):
            if unclaimed:
                end_stopped_while_queued(run_dir)
            continue
        # Only a run with a pid is looked at through its lock: taking the lock of one without, even for an
        # instant, could make the process about to claim it (a spare, a foreground trainer) fail.
        if unclaimed and status.awaiting_trainer:
            line.append(((status.created or "", run_dir.name), InLine(run_dir, held=False)))
        elif not unclaimed and lock_is_held(run_dir):
            line.append(((status.created or "", run_dir.name), InLine(run_dir, held=True)))
    return [waiting for _, waiting in sorted(line)]


def wait_for_slot(workspace: Workspace, run_dir: Path, poll_seconds: float = 0.5) -> int | None:
    """Block until the foreground run `run_dir` (its lock and pid are the caller's) may train; return the
    slot's fd, or None if a stop came first.

    Runs ahead of it that await the warm trainer train first: if no spare is there to take them (one
    died, or the machine restarted), one is started, so the line always moves.
    """
    while True:
        if stop_requested(run_dir):
            return None
        line = waiting_line(workspace)
        mine = next((index for index, waiting in enumerate(line) if waiting.run_dir == run_dir), len(line))
        ahead = line[:mine]
        if not ahead:
            slot = take_free_slot(workspace)
            if slot is not None:
                return slot
        elif not all(waiting.held for waiting in ahead):
            ensure_spare(workspace)
        time.sleep(poll_seconds)


def wait_for_turn(workspace: Workspace, run_dir: Path) -> int | None:
    """Record this process as the run's trainer, then wait for a slot (`wait_for_slot`).

    For a run trained in the foreground (`python -m tlcore train`, a foreground study). Returns the
    slot's fd; when a stop comes first, ends the run as stopped and returns None.
    """
    update_status(run_dir, pid=os.getpid())
    slot = wait_for_slot(workspace, run_dir)
    if slot is None:
        end_before_training(run_dir)
    return slot


def end_before_training(run_dir: Path) -> None:
    """End a run that its own process holds, stopped before its first step, as stopped (it has nothing
    to keep)."""
    update_status(run_dir, status=RunState.STOPPED, ended=now_iso(), error=msg("run.stopped_before_training"))


def claim_next(workspace: Workspace, finished: set[str] | None = None) -> Claim | None:
    """Claim the first run in line for the calling spare, if it awaits one and a slot is free; else None.

    The claim takes the run's lock, then reads its status again: another spare, a foreground trainer or
    a stop may have come first. The claimed run's status gets this process's pid at once.
    finished: as for `waiting_line`.
    """
    line = waiting_line(workspace, finished)
    if not line or line[0].held:
        return None
    run_dir = line[0].run_dir
    slot = take_free_slot(workspace)
    if slot is None:
        return None
    lock = _try_lock(run_dir / LOCK_FILE)
    if lock is not None:
        status = RunStatus.read(run_dir)
        if status.status == RunState.QUEUED and status.pid is None and not stop_requested(run_dir):
            update_status(run_dir, pid=os.getpid())
            return Claim(run_dir.name, lock, slot)
        os.close(lock)
        end_stopped_while_queued(run_dir)
    os.close(slot)
    return None


def keep_moving(workspace: Workspace) -> None:
    """Start a spare when runs await one and none is waiting (it died, or the machine restarted).

    For pages that show the queue: a spare that cannot be started is left for the next look.
    """
    if not all(waiting.held for waiting in waiting_line(workspace)):
        with contextlib.suppress(OSError):
            ensure_spare(workspace)


def take_free_slot(workspace: Workspace) -> int | None:
    """Take one of the `TLCORE_MAX_CONCURRENT` training slots; its fd, or None when all are taken."""
    for k in range(settings.max_concurrent()):
        fd = _try_lock(workspace.runs_dir / f".slot-{k}")
        if fd is not None:
            return fd
    return None


@contextlib.contextmanager
def joining(workspace: Workspace) -> Iterator[None]:
    """Let one run join the queue: refuse it when `TLCORE_MAX_QUEUED` runs already wait.

    Held (a `flock` on the runs folder itself) until the new run's folder exists, so two sessions
    starting runs at the same moment never take the last place together.
    """
    fd = os.open(workspace.runs_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        limit = settings.max_queued()
        waiting = len(waiting_line(workspace))
        if waiting >= limit:
            raise RunError("run.queue_full", waiting=waiting, limit=limit)
        yield
    finally:
        os.close(fd)


def ensure_spare(workspace: Workspace, behind: str | None = None) -> int | None:
    """Start a spare (`python -m tlcore spare`) for `workspace` unless one is waiting; its pid, or None.

    The spare lock is taken here and handed to the child, so two sessions starting runs at once start
    one spare between them, and a spare that is still importing TensorFlow already counts as waiting.
    Its output goes to `runs/.spare.log` until it claims a run, then to that run's `trainer.log`.
    behind: a run just claimed by the spare that calls this; the new spare imports TensorFlow only once
        that run has reached its first epoch (`spare.serve`).
    Raises `OSError` when no process can be started.
    """
    fd = _try_lock(workspace.runs_dir / SPARE_LOCK)
    if fd is None:
        return None
    try:
        command = [sys.executable, "-m", "tlcore", "--workspace", str(workspace.root), "spare", "--lock-fd", str(fd)]
        with open(workspace.runs_dir / SPARE_LOG, "wb") as log:
            process = subprocess.Popen(
                command + (["--behind", behind] if behind else []),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                start_new_session=True,  # it outlives the server that started it, like the runs it trains
                cwd=workspace.root,
            )
        describe_spare(fd, process.pid, ready=False)
        return process.pid
    finally:
        os.close(fd)


def take_spare_lock(workspace: Workspace) -> int | None:
    """For a spare started by hand: the spare lock's fd, or None when another spare already waits."""
    fd = _try_lock(workspace.runs_dir / SPARE_LOCK)
    if fd is not None:
        describe_spare(fd, os.getpid(), ready=False)
    return fd


def describe_spare(lock_fd: int, pid: int, ready: bool) -> None:
    """Write into the spare lock's file which process waits, and whether it has TensorFlow loaded."""
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{pid}\n{'ready' if ready else 'loading'}\n".encode(), 0)


def warm_spare(workspace: Workspace) -> int | None:
    """The pid of the spare waiting for `workspace`'s next run with TensorFlow loaded; None when no spare
    waits, or it is still loading (a run started now would wait for that)."""
    fd = _try_lock(workspace.runs_dir / SPARE_LOCK)
    if fd is not None:
        os.close(fd)
        return None
    words = (workspace.runs_dir / SPARE_LOCK).read_text(encoding="ascii", errors="replace").split()
    return int(words[0]) if len(words) == 2 and words[0].isdigit() and words[1] == "ready" else None


def _try_lock(path: Path) -> int | None:
    """An exclusive `flock` on `path` (created if missing) without waiting: its fd, or None if it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
