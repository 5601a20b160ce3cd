"""The sidebar every page shares: language and workspace above the page, what is chosen so far below.

The summary is drawn after the page has run, so it already shows what the page just chose.
"""

from __future__ import annotations

import streamlit as st

from tlcore import runs
from tlcore.datasets import Dataset
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from ui import i18n, names, state
from ui.i18n import t


def controls(workspace: Workspace) -> None:
    """The language switch and the workspace path."""
    with st.sidebar:
        st.segmented_control(
            t("sidebar.language"),
            options=list(i18n.LANGUAGES),
            format_func=i18n.LANGUAGES.get,
            key=state.LANG,
            required=True,
            on_change=state.reword_choices,
        )
        st.caption(t("sidebar.workspace"))
        st.code(str(workspace.root), language=None, wrap_lines=True)


def summary(workspace: Workspace) -> None:
    """The current dataset, model and run (names as text: `ui.names`; whole in a tooltip when shortened)."""
    dataset, run = state.current_dataset(workspace), _current_run(workspace)
    with st.sidebar:
        st.markdown(f"**{t('sidebar.current')}**")
        st.markdown(
            "\n".join(
                f"- {label}: {value}"
                for label, value in (
                    (t("sidebar.dataset"), _dataset_summary(dataset)),
                    (t("sidebar.model"), _model_summary()),
                    (t("sidebar.run"), _run_summary(run)),
                )
            ),
            help=_whole_names(dataset, run),
        )
        st.caption(t("sidebar.address_note"))


def _whole_names(dataset: Dataset | None, run: runs.RunInfo | None) -> str | None:
    """The whole names of the current dataset and run, when the summary had to shorten one."""
    shortened = [item.name for item in (dataset, run) if item is not None and names.is_shortened(item.name)]
    return "  \n".join(names.tooltip(name) for name in shortened) or None


def _current_run(workspace: Workspace) -> runs.RunInfo | None:
    run_id = st.session_state.get(state.RUN_ID)
    if not run_id:
        return None
    try:
        return runs.load_run(workspace, run_id)
    except TLCoreError:
        return None


def _dataset_summary(dataset: Dataset | None) -> str:
    if dataset is None:
        return t("sidebar.none")
    return t("sidebar.dataset_value", name=names.md(dataset.name), classes=len(dataset.classes))


def _model_summary() -> str:
    spec = st.session_state.get(state.MODEL_SPEC)
    return t("sidebar.none") if spec is None else i18n.model_summary(spec)


def _run_summary(info: runs.RunInfo | None) -> str:
    if info is None:
        return t("sidebar.none")
    return f"{names.md(info.name)} ({i18n.status_label(info.status)})"
