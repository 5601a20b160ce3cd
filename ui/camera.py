"""The Data page's camera: build a dataset, or extend one, class by class from pictures.

The pictures go into a draft on disk (`tlcore.datasets.drafts`) as they are taken, so a refresh or a
second tab keeps them; the draft's id is the only thing this session holds. Making the dataset goes
through the same ingestion as an upload.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from tlcore import datasets
from tlcore.datasets import drafts
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from ui import i18n, names, state
from ui.i18n import t

THUMBNAILS_PER_ROW = 6
NEW = ""
"""The "new dataset" choice of what a draft starts from (any other choice is a dataset id)."""


def camera_section(workspace: Workspace, known: dict[str, datasets.Dataset], add_dataset: Callable[..., None]) -> None:
    """Start or continue a draft; while one is open: its classes, the camera, its shots, and Make dataset."""
    show_flash()
    draft = open_draft(workspace)
    if draft is None:
        start_form(workspace, known)
        return
    draft_panel(workspace, draft, known, add_dataset)


def flash(kind: str, text: str) -> None:
    st.session_state[state.CAMERA_FLASH] = (kind, text)


def show_flash() -> None:
    message = st.session_state.pop(state.CAMERA_FLASH, None)
    if message is not None:
        kind, text = message
        {"error": st.error, "info": st.info}.get(kind, st.success)(text)


def open_draft(workspace: Workspace) -> drafts.Draft | None:
    draft_id = st.session_state.get(state.CAMERA_DRAFT)
    if not draft_id:
        return None
    try:
        return drafts.load_draft(workspace, draft_id)
    except TLCoreError:
        st.session_state[state.CAMERA_DRAFT] = None  # made into a dataset or discarded in another tab
        return None


def start_form(workspace: Workspace, known: dict[str, datasets.Dataset]) -> None:
    st.caption(t("camera.intro"))
    options = {NEW: t("camera.new_dataset")} | {
        dataset_id: t("camera.extend", name=names.plain(dataset.name)) for dataset_id, dataset in known.items()
    }
    base = st.selectbox(
        t("camera.start_from"),
        list(options),
        format_func=state.worded(state.CAMERA_BASE, options.get),
        key=state.CAMERA_BASE,
    )
    if st.button(t("camera.start"), icon=":material/photo_camera:", type="primary"):
        draft = drafts.new_draft(workspace, base or None)
        st.session_state[state.CAMERA_DRAFT] = draft.id
        st.rerun()
    waiting = drafts.list_drafts(workspace)
    if waiting:
        labels = {draft.id: draft_label(draft, known) for draft in waiting}
        st.divider()
        chosen = st.selectbox(t("camera.resume_pick"), list(labels), format_func=labels.get)
        if st.button(t("camera.resume"), icon=":material/history:"):
            st.session_state[state.CAMERA_DRAFT] = chosen
            st.rerun()


def draft_label(draft: drafts.Draft, known: dict[str, datasets.Dataset]) -> str:
    pictures = i18n.count("images", len(draft.shots))
    classes = i18n.count("classes", len(draft.classes))
    if draft.base is None:
        return t("camera.draft_new", classes=classes, pictures=pictures)
    base = known.get(draft.base)
    name = names.plain(base.name if base else draft.base)
    return t("camera.draft_extends", name=name, classes=classes, pictures=pictures)


def draft_panel(
    workspace: Workspace, draft: drafts.Draft, known: dict[str, datasets.Dataset], add_dataset: Callable[..., None]
) -> None:
    base = known.get(draft.base) if draft.base else None
    if base is not None:
        st.caption(t("camera.extending", name=names.md(base.name)))
    with st.form(state.CAMERA_NEW_CLASS_FORM, clear_on_submit=True, border=False):
        name_col, add_col = st.columns([3, 1], vertical_alignment="bottom")
        new_class = name_col.text_input(t("camera.class_name"), placeholder=t("camera.class_placeholder"))
        if add_col.form_submit_button(t("camera.add_class"), icon=":material/add:"):
            try:
                added = drafts.class_name_for(new_class)
                draft = drafts.add_class(draft, added)
                st.session_state[state.CAMERA_CLASS] = added
            except TLCoreError as exc:
                st.error(i18n.error_text(exc))

    counts = draft.counts()
    # The radio's words hold the counts, which change with every picture: set the choice again so the
    # browser is told it in the new words (see `state.reword_choices`).
    chosen = st.session_state.get(state.CAMERA_CLASS)
    st.session_state[state.CAMERA_CLASS] = chosen if chosen in counts else None
    chosen = st.radio(
        t("camera.class"),
        list(counts),
        format_func=lambda name: t("camera.class_option", name=names.md(name, 30), pictures=counts[name]),
        key=state.CAMERA_CLASS,
        horizontal=True,
    )
    if not counts:
        st.info(t("camera.no_classes"))
    st.camera_input(
        t("camera.take", name=names.md(chosen)) if chosen else t("camera.take_choose"),
        key=state.CAMERA_SHOT,
        on_change=take_picture,
        args=(workspace, draft.id),
    )
    i18n.widget_words_note("camera")
    if chosen:
        shots_grid(workspace, draft, chosen)
    finish_form(workspace, draft, base, add_dataset)


def take_picture(workspace: Workspace, draft_id: str) -> None:
    """The camera's on_change: add the new picture to the chosen class (a cleared picture adds nothing;
    the same picture again is said to be kept once, so a count that did not grow is explained)."""
    picture = st.session_state.get(state.CAMERA_SHOT)
    if picture is None:
        return
    class_name = st.session_state.get(state.CAMERA_CLASS)
    try:
        draft = drafts.load_draft(workspace, draft_id)
        grown = drafts.add_shot(draft, class_name, picture.getvalue(), picture.name)
    except TLCoreError as exc:
        flash("error", i18n.error_text(exc))
        return
    if len(grown.shots) == len(draft.shots):
        flash("info", t("camera.same_picture", name=names.md(class_name)))


def remove_picture(workspace: Workspace, draft_id: str, shot: drafts.Shot) -> None:
    try:
        drafts.remove_shot(drafts.load_draft(workspace, draft_id), shot)
    except TLCoreError as exc:
        flash("error", i18n.error_text(exc))


def shots_grid(workspace: Workspace, draft: drafts.Draft, class_name: str) -> None:
    """The chosen class's pictures, newest first, each with its Remove button."""
    shots = draft.shots_of(class_name)[::-1]
    if not shots:
        st.caption(t("camera.no_pictures", name=names.md(class_name)))
        return
    for start in range(0, len(shots), THUMBNAILS_PER_ROW):
        columns = st.columns(THUMBNAILS_PER_ROW)
        for column, shot in zip(columns, shots[start : start + THUMBNAILS_PER_ROW], strict=False):
            column.image(str(draft.path(shot)), width="stretch")
            column.button(
                t("camera.remove"),
                key=f"{state.CAMERA_REMOVE_PREFIX}{shot.id}.{shot.class_name}",
                icon=":material/delete:",
                on_click=remove_picture,
                args=(workspace, draft.id, shot),
                width="stretch",
            )


def finish_form(
    workspace: Workspace, draft: drafts.Draft, base: datasets.Dataset | None, add_dataset: Callable[..., None]
) -> None:
    st.divider()
    default = f"{base.name} + {drafts.DEFAULT_NAME}" if base is not None else drafts.DEFAULT_NAME
    name = st.text_input(t("camera.dataset_name"), value=default, key=f"{state.CAMERA_NAME_PREFIX}{draft.id}")
    make_col, discard_col = st.columns(2)
    if make_col.button(t("camera.make"), type="primary", icon=":material/dataset:", disabled=not draft.shots):
        add_dataset(name, lambda progress: drafts.build(draft, workspace, name=name or None, progress=progress))
        if not draft.root.exists():  # made into a dataset; a refusal keeps the draft for more pictures
            st.session_state[state.CAMERA_DRAFT] = None
    if discard_col.button(t("camera.discard"), icon=":material/delete_forever:"):
        drafts.delete_draft(draft)
        st.session_state[state.CAMERA_DRAFT] = None
        st.rerun()
