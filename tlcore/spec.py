"""The run spec: everything needed to reproduce a training run, saved as the run's `spec.json`.

A spec is plain data. The app's forms, the CLI's flags and `--spec FILE` all produce one, and
`tlcore.training` needs nothing else (plus the dataset it names) to train. `phases()` turns it into
the list of training phases: one for a plain run, two for the Keras guide's recipe (train the new
head on a frozen base until it converges, then fine-tune the top of the base at a much lower
learning rate, so large gradients from a random head never wreck the pretrained features).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tlcore.errors import SpecError
from tlcore.models import ModelSpec, Strategy, rules
from tlcore.workspace import read_json

SPEC_FORMAT = 1
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to training images only, each off by default.

    flip: mirror images left-right.
    rotation: maximum rotation as a fraction of a full turn (0.1 is ±36°).
    zoom: maximum zoom in or out as a fraction of the image size.
    contrast: maximum contrast change as a fraction.
    """

    flip: bool = False
    rotation: float = 0.0
    zoom: float = 0.0
    contrast: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.flip or self.rotation or self.zoom or self.contrast)

    def validated(self) -> Augmentation:
        for name in ("rotation", "zoom", "contrast"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 0.5:
                raise SpecError("spec.bad_augmentation", name=name, value=repr(value))
        return replace(
            self,
            flip=bool(self.flip),
            rotation=float(self.rotation),
            zoom=float(self.zoom),
            contrast=float(self.contrast),
        )


@dataclass(frozen=True)
class Phase:
    """One `fit` call: which strategy is applied and at which learning rate, for how many epochs.

    name: what the run's metrics and status call the phase (the strategy's value).
    """

    name: str
    strategy: Strategy
    frozen_layers: int | None
    epochs: int
    learning_rate: float


@dataclass(frozen=True)
class RunSpec:
    """A training run.

    dataset: id of an ingested dataset (`tlcore.datasets`).
    model: the model to build and its strategy.
    epochs: epochs of the (first) phase.
    batch_size: images per training step.
    optimizer: one of `OPTIMIZERS`.
    learning_rate: learning rate of the (first) phase.
    two_phase: train the head on a frozen base for `epochs`, then apply the model's fine-tuning
        strategy for `finetune_epochs` at `finetune_learning_rate`. Needs a strategy that may end the
        recipe (`tlcore.models.rules(...).ends_two_phase`: fine-tuning).
    augmentation: random changes to training images.
    seed: seeds weights, shuffling and augmentation; the same spec on the same machine trains the same.
    name: a label for people; runs are identified by their folder's id, not by this.
    train_fraction: the share of each class's training images the run trains on (above 0, at most 1),
        a seeded stratified subset (`tlcore.datasets.stratified_rows`) with the same validation set.
        A study's data-efficiency members use it; runs written before it existed read as 1.
    """

    dataset: str
    model: ModelSpec
    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    two_phase: bool = False
    finetune_epochs: int = 5
    finetune_learning_rate: float = 1e-5
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: int = 0
    name: str = ""
    train_fraction: float = 1.0

    def validated(self) -> RunSpec:
        """Return the spec with defaults filled in, or raise `SpecError` naming the bad value."""
        model = self.model.validated()
        _check_int("epochs", self.epochs, 1, 1000)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        if self.optimizer not in OPTIMIZERS:
            raise SpecError("spec.unknown_optimizer", value=repr(self.optimizer), choices=", ".join(OPTIMIZERS))
        _check_rate("learning_rate", self.learning_rate)
        if self.two_phase:
            if not rules(model.strategy).ends_two_phase:
                raise SpecError("spec.two_phase_needs_finetune", value=repr(str(model.strategy)))
            _check_int("finetune_epochs", self.finetune_epochs, 1, 1000)
            _check_rate("finetune_learning_rate", self.finetune_learning_rate)
        if not isinstance(self.name, str) or len(self.name) > 200:
            raise SpecError("spec.bad_run_name")
        fraction = self.train_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise SpecError("spec.bad_train_fraction", value=repr(fraction))
        return replace(
            self,
            model=model,
            augmentation=self.augmentation.validated(),
            learning_rate=float(self.learning_rate),
            finetune_learning_rate=float(self.finetune_learning_rate),
            train_fraction=float(fraction),
        )

    def phases(self) -> list[Phase]:
        model = self.model
        if not self.two_phase:
            return [Phase(model.strategy, model.strategy, model.frozen_layers, self.epochs, self.learning_rate)]
        return [
            Phase(Strategy.TRANSFER, Strategy.TRANSFER, None, self.epochs, self.learning_rate),
            Phase(
                model.strategy, model.strategy, model.frozen_layers, self.finetune_epochs, self.finetune_learning_rate
            ),
        ]

    @property
    def total_epochs(self) -> int:
        return sum(phase.epochs for phase in self.phases())

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Parse a spec as written by `to_dict`, raising `SpecError` on anything unexpected."""
        if not isinstance(data, dict):
            raise SpecError("spec.not_an_object")
        data = dict(data)
        fmt = data.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise SpecError("spec.unknown_format", format=repr(fmt), supported=SPEC_FORMAT)
        data.pop("versions", None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError("spec.unknown_settings", names=", ".join(unknown))
        if "dataset" not in data or "model" not in data:
            raise SpecError("spec.needs_dataset_and_model")
        try:
            data["model"] = ModelSpec.from_dict(data["model"])
            data["augmentation"] = Augmentation(**data.get("augmentation", {}))
            return cls(**data)
        except TypeError as exc:
            raise SpecError("spec.malformed", error=str(exc)) from None


def read_spec_file(path: Path) -> RunSpec:
    """The run spec in a JSON file (a run's `spec.json`, for `train --spec`), with a clear error for a bad file."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise SpecError("spec.file_missing", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise SpecError("spec.file_not_json", path=str(path), error=str(exc)) from None
    return RunSpec.from_dict(data)


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of every field of a spec dataclass (`RunSpec`, `Augmentation`, `ModelSpec`) that has one.

    The command line's and the app's defaults are read from here, so they never drift from the spec's.
    """
    found = {}
    for spec_field in fields(cls):
        if spec_field.default is not MISSING:
            found[spec_field.name] = spec_field.default
        elif spec_field.default_factory is not MISSING:
            found[spec_field.name] = spec_field.default_factory()
    return found


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError("spec.bad_int", name=name, low=low, high=high, value=repr(value))


def _check_rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
        raise SpecError("spec.bad_rate", name=name, value=repr(value))
