"""Starting, training and stopping a study, and reading studies back from the workspace."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore import runs
from tlcore.datasets import load_dataset
from tlcore.errors import StudyError, TLCoreError
from tlcore.run_queue import end_before_training
from tlcore.runs import RunInfo, RunState
from tlcore.workspace import Workspace, read_json, write_json_atomic

if TYPE_CHECKING:
    from tlcore.callbacks import EpochRow

from tlcore.study.members import STUDY_FILE, Study, member_spec

# ---------------------------------------------------------------------------------------------
# Starting, training, stopping


def start(workspace: Workspace, study: Study, lang: str | None = None) -> Study:
    """Write the study and start every member as a run (`tlcore.runs.start`): each queues for its turn.

    The study is written first, then again as each member's run exists, so a failure part way leaves a
    study naming the runs it started; it is then marked stopped (the rest are cancelled) and the
    error raised.
    """
    dataset = load_dataset(workspace, study.dataset)
    _publish(workspace, study)
    try:
        for index, member in enumerate(study.members):
            info = runs.start(member_spec(study, dataset, member, lang), workspace)
            study = _with_run(study, index, info.id)
            study.write(workspace)
    except BaseException:
        stop(workspace, study.id)
        raise
    return study


def train_in_foreground(
    workspace: Workspace,
    study: Study,
    lang: str | None = None,
    report: EpochRow | None = None,
    on_member: Callable[[Study, int, RunInfo], None] | None = None,
) -> Study:
    """Write the study and train its members here, one after another (the command line's `study`).

    Every member's run is created at once and its lock held by this process, so that they are listed
    as queued (not as dead) and queue in order. A stop (`stop`, or `tlcore.runs.stop` of a member)
    ends the members not yet trained as stopped; if this process ends early (Ctrl-C), so do they.
    report: called with each epoch's metrics row. on_member: called before (info queued) and after
    (info ended) each member trains, with its index.
    """
    from tlcore.training import train_run  # TensorFlow, which only training needs

    dataset = load_dataset(workspace, study.dataset)
    _publish(workspace, study)
    locks: dict[int, int] = {}
    try:
        for index, member in enumerate(study.members):
            info = runs.create_run(member_spec(study, dataset, member, lang), workspace)
            locks[index] = _hold_lock(info.dir)
            study = _with_run(study, index, info.id)
            study.write(workspace)
        for index, member in enumerate(study.members):
            # A stop that came while the runs were being made missed those made after it.
            if load_study(workspace, study.id).stopped is not None:
                runs.stop(workspace, member.run)
            if on_member is not None:
                on_member(study, index, runs.load_run(workspace, member.run))
            info = train_run(workspace, member.run, lock_fd=locks[index], report=report)
            os.close(locks.pop(index))
            if on_member is not None:
                on_member(study, index, info)
    finally:
        for index, fd in locks.items():
            run_dir = workspace.run_dir(study.members[index].run)
            if runs.RunStatus.read(run_dir).status == RunState.QUEUED:
                with contextlib.suppress(OSError):
                    end_before_training(run_dir)
            os.close(fd)
    return load_study(workspace, study.id)


def stop(workspace: Workspace, study_id: str) -> Study:
    """Stop a study: members not yet started are cancelled, a member training stops and keeps what it
    learned (as its Stop does), finished members are kept."""
    study = load_study(workspace, study_id)
    if study.stopped is None:
        study = replace(study, stopped=runs.now_iso())
        study.write(workspace)
    for member in study.members:
        if member.run is None:
            continue
        with contextlib.suppress(TLCoreError):  # gone, or it ended meanwhile: nothing to stop
            if runs.load_run(workspace, member.run).active:
                runs.stop(workspace, member.run)
    return study


def _publish(workspace: Workspace, study: Study) -> None:
    folder = workspace.study_dir(study.id)
    if folder.exists():
        raise StudyError("study.exists", study=study.id)
    staging = workspace.tmp_dir / f"study-{study.id}-{secrets.token_hex(3)}"
    staging.mkdir(parents=True)
    try:
        write_json_atomic(staging / STUDY_FILE, study.to_dict())
        os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _with_run(study: Study, index: int, run_id: str) -> Study:
    members = list(study.members)
    members[index] = replace(members[index], run=run_id)
    return replace(study, members=tuple(members))


def _hold_lock(run_dir: Path) -> int:
    """Take the run's lock for this process (as a trainer does) and record it as the run's process."""
    fd = os.open(run_dir / runs.LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    runs.update_status(run_dir, pid=os.getpid())
    return fd


# ---------------------------------------------------------------------------------------------
# Reading


def load_study(workspace: Workspace, study_id: str) -> Study:
    """The study `study_id`; `StudyError` when there is none or its file cannot be read."""
    path = workspace.study_dir(study_id) / STUDY_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise StudyError("study.not_found", study=study_id) from None
    except (OSError, ValueError) as exc:
        raise StudyError("study.unreadable", reason=str(exc)) from None
    return Study.from_dict(data)


def list_studies(workspace: Workspace) -> list[Study]:
    """Every readable study in the workspace, newest first (a folder whose file cannot be read is skipped)."""
    found = []
    for folder in sorted(workspace.studies_dir.iterdir(), reverse=True):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        with contextlib.suppress(TLCoreError):
            found.append(load_study(workspace, folder.name))
    return found


def study_of(workspace: Workspace, run_id: str) -> Study | None:
    """The study that has the run `run_id` as a member, or None when it was trained on its own."""
    return next((study for study in list_studies(workspace) if run_id in study.run_ids), None)
