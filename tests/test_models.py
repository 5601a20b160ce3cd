"""Models and strategies: what learns, what stays frozen, and the traps the field warns about."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tlcore.backbones import BACKBONES
from tlcore.errors import SpecError
from tlcore.models import (
    ModelSpec,
    apply_strategy,
    block_boundaries,
    build_model,
    get_base,
    layer_table,
    parameter_counts,
    preprocessing_layers,
    trainable_view,
)

ARTICLE = ModelSpec(
    backbone="resnet50",
    weights="none",
    pooling="flatten",
    dropout=0.0,
    strategy="finetune",
    frozen_layers=168,
    num_classes=2,
)


def _size(weights: list) -> int:
    return sum(math.prod(w.shape) for w in weights)


@pytest.fixture(scope="module")
def article_model() -> keras.Model:
    return build_model(ARTICLE, load_weights=False)


def test_article_setup_trains_exactly_the_weights_of_the_original_recipe(article_model):
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
    x = keras.layers.Flatten()(base.output)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    original = keras.Model(base.input, outputs)
    for layer in original.layers[:168]:
        layer.trainable = False

    assert parameter_counts(article_model)["trainable"] == _size(original.trainable_weights)
    assert len(article_model.trainable_weights) == len(original.trainable_weights)


def test_article_layer_table_marks_the_first_168_base_layers_frozen(article_model):
    table = layer_table(article_model)
    base = table[table["part"] == "base"]
    assert len(base) == 175
    assert not base[base["index"] < 168]["trainable"].any()
    assert base[base["index"] >= 168]["trainable"].all()
    assert base[base["index"] == 168]["name"].item() == "conv5_block3_2_conv"
    head = table[table["part"] == "head"]
    assert list(head["name"]) == ["flatten", "predictions"]
    assert list(head["index"]) == [175, 176]


def test_parameter_counts_match_keras_own(article_model):
    counts = parameter_counts(article_model)
    assert counts["total"] == article_model.count_params()
    assert counts["trainable"] == _size(article_model.trainable_weights)
    table = layer_table(article_model)
    assert table["params"].sum() == counts["total"]
    assert table["trainable_params"].sum() == counts["trainable"]


def test_transfer_learning_trains_only_the_head():
    model = build_model(
        ModelSpec(
            backbone="mobilenet_0.25", weights="none", image_size=32, strategy="transfer", num_classes=3, hidden_units=8
        ),
        load_weights=False,
    )
    table = layer_table(model)
    assert not table[table["part"] == "base"]["trainable"].any()
    head_params = table[table["part"] == "head"]["params"].sum()
    assert parameter_counts(model)["trainable"] == head_params


def test_scratch_trains_every_layer():
    model = build_model(
        ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32, strategy="scratch", num_classes=3),
        load_weights=False,
    )
    table = layer_table(model)
    assert table[table["part"] != "preprocessing"]["trainable"].all()


def test_scratch_with_imagenet_weights_is_refused_with_a_reason():
    with pytest.raises(SpecError, match="random weights"):
        ModelSpec(strategy="scratch", weights="imagenet").validated()


def test_frozen_layer_count_outside_the_base_is_refused_before_building():
    with pytest.raises(SpecError, match="from 0 to 175.*received 500"):
        ModelSpec(backbone="resnet50", strategy="finetune", frozen_layers=500).validated()


def test_batchnorm_keeps_its_statistics_while_fine_tuning():
    model = build_model(
        ModelSpec(
            backbone="mobilenet_v2_0.35",
            weights="none",
            image_size=32,
            strategy="finetune",
            frozen_layers=100,
            num_classes=2,
        ),
        load_weights=False,
    )
    base = get_base(model)
    bn = base.get_layer("Conv_1_bn")  # in the trainable top of the base
    assert bn.trainable
    before = [w.numpy().copy() for w in (bn.moving_mean, bn.moving_variance)]
    beta_before = bn.beta.numpy().copy()
    view = trainable_view(model, "finetune")
    view.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    view.fit(rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), np.array([0, 1] * 4), epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])
    assert not np.array_equal(bn.beta.numpy(), beta_before), "the layer should still learn its offset"


@pytest.mark.parametrize(
    "backbone, preprocess",
    [
        ("resnet50", keras.applications.resnet50.preprocess_input),
        ("mobilenet_v2_0.35", keras.applications.mobilenet_v2.preprocess_input),
        ("densenet121", keras.applications.densenet.preprocess_input),
        ("efficientnet_b0", keras.applications.efficientnet.preprocess_input),
    ],
)
def test_preprocessing_inside_the_model_matches_the_backbone(backbone, preprocess):
    model = build_model(ModelSpec(backbone=backbone, weights="none", image_size=32, num_classes=2), load_weights=False)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    scaled = images
    for layer in preprocessing_layers(model):
        scaled = layer(scaled)
    base = get_base(model)
    inside = base(scaled, training=False)
    outside = base(preprocess(images.copy()), training=False)
    np.testing.assert_allclose(np.asarray(inside), np.asarray(outside), rtol=1e-4, atol=1e-4)


def test_saved_model_loads_in_safe_mode_and_predicts_the_same(tmp_path):
    model = build_model(
        ModelSpec(backbone="resnet50", weights="none", image_size=32, num_classes=3, dropout=0.2), load_weights=False
    )
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_changing_strategy_moves_the_frozen_boundary():
    model = build_model(
        ModelSpec(
            backbone="mobilenet_0.25",
            weights="none",
            image_size=32,
            strategy="finetune",
            frozen_layers=10,
            num_classes=2,
        ),
        load_weights=False,
    )
    base_count = len(get_base(model).layers)
    assert apply_strategy(model, "finetune", 40) == 40
    frozen = [not layer.trainable for layer in get_base(model).layers]
    assert frozen == [True] * 40 + [False] * (base_count - 40)
    assert apply_strategy(model, "transfer", None) == base_count
    assert parameter_counts(model)["trainable"] == layer_table(model).query("part == 'head'")["params"].sum()


def test_block_boundaries_never_split_a_resnet_block(article_model):
    base = get_base(article_model)
    boundaries = block_boundaries(base)
    names = [layer.name for layer in base.layers]
    assert boundaries[0] == 0 and boundaries[-1] == len(names)
    assert 165 in boundaries  # conv5_block3 starts at layer 165
    for cut in boundaries[1:-1]:
        assert names[cut - 1].split("_")[:2] != names[cut].split("_")[:2]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_registry_facts_match_the_keras_application(name):
    entry = BACKBONES[name]
    base = entry.create_base(32, None)
    assert len(base.layers) == entry.base_layers
    assert base.count_params() == entry.params
