"""Train: the settings of a new run, Start, and a live view of the current run (polled from disk).

A beginner decides the epochs (both phases' with the two-phase recipe); batch size, optimizer,
learning rates, augmentation and seed wait in "Advanced" with the Keras guide's defaults. Training
runs in its own process (`tlcore.runs.start`); this page only reads the run's folder, so a refresh, a
second tab or a server restart finds the run where it is.
"""

from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from tlcore import backbones, run_queue, runs
from tlcore.baseline import majority_baseline
from tlcore.datasets import Dataset
from tlcore.errors import TLCoreError
from tlcore.models import ModelSpec, rules
from tlcore.runs import RunState
from tlcore.spec import OPTIMIZERS, Augmentation, RunSpec, field_defaults
from ui import cached, charts, i18n, names, state
from ui.i18n import t
from ui.pace import poll_seconds

LEARNING_RATES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
BATCH_SIZES = (8, 16, 32, 64, 128)
KEEP = {"persist_state": "session"}


def settings_form(dataset: Dataset, model_spec: ModelSpec) -> RunSpec:
    """The run settings as widgets; returns the RunSpec they describe."""
    run, augmentation = field_defaults(RunSpec), field_defaults(Augmentation)
    for key, value in (
        (state.TRAIN_EPOCHS, run["epochs"]),
        (state.TRAIN_BATCH, run["batch_size"]),
        (state.TRAIN_LR, run["learning_rate"]),
        (state.TRAIN_OPTIMIZER, run["optimizer"]),
        (state.TRAIN_FLIP, augmentation["flip"]),
        (state.TRAIN_ROTATION, augmentation["rotation"]),
        (state.TRAIN_ZOOM, augmentation["zoom"]),
        (state.TRAIN_CONTRAST, augmentation["contrast"]),
        (state.TRAIN_TWO_PHASE, run["two_phase"]),
        (state.TRAIN_FT_EPOCHS, run["finetune_epochs"]),
        (state.TRAIN_FT_LR, run["finetune_learning_rate"]),
        (state.TRAIN_SEED, run["seed"]),
        (state.TRAIN_NAME, run["name"]),
    ):
        state.default(key, value)
    can_two_phase = rules(model_spec.strategy).ends_two_phase
    two_phase = can_two_phase and st.toggle(
        t("train.two_phase"), key=state.TRAIN_TWO_PHASE, help=t("train.two_phase_help"), **KEEP
    )
    if two_phase:
        head_col, finetune_col, total_col = st.columns(3, vertical_alignment="bottom")
        epochs = head_col.number_input(t("train.head_epochs"), 1, 1000, key=state.TRAIN_EPOCHS, **KEEP)
        finetune_epochs = finetune_col.number_input(
            t("train.finetune_epochs"), 1, 1000, key=state.TRAIN_FT_EPOCHS, **KEEP
        )
        total_col.markdown(t("train.total_epochs", epochs=i18n.count("epochs", int(epochs + finetune_epochs))))
    else:
        epochs = st.number_input(t("train.epochs"), 1, 1000, key=state.TRAIN_EPOCHS, **KEEP)
        finetune_epochs = st.session_state[state.TRAIN_FT_EPOCHS]
    name = st.text_input(t("train.name"), key=state.TRAIN_NAME, max_chars=200, **KEEP)
    with st.expander(t("train.advanced"), icon=":material/tune:"):
        st.caption(t("train.advanced_help"))
        basics, augment = st.columns(2)
        with basics:
            batch_size = st.selectbox(t("train.batch_size"), BATCH_SIZES, key=state.TRAIN_BATCH, **KEEP)
            optimizer = st.selectbox(
                t("train.optimizer"), OPTIMIZERS, format_func=i18n.optimizer_label, key=state.TRAIN_OPTIMIZER, **KEEP
            )
            learning_rate = st.select_slider(
                t("train.learning_rate"), LEARNING_RATES, format_func=i18n.rate, key=state.TRAIN_LR, **KEEP
            )
            finetune_rate = st.select_slider(
                t("train.finetune_learning_rate"),
                LEARNING_RATES,
                format_func=i18n.rate,
                key=state.TRAIN_FT_LR,
                disabled=not two_phase,
                help=t("train.finetune_learning_rate_help"),
                **KEEP,
            )
            seed = st.number_input(t("train.seed"), 0, 2**31 - 1, key=state.TRAIN_SEED, **KEEP)
        with augment:
            st.markdown(f"**{t('train.augmentation')}**")
            st.caption(t("train.augmentation_help"))
            flip = st.toggle(t("train.flip"), key=state.TRAIN_FLIP, **KEEP)
            rotation = st.slider(
                t("train.rotation"),
                0.0,
                0.5,
                step=0.05,
                key=state.TRAIN_ROTATION,
                help=t("train.rotation_help"),
                **KEEP,
            )
            zoom = st.slider(t("train.zoom"), 0.0, 0.5, step=0.05, key=state.TRAIN_ZOOM, **KEEP)
            contrast = st.slider(t("train.contrast"), 0.0, 0.5, step=0.05, key=state.TRAIN_CONTRAST, **KEEP)
    return RunSpec(
        dataset=dataset.id,
        model=replace(model_spec, num_classes=len(dataset.classes)),
        epochs=int(epochs),
        batch_size=int(batch_size),
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        two_phase=bool(two_phase),
        finetune_epochs=int(finetune_epochs),
        finetune_learning_rate=float(finetune_rate),
        augmentation=Augmentation(
            flip=bool(flip), rotation=float(rotation), zoom=float(zoom), contrast=float(contrast)
        ),
        seed=int(seed),
        name=name.strip(),
    )


def start(spec: RunSpec) -> None:
    """Start's callback: start the run and show it; a new run's name field starts empty again."""
    st.session_state.pop(state.TRAIN_ENDED_HERE, None)
    try:
        info = runs.start(spec, workspace)
    except TLCoreError as exc:
        st.session_state[state.TRAIN_REFUSED] = i18n.error_text(exc)
        return
    select_run(info.id)
    st.session_state[state.TRAIN_RUN] = info.id
    st.session_state[state.TRAIN_NAME] = ""


def select_run(run_id: str) -> None:
    """Make `run_id` the run this page shows (the address keeps it too: `ui.links`)."""
    st.session_state[state.RUN_ID] = run_id


def on_run_selected() -> None:
    select_run(st.session_state[state.TRAIN_RUN])


def current_run(infos: list[runs.RunInfo]) -> str:
    """The run to show: the session's (or the address's, `ui.links`), else a run in progress, else the newest."""
    ids = [info.id for info in infos]
    if st.session_state.get(state.RUN_ID) in ids:
        return st.session_state[state.RUN_ID]
    active = [info.id for info in infos if runs.is_active(info)]
    return active[-1] if active else ids[0]


def run_monitor(run_id: str, status_shown: str, poll_shown: float | None) -> None:
    """Status, progress, Stop and live curves of one run; polled while the run is active."""
    try:
        info = runs.load_run(workspace, run_id)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
        return
    if info.status != status_shown:
        if info.status not in (RunState.QUEUED, RunState.RUNNING):  # stopping or ended: keep the form closed, no jump
            st.session_state[state.TRAIN_ENDED_HERE] = run_id
        # Redraw the whole page once (selector, sidebar); when the run has ended this stops the polling.
        st.rerun()
    heading_col, stop_col = st.columns([5, 1], vertical_alignment="center")
    if runs.is_active(info) and stop_col.button(
        t("train.stop"), icon=":material/stop_circle:", disabled=info.status == RunState.STOPPING
    ):
        try:
            info = runs.stop(workspace, run_id)
        except TLCoreError as exc:
            st.error(i18n.error_text(exc))
    heading_col.markdown(
        f"### {names.md(info.name)}  \n{i18n.status_badge(info.status)}",
        help=names.tooltip(info.name),
    )
    if info.spec is not None:
        heading_col.caption(i18n.run_settings(info.spec))
    if info.path or info.path_note:
        st.caption(i18n.path_text(info))
    if info.in_feature_pass:
        st.progress(info.features_fraction, text=i18n.features_progress_text(info))
    st.progress(info.progress, text=i18n.progress_text(info, datetime.now(UTC)))
    if info.error:
        notice = st.warning if info.status in (RunState.STOPPED, RunState.INTERRUPTED) else st.error
        notice(f"{t('train.run_error')} {i18n.say_md(info.error)}")
    if info.best_val_accuracy is not None:
        accuracy(info)
    metrics = cached.metrics(workspace, run_id)
    if metrics.empty:
        st.caption(t("train.no_metrics"))
    else:
        labels = i18n.chart_labels()
        loss_col, accuracy_col = st.columns(2)
        for column, metric in ((loss_col, "loss"), (accuracy_col, "accuracy")):
            column.vega_lite_chart(
                spec=charts.training_curve(metrics, metric, info.steps_per_epoch, labels), width="stretch"
            )
    if poll_seconds(info) != poll_shown:
        st.rerun()  # the whole page once, which sets the fragment's new pace


def accuracy(info: runs.RunInfo) -> None:
    """The best validation accuracy, beside what always answering the largest class would score."""
    try:
        baseline = majority_baseline(cached.dataset(workspace, info.spec.dataset))
    except TLCoreError:
        baseline = None
    points = f"{(info.best_val_accuracy - baseline.accuracy) * 100:+.1f}" if baseline is not None else None
    level = points in ("+0.0", "-0.0")  # neither up nor down: no green arrow for a model that only guesses
    value_col, baseline_col = st.columns(2)
    value_col.metric(
        t("train.best_val_accuracy"),
        f"{info.best_val_accuracy:.1%}",
        delta=t("train.vs_baseline", points=points.replace("-", "") if level else points) if points else None,
        delta_color="off" if level else "normal",
        delta_arrow="off" if level else "auto",
        help=t("train.best_epoch", epoch=info.best_epoch),
    )
    if baseline is None:
        return
    baseline_col.metric(
        t("train.baseline"),
        f"{baseline.accuracy:.1%}",
        help=t("train.baseline_help", name=names.md(baseline.class_name)),
    )
    if not baseline.beaten_by(info.best_val_accuracy):
        st.warning(
            t("train.at_baseline", baseline=f"{baseline.accuracy:.1%}", name=names.md(baseline.class_name)),
            icon=":material/trending_flat:",
        )


workspace = state.workspace()
dataset = state.current_dataset(workspace)
model_spec = st.session_state.get(state.MODEL_SPEC)
all_runs = runs.list_runs(workspace)
if any(info.status == RunState.QUEUED for info in all_runs):
    run_queue.keep_moving(workspace)  # runs wait for a spare that died, or from before a restart

st.title(t("train.title"))
# Open unless a run is training, or one just ended in front of the user (opening it then would push the
# finished run down the page right after Stop).
new_run_open = not any(runs.is_active(info) for info in all_runs) and not st.session_state.get(state.TRAIN_ENDED_HERE)
with st.expander(t("train.new_run"), expanded=new_run_open, icon=":material/tune:"):
    if dataset is None:
        st.info(t("train.need_dataset"))
        st.page_link("app_pages/data.py", label=t("nav.data"), icon=":material/folder_open:")
    elif model_spec is None:
        st.info(t("train.need_model"))
        st.page_link("app_pages/model.py", label=t("nav.model"), icon=":material/account_tree:")
    else:
        st.caption(t("train.summary", dataset=names.md(dataset.name), model=i18n.model_summary(model_spec)))
        run_spec = settings_form(dataset, model_spec)
        missing = cached.weights_problem(model_spec, workspace) if model_spec.weights == "imagenet" else None
        if missing is not None:
            backbone = backbones.get_backbone(model_spec.backbone)
            st.warning(i18n.weights_missing_text(backbone, model_spec.image_size or backbone.default_size))
        if refused := st.session_state.pop(state.TRAIN_REFUSED, None):
            st.error(refused)
        st.button(
            t("train.start"),
            type="primary",
            icon=":material/play_arrow:",
            on_click=start,
            args=(run_spec,),
            disabled=missing is not None,
            help=t("train.start_disabled_help") if missing is not None else None,
        )

if not all_runs:
    st.info(t("train.no_runs"))
else:
    shown = current_run(all_runs)
    select_run(shown)
    st.session_state[state.TRAIN_RUN] = shown
    run_names = {info.id: i18n.run_option(info) for info in all_runs}
    st.selectbox(
        t("train.run"),
        list(run_names),
        format_func=state.worded(state.TRAIN_RUN, run_names.get),
        key=state.TRAIN_RUN,
        on_change=on_run_selected,
    )
    shown_info = next(info for info in all_runs if info.id == shown)
    poll = poll_seconds(shown_info)
    st.fragment(run_every=poll)(run_monitor)(shown, shown_info.status, poll)
