"""Weights: found in the Keras cache, given as a file, or refused offline with directions."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tlcore.backbones import BACKBONES, find_cached_weights, get_backbone, resolve_weights
from tlcore.errors import SpecError, WeightsUnavailableError
from tlcore.models import ModelSpec, build_model, get_base

SHARED_KERAS_HOME = Path(__file__).resolve().parents[2] / "shared" / "keras-home"
needs_shared_weights = pytest.mark.skipif(
    not (SHARED_KERAS_HOME / "models").is_dir(), reason="../shared/keras-home is not on this machine"
)


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TLCORE_OFFLINE", "1")
    return tmp_path


def test_the_registry_has_the_article_backbone_and_the_light_ones():
    for name in ("resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16", "mobilenet_v2_0.35", "mobilenet_0.25"):
        assert name in BACKBONES
    assert BACKBONES["mobilenet_v2_0.35"].kwargs == {"alpha": 0.35}
    assert BACKBONES["mobilenet_0.25"].weights_file(224) == "mobilenet_2_5_224_tf_no_top.h5"


def test_unknown_backbone_names_the_choices():
    with pytest.raises(SpecError, match="Unknown backbone 'resnet51'.*resnet50"):
        get_backbone("resnet51")


def test_offline_imagenet_without_a_cached_file_fails_fast_naming_file_and_folder(empty_keras_home, workspace):
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_weights(get_backbone("resnet50"), "imagenet", 224, workspace)
    assert time.monotonic() - started < 2
    message = str(error.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(empty_keras_home / "keras-home" / "models") in message


def test_a_missing_weights_file_path_is_refused(workspace):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        resolve_weights(get_backbone("mobilenet_0.25"), "/nowhere/weights.h5", 224, workspace)


def test_a_weights_file_for_another_network_is_refused_clearly(tmp_path, workspace):
    wrong = tmp_path / "wrong.weights.h5"
    build_model(ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32), load_weights=False)
    get_base(
        build_model(ModelSpec(backbone="mobilenet_v2_0.35", weights="none", image_size=32), load_weights=False)
    ).save_weights(wrong)
    with pytest.raises(WeightsUnavailableError, match="does not fit MobileNet"):
        build_model(ModelSpec(backbone="mobilenet_0.25", weights=str(wrong), image_size=32), workspace)


@needs_shared_weights
@pytest.mark.parametrize("name", ["mobilenet_v2_0.35", "mobilenet_0.25"])
def test_keras_home_supplies_genuine_imagenet_weights(name, monkeypatch, workspace):
    monkeypatch.setenv("KERAS_HOME", str(SHARED_KERAS_HOME))
    backbone = get_backbone(name)
    found = find_cached_weights(backbone, 224, workspace)
    assert found == SHARED_KERAS_HOME / "models" / backbone.weights_file(224)
    pretrained = get_base(build_model(ModelSpec(backbone=name, weights="imagenet", image_size=224), workspace))
    random = get_base(build_model(ModelSpec(backbone=name, weights="none", image_size=224), load_weights=False))
    first = pretrained.layers[2].get_weights()[0]
    assert not np.allclose(first, random.layers[2].get_weights()[0])
    by_path = get_base(build_model(ModelSpec(backbone=name, weights=str(found), image_size=224), workspace))
    np.testing.assert_array_equal(by_path.layers[2].get_weights()[0], first)
