"""Tables drawn with `st.dataframe`: styling and column settings built from tlcore's DataFrames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from tlcore.datasets import stratified_rows
from tlcore.runs import RunInfo
from tlcore.study import StudyResult
from ui import i18n, names
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
    """Column labels and formats for the layer table; the names get room enough to be read whole, and the
    table still fits a 1400-pixel window with its last column (learns or not) in view."""
    return {
        "index": st.column_config.NumberColumn(t("layers.index"), help=t("layers.index_help"), width="small"),
        "part": st.column_config.TextColumn(t("layers.part")),
        "name": st.column_config.TextColumn(t("layers.name"), width="medium"),
        "type": st.column_config.TextColumn(t("layers.type")),
        "output_shape": st.column_config.TextColumn(t("layers.output_shape")),
        "params": st.column_config.NumberColumn(t("layers.params"), format="localized"),
        "trainable_params": st.column_config.NumberColumn(t("layers.trainable_params"), format="localized"),
        "trainable": st.column_config.CheckboxColumn(t("layers.trainable"), width="small"),
    }


def run_table(infos: list[RunInfo]) -> pd.DataFrame:
    """One row per run for the Compare page: its name, then its best validation accuracy, what it trained
    and what it cost; few columns, so none is cut off (the rest is in `run_details`)."""
    rows = [
        {
            "name": names.plain(info.name),
            "best_val_accuracy": info.best_val_accuracy,
            "strategy": _strategy_words(info),
            "frozen_layers": info.frozen_layers,
            "total_seconds": info.elapsed_seconds,
            "status": i18n.status_label(info.status),
        }
        for info in infos
    ]
    frame = pd.DataFrame(
        rows, columns=["name", "best_val_accuracy", "strategy", "frozen_layers", "total_seconds", "status"]
    )
    frame["frozen_layers"] = frame["frozen_layers"].astype("Int64")
    return frame


def run_details(infos: list[RunInfo]) -> pd.DataFrame:
    """The runs' details, for a second table: backbone, path, parameters that learned, best epoch, time per
    epoch, id."""
    rows = [
        {
            "name": names.plain(info.name),
            "backbone": info.spec.model.backbone if info.spec else None,
            "path": i18n.path_label(info.path) if info.path else None,
            "trainable_params": info.trainable_params,
            "best_epoch": info.best_epoch,
            "seconds_per_epoch": info.seconds_per_epoch,
            "id": info.id,
        }
        for info in infos
    ]
    frame = pd.DataFrame(
        rows,
        columns=["name", "backbone", "path", "trainable_params", "best_epoch", "seconds_per_epoch", "id"],
    )
    for column in ("trainable_params", "best_epoch"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _strategy_words(info: RunInfo) -> str | None:
    spec = info.spec
    if spec is None:
        return None
    if spec.two_phase:
        return f"{i18n.strategy_label('transfer')} → {i18n.strategy_label('finetune')}"
    return i18n.strategy_label(spec.model.strategy)


def run_columns() -> dict[str, Any]:
    """Column labels and formats for the run table."""
    return {
        "name": st.column_config.TextColumn(t("runs.name"), width="large"),
        "best_val_accuracy": st.column_config.NumberColumn(t("runs.best_val_accuracy"), format="percent"),
        "strategy": st.column_config.TextColumn(t("runs.strategy")),
        "frozen_layers": st.column_config.NumberColumn(t("runs.frozen_layers")),
        "total_seconds": st.column_config.NumberColumn(t("runs.total_seconds"), format=t("units.seconds_whole")),
        "status": st.column_config.TextColumn(t("runs.status")),
    }


def run_detail_columns() -> dict[str, Any]:
    """Column labels and formats for the runs' details."""
    return {
        "name": st.column_config.TextColumn(t("runs.name")),
        "backbone": st.column_config.TextColumn(t("runs.backbone")),
        "path": st.column_config.TextColumn(t("runs.path"), help=t("runs.path_help")),
        "trainable_params": st.column_config.NumberColumn(t("runs.trainable_params"), format="localized"),
        "best_epoch": st.column_config.NumberColumn(t("runs.best_epoch")),
        "seconds_per_epoch": st.column_config.NumberColumn(
            t("runs.seconds_per_epoch"), format=t("units.seconds_tenth")
        ),
        "id": st.column_config.TextColumn(t("runs.id")),
    }


WINNER_BACKGROUND = "#fef3c7"

STUDY_COLUMNS = ["member", "best_val_accuracy", "frozen_layers", "train_seconds", "train_images", "status"]
"""The study table's columns, few and narrow so that none is cut off at 1400 px in any language; the
details are in `study_details`."""


def study_rows(found: StudyResult, train_labels: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per member of a study, in the session's language: what its table and charts show.

    Columns: `member` (its name), `arm` (its name without the share of data: one line of the
    data-efficiency chart), `strategy`, `two_phase`, `frozen_layers`, `fraction`, `train_images`,
    `best_val_accuracy`, `train_seconds`, `status` (in words), `winner`, and for the details `run`,
    `best_epoch`, `epochs`, `seconds_per_epoch`, `feature_passes`, `path`.
    train_labels: the labels of the dataset's training images, to count each member's (None: unknown).
    """
    rows = []
    for result in found.members:
        member, info = result.member, result.info
        rows.append(
            {
                "member": names.plain(i18n.say(member.label(start=True)), 80),
                "arm": names.plain(i18n.say(replace(member, fraction=1.0).label(start=True)), 80),
                "strategy": str(member.strategy),
                "two_phase": member.two_phase,
                "frozen_layers": member.frozen_layers,
                "fraction": member.fraction,
                "train_images": len(stratified_rows(train_labels, member.fraction, found.study.options.seed))
                if train_labels is not None
                else None,
                "best_val_accuracy": result.best_val_accuracy,
                "train_seconds": result.train_seconds,
                "status": i18n.member_status_label(result.status),
                "winner": result is found.winner,
                "run": member.run,
                "best_epoch": info.best_epoch if info is not None else None,
                "epochs": info.total_epochs if info is not None else None,
                "seconds_per_epoch": info.seconds_per_epoch if info is not None else None,
                "feature_passes": result.feature_passes if info is not None else None,
                "path": i18n.path_label(info.path) if info is not None and info.path else None,
            }
        )
    columns = [
        "member",
        "arm",
        "strategy",
        "two_phase",
        "frozen_layers",
        "fraction",
        "train_images",
        "best_val_accuracy",
        "train_seconds",
        "status",
        "winner",
        "run",
        "best_epoch",
        "epochs",
        "seconds_per_epoch",
        "feature_passes",
        "path",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("frozen_layers", "train_images", "best_epoch", "epochs", "feature_passes"):
        frame[column] = frame[column].astype("Int64")
    return frame


def study_table(rows: pd.DataFrame, data_efficiency: bool) -> Styler:
    """The study's table (`STUDY_COLUMNS`; training images only for a data-efficiency study), the winner's
    row highlighted."""
    shown = rows[[column for column in STUDY_COLUMNS if data_efficiency or column != "train_images"]]

    def row_style(row: pd.Series) -> list[str]:
        css = f"background-color: {WINNER_BACKGROUND}; font-weight: bold" if rows.loc[row.name, "winner"] else ""
        return [css] * len(row)

    return shown.style.apply(row_style, axis=1)


def study_columns() -> dict[str, Any]:
    """Labels, formats and tooltips of the study table."""
    return {
        "member": st.column_config.TextColumn(t("study.col_member"), width="large"),
        "best_val_accuracy": st.column_config.NumberColumn(
            t("study.col_accuracy"), help=t("study.col_accuracy_help"), format="percent", width="small"
        ),
        "frozen_layers": st.column_config.NumberColumn(
            t("study.col_frozen"), help=t("study.col_frozen_help"), width="small"
        ),
        "train_seconds": st.column_config.NumberColumn(
            t("study.col_seconds"), help=t("study.col_seconds_help"), format=t("units.seconds_whole"), width="small"
        ),
        "train_images": st.column_config.NumberColumn(t("study.col_images"), width="small"),
        "status": st.column_config.TextColumn(t("study.col_status"), width="small"),
    }


def study_details(rows: pd.DataFrame) -> pd.DataFrame:
    """The members' details, for a second table: run id, epochs, time per epoch, feature passes, path."""
    return rows[["member", "best_epoch", "epochs", "seconds_per_epoch", "feature_passes", "path", "run"]]


def study_detail_columns() -> dict[str, Any]:
    return {
        "member": st.column_config.TextColumn(t("study.col_member")),
        "best_epoch": st.column_config.NumberColumn(t("runs.best_epoch")),
        "epochs": st.column_config.NumberColumn(t("study.col_epochs")),
        "seconds_per_epoch": st.column_config.NumberColumn(
            t("runs.seconds_per_epoch"), format=t("units.seconds_tenth")
        ),
        "feature_passes": st.column_config.NumberColumn(
            t("study.col_feature_passes"), help=t("study.col_feature_passes_help")
        ),
        "path": st.column_config.TextColumn(t("runs.path"), help=t("runs.path_help")),
        "run": st.column_config.TextColumn(t("runs.id")),
    }
