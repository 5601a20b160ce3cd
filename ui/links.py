"""The session's choices, kept in the page's address as well, so a refresh, a bookmark or a second tab keeps them.

Streamlit clears query parameters when the user switches pages, so the entry script writes the
choices back after every page (`publish`), and reads them on a session's first run (`restore`):

    ?dataset=<id>&backbone=resnet50&strategy=finetune&frozen=168&run=<id>

Only what differs from the defaults is written. A value from the address is checked like any other
input (an unknown dataset or run, a backbone that does not exist, a frozen count out of range) and
left out when it does not hold; the session's own choices always win over the address.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore import runs
from tlcore.errors import TLCoreError
from tlcore.models import ModelSpec
from tlcore.workspace import Workspace
from ui import cached, state

DATASET = "dataset"
RUN = "run"
# Model settings: query parameter -> (ModelSpec field, Model page widget key).
MODEL = {
    "backbone": ("backbone", state.MODEL_BACKBONE),
    "size": ("image_size", state.MODEL_IMAGE_SIZE),
    "head": ("pooling", state.MODEL_POOLING),
    "dropout": ("dropout", state.MODEL_DROPOUT),
    "hidden": ("hidden_units", state.MODEL_HIDDEN),
    "weights": ("weights", state.MODEL_WEIGHTS),
    "strategy": ("strategy", state.MODEL_STRATEGY),
    "frozen": ("frozen_layers", state.MODEL_FROZEN),
}
_NUMBERS = {"size": int, "dropout": float, "hidden": int, "frozen": int}


def restore(workspace: Workspace) -> list[str]:
    """Take the choices the address holds that the session has not made yet; return which were taken."""
    params = st.query_params
    taken = []
    dataset_id = params.get(DATASET)
    if dataset_id and not st.session_state.get(state.DATASET_ID) and _dataset_exists(workspace, dataset_id):
        st.session_state[state.DATASET_ID] = dataset_id
        taken.append(DATASET)
    if st.session_state.get(state.MODEL_SPEC) is None and any(name in params for name in MODEL):
        spec = _model_from(params)
        if spec is not None:
            _show_on_model_page(spec)
            st.session_state[state.MODEL_SPEC] = spec
            taken.append("model")
    run_id = params.get(RUN)
    if run_id and not st.session_state.get(state.RUN_ID) and _run_exists(workspace, run_id):
        st.session_state[state.RUN_ID] = run_id
        taken.append(RUN)
    return taken


def publish() -> None:
    """Write the session's choices into the address (what differs from the defaults)."""
    values: dict[str, str] = {}
    if st.session_state.get(state.DATASET_ID):
        values[DATASET] = st.session_state[state.DATASET_ID]
    spec = st.session_state.get(state.MODEL_SPEC)
    if spec is not None:
        default = ModelSpec()
        for name, (field, _) in MODEL.items():
            value = getattr(spec, field)
            if value is None or value == getattr(default, field) or (name == "weights" and value not in _WEIGHTS):
                continue
            values[name] = str(value)
    if st.session_state.get(state.RUN_ID):
        values[RUN] = st.session_state[state.RUN_ID]
    if dict(st.query_params) != values:
        st.query_params.from_dict(values)


_WEIGHTS = ("imagenet", "none")  # a weights file's path stays on the server, out of the address


def _model_from(params: Any) -> ModelSpec | None:
    fields: dict[str, Any] = {}
    for name, (field, _) in MODEL.items():
        text = params.get(name)
        if text is None:
            continue
        try:
            fields[field] = _NUMBERS[name](text) if name in _NUMBERS else text
        except ValueError:
            return None
    if fields.get("weights") not in (None, *_WEIGHTS):
        return None
    try:
        return ModelSpec(**fields).validated()
    except (TLCoreError, TypeError):
        return None


def _show_on_model_page(spec: ModelSpec) -> None:
    """Set the Model page's widgets to `spec`, so the page shows what the address chose."""
    for field, key in MODEL.values():
        value = getattr(spec, field)
        if value is not None:
            st.session_state[key] = value


def _dataset_exists(workspace: Workspace, dataset_id: str) -> bool:
    try:
        cached.dataset(workspace, dataset_id)
    except TLCoreError:
        return False
    return True


def _run_exists(workspace: Workspace, run_id: str) -> bool:
    try:
        runs.load_run(workspace, run_id)
    except TLCoreError:
        return False
    return True
