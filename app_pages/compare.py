"""Compare: for my data, which strategy won, by how much, and at what cost?

Choose what to compare: a study (one dataset and backbone under every strategy: its verdict, charts and
table; a Stop for the whole study while it trains) or the runs of one dataset (runs on different
datasets are never overlaid). "Start a study" starts one on the current dataset and model backbone
(`tlcore.study.start`): every member is a run with its own place in the queue, shown here as it trains.
Renaming and deleting runs stay at the bottom.
"""

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from tlcore import backbones, runs, study
from tlcore.datasets import Dataset
from tlcore.errors import TLCoreError
from tlcore.models import ModelSpec, rules
from tlcore.runs import RunInfo
from tlcore.spec import field_defaults
from tlcore.study import StudyOptions
from ui import cached, charts, i18n, names, state, tables
from ui.i18n import t

POLL_SECONDS = 1.0
KEEP = {"persist_state": "session"}


def flash(kind: str, text: str) -> None:
    """Keep a message from a button callback to show on the rerun that follows it."""
    st.session_state[state.COMPARE_FLASH] = (kind, text)


# ---------------------------------------------------------------------------------------------
# Starting a study


def study_weights(model_spec: ModelSpec) -> str:
    """The pretrained members' weights: the Model page's, unless it chose from scratch (random weights)."""
    return model_spec.weights if rules(model_spec.strategy).pretrained else "imagenet"


def study_options(model_spec: ModelSpec) -> StudyOptions:
    """The study the form's widgets describe."""
    return StudyOptions(
        backbone=model_spec.backbone,
        weights=study_weights(model_spec),
        image_size=model_spec.image_size,
        epochs=int(st.session_state[state.STUDY_EPOCHS]),
        depths=tuple(sorted(st.session_state[state.STUDY_DEPTHS])) or None,
        fractions=study.DATA_EFFICIENCY_FRACTIONS if st.session_state[state.STUDY_DATA_EFFICIENCY] else (1.0,),
        scratch=bool(st.session_state[state.STUDY_SCRATCH]),
        two_phase=bool(st.session_state[state.STUDY_TWO_PHASE]),
    )


def start_study(dataset_id: str, options: StudyOptions, structure: tuple[int, list[int]]) -> None:
    """Start's callback: start every member, then show the study."""
    try:
        planned = study.plan(workspace, dataset_id, options, structure)
        started = study.start(workspace, planned, i18n.language())
    except TLCoreError as exc:
        st.session_state[state.STUDY_REFUSED] = i18n.error_text(exc)
        return
    st.session_state[state.COMPARE_BY] = "study"
    st.session_state[state.COMPARE_STUDY] = started.id
    flash("success", t("study.started", runs=i18n.count("runs", len(started.members))))


def study_form(dataset: Dataset | None, model_spec: ModelSpec | None, expanded: bool) -> None:
    """The options of a new study on the current dataset and backbone, what it will train, and Start."""
    with st.expander(t("study.new"), expanded=expanded, icon=":material/science:"):
        st.caption(t("study.new_help"))
        if dataset is None:
            st.info(t("train.need_dataset"))
            st.page_link("app_pages/data.py", label=t("nav.data"), icon=":material/folder_open:")
            return
        if model_spec is None:
            st.info(t("train.need_model"))
            st.page_link("app_pages/model.py", label=t("nav.model"), icon=":material/account_tree:")
            return
        structure = cached.structure(model_spec)
        layers = structure.base_layers
        state.default(state.STUDY_EPOCHS, field_defaults(StudyOptions)["epochs"])
        if st.session_state.get(state.STUDY_DEPTHS_FOR) != model_spec.backbone:  # another base: its own boundaries
            st.session_state[state.STUDY_DEPTHS] = study.auto_depths(structure.boundaries, layers)
            st.session_state[state.STUDY_DEPTHS_FOR] = model_spec.backbone
        state.default(state.STUDY_SCRATCH, True)
        state.default(state.STUDY_TWO_PHASE, True)
        state.default(state.STUDY_DATA_EFFICIENCY, False)
        backbone = backbones.get_backbone(model_spec.backbone)
        weights = study_weights(model_spec)
        source = weights if weights in ("imagenet", "none") else "file"
        st.markdown(
            t(
                "study.summary",
                dataset=names.md(dataset.name),
                backbone=backbone.label,
                weights=i18n.weights_label(source),
            )
        )
        epochs_col, depths_col = st.columns([1, 3])
        epochs_col.number_input(t("study.epochs"), 1, 1000, key=state.STUDY_EPOCHS, help=t("study.epochs_help"), **KEEP)
        depths_col.multiselect(
            t("study.depths"),
            [b for b in structure.boundaries if b < layers],
            key=state.STUDY_DEPTHS,
            help=t("study.depths_help", layers=layers),
            placeholder=t("widget.choose"),
            **KEEP,
        )
        scratch_col, two_phase_col, data_col = st.columns(3)
        scratch_col.toggle(t("study.scratch"), key=state.STUDY_SCRATCH, **KEEP)
        two_phase_col.toggle(t("study.two_phase"), key=state.STUDY_TWO_PHASE, help=t("study.two_phase_help"), **KEEP)
        data_col.toggle(
            t("study.data_efficiency"), key=state.STUDY_DATA_EFFICIENCY, help=t("study.data_efficiency_help"), **KEEP
        )
        options = study_options(model_spec)
        planned = None
        try:
            planned = study.plan(workspace, dataset.id, options, (layers, structure.boundaries))
        except TLCoreError as exc:
            st.warning(i18n.error_text(exc))
        if planned is not None:
            labels = list(dict.fromkeys(i18n.say(m.label(start=True)) for m in planned.members if m.fraction == 1))
            st.caption(
                t(
                    "study.plan",
                    runs=i18n.count("runs", len(planned.members)),
                    epochs=i18n.count("epochs", options.epochs),
                    members=" · ".join(labels),
                )
            )
        if refused := st.session_state.pop(state.STUDY_REFUSED, None):
            st.error(refused)
        st.button(
            t("study.start"),
            type="primary",
            icon=":material/play_arrow:",
            on_click=start_study,
            args=(dataset.id, options, (layers, structure.boundaries)),
            disabled=planned is None,
        )


# ---------------------------------------------------------------------------------------------
# A study


def stop_study(study_id: str) -> None:
    try:
        study.stop(workspace, study_id)
    except TLCoreError as exc:
        flash("error", i18n.error_text(exc))
    else:
        flash("success", t("study.stopped"))


def study_dataset(dataset_id: str) -> Dataset | None:
    """The study's dataset, or None once it has been deleted (the runs still compare, without a baseline)."""
    try:
        return cached.dataset(workspace, dataset_id)
    except TLCoreError:
        return None


def study_view(study_id: str, active_shown: bool) -> None:
    """A study's verdict, table and charts; polled while a member is queued, training or stopping."""
    try:
        chosen = study.load_study(workspace, study_id)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
        return
    dataset = study_dataset(chosen.dataset)
    found = study.result(workspace, chosen, dataset)
    if found.active != active_shown:
        st.rerun()  # started or ended: redraw the page once (the selector, the polling)
    completed = sum(1 for r in found.members if r.finished)
    info_col, stop_col = st.columns([5, 1], vertical_alignment="center")
    info_col.caption(
        t(
            "study.about",
            dataset=names.md(dataset.name) if dataset is not None else found.study.dataset,
            backbone=backbones.get_backbone(found.study.options.backbone).label,
            epochs=i18n.count("epochs", found.study.options.epochs),
            completed=completed,
            runs=i18n.count("runs", len(found.members)),
        )
    )
    if found.active and found.study.stopped is None:
        stop_col.button(
            t("study.stop"), icon=":material/stop_circle:", on_click=stop_study, args=(study_id,), key="study.stop"
        )
    verdict_box(found)
    now = datetime.now(UTC)
    for result in found.members:
        if result.info is not None and result.status in (runs.RunState.RUNNING, runs.RunState.STOPPING):
            st.caption(f"{names.md(i18n.say(result.member.label(start=True)))}: {i18n.progress_text(result.info, now)}")
    rows = tables.study_rows(found, dataset.files("train")[1] if dataset is not None else None)
    st.dataframe(
        tables.study_table(rows, found.study.data_efficiency),
        column_config=tables.study_columns(),
        hide_index=True,
        placeholder="–",
    )
    with st.expander(t("study.details"), icon=":material/list:"):
        st.dataframe(
            tables.study_details(rows), column_config=tables.study_detail_columns(), hide_index=True, placeholder="–"
        )
    study_charts(found, rows)


def verdict_box(found: study.StudyResult) -> None:
    """The verdict: a success when the winner beat the baseline, a warning when nothing did."""
    text = i18n.say_md(found.verdict)
    if found.winner is None:
        st.info(text, icon=":material/hourglass_top:")
    elif found.baseline is not None and not found.baseline.beaten_by(found.winner.best_val_accuracy):
        st.warning(text, icon=":material/trending_flat:")
    else:
        st.success(text, icon=":material/emoji_events:")


def study_charts(found: study.StudyResult, rows: pd.DataFrame) -> None:
    """Accuracy against frozen layers and against time, the learning curves, and for a data-efficiency
    study accuracy against training-set size."""
    labels = i18n.chart_labels()
    baseline = found.baseline.accuracy if found.baseline is not None else None
    st.altair_chart(charts.accuracy_by_frozen(rows, baseline, labels), width="stretch")
    st.altair_chart(charts.accuracy_by_time(rows, baseline, labels), width="stretch")
    state.default(state.COMPARE_CURVE_X, "epoch")
    axis = st.segmented_control(
        t("study.curves_against"),
        ["epoch", "time"],
        format_func=state.worded(
            state.COMPARE_CURVE_X, {"epoch": t("study.against_epochs"), "time": t("study.against_time")}.get
        ),
        key=state.COMPARE_CURVE_X,
        required=True,
    )
    headline = max(found.study.options.fractions)
    curves = {
        label: cached.metrics(workspace, result.member.run)
        for label, result in zip(rows["member"], found.members, strict=True)
        if result.member.run is not None and result.member.fraction == headline
    }
    st.altair_chart(charts.study_curves(curves, baseline, axis, labels), width="stretch")
    if found.study.data_efficiency:
        st.altair_chart(charts.accuracy_by_data(rows, baseline, labels), width="stretch")


def studies_section(all_studies: list[study.Study]) -> None:
    """The study selector and the chosen study, polled while it trains."""
    if not all_studies:
        st.info(t("study.none"))
        return
    dataset_names = {d.id: d.name for d in cached.dataset_list(workspace)}
    options = {s.id: i18n.study_option(s, dataset_names.get(s.dataset)) for s in all_studies}
    if st.session_state.get(state.COMPARE_STUDY) not in options:
        st.session_state[state.COMPARE_STUDY] = next(iter(options))
    chosen = st.selectbox(
        t("study.choose"),
        list(options),
        format_func=state.worded(state.COMPARE_STUDY, options.get),
        key=state.COMPARE_STUDY,
    )
    active = study.result(workspace, study.load_study(workspace, chosen)).active
    st.fragment(run_every=POLL_SECONDS if active else None)(study_view)(chosen, active)


# ---------------------------------------------------------------------------------------------
# The runs of one dataset


def dataset_key(info: RunInfo) -> str:
    """The dataset a run trained on ("" for a run whose spec cannot be read)."""
    return info.spec.dataset if info.spec is not None else ""


def runs_section(all_runs: list[RunInfo], labels: dict[str, str]) -> None:
    """The dataset selector, then its runs' overlaid curves and their table: never runs of two datasets."""
    if not all_runs:
        st.info(t("compare.no_runs"))
        return
    groups: dict[str, list[RunInfo]] = {}
    for info in all_runs:
        groups.setdefault(dataset_key(info), []).append(info)
    dataset_names = {d.id: d.name for d in cached.dataset_list(workspace)}

    def group_label(key: str) -> str:
        count = i18n.count("runs", len(groups[key]))
        if not key:
            return t("compare.unreadable_runs", runs=count)
        if key in dataset_names:
            return t("compare.dataset_option", name=names.plain(dataset_names[key]), runs=count)
        return t("compare.deleted_dataset", id=key, runs=count)

    group_labels = {key: group_label(key) for key in groups}
    if st.session_state.get(state.COMPARE_DATASET) not in groups:
        st.session_state[state.COMPARE_DATASET] = next(iter(groups))
    chosen = st.selectbox(
        t("compare.dataset"),
        list(groups),
        format_func=state.worded(state.COMPARE_DATASET, group_labels.get),
        key=state.COMPARE_DATASET,
    )
    if len(groups) > 1:
        st.caption(t("compare.one_dataset_note"))
    side_by_side({info.id: info for info in groups[chosen]}, labels)


def side_by_side(by_id: dict[str, RunInfo], labels: dict[str, str]) -> None:
    """The multiselect of runs, their overlaid curves, their table and its details."""
    state.default(state.COMPARE_RUNS, list(by_id)[:3])
    kept = [run_id for run_id in st.session_state[state.COMPARE_RUNS] if run_id in by_id]
    st.session_state[state.COMPARE_RUNS] = kept or list(by_id)[:3]
    chosen = st.multiselect(
        t("compare.runs"),
        list(by_id),
        format_func=labels.get,
        key=state.COMPARE_RUNS,
        persist_state="session",
        placeholder=t("widget.choose"),
    )
    if not chosen:
        return
    run_ids = {labels[run_id]: run_id for run_id in chosen}
    chart_labels = i18n.chart_labels()
    loss_col, accuracy_col = st.columns(2)
    for column, metric in ((loss_col, "loss"), (accuracy_col, "accuracy")):
        column.vega_lite_chart(spec=cached.compare_curve(workspace, run_ids, metric, chart_labels), width="stretch")
    infos = [by_id[run_id] for run_id in chosen]
    st.dataframe(tables.run_table(infos), column_config=tables.run_columns(), hide_index=True, placeholder="–")
    with st.expander(t("study.details"), icon=":material/list:"):
        st.dataframe(
            tables.run_details(infos), column_config=tables.run_detail_columns(), hide_index=True, placeholder="–"
        )


# ---------------------------------------------------------------------------------------------
# Renaming and deleting runs


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
            format_func=state.worded(state.COMPARE_TARGET, labels.get),
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

all_studies = study.list_studies(workspace)
all_runs = runs.list_runs(workspace)
study_form(state.current_dataset(workspace), st.session_state.get(state.MODEL_SPEC), expanded=not all_studies)
state.default(state.COMPARE_BY, "study" if all_studies else "dataset")
st.segmented_control(
    t("compare.by"),
    ["study", "dataset"],
    format_func=state.worded(
        state.COMPARE_BY, {"study": t("compare.by_study"), "dataset": t("compare.by_dataset")}.get
    ),
    key=state.COMPARE_BY,
    required=True,
)
run_labels = i18n.run_labels(all_runs)
if st.session_state[state.COMPARE_BY] == "study":
    studies_section(all_studies)
else:
    runs_section(all_runs, run_labels)
if all_runs:
    manage({info.id: info for info in all_runs}, run_labels)
