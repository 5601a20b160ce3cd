"""Model: the backbone, the strategy and how many layers stay frozen, with the layer table showing what will learn.

A beginner decides three things here (backbone, strategy, frozen layers); the input size, the head
and the starting weights wait in "Advanced" with the Keras transfer-learning guide's defaults. The
page builds a `ModelSpec` (kept in `st.session_state["model_spec"]` for the Train page). The layer
table comes from the same architecture with random weights (`ui.cached`), so it is quick, works
offline for every backbone, and never loads weights into the Streamlit process.
"""

from dataclasses import replace

import streamlit as st

from tlcore import backbones, models
from tlcore.errors import TLCoreError
from tlcore.models import POOLINGS, ModelSpec, Strategy
from ui import cached, charts, i18n, state, tables
from ui.i18n import t

WEIGHT_SOURCES = ("imagenet", "none", "file")
ARTICLE_PRESET = {
    state.MODEL_BACKBONE: "resnet50",
    state.MODEL_IMAGE_SIZE: 224,
    state.MODEL_POOLING: "flatten",
    state.MODEL_DROPOUT: 0.0,
    state.MODEL_HIDDEN: 0,
    state.MODEL_WEIGHTS: "imagenet",
    state.MODEL_STRATEGY: Strategy.FINETUNE,
    state.MODEL_FROZEN: 168,
    state.MODEL_SNAP: False,
}
_SPEC = ModelSpec().validated()  # the spec's defaults, filled in
DEFAULTS = {
    state.MODEL_BACKBONE: _SPEC.backbone,
    state.MODEL_IMAGE_SIZE: _SPEC.image_size,
    state.MODEL_POOLING: _SPEC.pooling,
    state.MODEL_DROPOUT: _SPEC.dropout,
    state.MODEL_HIDDEN: _SPEC.hidden_units,
    state.MODEL_WEIGHTS: _SPEC.weights,
    state.MODEL_WEIGHTS_PATH: "",
    state.MODEL_STRATEGY: _SPEC.strategy,
    state.MODEL_SNAP: True,
}
KEEP = {"persist_state": "session"}


def apply_article_preset() -> None:
    st.session_state.update(ARTICLE_PRESET)


def choose_backbone() -> backbones.Backbone:
    names = i18n.labelled(backbones.list_backbones(), lambda name: i18n.backbone_label(backbones.get_backbone(name)))
    name = st.selectbox(
        t("model.backbone"),
        list(names),
        format_func=state.worded(state.MODEL_BACKBONE, names.get),
        key=state.MODEL_BACKBONE,
        **KEEP,
    )
    return backbones.get_backbone(name)


def choose_strategy() -> Strategy:
    strategy = st.segmented_control(
        t("model.strategy"),
        list(Strategy),
        required=True,
        key=state.MODEL_STRATEGY,
        format_func=state.worded(state.MODEL_STRATEGY, i18n.labelled(Strategy, i18n.strategy_label).get),
        **KEEP,
    )
    st.caption(i18n.strategy_hint(strategy))
    return strategy


def advanced(backbone: backbones.Backbone, strategy: Strategy) -> dict:
    """Input size, head and starting weights; returns the matching ModelSpec fields."""
    size_col, head_col = st.columns(2)
    image_size = size_col.number_input(
        t("model.image_size"),
        min_value=backbone.min_size,
        max_value=1024,
        step=16,
        key=state.MODEL_IMAGE_SIZE,
        help=t("model.image_size_help"),
        **KEEP,
    )
    pooling = head_col.segmented_control(
        t("model.pooling"),
        POOLINGS,
        required=True,
        key=state.MODEL_POOLING,
        format_func=state.worded(state.MODEL_POOLING, i18n.labelled(POOLINGS, i18n.pooling_label).get),
        **KEEP,
    )
    dropout = size_col.slider(t("model.dropout"), 0.0, 0.9, step=0.05, key=state.MODEL_DROPOUT, **KEEP)
    hidden_units = head_col.number_input(
        t("model.hidden_units"),
        min_value=0,
        max_value=8192,
        step=64,
        key=state.MODEL_HIDDEN,
        help=t("model.hidden_units_help"),
        **KEEP,
    )
    labels = i18n.labelled(WEIGHT_SOURCES, i18n.weights_label)
    if not models.rules(strategy).pretrained:
        # Random weights, shown as chosen; the choice for the other strategies is kept as it was.
        st.radio(t("model.weights"), WEIGHT_SOURCES, index=1, format_func=labels.get, horizontal=True, disabled=True)
        st.caption(t("model.scratch_weights"))
        weights = "none"
    else:
        source = st.radio(
            t("model.weights"),
            WEIGHT_SOURCES,
            key=state.MODEL_WEIGHTS,
            format_func=state.worded(state.MODEL_WEIGHTS, labels.get),
            horizontal=True,
            **KEEP,
        )
        weights = source if source != "file" else weights_file(backbone, int(image_size))
    return {
        "image_size": int(image_size),
        "pooling": pooling,
        "dropout": float(dropout),
        "hidden_units": int(hidden_units),
        "weights": weights,
    }


def weights_file(backbone: backbones.Backbone, image_size: int) -> str:
    path = st.text_input(
        t("model.weights_path"), key=state.MODEL_WEIGHTS_PATH, placeholder="/path/to/weights.h5", **KEEP
    ).strip()
    if not path:
        st.info(t("model.weights_path_needed"))
        return "none"
    try:
        backbones.resolve_weights(backbone, path, image_size, workspace)
    except TLCoreError as exc:
        st.error(i18n.error_text(exc))
    return path


def weights_status(spec: ModelSpec) -> None:
    """Whether the starting weights are on this machine, and if not, what to do (training waits for them)."""
    backbone = backbones.get_backbone(spec.backbone)
    if spec.weights != "imagenet":
        return
    found = backbones.find_cached_weights(backbone, spec.image_size, workspace)
    if found is not None:
        st.success(t("model.weights_found", path=str(found)), icon=":material/check_circle:")
        return
    problem = cached.weights_problem(spec, workspace)
    if problem is None:
        st.info(t("model.weights_download"), icon=":material/download:")
        return
    st.warning(i18n.weights_missing_text(backbone, spec.image_size), icon=":material/warning:")


def frozen_slider(strategy: Strategy, structure: cached.Structure) -> int | None:
    """The frozen-layers slider: fixed at all (transfer) or 0 (scratch), free for fine-tuning."""
    label = t("model.frozen_layers", total=structure.base_layers)
    strategy_rules = models.rules(strategy)
    if strategy_rules.freezes != "first_n":
        fixed = strategy_rules.frozen_count(None, structure.base_layers)
        st.slider(label, 0, structure.base_layers, value=fixed, disabled=True, help=t("model.frozen_fixed_help"))
        return None
    snap = st.toggle(t("model.snap"), key=state.MODEL_SNAP, help=t("model.snap_help"), **KEEP)
    options = structure.boundaries if snap else list(range(structure.base_layers + 1))
    current = st.session_state.get(state.MODEL_FROZEN)
    if current is None:
        current = structure.boundaries[-2] if len(structure.boundaries) > 1 else 0
    # A new backbone or the snap switch can leave the value off the options: take the nearest one.
    st.session_state[state.MODEL_FROZEN] = min(options, key=lambda option: abs(option - current))
    return st.select_slider(label, options=options, key=state.MODEL_FROZEN, help=t("model.frozen_help"), **KEEP)


def layers(spec: ModelSpec) -> None:
    """Parameter counts and the layer table, coloured by what learns."""
    view = cached.layer_view(spec)
    total_col, trainable_col, frozen_col = st.columns(3)
    total_col.metric(t("model.params_total"), f"{view.counts['total']:,}")
    trainable_col.metric(t("model.params_trainable"), f"{view.counts['trainable']:,}")
    frozen_col.metric(t("model.params_frozen"), f"{view.counts['non_trainable']:,}", help=t("model.params_frozen_help"))
    st.subheader(t("model.layers"))
    st.caption(t("model.layers_legend"))
    # The table shows a dozen rows at a time; the strip shows where the frozen part ends, wherever it is.
    st.caption(t("model.layer_strip"))
    table = tables.layer_rows(view.table)
    st.altair_chart(charts.layer_strip(table, tables.layer_titles()), width="stretch")
    st.dataframe(
        tables.styled_layer_table(table),
        column_config=tables.layer_columns(),
        hide_index=True,
        height=480,
        placeholder="–",
    )


workspace = state.workspace()
for key, value in DEFAULTS.items():
    state.default(key, value)
st.session_state.pop(state.TRAIN_ENDED_HERE, None)  # preparing a new run: the Train page opens its form

st.title(t("model.title"))
st.caption(t("model.intro"))
st.button(t("model.preset"), on_click=apply_article_preset, help=t("model.preset_help"), icon=":material/article:")

backbone_col, strategy_col = st.columns(2)
with backbone_col:
    chosen_backbone = choose_backbone()
with strategy_col:
    chosen_strategy = choose_strategy()
with st.expander(t("model.advanced"), icon=":material/tune:"):
    st.caption(t("model.advanced_help"))
    fields = advanced(chosen_backbone, chosen_strategy)

dataset = state.current_dataset(workspace)
spec = ModelSpec(
    backbone=chosen_backbone.name,
    strategy=chosen_strategy,
    num_classes=len(dataset.classes) if dataset is not None else 2,
    **fields,
)
weights_status(spec)
if dataset is None:
    st.caption(t("model.no_dataset"))
try:
    with st.spinner(t("model.building", label=chosen_backbone.label)):
        structure = cached.structure(spec)
except TLCoreError as exc:
    st.error(i18n.error_text(exc))
else:
    spec = replace(spec, frozen_layers=frozen_slider(chosen_strategy, structure))
    st.session_state[state.MODEL_SPEC] = spec
    frozen = models.frozen_count(chosen_strategy, spec.frozen_layers, structure.base_layers)
    if spec.weights == "none" and models.rules(chosen_strategy).pretrained and frozen:
        st.info(t("model.random_weights_hint"), icon=":material/casino:")
    layers(spec)
