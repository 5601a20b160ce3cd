"""Training paths: which way a phase trains, why, and the one-off feature pass the fast paths start with.

Each phase takes one of three paths (`choose_path` says which, and why, in words for the user):

- `features`: the whole base is frozen and images are not augmented, so the base computes the same
  features for an image in every epoch. It runs once over the dataset (its outputs are cached by
  `tlcore.features`), and each epoch trains only the head on them;
- `prefix`: fine-tuning without augmentation: the frozen first layers run once, their activations at
  the cut are cached, and each epoch runs only the trainable rest of the base and the head;
- `full`: every epoch runs the whole model on every image (training from scratch, augmentation on,
  nothing frozen, or a cache that would not fit its memory budget).

The fast paths give the same model as the full one: the same layers and variables learn, from the
same batches in the same order, with BatchNormalization in inference mode and the head's dropout
active, and `best.keras` is always the full model (preprocessing, base and head).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import settings
from tlcore.backbones import get_backbone
from tlcore.features import (
    Budget,
    CachedFeatures,
    Cut,
    FeatureCache,
    cache_key,
    cut_model,
    format_bytes,
    prefix_has_weights,
)
from tlcore.models import Strategy, frozen_count, get_base
from tlcore.runs import FEATURE_PASS_PHASE, RunState, TrainingPath

if TYPE_CHECKING:
    import keras

    from tlcore.spec import Phase, RunSpec
    from tlcore.workspace import Workspace

STATUS_INTERVAL_SECONDS = 1.0


class FeaturePassStopped(Exception):
    """A stop request arrived during the feature pass."""


def fast_path_enabled() -> bool:
    """False when `TLCORE_FAST_PATH` is off: every phase then trains the full model."""
    return settings.fast_path()


def choose_path(
    spec: RunSpec,
    phase: Phase | None = None,
    model: keras.Model | None = None,
    image_count: int | None = None,
    budget: Budget | None = None,
) -> tuple[TrainingPath, str]:
    """Which path a phase trains on and why, as a sentence for users.

    phase: one of `spec.phases()`; None means the first.
    model: the built model (`tlcore.models.build_model`, random weights suffice). Without it the
        answer is from the spec alone, assuming the frozen layers hold weights and the cache fits.
    image_count: training plus validation images; with `model`, checks that the cache fits `budget`.
    budget: the feature cache's limits; None reads them from the settings.
    """
    path, reason, _ = plan_path(spec, phase or spec.phases()[0], model, image_count, budget)
    return path, reason


def plan_path(
    spec: RunSpec,
    phase: Phase,
    model: keras.Model | None,
    image_count: int | None,
    budget: Budget | None,
) -> tuple[TrainingPath, str, Cut | None]:
    """`choose_path`, and with a model, the cut a fast path caches (None for the full path)."""
    if model is not None:
        base_layers = len(get_base(model).layers)
    else:
        base_layers = get_backbone(spec.model.backbone).base_layers
    frozen = frozen_count(phase.strategy, phase.frozen_layers, base_layers)
    whole_base = frozen == base_layers
    full = TrainingPath.FULL
    if not fast_path_enabled():
        return full, "The fast path is turned off (TLCORE_FAST_PATH=0): the whole network runs every epoch.", None
    if phase.strategy == Strategy.SCRATCH:
        return full, "Training from scratch: every layer learns, so the whole network runs every epoch.", None
    if spec.augmentation.active:
        part = "frozen base runs" if whole_base else "frozen layers run"
        return full, f"Augmentation is on: the {part} every epoch, because every epoch sees different images.", None
    if frozen == 0 or (model is not None and not prefix_has_weights(model, frozen)):
        return full, "No base layer with weights is frozen: the whole network runs every epoch.", None
    path = TrainingPath.FEATURES if whole_base else TrainingPath.PREFIX
    cut = None
    if model is not None:
        cut = cut_model(model, frozen)
        if image_count is not None:
            budget = budget or Budget.from_env()
            size = cut.bytes_per_image * image_count
            if size > budget.memory:
                part = "frozen base's outputs" if whole_base else f"{frozen} frozen layers' outputs"
                return (
                    full,
                    f"The {part} for {image_count:,} images would take {format_bytes(size)}, "
                    f"more than the feature cache's {format_bytes(budget.memory)} memory budget: "
                    "the whole network runs every epoch.",
                    None,
                )
    images = "the images" if image_count is None else f"the {image_count:,} images"
    return path, path_note(path, frozen, base_layers - frozen, "planned", images), cut


def path_note(path: TrainingPath, frozen: int, suffix_layers: int, state: str, images: str, seconds: float = 0) -> str:
    """The note of a fast path: `state` is `"planned"`, `"computed"` (in `seconds`) or `"cached"`."""
    if path == TrainingPath.FEATURES:
        label, subject, verb = "Cached features", "the frozen base", "runs"
        rest = "each epoch trains only the head."
    else:
        label, subject, verb = "Cached prefix", f"the {frozen} frozen base layers", "run"
        rest = f"each epoch runs only the last {suffix_layers} base layers and the head."
    if state == "planned":
        return f"{label}: {subject} {verb} once over {images}, then {rest}"
    if state == "computed":
        return f"{label}: {subject} ran once over {images} ({seconds:.0f} s); {rest}"
    return f"{label}: the outputs of {subject} for {images} were already cached; {rest}"


def cached_features(
    workspace: Workspace,
    spec: RunSpec,
    cut: Cut,
    paths: dict[str, Sequence[Path]],
    budget: Budget,
    path: TrainingPath,
    jit_compile: bool,
    started: float,
    status: Callable[..., Any],
    stop_requested: Callable[[], bool],
) -> tuple[CachedFeatures, str]:
    """The cut's activations over both splits, from the cache or computed now, and the path note saying which.

    paths: the image files of the `"train"` and `"val"` splits.
    status: writes fields of the run's status. While computing, it shows `phase: "features"` with
        `features_done` / `features_total` (images) and `features_seconds` so far (the rate the ETA uses).
    stop_requested: asked after every batch; True ends the pass with `FeaturePassStopped`.
    """
    counts = {split: len(paths[split]) for split in ("train", "val")}
    total = counts["train"] + counts["val"]
    cache = FeatureCache(workspace, budget)
    key = cache_key(spec.dataset, spec.model.backbone, cut)
    entry = cache.load(key, counts, cut.shapes)
    if entry is not None:
        status(features_done=total, features_total=total, features_cached=True, features_seconds=0.0)
        return entry, path_note(path, cut.frozen_layers, cut.suffix_layers, "cached", f"these {total:,} images")

    began = last_write = time.monotonic()
    status(phase=FEATURE_PASS_PHASE, features_done=0, features_total=total, features_cached=False, features_seconds=0.0)

    def progress(done: int) -> None:
        nonlocal last_write
        if stop_requested():
            status(status=RunState.STOPPING, features_done=done)
            raise FeaturePassStopped
        now = time.monotonic()
        if now - last_write >= STATUS_INTERVAL_SECONDS:
            last_write = now
            status(features_done=done, features_seconds=round(now - began, 3), elapsed_seconds=round(now - started, 3))

    train = cut.compute(paths["train"], progress, jit_compile=jit_compile)
    val = cut.compute(paths["val"], lambda done: progress(counts["train"] + done), jit_compile=jit_compile)
    entry = CachedFeatures(train=train, val=val)
    seconds = time.monotonic() - began
    meta = {
        "dataset": spec.dataset,
        "backbone": spec.model.backbone,
        "frozen_layers": cut.frozen_layers,
        "cut": list(cut.names),
    }
    on_disk = cache.store(key, entry, meta=meta)
    status(features_done=total, features_seconds=round(seconds, 3))
    note = path_note(path, cut.frozen_layers, cut.suffix_layers, "computed", f"the {total:,} images", seconds)
    if not on_disk:
        note += (
            f" They take {format_bytes(entry.nbytes)}, more than the {format_bytes(budget.disk)} disk "
            "budget, so they are not kept for the next run."
        )
    return entry, note
