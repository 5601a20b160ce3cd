"""Charts and pictures of the Evaluate page: the confusion matrix, top-k probabilities, Grad-CAM overlays.

Plain functions from what tlcore returns to Altair charts (or image arrays), like `ui.charts`, so they
can be tested without a browser; the page only draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

HEAT_SCHEME = "blues"
BAR_COLOUR = "#2563eb"
TOP_BAR_COLOUR = "#16a34a"
OVERLAY_OPACITY = 0.5


@dataclass(frozen=True)
class EvalChartLabels:
    """The words the evaluation charts show; the page passes translated ones."""

    true: str = "true class"
    predicted: str = "predicted class"
    images: str = "images"
    share: str = "share of the true class"
    class_: str = "class"
    probability: str = "probability"


def confusion_heatmap(
    confusion: pd.DataFrame, classes: Sequence[str], labels: EvalChartLabels = EvalChartLabels()
) -> alt.LayerChart:
    """The confusion matrix as a heatmap: rows true classes, columns predicted classes.

    confusion: `Evaluation.confusion_frame()`, columns `true`, `predicted`, `count`, every cell present.
    classes: the class order for both axes.
    Each cell is coloured by its share of its row (so a small class reads as clearly as a large one)
    and shows its count; the diagonal holds the correct predictions.
    """
    frame = confusion.copy()
    totals = frame.groupby("true")["count"].transform("sum")
    frame["share"] = (frame["count"] / totals.where(totals > 0, 1)).astype(float)
    order = list(classes)
    x = alt.X("predicted:N", sort=order, title=labels.predicted, axis=alt.Axis(labelAngle=-40))
    y = alt.Y("true:N", sort=order, title=labels.true)
    tooltip = [
        alt.Tooltip("true:N", title=labels.true),
        alt.Tooltip("predicted:N", title=labels.predicted),
        alt.Tooltip("count:Q", title=labels.images),
        alt.Tooltip("share:Q", title=labels.share, format=".0%"),
    ]
    base = alt.Chart(frame).encode(x=x, y=y)
    cells = base.mark_rect(stroke="white").encode(
        color=alt.Color(
            "share:Q",
            title=labels.share,
            scale=alt.Scale(scheme=HEAT_SCHEME, domain=[0, 1]),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=tooltip,
    )
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("count:Q"),
        color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("#1f2937")),
        tooltip=tooltip,
    )
    step = max(24, min(56, 480 // max(1, len(order))))
    return alt.layer(cells, text).properties(width=alt.Step(step), height=alt.Step(step))


def top_k_bars(top: Sequence[tuple[str, float]], labels: EvalChartLabels = EvalChartLabels()) -> alt.LayerChart:
    """Horizontal bars of the most probable classes, most probable on top and highlighted.

    top: `(class, probability)` pairs, most probable first (`Prediction.top(k)`).
    """
    frame = pd.DataFrame(
        [{"class": name, "probability": float(p), "rank": rank} for rank, (name, p) in enumerate(top, start=1)],
        columns=["class", "probability", "rank"],
    )
    y = alt.Y("class:N", sort=list(frame["class"]), title=None)
    x = alt.X("probability:Q", title=labels.probability, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"))
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=x,
            y=y,
            color=alt.condition(alt.datum.rank == 1, alt.value(TOP_BAR_COLOUR), alt.value(BAR_COLOUR)),
            tooltip=[
                alt.Tooltip("class:N", title=labels.class_),
                alt.Tooltip("probability:Q", title=labels.probability, format=".2%"),
            ],
        )
    )
    text = alt.Chart(frame).mark_text(align="left", dx=4).encode(x=x, y=y, text=alt.Text("probability:Q", format=".1%"))
    return alt.layer(bars, text).properties(height=alt.Step(26))


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """`image` (uint8, h×w×3) with a Grad-CAM map (float h×w in [0, 1]) laid over it in red.

    The red's opacity follows the map, so places the model ignored keep their own colours.
    """
    alpha = (np.clip(heat, 0.0, 1.0) * opacity)[..., None]
    red = np.array([220.0, 38.0, 38.0])
    blended = image.astype("float32") * (1 - alpha) + red * alpha
    return np.clip(np.rint(blended), 0, 255).astype("uint8")
