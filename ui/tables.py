"""Tables drawn with `st.dataframe`: styling and column settings built from tlcore's DataFrames."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from tlcore.runs import RunInfo
from ui import i18n
from ui.i18n import t

TRAINABLE_BACKGROUND = "#dcfce7"
FROZEN_BACKGROUND = "#e5e7eb"
FROZEN_TEXT = "#6b7280"


def styled_layer_table(table: pd.DataFrame) -> Styler:
    """`models.layer_table` with trainable rows green and frozen rows grey."""

    def row_style(row: pd.Series) -> list[str]:
        if row["trainable"]:
            css = f"background-color: {TRAINABLE_BACKGROUND}"
        else:
            css = f"background-color: {FROZEN_BACKGROUND}; color: {FROZEN_TEXT}"
        return [css] * len(row)

    return table.style.apply(row_style, axis=1)


def layer_rows(table: pd.DataFrame) -> pd.DataFrame:
    """`models.layer_table` with its `part` column in words of the session's language."""
    parts = {
        "preprocessing": t("layers.part_preprocessing"),
        "base": t("layers.part_base"),
        "head": t("layers.part_head"),
    }
    return table.assign(part=table["part"].map(parts))


def layer_titles() -> dict[str, str]:
    """The layer table's column titles, for the layer strip's tooltips."""
    return {
        "index": t("layers.index"),
        "part": t("layers.part"),
        "name": t("layers.name"),
        "type": t("layers.type"),
        "trainable": t("layers.trainable"),
    }


def layer_columns() -> dict[str, Any]:
    """Column labels and formats for the layer table; the names get room enough to be read whole."""
    return {
        "index": st.column_config.NumberColumn(t("layers.index"), help=t("layers.index_help"), width="small"),
        "part": st.column_config.TextColumn(t("layers.part"), width="small"),
        "name": st.column_config.TextColumn(t("layers.name"), width="large"),
        "type": st.column_config.TextColumn(t("layers.type")),
        "output_shape": st.column_config.TextColumn(t("layers.output_shape")),
        "params": st.column_config.NumberColumn(t("layers.params"), format="localized"),
        "trainable_params": st.column_config.NumberColumn(t("layers.trainable_params"), format="localized"),
        "trainable": st.column_config.CheckboxColumn(t("layers.trainable"), width="small"),
    }


def run_table(infos: list[RunInfo]) -> pd.DataFrame:
    """One row per run for the Compare page, in the units people read (seconds, fractions)."""
    rows = []
    for info in infos:
        spec = info.spec
        if spec is None:
            strategy = None
        elif spec.two_phase:
            strategy = f"{i18n.strategy_label('transfer')} → {i18n.strategy_label('finetune')}"
        else:
            strategy = i18n.strategy_label(spec.model.strategy)
        rows.append(
            {
                "name": info.name,
                "backbone": spec.model.backbone if spec else None,
                "strategy": strategy,
                "path": i18n.path_label(info.path) if info.path else None,
                "frozen_layers": info.frozen_layers,
                "trainable_params": info.trainable_params,
                "best_val_accuracy": info.best_val_accuracy,
                "best_epoch": info.best_epoch,
                "seconds_per_epoch": info.seconds_per_epoch,
                "total_seconds": info.elapsed_seconds,
                "status": i18n.status_label(info.status),
                "id": info.id,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "name",
            "backbone",
            "strategy",
            "path",
            "frozen_layers",
            "trainable_params",
            "best_val_accuracy",
            "best_epoch",
            "seconds_per_epoch",
            "total_seconds",
            "status",
            "id",
        ],
    )


def run_columns() -> dict[str, Any]:
    """Column labels and formats for the run table."""
    return {
        "name": st.column_config.TextColumn(t("runs.name")),
        "backbone": st.column_config.TextColumn(t("runs.backbone")),
        "strategy": st.column_config.TextColumn(t("runs.strategy")),
        "path": st.column_config.TextColumn(t("runs.path"), help=t("runs.path_help")),
        "frozen_layers": st.column_config.NumberColumn(t("runs.frozen_layers")),
        "trainable_params": st.column_config.NumberColumn(t("runs.trainable_params"), format="localized"),
        "best_val_accuracy": st.column_config.NumberColumn(t("runs.best_val_accuracy"), format="percent"),
        "best_epoch": st.column_config.NumberColumn(t("runs.best_epoch")),
        "seconds_per_epoch": st.column_config.NumberColumn(t("runs.seconds_per_epoch"), format="%.1f s"),
        "total_seconds": st.column_config.NumberColumn(t("runs.total_seconds"), format="%.0f s"),
        "status": st.column_config.TextColumn(t("runs.status")),
        "id": st.column_config.TextColumn(t("runs.id")),
    }
