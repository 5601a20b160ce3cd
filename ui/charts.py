"""Altair charts built from DataFrames by plain functions, so they can be tested without a browser.

Every function takes the data tlcore returns (a dataset's class counts, a run's metrics) and a
`ChartLabels` with the words to show, and returns an Altair chart for `st.altair_chart`; the
learning curves, redrawn every second while a run trains (`training_curve`) or on every rerun of the
Compare page (`compare_curve`), return their Vega-Lite spec instead.
Conventions shared by the training charts: x is the epoch as a number (a batch at step 30 of 60 in
epoch 2 sits at 1.5), train and validation are told apart by the line's dash, per-batch values are a
thin faint line and per-epoch values are points joined by a line.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from tlcore.models import rules

METRICS = ("loss", "accuracy")
SPLITS = ("train", "val")
SOLID: list[int] = [1, 0]
DASHED: list[int] = [6, 4]

# Colours for the layer states in the network diagram and the split colours in the class chart.
FROZEN_COLOUR = "#cbd5e1"
# A layer that learns, in the layer strip: a stronger shade of the layer table's green, for bars a few pixels wide.
LEARNS_COLOUR = "#4ade80"
PRETRAINED_COLOUR = "#60a5fa"
RANDOM_COLOUR = "#fbbf24"
TRAIN_COLOUR = "#2563eb"
VAL_COLOUR = "#93c5fd"
# Validation curves: a colour far from the training blue, so the two never read as one line.
VAL_LINE_COLOUR = "#ea580c"

# One clearly different colour per compared run (Streamlit's theme would otherwise give neighbours
# two shades of blue); colours repeat after ten runs.
RUN_COLOURS = [
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#4b5563",
    "#ca8a04",
]

# A legend label longer than 30 characters keeps its first 12 and last 16, joined by an ellipsis.
LEGEND_NAME_EXPR = "length(datum.label) > 30 ? slice(datum.label, 0, 12) + '…' + slice(datum.label, -16) : datum.label"

# Per-batch rows beyond this are thinned (evenly, keeping the last) so a long run stays light to draw.
MAX_BATCH_POINTS = 1500


@dataclass(frozen=True)
class ChartLabels:
    """The words charts show; pages pass translated ones (`ui.i18n.chart_labels`)."""

    epoch: str = "epoch"
    loss: str = "loss"
    accuracy: str = "accuracy"
    train: str = "train"
    val: str = "validation"
    batch_note: str = "thin line: per batch · points: per epoch"
    images: str = "images"
    class_: str = "class"
    run: str = "run"
    split: str = "split"
    frozen: str = "frozen (pretrained)"
    learns_pretrained: str = "learns (starts pretrained)"
    learns_random: str = "learns (starts random)"
    head: str = "new head"
    block: str = "block {n}"
    input: str = "input"
    phase: str = "phase"
    phases: Mapping[str, str] | None = None
    """Phase names (the strategy of each phase, `"features"` for a feature pass) in words."""
    member: str = "member"
    baseline: str = "majority-class baseline"
    best_accuracy: str = "best validation accuracy"
    val_accuracy: str = "validation accuracy"
    frozen_layers: str = "frozen layers"
    seconds: str = "training time (s)"
    wall_clock: str = "time since the start (s)"
    training_images: str = "training images"
    by_frozen_title: str = "Accuracy against frozen layers"
    by_time_title: str = "Accuracy against training time"
    curves_title: str = "Learning curves"
    by_data_title: str = "Accuracy against training-set size"

    def split_label(self, split: str) -> str:
        return self.train if split == "train" else self.val

    def metric_label(self, metric: str) -> str:
        return self.loss if metric == "loss" else self.accuracy

    def phase_label(self, phase: object) -> object:
        return (self.phases or {}).get(phase, phase) if isinstance(phase, str) else phase


def class_counts_chart(counts: pd.DataFrame, labels: ChartLabels = ChartLabels()) -> alt.Chart:
    """Horizontal bars of images per class, train and validation stacked.

    counts: `Dataset.counts()`, columns `class`, `train`, `val` (and `total`, unused).
    """
    long = counts.melt(id_vars="class", value_vars=list(SPLITS), var_name="split", value_name="images")
    long["split_label"] = long["split"].map(labels.split_label)
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("class:N", sort=list(counts["class"]), title=labels.class_),
            x=alt.X("images:Q", stack="zero", title=labels.images, axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "split_label:N",
                title=labels.split,
                scale=alt.Scale(domain=[labels.train, labels.val], range=[TRAIN_COLOUR, VAL_COLOUR]),
            ),
            order=alt.Order("split:N"),
            tooltip=[
                alt.Tooltip("class:N", title=labels.class_),
                alt.Tooltip("split_label:N", title=labels.split),
                alt.Tooltip("images:Q", title=labels.images),
            ],
        )
        .properties(height=alt.Step(22))
    )


def curve_frame(metrics: pd.DataFrame, steps_per_epoch: int | None = None) -> pd.DataFrame:
    """Metrics in long form for plotting: one row per (logged point, metric, split).

    Columns: `x` (epoch as a number), `metric` ("loss"/"accuracy"), `split` ("train"/"val"),
    `kind` ("batch"/"epoch"), `value`, `phase`, `epoch`. Batch rows give train values only (Keras
    reports validation once per epoch); missing values are dropped.
    """
    columns = ["x", "metric", "split", "kind", "value", "phase", "epoch"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    batches = _thin(metrics[metrics["kind"] == "batch"], MAX_BATCH_POINTS)
    steps = steps_per_epoch or (int(batches["step"].max()) if not batches.empty else 1)
    parts = []
    for metric in METRICS:
        parts.append(_points(batches, batches["global_step"] / steps, metric, "train", "batch", metric))
        parts.append(_epoch_points(metrics, metric))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.dropna(subset=["value"])
    frame["x"] = frame["x"].astype(float)
    frame["value"] = frame["value"].astype(float)
    return frame[columns]


def _thin(rows: pd.DataFrame, limit: int) -> pd.DataFrame:
    if len(rows) <= limit:
        return rows
    stride = -(-len(rows) // limit)
    keep = list(range(len(rows) - 1, -1, -stride))[::-1]
    return rows.iloc[keep]


def _points(rows: pd.DataFrame, x: pd.Series, metric: str, split: str, kind: str, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": x.to_numpy(),
            "metric": metric,
            "split": split,
            "kind": kind,
            "value": rows[column].to_numpy(),
            "phase": rows["phase"].to_numpy(),
            "epoch": rows["epoch"].to_numpy(),
        }
    )


def training_curve(
    metrics: pd.DataFrame,
    metric: str,
    steps_per_epoch: int | None = None,
    labels: ChartLabels = ChartLabels(),
) -> dict[str, Any]:
    """Loss or accuracy of one run: train per batch (thin), train and validation per epoch.

    Returns a Vega-Lite spec for `st.vega_lite_chart`, its data as DataFrames under `datasets`. The
    Train page redraws this chart every second for each session watching a run train; building it
    with Altair and checking it against the Vega-Lite schema takes about 0.1 s, so that is done once
    per metric and wording (`_from_template`) and each call only adds the data.

    metrics: `tlcore.metrics_log.read_metrics(...)`. metric: "loss" or "accuracy".
    steps_per_epoch: the run's, to place batches between epochs; inferred from the data when None.
    """
    frame = curve_frame(metrics, steps_per_epoch)
    frame = frame[frame["metric"] == metric].copy()
    frame["split_label"] = frame["split"].map(labels.split_label)
    frame["phase_label"] = frame["phase"].map(labels.phase_label)
    starts = phase_starts(metrics)
    starts["phase"] = starts["phase"].map(labels.phase_label)
    spec = _from_template(("curve", metric, repr(labels)), lambda: _curve_chart(metric, labels))
    return {**spec, "datasets": {CURVE_DATA: frame, PHASES_DATA: starts}}


CURVE_DATA, PHASES_DATA, CURVES_DATA = "curve", "phases", "curves"
_templates: dict[tuple[Any, ...], dict[str, Any]] = {}
_TEMPLATES_KEPT = 256


def _from_template(key: tuple[Any, ...], chart: Callable[[], alt.TopLevelMixin]) -> dict[str, Any]:
    """A copy of the Vega-Lite spec of `chart()`, made (and checked against the schema) once per `key`."""
    if key not in _templates:
        if len(_templates) >= _TEMPLATES_KEPT:
            _templates.clear()
        spec = chart().to_dict()
        spec.pop("config", None)  # Altair's default theme's 300-px view; Streamlit applies its own theme
        _templates[key] = spec
    return copy.deepcopy(_templates[key])  # a few kilobytes; the template stays as made


def _curve_chart(metric: str, labels: ChartLabels) -> alt.LayerChart:
    x = alt.X("x:Q", title=labels.epoch, scale=alt.Scale(domainMin=0), axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("value:Q", title=labels.metric_label(metric), scale=_metric_scale(metric))
    # Train and validation differ in colour and in dash; both channels share one field, so one legend.
    splits = [labels.train, labels.val]
    colours = alt.Scale(domain=splits, range=[TRAIN_COLOUR, VAL_LINE_COLOUR])
    # The legend draws each split as a short line in its colour and dash: a filled point outlined with a
    # dash (the layers' merged symbol) looked broken.
    legend = alt.Legend(symbolType="stroke", symbolStrokeWidth=2.5, symbolSize=300)
    colour = alt.Color("split_label:N", title=None, scale=colours, legend=legend)
    dash = alt.StrokeDash(
        "split_label:N", title=None, scale=alt.Scale(domain=splits, range=[SOLID, DASHED]), legend=legend
    )
    tooltip = [
        alt.Tooltip("split_label:N", title=labels.split),
        alt.Tooltip("epoch:Q", title=labels.epoch),
        alt.Tooltip("value:Q", title=labels.metric_label(metric), format=".4f"),
        alt.Tooltip("phase_label:N", title=labels.phase),
    ]
    base = alt.Chart(alt.NamedData(name=CURVE_DATA))
    per_batch = (
        base.transform_filter(alt.datum.kind == "batch")
        .mark_line(strokeWidth=1, opacity=0.45, color=TRAIN_COLOUR)
        .encode(x=x, y=y)
    )
    per_epoch = base.transform_filter(alt.datum.kind == "epoch")
    lines = per_epoch.mark_line(strokeWidth=2.5).encode(x=x, y=y, color=colour, strokeDash=dash)
    points = per_epoch.mark_point(filled=True, size=50).encode(x=x, y=y, color=colour, tooltip=tooltip)
    title = alt.Title(labels.metric_label(metric), subtitle=labels.batch_note)
    phases = alt.Chart(alt.NamedData(name=PHASES_DATA)).encode(x="x:Q")
    return alt.layer(per_batch, lines, points, _phase_rules(phases)).properties(title=title, height=280)


def phase_starts(metrics: pd.DataFrame) -> pd.DataFrame:
    """Where each phase after the first begins (x in epochs), e.g. fine-tuning after transfer."""
    epochs = metrics[metrics["kind"] == "epoch"]
    firsts = epochs.groupby("phase", sort=False)["epoch"].min().sort_values()
    return pd.DataFrame({"x": (firsts.iloc[1:] - 1).astype(float).to_numpy(), "phase": firsts.index[1:]})


def _phase_rules(base: alt.Chart) -> alt.LayerChart:
    """A dotted rule, named, where each phase after the first begins (`phase_starts`)."""
    rule = base.mark_rule(color="#6b7280", strokeDash=[2, 2])
    text = base.mark_text(align="left", baseline="top", dx=4, dy=4, color="#6b7280", fontSize=11).encode(
        text="phase:N", y=alt.value(0)
    )
    return alt.layer(rule, text)


def compare_curve(
    curves: Mapping[str, pd.DataFrame],
    metric: str,
    labels: ChartLabels = ChartLabels(),
) -> dict[str, Any]:
    """Per-epoch loss or accuracy of several runs overlaid: a colour per run, a dash per split.

    Returns a Vega-Lite spec for `st.vega_lite_chart`, its data as a DataFrame under `datasets`; as
    for `training_curve`, the Altair chart and its schema check are made once per metric, wording and
    set of runs (`_from_template`), not on every rerun of the Compare page.
    curves: run label -> that run's metrics (`tlcore.metrics_log.read_metrics`).
    """
    parts = []
    for run_label, metrics in curves.items():
        frame = _epoch_points(metrics, metric)
        frame["run"] = run_label
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True) if parts else _epoch_points(pd.DataFrame(), metric)
    if "run" not in frame:
        frame["run"] = pd.Series(dtype=str)
    frame["split_label"] = frame["split"].map(labels.split_label)
    runs = list(curves)
    spec = _from_template(("compare", metric, repr(labels), *runs), lambda: _compare_chart(metric, labels, runs))
    return {**spec, "datasets": {CURVES_DATA: frame}}


def _epoch_points(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`curve_frame`'s epoch rows of one metric (train and validation), without its per-batch rows."""
    if metrics.empty:
        return pd.DataFrame(columns=["x", "metric", "split", "kind", "value", "phase", "epoch"])
    epochs = metrics[metrics["kind"] == "epoch"]
    frame = pd.concat(
        [
            _points(epochs, epochs["epoch"], metric, "train", "epoch", metric),
            _points(epochs, epochs["epoch"], metric, "val", "epoch", f"val_{metric}"),
        ],
        ignore_index=True,
    ).dropna(subset=["value"])
    frame["x"] = frame["x"].astype(float)
    frame["value"] = frame["value"].astype(float)
    return frame


def _compare_chart(metric: str, labels: ChartLabels, runs: list[str]) -> alt.LayerChart:
    encoding = {
        "x": alt.X("x:Q", title=labels.epoch, axis=alt.Axis(tickMinStep=1, format="d")),
        "y": alt.Y("value:Q", title=labels.metric_label(metric), scale=_metric_scale(metric)),
        # Long names are shortened in the middle, not at the end: names made from run ids share a long
        # beginning (the date) and differ at the end (tooltips and the table give the whole name).
        "color": alt.Color(
            "run:N",
            title=labels.run,
            scale=alt.Scale(domain=runs, range=RUN_COLOURS),
            legend=alt.Legend(labelExpr=LEGEND_NAME_EXPR, labelLimit=220),
        ),
        "detail": alt.Detail("split_label:N"),
    }
    tooltip = [
        alt.Tooltip("run:N", title=labels.run),
        alt.Tooltip("split_label:N", title=labels.split),
        alt.Tooltip("epoch:Q", title=labels.epoch),
        alt.Tooltip("value:Q", title=labels.metric_label(metric), format=".4f"),
    ]
    base = alt.Chart(alt.NamedData(name=CURVES_DATA))
    lines = base.mark_line(strokeWidth=2).encode(
        **encoding,
        strokeDash=alt.StrokeDash(
            "split_label:N",
            title=labels.split,
            scale=alt.Scale(domain=[labels.train, labels.val], range=[SOLID, DASHED]),
        ),
    )
    points = base.mark_point(filled=True, size=40).encode(**encoding, tooltip=tooltip)
    return alt.layer(lines, points).properties(title=labels.metric_label(metric), height=300)


def _metric_scale(metric: str) -> alt.Scale:
    return alt.Scale(domain=[0, 1]) if metric == "accuracy" else alt.Scale(zero=True)


def strategy_blocks(strategy: str, base_blocks: int = 5, finetune_frozen: int = 3) -> pd.DataFrame:
    """A schematic network for `strategy`: input, `base_blocks` blocks of the base, the new head.

    Columns: `position`, `part` ("input"/"base"/"head"), `block` (1-based for the base),
    `state` ("input", "frozen", "learns_pretrained" or "learns_random"). Fine-tuning freezes the
    first `finetune_frozen` blocks; transfer learning freezes them all; from scratch everything
    learns from random weights. The head is always new, so it always starts random.
    """
    rows = [{"position": 0, "part": "input", "block": 0, "state": "input"}]
    strategy_rules = rules(strategy)
    for block in range(1, base_blocks + 1):
        if not strategy_rules.pretrained:
            state = "learns_random"
        elif strategy_rules.frozen_count(finetune_frozen, base_blocks) >= block:
            state = "frozen"
        else:
            state = "learns_pretrained"
        rows.append({"position": block, "part": "base", "block": block, "state": state})
    rows.append({"position": base_blocks + 1, "part": "head", "block": 0, "state": "learns_random"})
    return pd.DataFrame(rows)


def network_diagram(strategy: str, labels: ChartLabels = ChartLabels()) -> alt.LayerChart:
    """One row of boxes (input, base blocks, head), frozen ones shaded grey, learning ones coloured."""
    frame = strategy_blocks(strategy)
    frame["text"] = [
        labels.input if part == "input" else labels.head if part == "head" else labels.block.format(n=block)
        for part, block in zip(frame["part"], frame["block"], strict=True)
    ]
    state_labels = {
        "input": labels.input,
        "frozen": labels.frozen,
        "learns_pretrained": labels.learns_pretrained,
        "learns_random": labels.learns_random,
    }
    frame["state_label"] = frame["state"].map(state_labels)
    colour = alt.Color(
        "state_label:N",
        title=None,
        scale=alt.Scale(
            domain=[labels.frozen, labels.learns_pretrained, labels.learns_random, labels.input],
            range=[FROZEN_COLOUR, PRETRAINED_COLOUR, RANDOM_COLOUR, "#ffffff"],
        ),
        # One entry a row, never cut: the legend's words are longer in some languages than in others.
        legend=alt.Legend(
            orient="bottom",
            direction="vertical",
            labelLimit=0,
            symbolStrokeWidth=0,
            symbolSize=150,
            values=[labels.frozen, labels.learns_pretrained, labels.learns_random],
        ),
    )
    frame["row"] = strategy
    base = alt.Chart(frame).encode(x=alt.X("position:O", axis=None), y=alt.Y("row:N", axis=None))
    boxes = base.mark_rect(stroke="#4b5563", strokeWidth=1, cornerRadius=4).encode(
        color=colour, tooltip=[alt.Tooltip("text:N", title=" "), alt.Tooltip("state_label:N", title=" ")]
    )
    text = base.mark_text(fontSize=11, color="#111827").encode(text="text:N")
    return alt.layer(boxes, text).properties(height=100)


def layer_strip(table: pd.DataFrame, titles: Mapping[str, str] | None = None) -> alt.Chart:
    """Every layer of a model as one thin bar, input side first, green if it learns and grey if frozen.

    The layer table shows a dozen rows at a time; this strip shows the whole network at once, so moving
    the frozen-layers slider visibly moves the boundary wherever it is.
    table: `tlcore.models.layer_table(...)` (columns `index`, `part`, `name`, `type`, `trainable`, ...).
    titles: tooltip titles for `index`, `part`, `name`, `type` and `trainable` (the table's column labels).
    """
    titles = {"index": "#", "part": "part", "name": "name", "type": "type", "trainable": "learns", **(titles or {})}
    frame = table[["index", "part", "name", "type", "trainable"]].copy()
    frame["index"] = frame["index"].astype("Float64")  # the preprocessing row has none
    frame["trainable"] = frame["trainable"].astype(bool)
    frame["state"] = frame["trainable"].map({True: "learns", False: "frozen"})
    frame["position"] = range(len(frame))
    frame["end"] = frame["position"] + 1
    height = 24
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("position:Q", axis=None, scale=alt.Scale(domain=[0, len(frame)], nice=False, zero=True)),
            x2="end:Q",
            y=alt.value(0),
            y2=alt.value(height),
            color=alt.Color(
                "state:N",
                legend=None,
                scale=alt.Scale(domain=["learns", "frozen"], range=[LEARNS_COLOUR, FROZEN_COLOUR]),
            ),
            tooltip=[
                alt.Tooltip(f"{column}:{'Q' if column == 'index' else 'N'}", title=titles[column])
                for column in ("index", "part", "name", "type", "trainable")
            ],
        )
        .properties(height=height)
    )


# ---------------------------------------------------------------------------------------------
# A study's charts. Each takes `ui.tables.study_rows(...)` (one row per member: `member`, `arm`,
# `strategy`, `two_phase`, `frozen_layers`, `fraction`, `train_images`, `best_val_accuracy`,
# `train_seconds`, `winner`) or members' metrics, and the majority-class baseline, drawn as a
# dashed line so every accuracy reads against it.

BASELINE_COLOUR = "#6b7280"


def headline_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The members on the most data that have an accuracy: what a plain study compares."""
    if rows.empty:
        return rows
    done = rows[rows["best_val_accuracy"].notna()]
    return done[done["fraction"] == rows["fraction"].max()]


def frozen_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The points of `accuracy_by_frozen`: one per member on the most data, in frozen-layer order.

    `line` is True for the single-phase pretrained members (fine-tuning and transfer), which the chart
    joins: together they are the frozen-layers slider's effect. From scratch and the two-phase recipe
    stand apart as points.
    """
    frame = headline_rows(rows).sort_values(["frozen_layers", "two_phase"]).copy()
    frame["line"] = frame["strategy"].isin(["transfer", "finetune"]) & ~frame["two_phase"].astype(bool)
    return frame.reset_index(drop=True)


def _baseline_rule(baseline: float | None, labels: ChartLabels) -> alt.LayerChart:
    frame = pd.DataFrame({"y": [] if baseline is None else [baseline], "text": labels.baseline})
    base = alt.Chart(frame).encode(y="y:Q")
    rule = base.mark_rule(color=BASELINE_COLOUR, strokeDash=[6, 4], strokeWidth=1.5)
    text = base.mark_text(align="left", baseline="bottom", dx=4, dy=-2, color=BASELINE_COLOUR, fontSize=11).encode(
        text="text:N", x=alt.value(0)
    )
    return alt.layer(rule, text)


# Streamlit fits a chart's title, axes and legend into its `height`: a legend below would take the plot's
# place, so the study's charts are drawn full width with their legend on the right, names whole.
MEMBER_LEGEND = alt.Legend(orient="right", labelLimit=0)


def _member_colour(rows: pd.DataFrame, field: str, labels: ChartLabels) -> alt.Color:
    """One colour per member (or arm), the same in every chart: assigned in the members' order over all of
    `rows` on the most data, whichever of them a chart draws."""
    on_most_data = rows if field == "arm" else rows[rows["fraction"] == rows["fraction"].max()]
    domain = list(dict.fromkeys(on_most_data[field]))
    return alt.Color(
        f"{field}:N", title=labels.member, scale=alt.Scale(domain=domain, range=RUN_COLOURS), legend=MEMBER_LEGEND
    )


def _member_tooltip(labels: ChartLabels) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("member:N", title=labels.member),
        alt.Tooltip("best_val_accuracy:Q", title=labels.best_accuracy, format=".1%"),
        alt.Tooltip("frozen_layers:Q", title=labels.frozen_layers),
        alt.Tooltip("train_seconds:Q", title=labels.seconds, format=".0f"),
    ]


def accuracy_by_frozen(
    rows: pd.DataFrame, baseline: float | None, labels: ChartLabels = ChartLabels()
) -> alt.LayerChart:
    """Best validation accuracy against frozen layers: the effect of the frozen-layers slider in one picture.

    From scratch sits at 0 frozen layers, transfer learning at all of them; the winner's point is ringed.
    """
    frame = frozen_frame(rows)
    x = alt.X(
        "frozen_layers:Q",
        title=labels.frozen_layers,
        scale=alt.Scale(domainMin=0),
        axis=alt.Axis(tickMinStep=1, format="d"),
    )
    y = alt.Y(
        "best_val_accuracy:Q", title=labels.best_accuracy, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")
    )
    base = alt.Chart(frame)
    line = base.transform_filter(alt.datum.line).mark_line(color="#9ca3af", strokeWidth=2).encode(x=x, y=y)
    points = base.mark_point(filled=True, size=120).encode(
        x=x, y=y, color=_member_colour(rows, "member", labels), tooltip=_member_tooltip(labels)
    )
    ring = base.transform_filter(alt.datum.winner).mark_point(size=420, strokeWidth=2, color="#111827").encode(x=x, y=y)
    return alt.layer(line, points, ring, _baseline_rule(baseline, labels)).properties(
        title=labels.by_frozen_title, height=300
    )


def accuracy_by_time(rows: pd.DataFrame, baseline: float | None, labels: ChartLabels = ChartLabels()) -> alt.LayerChart:
    """Best validation accuracy against training time (log scale): the cost of each choice."""
    frame = headline_rows(rows)
    frame = frame[frame["train_seconds"].notna() & (frame["train_seconds"] > 0)].reset_index(drop=True)
    x = alt.X("train_seconds:Q", title=labels.seconds, scale=alt.Scale(type="log"))
    y = alt.Y(
        "best_val_accuracy:Q", title=labels.best_accuracy, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")
    )
    base = alt.Chart(frame)
    points = base.mark_point(filled=True, size=120).encode(
        x=x, y=y, color=_member_colour(rows, "member", labels), tooltip=_member_tooltip(labels)
    )
    ring = base.transform_filter(alt.datum.winner).mark_point(size=420, strokeWidth=2, color="#111827").encode(x=x, y=y)
    return alt.layer(points, ring, _baseline_rule(baseline, labels)).properties(title=labels.by_time_title, height=300)


def study_curve_frame(curves: Mapping[str, pd.DataFrame], x: str = "epoch") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation accuracy per epoch of each member, and where each two-phase member's second phase begins.

    curves: member label -> its run's metrics (`tlcore.metrics_log.read_metrics`).
    x: `"epoch"` (epochs, from 1) or `"time"` (seconds since the run started training, at each epoch's end).
    Returns the points (`member`, `x`, `epoch`, `phase`, `value`) and the boundaries (`member`, `x`, `phase`):
    against epochs a boundary sits after the first phase's last epoch; against time, at that epoch's end.
    """
    points, boundaries = [], []
    for member, metrics in curves.items():
        epochs = metrics[(metrics["kind"] == "epoch") & metrics["val_accuracy"].notna()]
        if epochs.empty:
            continue
        xs = epochs["epoch"] if x == "epoch" else epochs["elapsed"]
        points.append(
            pd.DataFrame(
                {
                    "member": member,
                    "x": xs.astype(float).to_numpy(),
                    "epoch": epochs["epoch"].to_numpy(),
                    "phase": epochs["phase"].to_numpy(),
                    "value": epochs["val_accuracy"].astype(float).to_numpy(),
                }
            )
        )
        phases = list(dict.fromkeys(epochs["phase"]))
        for previous, phase in zip(phases, phases[1:], strict=False):
            last = epochs[epochs["phase"] == previous].iloc[-1]
            at = float(last["epoch"]) if x == "epoch" else float(last["elapsed"])
            boundaries.append({"member": member, "x": at, "phase": phase})
    frame = (
        pd.concat(points, ignore_index=True)
        if points
        else pd.DataFrame(columns=["member", "x", "epoch", "phase", "value"])
    )
    return frame, pd.DataFrame(boundaries, columns=["member", "x", "phase"])


def study_curves(
    curves: Mapping[str, pd.DataFrame],
    baseline: float | None,
    x: str = "epoch",
    labels: ChartLabels = ChartLabels(),
) -> alt.LayerChart:
    """Validation accuracy of every member against epochs or wall-clock time, one colour a member, the
    two-phase boundary as a dotted line named after the phase it starts, and the baseline."""
    frame, boundaries = study_curve_frame(curves, x)
    frame["phase_label"] = frame["phase"].map(labels.phase_label)
    boundaries["phase"] = boundaries["phase"].map(labels.phase_label)
    title = labels.epoch if x == "epoch" else labels.wall_clock
    encoding = {
        "x": alt.X("x:Q", title=title, axis=alt.Axis(tickMinStep=1, format="d") if x == "epoch" else alt.Axis()),
        "y": alt.Y("value:Q", title=labels.val_accuracy, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        "color": alt.Color(
            "member:N",
            title=labels.member,
            scale=alt.Scale(domain=list(curves), range=RUN_COLOURS),
            legend=MEMBER_LEGEND,
        ),
    }
    tooltip = [
        alt.Tooltip("member:N", title=labels.member),
        alt.Tooltip("epoch:Q", title=labels.epoch),
        alt.Tooltip("phase_label:N", title=labels.phase),
        alt.Tooltip("value:Q", title=labels.val_accuracy, format=".1%"),
    ]
    base = alt.Chart(frame)
    lines = base.mark_line(strokeWidth=2).encode(**encoding)
    points = base.mark_point(filled=True, size=40).encode(**encoding, tooltip=tooltip)
    marks = alt.Chart(boundaries).encode(x="x:Q")
    rule = marks.mark_rule(strokeDash=[2, 2], color=BASELINE_COLOUR)
    text = marks.mark_text(align="left", baseline="top", dx=4, dy=4, color=BASELINE_COLOUR, fontSize=11).encode(
        text="phase:N", y=alt.value(0)
    )
    return alt.layer(lines, points, rule, text, _baseline_rule(baseline, labels)).properties(
        title=labels.curves_title, height=320
    )


def data_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The points of `accuracy_by_data`: every member with an accuracy, by arm, in training-set order."""
    done = rows[rows["best_val_accuracy"].notna()]
    return done.sort_values(["train_images"]).reset_index(drop=True)


def accuracy_by_data(rows: pd.DataFrame, baseline: float | None, labels: ChartLabels = ChartLabels()) -> alt.LayerChart:
    """For a data-efficiency study: best validation accuracy against training-set size, one line per strategy."""
    frame = data_frame(rows)
    encoding = {
        "x": alt.X("train_images:Q", title=labels.training_images, scale=alt.Scale(type="log")),
        "y": alt.Y(
            "best_val_accuracy:Q", title=labels.best_accuracy, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")
        ),
        "color": _member_colour(rows, "arm", labels),
    }
    tooltip = [
        alt.Tooltip("arm:N", title=labels.member),
        alt.Tooltip("train_images:Q", title=labels.training_images),
        alt.Tooltip("best_val_accuracy:Q", title=labels.best_accuracy, format=".1%"),
    ]
    base = alt.Chart(frame)
    lines = base.mark_line(strokeWidth=2).encode(**encoding)
    points = base.mark_point(filled=True, size=60).encode(**encoding, tooltip=tooltip)
    return alt.layer(lines, points, _baseline_rule(baseline, labels)).properties(title=labels.by_data_title, height=320)
