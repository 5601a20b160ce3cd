"""Models: a pretrained base plus a new classification head, and the strategies that decide what learns.

The model a spec builds is, from input to output::

    image (RGB, 0-255) -> preprocessing (the backbone's own pixel scaling, built-in Keras layers)
                       -> base (the Keras application, include_top=False, one nested layer)
                       -> head: GlobalAveragePooling2D or Flatten, optional Dropout and Dense(hidden),
                                Dense(num_classes, softmax)

Because preprocessing is part of the model, a saved or exported model takes raw pixels and nobody has
to remember `preprocess_input`.

Strategies, as the field uses the words:
- `scratch`: random weights, every layer learns (the baseline that shows what pretraining buys);
- `transfer`: the whole base is frozen, only the head learns;
- `finetune`: the first `frozen_layers` layers of the base are frozen, the rest of the base and the
  head learn.

`frozen_layers` counts `base.layers`, input layer included, exactly as `model.layers[:N]` counts them
in the common Keras recipe where base and head form one flat model. So `frozen_layers=168` on
ResNet50 freezes the same layers as the original article's `for layer in model.layers[:168]`.

The base is called with `training=False` for `transfer` and `finetune`: BatchNormalization then keeps
using its ImageNet statistics even in the layers that learn, instead of re-estimating them from small
batches and destroying what the base knew (the trap the Keras transfer-learning guide warns about).
Keras 3's `fit` overrides that flag inside a functional model, so training goes through
`trainable_view`, which calls the base itself. From scratch those statistics are meaningless, so
there the base runs in the usual training mode.

The model's top-level layers are the input, the preprocessing layers, `base` and `head` (the new
classifier as its own small model, which the fast path can train alone on cached base features).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.backbones import (
    Backbone,
    check_image_size,
    find_cached_weights,
    get_backbone,
    load_base,
    resolve_weights,
)
from tlcore.errors import SpecError

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tlcore.workspace import Workspace

POOLINGS = ("avg", "flatten")

BASE_LAYER_NAME = "base"
HEAD_LAYER_NAME = "head"
PREDICTIONS_LAYER_NAME = "predictions"


class Strategy(StrEnum):
    """What learns, as the field uses the words (see the module docstring and `RULES`)."""

    SCRATCH = "scratch"
    TRANSFER = "transfer"
    FINETUNE = "finetune"


@dataclass(frozen=True)
class StrategyRules:
    """What a strategy means. The rules are stated here once; everything else asks them.

    freezes: which base layers stay frozen: `"none"`, `"all"`, or `"first_n"` (the spec's `frozen_layers`).
    pretrained: the base starts from pretrained weights; False: random weights only (weights `"none"`).
    base_in_inference_mode: the base is called with `training=False`, so BatchNormalization keeps its
        stored statistics even in the layers that learn (meaningless for random weights, so not then).
    ends_two_phase: the two-phase recipe (the head first, on a frozen base) may end with this strategy.
    """

    freezes: str
    pretrained: bool
    base_in_inference_mode: bool
    ends_two_phase: bool

    def frozen_count(self, frozen_layers: int | None, base_layers: int) -> int:
        """How many of a base's `base_layers` layers this strategy freezes."""
        if self.freezes == "none":
            return 0
        if self.freezes == "all":
            return base_layers
        if frozen_layers is None or frozen_layers > base_layers:
            raise SpecError("model.frozen_layers_out_of_range", layers=base_layers, value=repr(frozen_layers))
        return frozen_layers


RULES: dict[Strategy, StrategyRules] = {
    Strategy.SCRATCH: StrategyRules(
        freezes="none", pretrained=False, base_in_inference_mode=False, ends_two_phase=False
    ),
    Strategy.TRANSFER: StrategyRules(freezes="all", pretrained=True, base_in_inference_mode=True, ends_two_phase=False),
    Strategy.FINETUNE: StrategyRules(
        freezes="first_n", pretrained=True, base_in_inference_mode=True, ends_two_phase=True
    ),
}


def rules(strategy: str) -> StrategyRules:
    """The rules of `strategy` (a `Strategy` or its value); `SpecError` for an unknown one."""
    try:
        return RULES[Strategy(strategy)]
    except ValueError:
        raise SpecError("model.unknown_strategy", value=repr(strategy), choices=", ".join(Strategy)) from None


@dataclass(frozen=True)
class ModelSpec:
    """What to build and what learns.

    backbone: a registry name (`tlcore.backbones.list_backbones()`).
    weights: `"imagenet"`, `"none"` or a path to a weights file.
    image_size: side of the square input in pixels; None means the backbone's default.
    num_classes: number of output classes (at least 2).
    pooling: `"avg"` (GlobalAveragePooling2D, the better default) or `"flatten"` (the original article).
    dropout: dropout rate before the classifier, 0 for none (the Keras transfer-learning guide uses 0.2).
    hidden_units: width of an extra Dense+ReLU layer in the head, 0 for none.
    strategy: a `Strategy`: `"scratch"`, `"transfer"` or `"finetune"`.
    frozen_layers: for a strategy that freezes the first N base layers (fine-tuning), how many (0 to
        all); ignored otherwise.
    """

    backbone: str = "mobilenet_v2_0.35"
    weights: str = "imagenet"
    image_size: int | None = None
    num_classes: int = 2
    pooling: str = "avg"
    dropout: float = 0.2
    hidden_units: int = 0
    strategy: Strategy = Strategy.TRANSFER
    frozen_layers: int | None = None

    def validated(self) -> ModelSpec:
        """Return this spec with defaults filled in, or raise `SpecError` naming the bad value."""
        backbone = get_backbone(self.backbone)
        image_size = backbone.default_size if self.image_size is None else self.image_size
        check_image_size(backbone, image_size)
        strategy_rules = rules(self.strategy)
        strategy = Strategy(self.strategy)
        if self.pooling not in POOLINGS:
            raise SpecError("model.unknown_pooling", value=repr(self.pooling), choices=", ".join(POOLINGS))
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise SpecError("model.too_few_classes", value=repr(self.num_classes))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise SpecError("model.bad_dropout", value=repr(self.dropout))
        if not isinstance(self.hidden_units, int) or not 0 <= self.hidden_units <= 8192:
            raise SpecError("model.bad_hidden_units", value=repr(self.hidden_units))
        weights = self.weights or "none"
        if not strategy_rules.pretrained and weights != "none":
            raise SpecError("model.scratch_with_weights", weights=repr(weights))
        frozen = self.frozen_layers
        if strategy_rules.freezes == "first_n":
            if frozen is None:
                raise SpecError("model.finetune_needs_frozen_layers")
            if isinstance(frozen, bool) or not isinstance(frozen, int) or not 0 <= frozen <= backbone.base_layers:
                raise SpecError(
                    "model.bad_frozen_layers", layers=backbone.base_layers, backbone=backbone.label, value=repr(frozen)
                )
        else:
            frozen = None
        return replace(
            self,
            image_size=image_size,
            weights=weights,
            strategy=strategy,
            frozen_layers=frozen,
            dropout=float(self.dropout),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError("model.unknown_settings", names=", ".join(unknown))
        return cls(**data)


def build_model(
    spec: ModelSpec,
    workspace: Workspace | None = None,
    load_weights: bool = True,
) -> keras.Model:
    """Build base + head for `spec` and apply its strategy (the model is not compiled).

    load_weights: False builds the same architecture with random weights, which is all that the
        layer table and parameter counts need (and works offline for any backbone).
    """
    import keras

    spec = spec.validated()
    backbone = get_backbone(spec.backbone)
    weights_path = resolve_weights(backbone, spec.weights, spec.image_size, workspace) if load_weights else None
    base = _take_built_ahead(backbone, spec.image_size, weights_path)
    if base is None:
        base = _pretrained_base(backbone, spec.image_size, weights_path)
    base.name = BASE_LAYER_NAME

    inputs = keras.Input(shape=(spec.image_size, spec.image_size, 3), name="image")
    x = _preprocessing(backbone, inputs)
    x = base(x, training=base_training_mode(spec.strategy))
    outputs = _head(spec, base.output.shape[1:])(x)
    model = keras.Model(inputs, outputs, name=f"{backbone.name}_{spec.strategy}")
    apply_strategy(model, spec.strategy, spec.frozen_layers)
    return model


# A base built before the run that takes it (`build_base_ahead`), with what it was built from.
_built_ahead: dict[tuple[str, int, str, int, int], keras.Model] = {}


def build_base_ahead(spec: ModelSpec, workspace: Workspace | None = None) -> bool:
    """Build the pretrained base `build_model(spec)` will ask for, before it asks; False when there is none.

    The warm trainer (`tlcore.spare`) calls this while it waits for its run, with the spec of the
    workspace's latest run: building MobileNetV2 with its ImageNet weights takes over a second on a
    2-core machine, which would otherwise come between a click on Start and the first epoch. Only
    weights already on disk are used (nothing is downloaded), and only pretrained bases: a random
    base's values depend on the run's seed. A base that no run asks for is dropped by the next call.
    """
    _built_ahead.clear()
    key = _ahead_key_for(spec, workspace)
    if key is None:
        return False
    backbone, image_size, weights_path = get_backbone(key[0]), key[1], Path(key[2])
    _built_ahead[key] = _pretrained_base(backbone, image_size, weights_path)
    return True


def keep_built_ahead_for(spec: ModelSpec, workspace: Workspace | None = None) -> bool:
    """True when the base built ahead is the one `build_model(spec)` will take; otherwise drop it and
    Keras's global state with it (the layer names it used), as a fresh process would have them."""
    if not _built_ahead:
        return False
    if _ahead_key_for(spec, workspace) in _built_ahead:
        return True
    import keras

    _built_ahead.clear()
    keras.backend.clear_session()
    return False


def _ahead_key_for(spec: ModelSpec, workspace: Workspace | None) -> tuple[str, int, str, int, int] | None:
    """What a base built ahead for `spec` is filed under; None when it has no weights file at hand."""
    try:
        spec = spec.validated()
        backbone = get_backbone(spec.backbone)
    except SpecError:
        return None
    if spec.weights == "imagenet":
        weights_path = find_cached_weights(backbone, spec.image_size, workspace)
    elif spec.weights != "none" and Path(spec.weights).expanduser().is_file():
        weights_path = Path(spec.weights).expanduser()
    else:
        return None
    return None if weights_path is None else _ahead_key(backbone, spec.image_size, weights_path)


def _take_built_ahead(backbone: Backbone, image_size: int, weights_path: Path | None) -> keras.Model | None:
    if weights_path is None or not _built_ahead:
        return None
    return _built_ahead.pop(_ahead_key(backbone, image_size, weights_path), None)


def _ahead_key(backbone: Backbone, image_size: int, weights_path: Path) -> tuple[str, int, str, int, int]:
    stat = weights_path.stat()  # a file replaced at the same path is another file
    return backbone.name, image_size, str(weights_path.resolve()), stat.st_size, stat.st_mtime_ns


def _pretrained_base(backbone: Backbone, image_size: int, weights_path: Path | None) -> keras.Model:
    """`load_base`; with weights, leaving Python's random state as it found it.

    Keras draws a seed from Python's `random` for every initializer a layer creates. A loaded base's
    initial values are overwritten by its weights, so its draws would only shift the head's: leaving
    the state untouched gives a run's head the same start whether its base is built now or was built
    ahead (`build_base_ahead`).
    """
    if weights_path is None:
        return load_base(backbone, image_size, None)
    state = random.getstate()
    try:
        return load_base(backbone, image_size, weights_path)
    finally:
        random.setstate(state)


def base_training_mode(strategy: str) -> bool | None:
    """The `training` flag the base is called with: False (BatchNormalization in inference mode) where
    the strategy's rules say so, else None (the caller's flag, as training from scratch needs)."""
    return False if rules(strategy).base_in_inference_mode else None


def _head(spec: ModelSpec, feature_shape: tuple[int, ...]) -> keras.Model:
    """The new classifier, as its own small model: features in, class probabilities out.

    Keeping it separate lets the fast path train it directly on cached base features.
    """
    import keras

    features = keras.Input(shape=feature_shape, name="features")
    if spec.pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    else:
        x = keras.layers.Flatten(name="flatten")(features)
    if spec.hidden_units:
        x = keras.layers.Dense(spec.hidden_units, activation="relu", name="hidden")(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", name=PREDICTIONS_LAYER_NAME)(x)
    return keras.Model(features, outputs, name=HEAD_LAYER_NAME)


def _preprocessing(backbone: Backbone, x: Any) -> Any:
    """The backbone's `preprocess_input`, as built-in layers so saved models load anywhere."""
    import keras
    import numpy as np

    prep = backbone.preprocessing
    if prep.reverses_channels:
        # RGB -> BGR as a fixed 1x1 convolution by a permutation matrix: exact, and a built-in layer
        # (a Lambda would not load with safe_mode on).
        reverse = keras.layers.Conv2D(3, 1, use_bias=False, trainable=False, name="rgb_to_bgr")
        x = reverse(x)
        reverse.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)])
    scale_offset = prep.scale_offset()
    if scale_offset is not None:
        scale, offset = scale_offset
        x = keras.layers.Rescaling(scale=list(scale), offset=list(offset), name="rescale")(x)
    return x


def get_base(model: keras.Model) -> keras.Model:
    return model.get_layer(BASE_LAYER_NAME)


def get_head(model: keras.Model) -> keras.Model:
    return model.get_layer(HEAD_LAYER_NAME)


def preprocessing_layers(model: keras.Model) -> list[Any]:
    """The fixed pixel-scaling layers between the input and the base."""
    names = [layer.name for layer in model.layers]
    return model.layers[1 : names.index(BASE_LAYER_NAME)]


def head_layers(model: keras.Model) -> list[Any]:
    """The head's layers, without its input placeholder."""
    return get_head(model).layers[1:]


def trainable_view(model: keras.Model, strategy: str) -> keras.Model:
    """A model to `fit` in place of `model`: same layers and weights, base called in inference mode.

    Keras 3 passes `fit`'s `training=True` to every layer of a functional model, overriding the
    `training=False` the base was called with in the graph (keras-team/keras#20285). Fine-tuning
    would then re-estimate BatchNormalization statistics from small batches, the trap the base's
    `training=False` exists to avoid. This view calls the base itself, where an explicit
    `training=False` is respected, while the head still trains normally (dropout stays active).
    It shares every variable with `model`, so saving `model` saves what the view learned.
    """
    import keras

    prep, base, head = preprocessing_layers(model), get_base(model), get_head(model)
    base_mode = base_training_mode(strategy)

    class _TrainableView(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"{model.name}_training")
            self.prep, self.base, self.head = prep, base, head

        def call(self, images: Any, training: bool | None = None) -> Any:
            x = images
            for layer in self.prep:
                x = layer(x)
            x = self.base(x, training=training if base_mode is None else base_mode)
            return self.head(x, training=training)

    view = _TrainableView()
    view.build(model.input.shape)
    return view


def frozen_count(strategy: str, frozen_layers: int | None, base_layers: int) -> int:
    """How many base layers a strategy freezes: 0 for scratch, all for transfer, N for finetune."""
    return rules(strategy).frozen_count(frozen_layers, base_layers)


def apply_strategy(model: keras.Model, strategy: str, frozen_layers: int | None) -> int:
    """Set `trainable` on every layer for `strategy` and return the number of frozen base layers.

    Changing `trainable` has no effect on a compiled model until it is compiled again: callers that
    train must (re)compile after this, as `tlcore.training` does.
    """
    base = get_base(model)
    n_frozen = frozen_count(strategy, frozen_layers, len(base.layers))
    base.trainable = True
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= n_frozen
    for layer in preprocessing_layers(model):
        layer.trainable = False
    get_head(model).trainable = True
    return n_frozen


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer: index, part, name, type, output shape, parameters, trainable.

    `index` numbers the base's layers from 0 (its input layer) and continues through the head, the
    way `model.layers` numbers a flat base+head model, so it matches `model.layers[:N]` recipes.
    Preprocessing layers come first with no index: they hold fixed constants, never weights to learn.
    """
    import pandas as pd

    rows = []
    for layer in preprocessing_layers(model):
        rows.append(_row(None, "preprocessing", layer))
    base = get_base(model)
    for index, layer in enumerate(base.layers):
        rows.append(_row(index, "base", layer))
    for offset, layer in enumerate(head_layers(model)):
        rows.append(_row(len(base.layers) + offset, "head", layer))
    table = pd.DataFrame(rows)
    table["index"] = table["index"].astype("Int64")
    return table


def _row(index: int | None, part: str, layer: Any) -> dict[str, Any]:
    shape = tuple(layer.output.shape)[1:]
    trainable_params = _size(layer.trainable_weights)
    return {
        "index": index,
        "part": part,
        "name": layer.name,
        "type": type(layer).__name__,
        "output_shape": "×".join(str(d) for d in shape),
        "params": int(layer.count_params()),
        "trainable_params": trainable_params,
        "trainable": bool(layer.trainable) and part != "preprocessing",
    }


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and frozen parameter counts, the same numbers as `model.summary()`."""
    trainable = _size(model.trainable_weights)
    non_trainable = _size(model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def _size(weights: list[Any]) -> int:
    return sum(math.prod(w.shape) for w in weights)


_BLOCK_PATTERNS = (
    re.compile(r"^(conv\d+_block\d+)_"),  # ResNet, DenseNet
    re.compile(r"^(block_\d+)_"),  # MobileNetV2
    re.compile(r"^(block\d+[a-z])_"),  # EfficientNet
    re.compile(r"^(block\d+)_"),  # VGG
    re.compile(r"^conv_(?:dw|pw)_(\d+)"),  # MobileNet
    re.compile(r"^(pool\d+)_"),  # DenseNet transitions
)


def block_of(layer_name: str) -> str | None:
    """The architecture block a layer belongs to (`conv5_block3`, `block_16`), None outside blocks."""
    for pattern in _BLOCK_PATTERNS:
        match = pattern.match(layer_name)
        if match:
            return match.group(1)
    return None


def block_boundaries(base: keras.Model) -> list[int]:
    """Values of `frozen_layers` that end exactly at a block boundary, from 0 to all layers.

    Freezing at a boundary never splits a block (a residual unit, an inverted bottleneck) between
    frozen and trainable, which is what people usually mean by "fine-tune the last k blocks".
    """
    names = [layer.name for layer in base.layers]
    boundaries = {0, len(names)}
    for index in range(1, len(names)):
        previous, current = block_of(names[index - 1]), block_of(names[index])
        if previous is not None and current != previous:
            boundaries.add(index)
    return sorted(boundaries)
