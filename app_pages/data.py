"""Data: add a dataset (a zip or a train and a val zip, a folder or two, the camera, or the demo), pick one,
and inspect it."""

from collections.abc import Callable
from typing import BinaryIO

import pandas as pd
import streamlit as st

from tlcore import datasets, demo
from tlcore.errors import TLCoreError
from ui import cached, camera, charts, i18n, names, state
from ui.i18n import t

SAMPLES_PER_CLASS = 6
CLASSES_SHOWN = 8
SOURCES = {"zip": "data.source_zip", "folder": "data.source_folder", "camera": "data.source_camera"}


def add_dataset(name: str, make: Callable[[Callable[[int, int], None]], datasets.Dataset]) -> None:
    """Run `make(progress)` (an ingestion) with a progress bar; choose the new dataset, or say why it was refused."""
    text = t("data.ingesting", name=names.md(name))
    bar = st.progress(0.0, text=text)
    shown = [0]

    def on_progress(done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 0
        if percent != shown[0]:  # one browser update per percent, not one per file
            shown[0] = percent
            bar.progress(percent, text=text)

    try:
        dataset = make(on_progress)
    except TLCoreError as exc:
        bar.empty()
        st.error(i18n.error_text(exc))
        return
    bar.empty()
    choose_dataset(dataset.id)
    st.success(
        t(
            "data.ingested",
            name=names.md(dataset.name),
            images=int(dataset.counts()["total"].sum()),
            classes=len(dataset.classes),
        )
    )


def ingest(train_zip: BinaryIO | bytes, val_zip: BinaryIO | bytes | None, name: str) -> None:
    add_dataset(
        name,
        lambda progress: datasets.ingest_zip(train_zip, val_zip, workspace=workspace, name=name, progress=progress),
    )


def zip_section() -> None:
    train_zip = st.file_uploader(
        t("data.train_zip"), type=["zip"], key=state.DATA_TRAIN_ZIP, help=t("data.train_zip_help")
    )
    val_zip = st.file_uploader(t("data.val_zip"), type=["zip"], key=state.DATA_VAL_ZIP, help=t("data.val_zip_help"))
    i18n.widget_words_note()
    if st.button(t("data.add"), type="primary", disabled=train_zip is None, icon=":material/upload:"):
        ingest(train_zip, val_zip, train_zip.name)


def folder_section() -> None:
    """A folder of class folders (and optionally a validation folder) from the desktop, ingested as a zip is."""
    train_files = st.file_uploader(
        t("data.train_folder"),
        accept_multiple_files="directory",
        key=state.DATA_TRAIN_FOLDER,
        help=t("data.train_folder_help"),
    )
    val_files = st.file_uploader(
        t("data.val_folder"),
        accept_multiple_files="directory",
        key=state.DATA_VAL_FOLDER,
        help=t("data.val_zip_help"),
    )
    i18n.widget_words_note("folder")
    if train_files:
        st.caption(t("data.folder_files", files=i18n.count("files", len(train_files))))
    if st.button(t("data.add_folder"), type="primary", disabled=not train_files, icon=":material/drive_folder_upload:"):
        files = [(uploaded.name, uploaded) for uploaded in train_files]
        val = [(uploaded.name, uploaded) for uploaded in val_files] if val_files else None
        name = datasets.folder_name(files)
        add_dataset(
            name,
            lambda progress: datasets.ingest_files(files, val, workspace=workspace, name=name, progress=progress),
        )


def server_folder_section() -> None:
    """Register a folder the operator allowed (`TLCORE_DATA_DIRS`); nothing is offered when none is."""
    with st.expander(t("data.folder_title"), icon=":material/dns:"):
        st.caption(t("data.folder_help"))
        roots = datasets.allowed_data_dirs()
        if not roots:
            st.info(t("data.folder_none"))
            return
        folders = [str(folder) for folder in datasets.server_folders(roots)]
        folder = st.selectbox(t("data.folder_pick"), folders, key=state.DATA_FOLDER)
        if st.button(t("data.folder_add"), icon=":material/create_new_folder:"):
            add_dataset(
                folder,
                lambda progress: datasets.ingest_folder(
                    folder, workspace=workspace, allowed_roots=roots, progress=progress
                ),
            )


def choose_dataset(dataset_id: str) -> None:
    st.session_state[state.DATASET_ID] = dataset_id


def on_dataset_picked() -> None:
    choose_dataset(st.session_state[state.DATA_PICK])


def show_dataset(dataset: datasets.Dataset) -> None:
    """Class counts, sample images per class and the files that were skipped, with reasons."""
    counts = dataset.counts()
    if dataset.source_dir is not None:
        st.caption(t("data.folder_source", folder=names.md(dataset.source_dir, limit=200)))
    classes_col, train_col, val_col = st.columns(3)
    classes_col.metric(t("data.classes"), len(dataset.classes))
    train_col.metric(t("data.train_images"), int(counts["train"].sum()))
    val_col.metric(t("data.val_images"), int(counts["val"].sum()))
    shown_counts = counts.assign(**{"class": counts["class"].map(names.plain)})
    st.altair_chart(charts.class_counts_chart(shown_counts, i18n.chart_labels()), width="stretch")

    st.subheader(t("data.samples"))
    shown = st.multiselect(
        t("data.samples_classes"),
        dataset.classes,
        default=dataset.classes[:CLASSES_SHOWN],
        format_func=names.plain,
        placeholder=t("widget.choose"),
    )
    for class_name in shown:
        present = [path for path in dataset.sample_files(class_name, SAMPLES_PER_CLASS) if path.is_file()]
        st.markdown(f"**{names.md(class_name)}**")
        if present:
            st.image([str(path) for path in present], width=110)
    if dataset.source_dir is not None:
        try:
            dataset.check_source()
        except TLCoreError:
            st.warning(t("data.folder_missing", folder=names.md(dataset.source_dir, limit=200)))

    icon = ":material/warning:" if dataset.skipped else None
    with st.expander(t("data.skipped", count=len(dataset.skipped)), icon=icon):
        if dataset.skipped:
            st.dataframe(
                pd.DataFrame(
                    [(names.full(item.path), i18n.say(item.reason)) for item in dataset.skipped],
                    columns=["path", "reason"],
                ),
                column_config={"path": t("data.skipped_path"), "reason": t("data.skipped_reason")},
                hide_index=True,
            )
        else:
            st.caption(t("data.nothing_skipped"))


workspace = state.workspace()
st.title(t("data.title"))
st.caption(t("data.intro"))

known = {dataset.id: dataset for dataset in cached.dataset_list(workspace)}
upload_col, demo_col = st.columns([3, 1])
with upload_col.container(border=True):
    source = st.segmented_control(
        t("data.source"),
        list(SOURCES),
        format_func=state.worded(state.DATA_SOURCE, lambda source: t(SOURCES[source])),
        key=state.DATA_SOURCE,
        default="zip",
        required=True,
    )
    if source == "folder":
        folder_section()
    elif source == "camera":
        camera.camera_section(workspace, known, add_dataset)
    else:
        zip_section()
with demo_col.container(border=True):
    st.caption(t("data.demo_help"))
    if st.button(t("data.demo"), icon=":material/auto_awesome:"):
        ingest(demo.demo_zip(), None, "demo.zip")
server_folder_section()

known = {dataset.id: dataset for dataset in cached.dataset_list(workspace)}
if not known:
    st.info(t("data.none_yet"))
else:
    if st.session_state.get(state.DATASET_ID) not in known:
        choose_dataset(next(iter(known)))
    st.session_state[state.DATA_PICK] = st.session_state[state.DATASET_ID]
    options = i18n.labelled(known, lambda dataset_id: i18n.dataset_option(known[dataset_id]))
    st.selectbox(
        t("data.pick"),
        list(known),
        format_func=state.worded(state.DATA_PICK, options.get),
        key=state.DATA_PICK,
        on_change=on_dataset_picked,
    )
    show_dataset(known[st.session_state[state.DATASET_ID]])
