"""Data: add a dataset (a zip, a train zip and a val zip, or the demo), pick one, and inspect it."""

from typing import BinaryIO

import pandas as pd
import streamlit as st

from tlcore import datasets, demo
from tlcore.errors import TLCoreError
from ui import cached, charts, i18n, state
from ui.i18n import t


SAMPLES_PER_CLASS = 6
CLASSES_SHOWN = 8


def ingest(train_zip: BinaryIO | bytes, val_zip: BinaryIO | bytes | None, name: str) -> None:
    """Ingest an upload with a progress bar; choose the new dataset, or say why it was refused."""
    text = t("data.ingesting", name=name)
    bar = st.progress(0.0, text=text)
    shown = [0]

    def on_progress(done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 0
        if percent != shown[0]:  # one browser update per percent, not one per zip entry
            shown[0] = percent
            bar.progress(percent, text=text)

    try:
        dataset = datasets.ingest_zip(train_zip, val_zip, workspace=workspace, name=name, progress=on_progress)
    except TLCoreError as exc:
        bar.empty()
        st.error(i18n.error_text(exc))
        return
    bar.empty()
    choose_dataset(dataset.id)
    st.success(t("data.ingested", name=dataset.name, images=int(dataset.counts()["total"].sum()),
                 classes=len(dataset.classes)))


def choose_dataset(dataset_id: str) -> None:
    st.session_state[state.DATASET_ID] = dataset_id


def on_dataset_picked() -> None:
    choose_dataset(st.session_state[state.DATA_PICK])


def show_dataset(dataset: datasets.Dataset) -> None:
    """Class counts, sample images per class and the files that were skipped, with reasons."""
    counts = dataset.counts()
    classes_col, train_col, val_col = st.columns(3)
    classes_col.metric(t("data.classes"), len(dataset.classes))
    train_col.metric(t("data.train_images"), int(counts["train"].sum()))
    val_col.metric(t("data.val_images"), int(counts["val"].sum()))
    st.altair_chart(charts.class_counts_chart(counts, i18n.chart_labels()), width="stretch")

    st.subheader(t("data.samples"))
    shown = st.multiselect(t("data.samples_classes"), dataset.classes, default=dataset.classes[:CLASSES_SHOWN])
    for class_name in shown:
        files = dataset.sample_files(class_name, SAMPLES_PER_CLASS)
        st.markdown(f"**{class_name}**")
        if files:
            st.image([str(path) for path in files], width=110)

    icon = ":material/warning:" if dataset.skipped else None
    with st.expander(t("data.skipped", count=len(dataset.skipped)), icon=icon):
        if dataset.skipped:
            st.dataframe(
                pd.DataFrame([(item.path, item.reason) for item in dataset.skipped], columns=["path", "reason"]),
                column_config={"path": t("data.skipped_path"), "reason": t("data.skipped_reason")},
                hide_index=True,
            )
        else:
            st.caption(t("data.nothing_skipped"))


workspace = state.workspace()
st.title(t("data.title"))
st.caption(t("data.intro"))

upload_col, demo_col = st.columns([3, 1])
with upload_col.container(border=True):
    train_zip = st.file_uploader(t("data.train_zip"), type=["zip"], key=state.DATA_TRAIN_ZIP,
                                 help=t("data.train_zip_help"))
    val_zip = st.file_uploader(t("data.val_zip"), type=["zip"], key=state.DATA_VAL_ZIP, help=t("data.val_zip_help"))
    if st.button(t("data.add"), type="primary", disabled=train_zip is None, icon=":material/upload:"):
        ingest(train_zip, val_zip, train_zip.name)
with demo_col.container(border=True):
    st.caption(t("data.demo_help"))
    if st.button(t("data.demo"), icon=":material/auto_awesome:"):
        ingest(demo.demo_zip(), None, "demo.zip")

known = {dataset.id: dataset for dataset in cached.dataset_list(workspace)}
if not known:
    st.info(t("data.none_yet"))
else:
    if st.session_state.get(state.DATASET_ID) not in known:
        choose_dataset(next(iter(known)))
    st.session_state[state.DATA_PICK] = st.session_state[state.DATASET_ID]
    names = i18n.labelled(known, lambda dataset_id: i18n.dataset_option(known[dataset_id]))
    st.selectbox(t("data.pick"), list(known), format_func=names.get, key=state.DATA_PICK, on_change=on_dataset_picked)
    show_dataset(known[st.session_state[state.DATASET_ID]])
