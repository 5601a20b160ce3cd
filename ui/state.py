"""Every `st.session_state` key the app uses, in one place, and the workspace.

Choices that other pages read (set by one page, read by several):

| key | type | set by | meaning |
| --- | --- | --- | --- |
| `lang` | "en" / "ja" | sidebar | the language of every string |
| `dataset_id` | str or None | Data page | the dataset the next run trains on |
| `model_spec` | `ModelSpec` or None | Model page | the model the next run trains (num_classes from the dataset) |
| `run_id` | str or None | Train page | the run shown on the Train page |

The address keeps these choices too (`ui.links`), so a refresh, a bookmark or another tab keeps them.

Widgets keep their own values under the keys below. Those that must survive a page switch are
created with `persist_state="session"`, so coming back to a page finds it as it was left.

- Data page: `data.source` (zip, folder or camera), `data.pick` (dataset selector), `data.train_zip`,
  `data.val_zip` (zip uploaders), `data.train_folder`, `data.val_folder` (folder uploaders), `data.folder`
  (server folder to register).
- Data page, camera (`ui.camera`): `camera.draft` (not a widget: the id of the open draft),
  `camera.base` (what a new draft starts from), `camera.class` (the class pictures go to), `camera.shot`
  (the camera), `camera.name.<draft>` (the dataset's name), `camera.remove.<shot>.<class>` (Remove
  buttons), `camera.flash` (a (kind, text) message from a callback, shown once).
- Model page: `model.backbone`, `model.image_size`, `model.pooling`, `model.dropout`, `model.hidden_units`,
  `model.weights` ("imagenet", "none" or "file"), `model.weights_path`, `model.strategy`,
  `model.frozen_layers`, `model.snap` (snap the slider to block boundaries).
- Train page: `train.epochs`, `train.batch_size`, `train.learning_rate`, `train.optimizer`, `train.flip`,
  `train.rotation`, `train.zoom`, `train.contrast`, `train.two_phase`, `train.finetune_epochs`,
  `train.finetune_learning_rate`, `train.seed`, `train.name`, `train.run` (run selector);
  `train.ended_here` (not a widget: the id of a run that ended while the Train page showed it, which keeps
  the New run form closed so the finished run does not jump down the page; the Model page and Start clear it),
  `train.refused` (not a widget: why the last Start was refused, shown once).
- Compare page: `compare.by` ("study" or "dataset": what to compare), `compare.study` (study selector),
  `compare.dataset` (dataset selector), `compare.runs` (multiselect of that dataset's runs),
  `compare.curve_x` ("epoch" or "time": a study's learning curves), `compare.target` (run to rename or
  delete), `compare.new_name`, `compare.pending_delete` (run id awaiting confirmation), `compare.flash`
  (a (kind, text) message from a button callback, shown once). A new study's options: `study.epochs`,
  `study.depths` (frozen layers of the fine-tuning members; `study.depths_for`, not a widget, the backbone
  they were chosen for), `study.scratch`, `study.two_phase`, `study.data_efficiency`; `study.refused` (not a
  widget: why the last Start was refused, shown once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from tlcore.datasets import Dataset
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace
from ui import cached

LANG = "lang"
DATASET_ID = "dataset_id"
MODEL_SPEC = "model_spec"
RUN_ID = "run_id"

DATA_SOURCE = "data.source"
DATA_PICK = "data.pick"
DATA_TRAIN_ZIP = "data.train_zip"
DATA_VAL_ZIP = "data.val_zip"
DATA_TRAIN_FOLDER = "data.train_folder"
DATA_VAL_FOLDER = "data.val_folder"
DATA_FOLDER = "data.folder"

CAMERA_DRAFT = "camera.draft"
CAMERA_BASE = "camera.base"
CAMERA_CLASS = "camera.class"
CAMERA_SHOT = "camera.shot"
CAMERA_NEW_CLASS_FORM = "camera.new_class"
CAMERA_NAME_PREFIX = "camera.name."
CAMERA_REMOVE_PREFIX = "camera.remove."
CAMERA_FLASH = "camera.flash"

MODEL_BACKBONE = "model.backbone"
MODEL_IMAGE_SIZE = "model.image_size"
MODEL_POOLING = "model.pooling"
MODEL_DROPOUT = "model.dropout"
MODEL_HIDDEN = "model.hidden_units"
MODEL_WEIGHTS = "model.weights"
MODEL_WEIGHTS_PATH = "model.weights_path"
MODEL_STRATEGY = "model.strategy"
MODEL_FROZEN = "model.frozen_layers"
MODEL_SNAP = "model.snap"

TRAIN_EPOCHS = "train.epochs"
TRAIN_BATCH = "train.batch_size"
TRAIN_LR = "train.learning_rate"
TRAIN_OPTIMIZER = "train.optimizer"
TRAIN_FLIP = "train.flip"
TRAIN_ROTATION = "train.rotation"
TRAIN_ZOOM = "train.zoom"
TRAIN_CONTRAST = "train.contrast"
TRAIN_TWO_PHASE = "train.two_phase"
TRAIN_FT_EPOCHS = "train.finetune_epochs"
TRAIN_FT_LR = "train.finetune_learning_rate"
TRAIN_SEED = "train.seed"
TRAIN_NAME = "train.name"
TRAIN_RUN = "train.run"
TRAIN_ENDED_HERE = "train.ended_here"
TRAIN_REFUSED = "train.refused"

COMPARE_BY = "compare.by"
COMPARE_STUDY = "compare.study"
COMPARE_DATASET = "compare.dataset"
COMPARE_CURVE_X = "compare.curve_x"
COMPARE_RUNS = "compare.runs"
COMPARE_TARGET = "compare.target"
COMPARE_NEW_NAME = "compare.new_name"
COMPARE_PENDING_DELETE = "compare.pending_delete"
COMPARE_FLASH = "compare.flash"

STUDY_EPOCHS = "study.epochs"
STUDY_DEPTHS = "study.depths"
STUDY_DEPTHS_FOR = "study.depths_for"
STUDY_SCRATCH = "study.scratch"
STUDY_TWO_PHASE = "study.two_phase"
STUDY_DATA_EFFICIENCY = "study.data_efficiency"
STUDY_REFUSED = "study.refused"

EVALUATE_RUN = "evaluate.run"

# Choice widgets whose options are shown in words of the session's language (their `format_func` comes
# from `worded`). The browser sends such a widget's choice back as its shown words; after a language
# switch those are the old language's, which match no option, so on the next click the widget would
# fall back to its first option (a selectbox or radio does; MobileNet became ResNet50).
# `reword_choices` tells the browser each choice again, and `heal_choices` maps old words that still
# arrive back to their option. This key holds, for each such widget key, the option of every label shown.
_SHOWN_WORDS = "state.shown_words"

_DEFAULTS: dict[str, Any] = {LANG: "en", DATASET_ID: None, MODEL_SPEC: None, RUN_ID: None}


def init_state() -> None:
    """Give the shared keys their defaults on a session's first run."""
    for key, value in _DEFAULTS.items():
        st.session_state.setdefault(key, value)


def worded(key: str, format_func: Callable[[Any], str]) -> Callable[[Any], str]:
    """The `format_func` of the worded choice `key`, remembering which option each label it shows stands for.

    Setting a choice again (`reword_choices`) tells the browser its new words, but a click that reaches
    the server before the browser has them still sends the old words; `heal_choices` maps those back.
    """
    shown = st.session_state.setdefault(_SHOWN_WORDS, {}).setdefault(key, {})

    def label(option: Any) -> str:
        words = format_func(option)
        shown[words] = option
        return words

    return label


def heal_choices() -> None:
    """Give every worded choice that came back as the words of an earlier run its option again."""
    for key, shown in st.session_state.get(_SHOWN_WORDS, {}).items():
        value = st.session_state.get(key)
        if isinstance(value, str) and value in shown and all(value != option for option in shown.values()):
            st.session_state[key] = shown[value]


def reword_choices() -> None:
    """After a language switch or a rename: set every worded choice to itself, so the browser gets its new words."""
    for key in st.session_state.get(_SHOWN_WORDS, {}):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def default(key: str, value: Any) -> None:
    """Give a widget's key a first value without passing `value=` (which would fight session state)."""
    st.session_state.setdefault(key, value)


def workspace() -> Workspace:
    """The workspace (`$TLCORE_WORKSPACE`, else ./workspace). Cheap: it only resolves a path."""
    return Workspace()


def current_dataset(workspace: Workspace) -> Dataset | None:
    """The dataset chosen on the Data page, or None (also when it has gone from the workspace)."""
    dataset_id = st.session_state.get(DATASET_ID)
    if not dataset_id:
        return None
    try:
        return cached.dataset(workspace, dataset_id)
    except TLCoreError:
        return None
