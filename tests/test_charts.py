"""The app's charts: built from tlcore's DataFrames, checked as Altair specs (no browser needed)."""

import math

import altair as alt
import pandas as pd
from helpers import altair_data

from tlcore.metrics_log import METRIC_COLUMNS
from ui import charts
from ui.charts import ChartLabels


def metrics(epochs: int = 2, steps: int = 4, phase: str = "transfer") -> pd.DataFrame:
    """Metrics as `tlcore.metrics_log.read_metrics` returns them: per-batch rows, then an epoch row."""
    rows = []
    global_step = 0
    for epoch in range(1, epochs + 1):
        for step in range(1, steps + 1):
            global_step += 1
            rows.append(
                {
                    "kind": "batch",
                    "phase": phase,
                    "epoch": epoch,
                    "step": step,
                    "global_step": global_step,
                    "loss": 2.0 / global_step,
                    "accuracy": 0.1 * epoch,
                    "val_loss": math.nan,
                    "val_accuracy": math.nan,
                    "elapsed": float(global_step),
                }
            )
        rows.append(
            {
                "kind": "epoch",
                "phase": phase,
                "epoch": epoch,
                "step": steps,
                "global_step": global_step,
                "loss": 1.0 / epoch,
                "accuracy": 0.3 * epoch,
                "val_loss": 1.2 / epoch,
                "val_accuracy": 0.25 * epoch,
                "elapsed": float(global_step),
            }
        )
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def layers_of(chart: alt.LayerChart | dict) -> list[dict]:
    return (chart if isinstance(chart, dict) else chart.to_dict())["layer"]


def test_class_counts_chart_stacks_train_and_val_per_class():
    counts = pd.DataFrame({"class": ["roses", "daisy"], "train": [8, 5], "val": [2, 1], "total": [10, 6]})
    spec = charts.class_counts_chart(counts).to_dict()
    data = altair_data(spec)
    assert data.groupby("class")["images"].sum().to_dict() == {"roses": 10, "daisy": 6}
    assert spec["encoding"]["y"]["field"] == "class"
    assert spec["encoding"]["y"]["sort"] == ["roses", "daisy"]  # the dataset's order, not alphabetical
    assert spec["encoding"]["x"]["stack"] == "zero"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["train", "validation"]


def test_class_counts_chart_speaks_the_given_language():
    counts = pd.DataFrame({"class": ["a", "b"], "train": [1, 1], "val": [1, 1], "total": [2, 2]})
    labels = ChartLabels(train="学習", val="検証", images="画像数")
    spec = charts.class_counts_chart(counts, labels).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == ["学習", "検証"]
    assert spec["encoding"]["x"]["title"] == "画像数"


def test_curve_frame_places_batches_between_epochs_and_epochs_on_whole_numbers():
    frame = charts.curve_frame(metrics(epochs=2, steps=4), steps_per_epoch=4)
    batches = frame[(frame["kind"] == "batch") & (frame["metric"] == "loss")]
    assert batches["x"].tolist() == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    epochs = frame[(frame["kind"] == "epoch") & (frame["metric"] == "accuracy")]
    assert sorted(epochs["x"].unique()) == [1.0, 2.0]
    assert set(epochs["split"]) == {"train", "val"}
    # Validation is only measured once per epoch: no validation points on batch rows.
    assert set(frame.loc[frame["kind"] == "batch", "split"]) == {"train"}


def test_curve_frame_infers_steps_per_epoch_when_unknown():
    frame = charts.curve_frame(metrics(epochs=1, steps=5))
    batches = frame[(frame["kind"] == "batch") & (frame["metric"] == "loss")]
    assert batches["x"].iloc[-1] == 1.0


def test_curve_frame_of_a_run_without_metrics_is_empty():
    frame = charts.curve_frame(pd.DataFrame(columns=list(METRIC_COLUMNS)))
    assert frame.empty and {"x", "metric", "split", "kind", "value"} <= set(frame.columns)


def test_long_runs_are_thinned_but_keep_their_last_batch():
    long = metrics(epochs=1, steps=charts.MAX_BATCH_POINTS * 3 + 7)
    frame = charts.curve_frame(long)
    batches = frame[(frame["kind"] == "batch") & (frame["metric"] == "loss")]
    assert len(batches) <= charts.MAX_BATCH_POINTS
    assert batches["x"].iloc[-1] == 1.0


def test_training_curve_shows_batches_thin_and_epochs_as_points_with_val_dashed():
    chart = charts.training_curve(metrics(), "loss", steps_per_epoch=4)
    batch_layer, line_layer, point_layer, _phases = layers_of(chart)
    assert batch_layer["mark"]["type"] == "line" and batch_layer["mark"]["strokeWidth"] == 1
    assert line_layer["mark"]["type"] == "line"
    dash = line_layer["encoding"]["strokeDash"]
    assert dash["scale"]["domain"] == ["train", "validation"]
    assert dash["scale"]["range"][0] != dash["scale"]["range"][1]
    assert point_layer["mark"]["type"] == "point"
    assert line_layer["encoding"]["x"]["title"] == "epoch"
    assert line_layer["encoding"]["y"]["title"] == "loss"


def test_accuracy_curve_is_drawn_on_zero_to_one():
    chart = charts.training_curve(metrics(), "accuracy")
    assert layers_of(chart)[1]["encoding"]["y"]["scale"]["domain"] == [0, 1]


def test_training_curve_data_holds_only_the_chosen_metric():
    spec = charts.training_curve(metrics(), "accuracy")
    data = altair_data(spec)
    assert set(data["metric"]) == {"accuracy"}
    val = data[data["split"] == "val"].sort_values("x")
    assert val["value"].tolist() == [0.25, 0.5]


def test_compare_curve_gives_each_run_a_colour_and_each_split_a_dash():
    chart = charts.compare_curve({"scratch": metrics(3), "transfer": metrics(2)}, "accuracy")
    line_layer, point_layer = layers_of(chart)
    assert line_layer["encoding"]["color"]["field"] == "run"
    colour = line_layer["encoding"]["color"]["scale"]
    assert colour["domain"] == ["scratch", "transfer"]
    assert colour["range"][0] != colour["range"][1]
    assert line_layer["encoding"]["strokeDash"]["field"] == "split_label"
    data = altair_data(chart)
    assert set(data["kind"]) == {"epoch"}  # per-epoch curves: comparable across batch sizes
    assert data.groupby("run")["epoch"].max().to_dict() == {"scratch": 3, "transfer": 2}


def test_epoch_axes_count_in_whole_epochs_even_for_a_one_epoch_run():
    # Vega labels a single-valued axis "1.000000" unless told the epochs are whole numbers.
    one_epoch = metrics(epochs=1)
    axes = [
        layers_of(charts.training_curve(one_epoch, "loss"))[1]["encoding"]["x"]["axis"],
        layers_of(charts.compare_curve({"only": one_epoch}, "loss"))[0]["encoding"]["x"]["axis"],
    ]
    assert all(axis["format"] == "d" and axis["tickMinStep"] == 1 for axis in axes)


def test_compare_curve_copes_with_a_run_that_has_no_metrics_yet():
    empty = pd.DataFrame(columns=list(METRIC_COLUMNS))
    chart = charts.compare_curve({"queued": empty, "done": metrics()}, "loss")
    assert layers_of(chart)[0]["encoding"]["color"]["scale"]["domain"] == ["queued", "done"]


def test_strategy_blocks_shade_what_each_strategy_freezes():
    def states(strategy: str) -> list[str]:
        blocks = charts.strategy_blocks(strategy)
        return blocks.loc[blocks["part"] == "base", "state"].tolist()

    assert states("transfer") == ["frozen"] * 5
    assert states("finetune") == ["frozen"] * 3 + ["learns_pretrained"] * 2
    assert states("scratch") == ["learns_random"] * 5
    for strategy in ("transfer", "finetune", "scratch"):
        head = charts.strategy_blocks(strategy).iloc[-1]
        assert (head["part"], head["state"]) == ("head", "learns_random")


def test_network_diagram_colours_frozen_blocks_grey():
    boxes, text = layers_of(charts.network_diagram("transfer"))
    scale = boxes["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["frozen (pretrained)"] == charts.FROZEN_COLOUR
    assert boxes["mark"]["type"] == "rect" and text["mark"]["type"] == "text"


def test_a_second_phase_is_marked_where_it_begins():
    two_phase = pd.concat([metrics(epochs=2, phase="transfer"), metrics(epochs=3, phase="finetune")])
    two_phase.loc[two_phase["phase"] == "finetune", "epoch"] += 2
    starts = charts.phase_starts(two_phase)
    assert starts.to_dict("records") == [{"x": 2.0, "phase": "finetune"}]
    assert charts.phase_starts(metrics()).empty


def test_layer_strip_draws_every_layer_in_order_green_if_it_learns_grey_if_frozen():
    table = pd.DataFrame(
        {
            "index": pd.array([None, 0, 1, 2, 3], dtype="Int64"),
            "part": ["preprocessing", "base", "base", "base", "head"],
            "name": ["rescale", "input", "conv", "bn", "predictions"],
            "type": ["Rescaling", "InputLayer", "Conv2D", "BatchNormalization", "Dense"],
            "trainable": [False, False, False, True, True],
        }
    )
    spec = charts.layer_strip(table, {"name": "Name"}).to_dict()
    data = altair_data(spec)
    assert data["name"].tolist() == table["name"].tolist()
    assert data["position"].tolist() == [0, 1, 2, 3, 4]
    assert data["state"].tolist() == ["frozen", "frozen", "frozen", "learns", "learns"]
    colour = spec["encoding"]["color"]["scale"]
    assert dict(zip(colour["domain"], colour["range"], strict=True)) == {
        "learns": charts.LEARNS_COLOUR,
        "frozen": charts.FROZEN_COLOUR,
    }
    assert {tip["title"] for tip in spec["encoding"]["tooltip"]} >= {"Name"}


def test_compare_legend_shortens_long_run_names_in_the_middle():
    chart = charts.compare_curve({"20261128-135308-429-mobilenet_0.25-finetune-e9ea": metrics()}, "loss")
    legend = layers_of(chart)[0]["encoding"]["color"]["legend"]
    assert legend["labelExpr"] == charts.LEGEND_NAME_EXPR


# A study's charts


def study_rows() -> pd.DataFrame:
    """Rows as `ui.tables.study_rows` gives them: a data-efficiency study of three strategies on 50 and 100 %."""
    arms = [
        ("From scratch", "scratch", False, 0),
        ("Transfer learning", "transfer", False, 154),
        ("Fine-tuning with 116 frozen layers", "finetune", False, 116),
        ("The two-phase recipe (116 frozen layers)", "finetune", True, 116),
    ]
    rows = []
    for fraction, images, scale in ((1.0, 1000, 1.0), (0.5, 500, 0.9)):
        for index, (arm, strategy, two_phase, frozen) in enumerate(arms):
            rows.append(
                {
                    "member": arm if fraction == 1 else f"{arm} on 50 % of the images",
                    "arm": arm,
                    "strategy": strategy,
                    "two_phase": two_phase,
                    "frozen_layers": frozen,
                    "fraction": fraction,
                    "train_images": images,
                    "best_val_accuracy": (0.5 + 0.1 * index) * scale if index != 3 or fraction == 1 else None,
                    "train_seconds": 10.0 * (4 - index),
                    "winner": fraction == 1 and index == 3,
                }
            )
    return pd.DataFrame(rows)


def test_accuracy_by_frozen_layers_joins_the_single_phase_pretrained_members_and_rings_the_winner():
    frame = charts.frozen_frame(study_rows())
    assert frame[["member", "frozen_layers", "line"]].values.tolist() == [
        ["From scratch", 0, False],
        ["Fine-tuning with 116 frozen layers", 116, True],
        ["The two-phase recipe (116 frozen layers)", 116, False],
        ["Transfer learning", 154, True],
    ]
    layers = layers_of(charts.accuracy_by_frozen(study_rows(), 0.2))
    assert layers[1]["mark"]["type"] == "point" and layers[1]["encoding"]["x"]["field"] == "frozen_layers"
    assert layers[2]["transform"] == [{"filter": "datum.winner"}]
    datasets = charts.accuracy_by_frozen(study_rows(), 0.2).to_dict()["datasets"].values()
    assert [{"y": 0.2, "text": "majority-class baseline"}] in list(datasets)


def test_accuracy_by_time_leaves_out_members_without_a_time_or_an_accuracy():
    rows = study_rows()
    rows.loc[1, "train_seconds"] = None
    data = altair_data(charts.accuracy_by_time(rows, None))
    assert sorted(data["member"]) == [
        "Fine-tuning with 116 frozen layers",
        "From scratch",
        "The two-phase recipe (116 frozen layers)",
    ]
    spec = charts.accuracy_by_time(rows, None).to_dict()
    assert spec["layer"][0]["encoding"]["x"]["scale"] == {"type": "log"}


def test_study_curves_mark_where_the_second_phase_begins_against_epochs_and_against_time():
    two_phase = pd.concat([metrics(2, 3, "transfer"), metrics(2, 3, "finetune")], ignore_index=True)
    two_phase.loc[two_phase.index >= 8, "epoch"] += 2
    two_phase.loc[two_phase.index >= 8, "elapsed"] += 8.0
    curves = {"two-phase": two_phase, "transfer": metrics(2, 3)}
    points, boundaries = charts.study_curve_frame(curves, "epoch")
    assert points[points["member"] == "two-phase"]["x"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert boundaries.values.tolist() == [["two-phase", 2.0, "finetune"]]
    points, boundaries = charts.study_curve_frame(curves, "time")
    assert points[points["member"] == "two-phase"]["x"].tolist() == [3.0, 6.0, 11.0, 14.0]
    assert boundaries.values.tolist() == [["two-phase", 6.0, "finetune"]]
    labels = ChartLabels(phases={"finetune": "Fine-tuning"})
    spec = charts.study_curves(curves, 0.25, "time", labels).to_dict()
    assert [{"member": "two-phase", "x": 6.0, "phase": "Fine-tuning"}] in list(spec["datasets"].values())


def test_accuracy_by_data_draws_one_line_per_strategy_over_the_training_set_size():
    frame = charts.data_frame(study_rows())
    assert frame.groupby("arm")["train_images"].apply(list).to_dict() == {
        "Fine-tuning with 116 frozen layers": [500, 1000],
        "From scratch": [500, 1000],
        "The two-phase recipe (116 frozen layers)": [1000],
        "Transfer learning": [500, 1000],
    }
    spec = charts.accuracy_by_data(study_rows(), 0.2).to_dict()
    assert spec["layer"][0]["encoding"]["color"]["field"] == "arm"
    assert spec["layer"][0]["encoding"]["x"]["field"] == "train_images"
