"""Training paths: which way a phase trains, why, and the one-off feature pass the fast paths start with.

Each phase takes one of three paths (`choose_path` says which, and why, in a message for the user):

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
from tlcore.features import Budget, CachedFeatures, Cut, FeatureCache, cache_key, cut_model, prefix_has_weights
from tlcore.i18n import Message, msg
from tlcore.models import Strategy, frozen_count, get_base
from tlcore.runs import FEATURE_PASS_PHASE, RunState, TrainingPath
from tlcore.wording import format_bytes

if TYPE_CHECKING:
    import keras
    import numpy as np

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
) -> tuple[TrainingPath, Message]:
    """Which path a phase trains on and why, as a message for users.

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
) -> tuple[TrainingPath, Message, Cut | None]:
    """`choose_path`, and with a model, the cut a fast path caches (None for the full path)."""
    if model is not None:
        base_layers = len(get_base(model).layers)
    else:
        base_layers = get_backbone(spec.model.backbone).base_layers
    frozen = frozen_count(phase.strategy, phase.frozen_layers, base_layers)
    whole_base = frozen == base_layers
    full = TrainingPath.FULL
    if not fast_path_enabled():
        return full, msg("path.fast_path_off"), None
    if phase.strategy == Strategy.SCRATCH:
        return full, msg("path.scratch"), None
    if spec.augmentation.active:
        return full, msg("path.augmentation_base") if whole_base else msg("path.augmentation_layers"), None
    if frozen == 0 or (model is not None and not prefix_has_weights(model, frozen)):
        return full, msg("path.nothing_frozen"), None
    path = TrainingPath.FEATURES if whole_base else TrainingPath.PREFIX
    cut = None
    if model is not None:
        cut = cut_model(model, frozen)
        if image_count is not None:
            budget = budget or Budget.from_env()
            size = cut.bytes_per_image * image_count
            if size > budget.memory:
                images, memory = msg("count.images", n=image_count), format_bytes(budget.memory)
                if whole_base:
                    note = msg("path.base_over_budget", images=images, size=format_bytes(size), budget=memory)
                else:
                    note = msg(
                        "path.prefix_over_budget", frozen=frozen, images=images, size=format_bytes(size), budget=memory
                    )
                return full, note, None
    return path, path_note(path, frozen, base_layers - frozen, "planned", image_count), cut


def path_note(
    path: TrainingPath, frozen: int, suffix_layers: int, state: str, image_count: int | None, seconds: float = 0
) -> Message:
    """The note of a fast path: `state` is `"planned"`, `"computed"` (in `seconds`) or `"cached"`; `image_count`
    is None when a plan does not know it yet."""
    images = msg("count.images", n=image_count or 0)
    if path == TrainingPath.FEATURES:
        if state == "planned":
            if image_count is None:
                return msg("path.features_planned")
            return msg("path.features_planned_images", images=images)
        if state == "computed":
            return msg("path.features_computed", images=images, seconds=f"{seconds:.0f}")
        return msg("path.features_cached", images=images)
    if state == "planned":
        if image_count is None:
            return msg("path.prefix_planned", frozen=frozen, suffix=suffix_layers)
        return msg("path.prefix_planned_images", frozen=frozen, suffix=suffix_layers, images=images)
    if state == "computed":
        return msg("path.prefix_computed", frozen=frozen, suffix=suffix_layers, images=images, seconds=f"{seconds:.0f}")
    return msg("path.prefix_cached", frozen=frozen, suffix=suffix_layers, images=images)


def cached_features(
    workspace: Workspace,
    spec: RunSpec,
    cut: Cut,
    counts: dict[str, int],
    images: Callable[[str], np.ndarray | Sequence[Path]],
    budget: Budget,
    path: TrainingPath,
    jit_compile: bool,
    started: float,
    status: Callable[..., Any],
    stop_requested: Callable[[], bool],
) -> tuple[CachedFeatures, Message]:
    """The cut's activations over both splits, from the cache or computed now, and the path note saying which.

    counts: the number of images of the `"train"` and `"val"` splits.
    images: what the frozen part runs over for a split (its decoded images, or its image files), asked
        for only when the activations are not cached.
    status: writes fields of the run's status. While computing, it shows `phase: "features"` with
        `features_done` / `features_total` (images) and `features_seconds` so far (the rate the ETA uses).
    stop_requested: asked after every batch; True ends the pass with `FeaturePassStopped`.
    """
    total = counts["train"] + counts["val"]
    cache = FeatureCache(workspace, budget)
    key = cache_key(spec.dataset, spec.model.backbone, cut)
    entry = cache.load(key, counts, cut.shapes)
    if entry is not None:
        status(features_done=total, features_total=total, features_cached=True, features_seconds=0.0)
        return entry, path_note(path, cut.frozen_layers, cut.suffix_layers, "cached", total)

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

    train = cut.compute(images("train"), progress, jit_compile=jit_compile)
    val = cut.compute(images("val"), lambda done: progress(counts["train"] + done), jit_compile=jit_compile)
    entry = CachedFeatures(train=train, val=val)
    seconds = time.monotonic() - began
    meta = {
        "dataset": spec.dataset,
        "backbone": spec.model.backbone,
        "frozen_layers": cut.frozen_layers,
        "cut": list(cut.names),
    }
    not_kept = cache.store(key, entry, meta=meta)
    status(features_done=total, features_seconds=round(seconds, 3))
    note = path_note(path, cut.frozen_layers, cut.suffix_layers, "computed", total, seconds)
    if not_kept is not None and not_kept.over_budget:
        note = msg("path.not_kept", note=note, size=format_bytes(entry.nbytes), budget=format_bytes(budget.disk))
    elif not_kept is not None:
        note = msg("path.not_kept_unwritable", note=note, error=not_kept.error)
    return entry, note
