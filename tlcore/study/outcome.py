"""Where a study stands: each member's result, the baseline, the winner, and the verdict in words."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.baseline import ACCURACY_TOLERANCE, Baseline, majority_baseline
from tlcore.datasets import Dataset, load_dataset
from tlcore.errors import RunError, TLCoreError
from tlcore.i18n import Message, literal, msg
from tlcore.runs import RunInfo, RunState
from tlcore.workspace import Workspace

if TYPE_CHECKING:
    pass

from tlcore.study.members import SAME_TIME, Member, Study, percent, share

# ---------------------------------------------------------------------------------------------
# The result


CANCELLED = "cancelled"
"""A member's status when the study was stopped before its run existed."""
PENDING = "pending"
"""A member's status while its run does not exist yet."""
MISSING = "missing"
"""A member's status once its run has been deleted."""


@dataclass(frozen=True)
class MemberResult:
    """A member and how its run went.

    status: the run's (`tlcore.runs.RunState`), or `CANCELLED`, `PENDING`, `MISSING`.
    best_val_accuracy: what its `best.keras` scores on the validation set.
    train_seconds: its training time (setup, epochs, validation, saving), without the feature passes it
        computed: members share those, and the study counts them once. None until it has ended.
    feature_passes: the feature passes its run computed (not found in the cache).
    """

    member: Member
    status: str
    info: RunInfo | None = None
    best_val_accuracy: float | None = None
    train_seconds: float | None = None
    feature_passes: int = 0

    @property
    def finished(self) -> bool:
        """Completed, with an accuracy: what the verdict compares (a stopped member trained less)."""
        return self.status == RunState.COMPLETED and self.best_val_accuracy is not None

    @property
    def active(self) -> bool:
        return self.status in runs.ACTIVE_STATUSES or self.status == PENDING

    def to_json(self) -> dict[str, Any]:
        """As `study --json` gives it."""
        return {
            "run": self.member.run,
            "strategy": str(self.member.strategy),
            "two_phase": self.member.two_phase,
            "frozen_layers": self.member.frozen_layers,
            "fraction": self.member.fraction,
            "best_val_accuracy": self.best_val_accuracy,
            "train_seconds": self.train_seconds,
            "status": str(self.status),
        }


@dataclass(frozen=True)
class StudyResult:
    """Where a study stands: every member's result, the baseline, the winner and the verdict.

    baseline: always answering the validation set's largest class (`tlcore.baseline`); None without one.
    winner: the member with the best validation accuracy among the completed members on the most data
        (a tie goes to the one with the shorter training time); None while none has completed.
    runner_up: the best of the others, which the verdict measures the winner against.
    verdict: one or two sentences saying who won, by how much, at what cost, against the baseline.
    """

    study: Study
    members: tuple[MemberResult, ...]
    baseline: Baseline | None
    winner: MemberResult | None
    runner_up: MemberResult | None
    verdict: Message = field(default_factory=lambda: literal(""))

    @property
    def feature_passes(self) -> int:
        """Feature passes the members computed, all together: one per distinct cut when nothing was cached."""
        return sum(result.feature_passes for result in self.members)

    @property
    def active(self) -> bool:
        """Some member is queued, training or stopping: the result may still change."""
        return any(result.active for result in self.members)

    def to_json(self) -> dict[str, Any]:
        """The object `study --json` prints."""
        return {
            "study": self.study.id,
            "dataset": self.study.dataset,
            "baseline_accuracy": self.baseline.accuracy if self.baseline is not None else None,
            "winner": self.winner.member.run if self.winner is not None else None,
            "members": [result.to_json() for result in self.members],
        }


def result(workspace: Workspace, study: Study, dataset: Dataset | None = None) -> StudyResult:
    """The study's result now, read from its members' run folders (members may still be training).

    dataset: the study's dataset if the caller has it loaded; it gives the baseline (None when it has
        been deleted).
    """
    if dataset is None:
        with contextlib.suppress(TLCoreError):
            dataset = load_dataset(workspace, study.dataset)
    baseline = majority_baseline(dataset) if dataset is not None else None
    members = tuple(_member_result(workspace, study, member) for member in study.members)
    headline = max(study.options.fractions)
    ranked = sorted(
        (r for r in members if r.finished and r.member.fraction == headline),
        key=lambda r: (-r.best_val_accuracy, math.inf if r.train_seconds is None else r.train_seconds),
    )
    winner = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    found = StudyResult(study, members, baseline, winner, runner_up)
    return replace(found, verdict=verdict(found))


def _member_result(workspace: Workspace, study: Study, member: Member) -> MemberResult:
    if member.run is None:
        return MemberResult(member, CANCELLED if study.stopped is not None else PENDING)
    try:
        info = runs.load_run(workspace, member.run)
    except RunError:
        return MemberResult(member, MISSING)
    train_seconds = None
    if info.status in runs.FINISHED_STATUSES and info.elapsed_seconds is not None:
        train_seconds = max(0.0, info.elapsed_seconds - (info.feature_pass_seconds or 0.0))
    return MemberResult(
        member,
        str(info.status),
        info,
        best_val_accuracy=info.best_val_accuracy,
        train_seconds=train_seconds,
        feature_passes=info.feature_passes or 0,
    )


# ---------------------------------------------------------------------------------------------
# The verdict, in words


def verdict(found: StudyResult) -> Message:
    """Who won, by how many points over the runner-up, in what time against it, and how the members
    compare with the majority-class baseline; then what is still training or did not finish, and for a
    data-efficiency study, who led on the least data. Sentences in the reader's language."""
    sentences = [_lead(found)]
    stopped = found.study.stopped is not None
    running = sum(1 for r in found.members if r.active)
    if running and not stopped:
        sentences.append(msg("study.verdict.running", members=msg("count.members", n=running)))
    # Once the study is stopped, a member still winding down counts as stopped.
    unfinished = [r for r in found.members if not r.finished and (stopped or not r.active)]
    if unfinished:
        names = [
            msg(
                "study.member.with_status",
                member=r.member.label(),
                status=_ended(RunState.STOPPED if r.active else r.status),
            )
            for r in unfinished
        ]
        sentences.append(msg("study.verdict.not_counted", names=_listed(names)))
    scarce = _scarce_leader(found)
    if scarce is not None:
        sentences.append(scarce)
    joined = sentences[0]
    for sentence in sentences[1:]:
        joined = msg("study.sentences", first=joined, second=sentence)
    return joined


def _lead(found: StudyResult) -> Message:
    winner, runner_up, baseline = found.winner, found.runner_up, found.baseline
    if winner is None:
        return msg("study.verdict.none_finished")
    accuracy = percent(winner.best_val_accuracy)
    if baseline is not None and not baseline.beaten_by(winner.best_val_accuracy):
        return msg(
            "study.verdict.nothing_learned",
            winner=winner.member.label(),
            accuracy=accuracy,
            baseline=percent(baseline.accuracy),
        )
    if runner_up is None:
        if baseline is None:
            return msg("study.verdict.only", winner=winner.member.label(start=True), accuracy=accuracy)
        return msg(
            "study.verdict.only_above",
            winner=winner.member.label(start=True),
            accuracy=accuracy,
            baseline=percent(baseline.accuracy),
        )
    cost = _cost(winner.train_seconds, runner_up.train_seconds)
    others = _baseline_clause(found)
    if abs(winner.best_val_accuracy - runner_up.best_val_accuracy) <= ACCURACY_TOLERANCE:
        return msg(
            "study.verdict.tie",
            winner=winner.member.label(start=True),
            other=runner_up.member.label(),
            accuracy=accuracy,
            cheaper=winner.member.label(),
            cost=cost,
            others=others,
        )
    return msg(
        "study.verdict.won",
        winner=winner.member.label(start=True),
        accuracy=accuracy,
        points=f"{(winner.best_val_accuracy - runner_up.best_val_accuracy) * 100:.1f}",
        runner_up=runner_up.member.label(),
        cost=cost,
        others=others,
    )


def _cost(seconds: float | None, against: float | None) -> Message:
    """The winner's training time against the runner-up's: "in 3.4× its time", "in 30 % of its time"."""
    if not seconds or not against:
        return literal("")
    ratio = seconds / against
    if abs(ratio - 1) <= SAME_TIME:
        return msg("study.cost.same")
    if ratio > 1:
        return msg("study.cost.more", ratio=f"{ratio:.1f}")
    return msg("study.cost.less", share=f"{ratio * 100:.0f}")


def _baseline_clause(found: StudyResult) -> Message:
    """Which finished members on the most data did not beat the baseline, or that all did."""
    baseline = found.baseline
    if baseline is None:
        return literal("")
    headline = max(found.study.options.fractions)
    finished = [r for r in found.members if r.finished and r.member.fraction == headline]
    behind = [r.member.label() for r in finished if not baseline.beaten_by(r.best_val_accuracy)]
    if behind:
        return msg("study.baseline.some_at", members=_listed(behind), baseline=percent(baseline.accuracy))
    return msg("study.baseline.all_above", baseline=percent(baseline.accuracy))


def _scarce_leader(found: StudyResult) -> Message | None:
    """For a data-efficiency study: the best completed member on the smallest share with one."""
    for fraction in found.study.options.fractions:  # smallest first
        if fraction == max(found.study.options.fractions):
            return None
        done = [r for r in found.members if r.finished and r.member.fraction == fraction]
        if done:
            leader = max(done, key=lambda r: r.best_val_accuracy)
            return msg(
                "study.verdict.scarce",
                percent=share(fraction),
                leader=replace(leader.member, fraction=1.0).label(),
                accuracy=percent(leader.best_val_accuracy),
            )
    return None


def _ended(status: str) -> Message:
    return {
        RunState.STOPPED: msg("study.ended.stopped"),
        RunState.FAILED: msg("study.ended.failed"),
        RunState.INTERRUPTED: msg("study.ended.interrupted"),
        RunState.DAMAGED: msg("study.ended.damaged"),
        CANCELLED: msg("study.ended.cancelled"),
        MISSING: msg("study.ended.missing"),
    }.get(status, literal(str(status)))


def _listed(items: Sequence[Message]) -> Message:
    """Items as a list in words: "a", "a and b", "a, b and c"."""
    if len(items) == 1:
        return items[0]
    head = items[0]
    for item in items[1:-1]:
        head = msg("study.list.more", first=head, second=item)
    return msg("study.list.pair", first=head, second=items[-1])
