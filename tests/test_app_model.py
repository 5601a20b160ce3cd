"""The Model page: strategies and the frozen-layers slider, the coloured layer table, parameter counts."""

import re
from pathlib import Path

import pytest
from helpers import button
from streamlit.testing.v1 import AppTest

from tlcore import backbones, models, settings
from tlcore.models import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"model.backbone": "mobilenet_0.25", "model.image_size": 32, "model.weights": "none"}


@pytest.fixture
def app(workspace, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))  # no cached ImageNet weights
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()


def open_model_page(at: AppTest, **state) -> AppTest:
    for key, value in {**SMALL, **state}.items():
        at.session_state[key] = value
    return at.switch_page("app_pages/model.py").run()


def frozen_slider(at: AppTest):
    """The frozen-layers slider: a fixed slider for transfer/scratch, a select slider for fine-tuning."""
    sliders = [s for s in [*at.slider, *at.select_slider] if s.label.startswith("Frozen base layers")]
    assert len(sliders) == 1
    return sliders[0]


def metrics(at: AppTest) -> dict[str, int]:
    return {m.label: int(m.value.replace(",", "")) for m in at.metric}


def row_backgrounds(at: AppTest) -> dict[int, str]:
    """Row number -> background colour of the layer table, read from its Styler CSS."""
    css = at.dataframe[0].proto.arrow_data.styler.styles
    colours = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        colour = re.search(r"background-color:\s*([^;]+)", body)
        for row in re.findall(r"_row(\d+)_col0\b", selectors):
            colours[int(row)] = colour.group(1).strip() if colour else ""
    return colours


def test_article_preset_freezes_168_layers_of_resnet50_with_matching_counts(app):
    at = open_model_page(app)
    button(at, "Original article preset").click().run()
    assert not at.exception
    assert frozen_slider(at).value == 168
    spec = at.session_state["model_spec"]
    assert (spec.backbone, spec.pooling, spec.strategy, spec.frozen_layers) == ("resnet50", "flatten", "finetune", 168)
    model = models.build_model(
        ModelSpec(
            backbone="resnet50",
            weights="none",
            image_size=224,
            num_classes=2,
            pooling="flatten",
            dropout=spec.dropout,
            strategy="finetune",
            frozen_layers=168,
        ),
        load_weights=False,
    )
    counts = models.parameter_counts(model)
    assert metrics(at) == {
        "Total parameters": counts["total"],
        "Trainable parameters": counts["trainable"],
        "Frozen parameters": counts["non_trainable"],
    }


def test_strategy_sets_the_slider_all_for_transfer_none_for_scratch_free_for_finetune(app):
    at = open_model_page(app, **{"model.strategy": "transfer"})
    base_layers = len(
        models.get_base(
            models.build_model(ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32), load_weights=False)
        ).layers
    )
    slider = frozen_slider(at)
    assert (slider.value, slider.disabled) == (base_layers, True)
    assert metrics(at)["Trainable parameters"] < 1000  # only the head

    at.segmented_control(key="model.strategy").set_value("scratch").run()
    slider = frozen_slider(at)
    assert (slider.value, slider.disabled) == (0, True)
    assert metrics(at)["Trainable parameters"] > 200_000
    (weights,) = [radio for radio in at.radio if radio.label == "Starting weights"]
    assert (weights.value, weights.disabled) == ("none", True)  # from scratch always starts random

    at.segmented_control(key="model.strategy").set_value("finetune").run()
    slider = frozen_slider(at)
    assert not slider.disabled and 0 < slider.value < base_layers


def test_moving_the_slider_recolours_the_layer_table_and_updates_the_counts(app):
    at = open_model_page(app, **{"model.strategy": "finetune", "model.snap": False})
    frozen_slider(at).set_value(10).run()
    table = at.dataframe[0].value
    base = table[table["part"] == "base"]
    assert base["trainable"].tolist() == [index >= 10 for index in base["index"]]
    colours = row_backgrounds(at)
    frozen_rows = set(table.index[~table["trainable"]])
    trainable_rows = set(table.index[table["trainable"]])
    frozen_colours = {colours[row] for row in frozen_rows}
    trainable_colours = {colours[row] for row in trainable_rows}
    assert len(frozen_colours) == len(trainable_colours) == 1 and frozen_colours != trainable_colours
    fewer_frozen = metrics(at)["Trainable parameters"]

    frozen_slider(at).set_value(60).run()
    assert metrics(at)["Trainable parameters"] < fewer_frozen
    table = at.dataframe[0].value
    assert table.loc[table["part"] == "base", "trainable"].sum() == len(base) - 60


def test_snapping_offers_only_block_boundaries(app):
    at = open_model_page(app, **{"model.strategy": "finetune", "model.snap": True})
    model = models.build_model(ModelSpec(backbone="mobilenet_0.25", weights="none", image_size=32), load_weights=False)
    boundaries = models.block_boundaries(models.get_base(model))
    assert [int(option) for option in frozen_slider(at).options] == boundaries


def test_missing_imagenet_weights_are_explained_and_other_weights_offered(app):
    at = open_model_page(app, **{"model.backbone": "resnet50", "model.image_size": 64, "model.weights": "imagenet"})
    resnet = backbones.get_backbone("resnet50")
    warning = at.warning[0].value
    assert resnet.weights_file(64) in warning and str(settings.keras_cache_dirs()[0]) in warning
    assert "training cannot start yet" in warning
    assert at.radio(key="model.weights").options == ["ImageNet", "Random", "Weights file"]


def test_a_weights_file_that_does_not_exist_gets_a_clear_error(app, tmp_path):
    missing = str(tmp_path / "nope.h5")
    at = open_model_page(app, **{"model.weights": "file", "model.weights_path": missing})
    assert not at.exception
    assert at.error[0].value.startswith("Error:") and "nope.h5" in at.error[0].value


def test_the_spec_for_training_follows_the_widgets_and_the_dataset(app, workspace, demo_zip_bytes):
    from tlcore import datasets

    dataset = datasets.ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    app.session_state["dataset_id"] = dataset.id
    at = open_model_page(app, **{"model.pooling": "flatten", "model.hidden_units": 64, "model.strategy": "transfer"})
    at.slider(key="model.dropout").set_value(0.35).run()
    assert at.slider(key="model.dropout").value == 0.35  # what the page shows
    assert at.session_state["model_spec"] == ModelSpec(
        backbone="mobilenet_0.25",
        weights="none",
        image_size=32,
        num_classes=len(dataset.classes),
        pooling="flatten",
        dropout=0.35,
        hidden_units=64,
        strategy="transfer",
    )
    assert "MobileNet ×0.25" in at.sidebar.markdown[-1].value


def test_the_model_page_speaks_japanese(app):
    app.session_state["lang"] = "ja"
    at = open_model_page(app)
    assert at.title[0].value == "モデル"
    assert set(metrics(at)) == {"総パラメータ数", "学習するパラメータ数", "凍結されたパラメータ数"}
    assert at.segmented_control(key="model.strategy").options == ["ゼロから学習", "転移学習", "ファインチューニング"]
