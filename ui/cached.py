"""Cached calls into tlcore, so a page rerun (one per click, one a second while polling) stays fast.

- Models for layer tables are built once per architecture (`st.cache_resource`, random weights:
  structure is all a table needs); the table and parameter counts for each strategy and number of
  frozen layers are then computed from that model by tlcore and kept (`st.cache_data`).
- Datasets are content-addressed and never change once ingested, so a loaded one is kept, and the
  list of them is read again only when the datasets folder changes.
- Metrics are re-read only when the run's metrics file has changed size or time, and so are the
  Compare page's curves made from them.

Keras is imported into this process to build those layer-table models and to predict (Evaluate). After
every script run (every click, and every poll of a training run) Streamlit calls
`keras.backend.clear_session()`, which ends with a full `gc.collect()`: it walks every object Keras and
TensorFlow created (~400,000), 0.25 to 0.7 s of CPU holding the GIL, per rerun of every session.
`leave_keras_alone` stops that (the server keeps no Keras state worth resetting), and `_model` moves what
exists right after the first Keras import out of the collector's sight for its automatic collections
(`gc.freeze()`, once): those are module-level objects that live as long as the process anyway.
"""

from __future__ import annotations

import functools
import gc
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from tlcore import backbones, datasets, metrics_log, models, runs
from tlcore.errors import WeightsUnavailableError
from tlcore.i18n import Message
from tlcore.models import ModelSpec, Strategy
from tlcore.workspace import Workspace
from ui import charts

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LayerView:
    """What the Model page shows for one spec: the layer table and its parameter counts."""

    table: pd.DataFrame
    counts: dict[str, int]


@dataclass(frozen=True)
class Structure:
    """Facts about a spec's architecture that do not depend on the strategy."""

    base_layers: int
    boundaries: list[int]


def _structure_key(spec: ModelSpec) -> ModelSpec:
    """The spec with everything that does not change the architecture set to one value."""
    return replace(spec, weights="none", strategy=Strategy.SCRATCH, frozen_layers=None).validated()


@functools.cache
def leave_keras_alone() -> None:
    """Stop Streamlit from resetting Keras after every script run (once per process).

    Streamlit's script runner calls `keras.backend.clear_session()` after each script run once Keras is
    imported (`script_runner._clean_problem_modules`); its full garbage collection stalled every other
    session's rerun on a busy server. The server's Keras models live in bounded caches (`_model`, the
    Evaluate page's predictors), so there is nothing to reset. Matplotlib's figures are still closed,
    as Streamlit does.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def close_figures_only() -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")

    script_runner._clean_problem_modules = close_figures_only


@functools.cache
def _import_keras_and_freeze() -> None:
    """Import Keras and hide everything that exists now from the garbage collector (once per process)."""
    import keras  # noqa: F401 - the import is the point

    gc.freeze()


@st.cache_resource(max_entries=4, show_spinner=False)
def _model(spec: ModelSpec) -> tuple[Any, threading.Lock]:
    # Frozen before any model is built, so models evicted from this cache are still collected.
    _import_keras_and_freeze()
    # The lock guards the model: `apply_strategy` changes it in place and sessions share it.
    return models.build_model(spec, load_weights=False), threading.Lock()


def structure(spec: ModelSpec) -> Structure:
    """Number of base layers and block boundaries of `spec`'s architecture (built once, cached)."""
    return _structure(_structure_key(spec))


@st.cache_data(max_entries=32, show_spinner=False)
def _structure(spec: ModelSpec) -> Structure:
    model, lock = _model(spec)
    with lock:
        base = models.get_base(model)
        return Structure(base_layers=len(base.layers), boundaries=models.block_boundaries(base))


def layer_view(spec: ModelSpec) -> LayerView:
    """The layer table and parameter counts of `spec` with its strategy applied."""
    spec = spec.validated()
    return _layer_view(_structure_key(spec), spec.strategy, spec.frozen_layers)


@st.cache_data(max_entries=256, show_spinner=False)
def _layer_view(structure_spec: ModelSpec, strategy: str, frozen_layers: int | None) -> LayerView:
    model, lock = _model(structure_spec)
    with lock:
        models.apply_strategy(model, strategy, frozen_layers)
        return LayerView(table=models.layer_table(model), counts=models.parameter_counts(model))


@st.cache_data(ttl=600, show_spinner=False)
def offline() -> bool:
    """Whether ImageNet weights cannot be downloaded (checked at most every ten minutes)."""
    return backbones.is_offline()


def weights_problem(spec: ModelSpec, workspace: Workspace) -> Message | None:
    """Why the spec's starting weights cannot be had now (missing and offline, no published hash), or None."""
    backbone = backbones.get_backbone(spec.backbone)
    return _weights_problem(backbone.name, spec.weights, spec.image_size or backbone.default_size, str(workspace.root))


@st.cache_data(ttl=60, show_spinner=False)
def _weights_problem(backbone: str, weights: str, image_size: int, root: str) -> Message | None:
    try:
        backbones.check_weights_available(backbones.get_backbone(backbone), weights, image_size, Workspace(root))
    except WeightsUnavailableError as exc:
        return exc.message
    return None


@st.cache_resource(max_entries=16, show_spinner=False)
def _dataset(root: str, dataset_id: str) -> datasets.Dataset:
    return datasets.load_dataset(Workspace(root), dataset_id)


def dataset(workspace: Workspace, dataset_id: str) -> datasets.Dataset:
    """An ingested dataset (kept once loaded: a dataset's content never changes)."""
    return _dataset(str(workspace.root), dataset_id)


def dataset_list(workspace: Workspace) -> list[datasets.Dataset]:
    """`datasets.list_datasets`, read again only when a dataset folder is added or removed."""
    folder = workspace.datasets_dir
    return _dataset_list(str(workspace.root), tuple(sorted(entry.name for entry in folder.iterdir())))


@st.cache_resource(max_entries=4, show_spinner=False)
def _dataset_list(root: str, names: tuple[str, ...]) -> list[datasets.Dataset]:
    return datasets.list_datasets(Workspace(root))


def metrics(workspace: Workspace, run_id: str) -> pd.DataFrame:
    """A run's metrics (`metrics_log.read_metrics`), re-read only when its file has changed."""
    path = workspace.run_dir(run_id) / runs.METRICS_FILE
    return _metrics(str(workspace.root), run_id, _stamp(path))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(root: str, run_id: str, stamp: tuple[int, int]) -> pd.DataFrame:
    return metrics_log.read_metrics(Workspace(root), run_id)


def compare_curve(
    workspace: Workspace, run_ids: dict[str, str], metric: str, labels: charts.ChartLabels
) -> dict[str, Any]:
    """`charts.compare_curve` of these runs (label -> run id), made again only when one of their
    metrics files has changed: the Compare page's curves otherwise cost half of its rerun."""
    stamps = tuple(
        (label, run_id, _stamp(workspace.run_dir(run_id) / runs.METRICS_FILE)) for label, run_id in run_ids.items()
    )
    return _compare_curve(str(workspace.root), stamps, metric, labels)


@st.cache_data(max_entries=32, show_spinner=False)
def _compare_curve(
    root: str, stamps: tuple[tuple[str, str, tuple[int, int]], ...], metric: str, labels: charts.ChartLabels
) -> dict[str, Any]:
    curves = {label: _metrics(root, run_id, stamp) for label, run_id, stamp in stamps}
    return charts.compare_curve(curves, metric, labels)
