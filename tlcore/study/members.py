"""A study's plan: its options, its members, and the run each member trains (`member_spec`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.backbones import check_weights_available, get_backbone
from tlcore.datasets import Dataset, load_dataset
from tlcore.errors import StudyError
from tlcore.i18n import Message, msg
from tlcore.models import ModelSpec, Strategy, rules
from tlcore.spec import RunSpec, field_defaults
from tlcore.workspace import Workspace, write_json_atomic

if TYPE_CHECKING:
    pass

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
    def run_ids(self) -> list[str]:
        """The runs of the members started so far, in the members' order."""
        return [member.run for member in self.members if member.run is not None]

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


def percent(value: float) -> str:
    """An accuracy as the verdict writes it, without the sign: 0.915 -> "91.5"."""
    return f"{value * 100:.1f}"


def share(fraction: float) -> str:
    """A share of the training images, without the sign: 0.1 -> "10", 0.125 -> "12.5"."""
    return f"{fraction * 100:g}"
