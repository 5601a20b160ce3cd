"""`python -m tlcore study`: a strategy study trained in the foreground; `studies`: the studies there are.

`study` trains its members one after another in this process (`tlcore.study.train_in_foreground`), as
`train` trains one run, printing each member's epochs, then every member's result and the verdict.
With `--json` it prints only the result (`tlcore.study.StudyResult.to_json`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from tlcore import runs
from tlcore.cli.output import emit, say, status_word
from tlcore.cli.tensorflow_import import while_importing
from tlcore.cli.train import EXIT_RUN_FAILED, dataset_from_options, epoch_printer
from tlcore.errors import StudyError, TLCoreError
from tlcore.i18n import Message, msg
from tlcore.runs import RunInfo
from tlcore.study import (
    CANCELLED,
    MISSING,
    PENDING,
    MemberResult,
    Study,
    StudyOptions,
    StudyResult,
    list_studies,
    percent,
    plan,
    result,
    train_in_foreground,
)
from tlcore.workspace import Workspace


def cmd_study(args: argparse.Namespace, workspace: Workspace) -> int:
    if not (args.data or args.data_dir or args.dataset):
        raise StudyError("study.no_data")
    if args.val and not args.data:
        raise TLCoreError("cli.val_without_data")
    dataset = while_importing(lambda: dataset_from_options(args, workspace))
    options = StudyOptions(
        backbone=args.backbone,
        weights=_weights(args.weights),
        image_size=args.image_size,
        epochs=args.epochs,
        depths=args.depths,
        fractions=args.fractions,
        scratch=not args.no_scratch,
        two_phase=not args.no_two_phase,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    study = plan(workspace, dataset.id, options)
    lang = args.lang
    if not args.json:
        members = msg("count.members", n=len(study.members))
        print(msg("cli.study_started", study=study.id, members=members, backbone=options.backbone).render(lang))
    study = train_in_foreground(
        workspace,
        study,
        lang,
        report=None if args.json else epoch_printer(lang),
        on_member=None if args.json else _member_printer(lang),
    )
    found = result(workspace, study, dataset)
    emit(args, found.to_json(), _summary(found, lang))
    return EXIT_RUN_FAILED if any(r.status == runs.RunState.FAILED for r in found.members) else 0


def cmd_studies(args: argparse.Namespace, workspace: Workspace) -> None:
    found = [result(workspace, study) for study in list_studies(workspace)]
    rows = [
        {**r.to_json(), "backbone": r.study.options.backbone, "created": r.study.created, "stopped": r.study.stopped}
        for r in found
    ]
    lines = [_study_row(r).render(args.lang) for r in found]
    emit(args, rows, "\n".join(lines) or msg("cli.no_studies").render(args.lang))


def _weights(weights: str) -> str:
    """`imagenet`, `none`, or a weights file as an absolute path (members train from another folder)."""
    return weights if weights in ("imagenet", "none") else str(Path(weights).expanduser().resolve())


def _member_printer(lang: str) -> Callable[[Study, int, RunInfo], None]:
    """Prints a line as each member starts and as it ends."""

    def show(study: Study, index: int, info: RunInfo) -> None:
        member = study.members[index]
        where = msg("cli.study_member", index=index + 1, total=len(study.members), member=member.label(start=True))
        if info.status == runs.RunState.QUEUED:
            line = msg("cli.study_member_starts", member=where, run=info.id)
        elif info.best_val_accuracy is not None:
            line = msg(
                "cli.study_member_ended_best",
                member=where,
                status=status_word(info.status),
                accuracy=percent(info.best_val_accuracy),
            )
        else:
            line = msg("cli.study_member_ended", member=where, status=status_word(info.status))
        print(line.render(lang), flush=True)
        if info.error and info.status != runs.RunState.QUEUED:
            print(say(info.error, lang), flush=True)

    return show


def _summary(found: StudyResult, lang: str) -> str:
    """Every member's result (the winner marked), the baseline, the feature passes, and the verdict."""
    lines = [""]
    lines += [_member_row(r, r is found.winner).render(lang) for r in found.members]
    if found.baseline is not None:
        baseline = msg("cli.study_baseline", accuracy=percent(found.baseline.accuracy), name=found.baseline.class_name)
        lines.append(baseline.render(lang))
    lines.append(msg("cli.study_passes", passes=found.feature_passes).render(lang))
    lines += ["", found.verdict.render(lang)]
    return "\n".join(lines)


def _member_row(found: MemberResult, winner: bool) -> Message:
    return msg(
        "cli.study_row",
        mark="*" if winner else " ",
        accuracy="-" if found.best_val_accuracy is None else f"{percent(found.best_val_accuracy)} %",
        seconds="-" if found.train_seconds is None else f"{found.train_seconds:.0f}",
        status=_status(found),
        member=found.member.label(start=True),
    )


def _status(found: MemberResult) -> Message:
    """A member's status in a word: its run's, or why it has none."""
    if found.status == CANCELLED:
        return msg("study.ended.cancelled")
    if found.status == MISSING:
        return msg("study.ended.missing")
    if found.status == PENDING:
        return msg("cli.study_pending")
    return status_word(found.status)


def _study_row(found: StudyResult) -> Message:
    completed = sum(1 for r in found.members if r.finished)
    if found.winner is None:
        best = msg("cli.study_no_winner")
    else:
        best = msg(
            "cli.study_winner",
            member=found.winner.member.label(),
            accuracy=percent(found.winner.best_val_accuracy),
        )
    return msg(
        "cli.study_list_row",
        id=found.study.id,
        completed=completed,
        members=msg("count.members", n=len(found.members)),
        best=best,
    )
