"""Studies: one action that trains the same data under several strategies, and says which won.

The question users come with is "for my data, which strategy, and how many frozen layers?". A study
answers it by training one dataset and one backbone, with the same budget (epochs, batch size,
learning rate) and seed, under every strategy worth comparing (`plan`):

- training from scratch (random weights: what pretraining buys);
- transfer learning (the whole base frozen, only the head learns);
- fine-tuning at three frozen depths, on block boundaries spread over the top half of the base
  (`auto_depths`), so no residual unit or bottleneck is split between frozen and learning;
- the two-phase recipe at the middle depth: the head first on a frozen base, then fine-tuning at a
  low learning rate. It spends the same epochs as the others, split between its phases;

and, as an option, each of them on 10, 25, 50 and 100 % of each class's training images (the same
validation set), which shows on the user's own data whether pretrained features win most when data
is scarce (`RunSpec.train_fraction`).

Every member is a normal run: its own folder, live charts, Stop and place in the queue. The study is
`workspace/studies/<id>/study.json` (format 1): the options, and each member with its run's id.
Its result (`result`) is read from the members' run folders whenever it is asked for: the
majority-class baseline, the winner (the best validation accuracy, a tie going to the cheaper), and
a verdict in words (`verdict`).

No work is done twice: the feature cache (`tlcore.features`) is keyed by dataset, backbone, cut and
the frozen weights, and every member has the same seed, so members that freeze the same layers share
one feature pass, whichever trains first (the two-phase member's head phase reuses transfer
learning's, its fine-tuning phase the middle depth's), and a member on part of the data takes its rows
from the whole dataset's entry. A study makes one pass per distinct cut.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.backbones import check_weights_available, get_backbone
from tlcore.baseline import ACCURACY_TOLERANCE, Baseline, majority_baseline
from tlcore.datasets import Dataset, load_dataset
from tlcore.errors import RunError, StudyError, TLCoreError
from tlcore.i18n import Message, literal, msg
from tlcore.models import ModelSpec, Strategy, rules
from tlcore.run_queue import end_before_training
from tlcore.runs import RunInfo, RunState
from tlcore.spec import RunSpec, field_defaults
from tlcore.workspace import Workspace, read_json, write_json_atomic

if TYPE_CHECKING:
    from tlcore.callbacks import EpochRow

STUDY_FORMAT = 1
STUDY_FILE = "study.json"
AUTO_DEPTHS = 3
DATA_EFFICIENCY_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SAME_TIME = 0.05
"""Times within 5 % of each other are "about the same"."""

_RUN_DEFAULTS = field_defaults(RunSpec)


@dataclass(frozen=True)
class StudyOptions:
    """What a study trains.

    backbone: a registry name (`tlcore.backbones.list_backbones()`).
    weights: the pretrained members' starting weights, `"imagenet"`, `"none"` or a weights file
        (from scratch always starts from random weights).
    image_size: the input side in pixels; None is the backbone's default.
    epochs: every member's budget; the two-phase member spends it on both phases (half on the head,
        at least one epoch each).
    depths: frozen base layers of the fine-tuning members; None chooses `AUTO_DEPTHS` block
        boundaries over the top half of the base (`auto_depths`).
    fractions: shares of each class's training images; every strategy trains on each. `(1.0,)` is a
        plain study, `DATA_EFFICIENCY_FRACTIONS` a data-efficiency one.
    scratch, two_phase: include training from scratch, the two-phase recipe.
    batch_size, learning_rate, seed: as in `RunSpec`, the same for every member.
    """

    backbone: str
    weights: str = "imagenet"
    image_size: int | None = None
    epochs: int = _RUN_DEFAULTS["epochs"]
    depths: tuple[int, ...] | None = None
    fractions: tuple[float, ...] = (1.0,)
    scratch: bool = True
    two_phase: bool = True
    batch_size: int = _RUN_DEFAULTS["batch_size"]
    learning_rate: float = _RUN_DEFAULTS["learning_rate"]
    seed: int = _RUN_DEFAULTS["seed"]

    def validated(self, base_layers: int) -> StudyOptions:
        """The options with depths and fractions sorted and without repeats; `StudyError` for a value that
        cannot make a member (the members' specs check the rest)."""
        fractions = tuple(sorted(set(self.fractions)))
        if not fractions or any(
            isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1 for f in fractions
        ):
            raise StudyError("study.bad_fractions", fractions=", ".join(str(f) for f in self.fractions))
        depths = None
        if self.depths is not None:
            depths = tuple(sorted(set(self.depths)))
            bad = [d for d in depths if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < base_layers]
            if not depths or bad:
                raise StudyError(
                    "study.bad_depths",
                    depths=", ".join(str(d) for d in (bad or self.depths)),
                    layers=base_layers,
                )
        return replace(self, depths=depths, fractions=tuple(float(f) for f in fractions))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["depths"] = list(self.depths) if self.depths is not None else None
        data["fractions"] = list(self.fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyOptions:
        data = dict(data)
        if data.get("depths") is not None:
            data["depths"] = tuple(data["depths"])
        data["fractions"] = tuple(data.get("fractions", (1.0,)))
        return cls(**data)


@dataclass(frozen=True)
class Member:
    """One run of a study.

    strategy: what learns (`tlcore.models.Strategy`); with `two_phase`, the strategy of the second phase.
    frozen_layers: base layers frozen in its (last) phase: 0 from scratch, all of them for transfer.
    fraction: the share of each class's training images it trains on.
    two_phase: the head first on a frozen base, then fine-tuning (`RunSpec.two_phase`).
    run: its run's id, once the run exists.
    """

    strategy: Strategy
    frozen_layers: int
    fraction: float = 1.0
    two_phase: bool = False
    run: str | None = None

    @property
    def arm(self) -> tuple[str, bool, int]:
        """What the member trains apart from how much data: the members of one line of a data-efficiency chart."""
        return (str(self.strategy), self.two_phase, self.frozen_layers)

    def label(self, start: bool = False) -> Message:
        """The member in words ("fine-tuning with 116 frozen layers"); `start`: as a sentence begins."""
        frozen = self.frozen_layers
        if self.two_phase:
            name = (
                msg("study.member.two_phase.start", frozen=frozen)
                if start
                else msg("study.member.two_phase", frozen=frozen)
            )
        elif self.strategy == Strategy.FINETUNE:
            name = (
                msg("study.member.finetune.start", frozen=frozen)
                if start
                else msg("study.member.finetune", frozen=frozen)
            )
        elif self.strategy == Strategy.TRANSFER:
            name = msg("study.member.transfer.start") if start else msg("study.member.transfer")
        else:
            name = msg("study.member.scratch.start") if start else msg("study.member.scratch")
        if self.fraction < 1:
            return msg("study.member.on_fraction", member=name, percent=share(self.fraction))
        return name

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "strategy": str(self.strategy)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        return cls(**{**data, "strategy": Strategy(data["strategy"])})


@dataclass(frozen=True)
class Study:
    """A study as `study.json` holds it.

    id: its folder's name. dataset: the dataset's id. options: what it trains (`StudyOptions`).
    base_layers: the backbone's base layer count (transfer learning freezes them all).
    members: in training order, full data first. created, stopped: ISO times (stopped: when someone
        stopped it; members not yet started then are cancelled).
    """

    id: str
    dataset: str
    options: StudyOptions
    base_layers: int
    members: tuple[Member, ...]
    created: str
    stopped: str | None = None

    @property
    def data_efficiency(self) -> bool:
        return len(self.options.fractions) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STUDY_FORMAT,
            "id": self.id,
            "dataset": self.dataset,
            "options": self.options.to_dict(),
            "base_layers": self.base_layers,
            "members": [member.to_dict() for member in self.members],
            "created": self.created,
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Study:
        """Read what `to_dict` wrote; `StudyError` for anything else."""
        try:
            if data.get("format") != STUDY_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            return cls(
                id=str(data["id"]),
                dataset=str(data["dataset"]),
                options=StudyOptions.from_dict(data["options"]),
                base_layers=int(data["base_layers"]),
                members=tuple(Member.from_dict(member) for member in data["members"]),
                created=str(data["created"]),
                stopped=data.get("stopped"),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StudyError("study.unreadable", reason=str(exc)) from None

    def write(self, workspace: Workspace) -> None:
        write_json_atomic(workspace.study_dir(self.id) / STUDY_FILE, self.to_dict())


# ---------------------------------------------------------------------------------------------
# Planning


def base_structure(backbone: str, image_size: int | None = None) -> tuple[int, list[int]]:
    """The backbone's base layer count and block boundaries (`tlcore.models.block_boundaries`), from a
    random-weights build: the layers' names are all that is needed, and no weights file is."""
    from tlcore.models import block_boundaries

    found = get_backbone(backbone)
    base = found.create_base(image_size or found.default_size, None)
    return len(base.layers), block_boundaries(base)


def auto_depths(boundaries: Sequence[int], base_layers: int, count: int = AUTO_DEPTHS) -> list[int]:
    """`count` frozen depths on block boundaries spread over the top half of the base.

    The top half is split into `count` equal parts, and the boundary nearest the middle of each part is
    taken (never one twice, never the whole base: that is transfer learning). For MobileNetV2 (154
    layers) this freezes 90, 116 and 143 layers: fine-tuning the top 42 %, 25 % and 7 % of the base.
    """
    half = base_layers / 2
    candidates = sorted({b for b in boundaries if half <= b < base_layers})
    chosen: list[int] = []
    for part in range(count):
        target = half + half * (part + 0.5) / count
        left = [b for b in candidates if b not in chosen]
        if not left:
            break
        chosen.append(min(left, key=lambda b: (abs(b - target), b)))
    return sorted(chosen)


def plan(
    workspace: Workspace,
    dataset_id: str,
    options: StudyOptions,
    structure: tuple[int, Sequence[int]] | None = None,
) -> Study:
    """The study `options` describe on dataset `dataset_id`, checked but not yet written or started.

    structure: the base's layer count and block boundaries, when the caller has them (the app keeps
        them cached); None builds the base once to find them (`base_structure`).
    Raises `StudyError` (or the members' `SpecError`, `WeightsUnavailableError`) before anything is written.
    """
    # Everything a user can get wrong is checked before TensorFlow starts (building the base does).
    dataset = load_dataset(workspace, dataset_id)
    backbone = get_backbone(options.backbone)
    base_layers = structure[0] if structure is not None else backbone.base_layers
    options = options.validated(base_layers)
    check_weights_available(backbone, options.weights, options.image_size or backbone.default_size, workspace)
    if options.depths is not None:
        depths = list(options.depths)
    else:
        boundaries = structure[1] if structure is not None else base_structure(options.backbone, options.image_size)[1]
        depths = auto_depths(boundaries, base_layers)
    if not depths:
        raise StudyError("study.no_depths", backbone=options.backbone)
    arms: list[Member] = []
    if options.scratch:
        arms.append(Member(Strategy.SCRATCH, 0))
    arms.append(Member(Strategy.TRANSFER, base_layers))
    arms += [Member(Strategy.FINETUNE, depth) for depth in depths]
    if options.two_phase:
        arms.append(Member(Strategy.FINETUNE, depths[len(depths) // 2], two_phase=True))
    members = tuple(replace(arm, fraction=f) for f in sorted(options.fractions, reverse=True) for arm in arms)
    study = Study(
        id=_new_study_id(options.backbone),
        dataset=dataset.id,
        options=options,
        base_layers=base_layers,
        members=members,
        created=runs.now_iso(),
    )
    for member in members:  # every member's spec is checked before anything exists
        member_spec(study, dataset, member).validated()
    return study


def member_spec(study: Study, dataset: Dataset, member: Member, lang: str | None = None) -> RunSpec:
    """The run spec of `member`: the study's budget and seed, the member's strategy, depth and data.

    lang: the language of the run's name (the member in words), the language of whoever starts it.
    """
    options = study.options
    pretrained = rules(member.strategy).pretrained
    model = ModelSpec(
        backbone=options.backbone,
        weights=options.weights if pretrained else "none",
        image_size=options.image_size,
        num_classes=len(dataset.classes),
        strategy=member.strategy,
        frozen_layers=member.frozen_layers if member.strategy == Strategy.FINETUNE else None,
    )
    epochs, finetune_epochs = options.epochs, _RUN_DEFAULTS["finetune_epochs"]
    if member.two_phase:
        epochs = max(1, options.epochs // 2)
        finetune_epochs = max(1, options.epochs - epochs)
    return RunSpec(
        dataset=dataset.id,
        model=model,
        epochs=epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        two_phase=member.two_phase,
        finetune_epochs=finetune_epochs,
        seed=options.seed,
        name=member.label(start=True).render(lang),
        train_fraction=member.fraction,
    )


def _new_study_id(backbone: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{backbone}-study-{secrets.token_hex(2)}"


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


def percent(value: float) -> str:
    """An accuracy as the verdict writes it, without the sign: 0.915 -> "91.5"."""
    return f"{value * 100:.1f}"


def share(fraction: float) -> str:
    """A share of the training images, without the sign: 0.1 -> "10", 0.125 -> "12.5"."""
    return f"{fraction * 100:g}"


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
