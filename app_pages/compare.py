"""Compare: runs side by side (overlaid curves and a summary table); rename and delete runs."""

import streamlit as st

from tlcore import runs
from tlcore.errors import TLCoreError
from tlcore.runs import RunInfo
from ui import cached, charts, i18n, names, state, tables
from ui.i18n import t


def flash(kind: str, text: str) -> None:
    """Keep a message from a button callback to show on the rerun that follows it."""
    st.session_state[state.COMPARE_FLASH] = (kind, text)


def rename_target() -> None:
    try:
        info = runs.rename(workspace, st.session_state[state.COMPARE_TARGET], st.session_state[state.COMPARE_NEW_NAME])
    except TLCoreError as exc:
        flash("error", i18n.error_text(exc))
    else:
        flash("success", t("compare.renamed", name=names.md(info.name)))
        # Every run selector shows the new name at once: a selector still holding the old label would
        # hand its change handler a name that no longer exists.
        state.reword_choices()


def ask_delete() -> None:
    st.session_state[state.COMPARE_PENDING_DELETE] = st.session_state[state.COMPARE_TARGET]


def cancel_delete() -> None:
    st.session_state[state.COMPARE_PENDING_DELETE] = None


def delete_pending(name: str) -> None:
    run_id = st.session_state[state.COMPARE_PENDING_DELETE]
    st.session_state[state.COMPARE_PENDING_DELETE] = None
    try:
        runs.delete(workspace, run_id)
    except TLCoreError as exc:
        flash("error", i18n.error_text(exc))
    else:
        flash("success", t("compare.deleted", name=name))


def side_by_side(by_id: dict[str, RunInfo], labels: dict[str, str]) -> None:
    """The multiselect of runs, their overlaid curves and their summary table."""
    state.default(state.COMPARE_RUNS, list(by_id)[:3])
    st.session_state[state.COMPARE_RUNS] = [
        run_id for run_id in st.session_state[state.COMPARE_RUNS] if run_id in by_id
    ]
    chosen = st.multiselect(
        t("compare.runs"), list(by_id), format_func=labels.get, key=state.COMPARE_RUNS, persist_state="session"
    )
    if not chosen:
        return
    curves = {labels[run_id]: cached.metrics(workspace, run_id) for run_id in chosen}
    chart_labels = i18n.chart_labels()
    loss_col, accuracy_col = st.columns(2)
    loss_col.altair_chart(charts.compare_curve(curves, "loss", chart_labels), width="stretch")
    accuracy_col.altair_chart(charts.compare_curve(curves, "accuracy", chart_labels), width="stretch")
    st.dataframe(
        tables.run_table([by_id[run_id] for run_id in chosen]),
        column_config=tables.run_columns(),
        hide_index=True,
        placeholder="–",
    )


def target_name(by_id: dict[str, RunInfo]) -> str:
    """The name of the run chosen for renaming, as its field starts ("" if it has just gone)."""
    info = by_id.get(st.session_state.get(state.COMPARE_TARGET))
    return info.name if info is not None else ""


def manage(by_id: dict[str, RunInfo], labels: dict[str, str]) -> None:
    """Rename a run, or delete it after a confirmation."""
    st.subheader(t("compare.manage"))
    if st.session_state.get(state.COMPARE_TARGET) not in by_id:
        st.session_state[state.COMPARE_TARGET] = next(iter(by_id))
        st.session_state[state.COMPARE_NEW_NAME] = by_id[st.session_state[state.COMPARE_TARGET]].name
    target = by_id[
        st.selectbox(
            t("compare.target"),
            list(by_id),
            format_func=labels.get,
            key=state.COMPARE_TARGET,
            on_change=lambda: st.session_state.update({state.COMPARE_NEW_NAME: target_name(by_id)}),
        )
    ]
    name_col, rename_col, delete_col = st.columns([4, 1, 1], vertical_alignment="bottom")
    name_col.text_input(t("compare.new_name"), key=state.COMPARE_NEW_NAME, max_chars=200)
    rename_col.button(t("compare.rename"), on_click=rename_target, icon=":material/edit:")
    delete_col.button(
        t("compare.delete"),
        on_click=ask_delete,
        icon=":material/delete:",
        disabled=target.active,
        help=t("compare.delete_active_help") if target.active else None,
    )
    pending = by_id.get(st.session_state.get(state.COMPARE_PENDING_DELETE))
    if pending is not None:
        st.warning(t("compare.confirm_delete", name=names.md(pending.name)))
        yes_col, no_col, _ = st.columns([1, 1, 4])
        yes_col.button(
            t("compare.confirm_yes"), on_click=delete_pending, args=(names.md(pending.name),), type="primary"
        )
        no_col.button(t("compare.confirm_no"), on_click=cancel_delete)


workspace = state.workspace()
st.title(t("compare.title"))
if message := st.session_state.pop(state.COMPARE_FLASH, None):
    (st.success if message[0] == "success" else st.error)(message[1])

all_runs = runs.list_runs(workspace)
if not all_runs:
    st.info(t("compare.no_runs"))
else:
    runs_by_id = {info.id: info for info in all_runs}
    run_labels = i18n.run_labels(all_runs)
    side_by_side(runs_by_id, run_labels)
    manage(runs_by_id, run_labels)
