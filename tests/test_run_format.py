"""Run folders written before the redesign still list, compare and evaluate.

`fixtures/workspace-format1` was written by tlcore as it stood before the rooms were redrawn (run
folder format 1): a demo dataset, a two-phase fine-tuning run with a stored evaluation, and a renamed
run trained from scratch. A user upgrading keeps their runs.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import run_tlcore
from streamlit.testing.v1 import AppTest

from tlcore import evaluation, metrics_log, runs
from tlcore.predict import Predictor
from tlcore.runs import RunState, TrainingPath
from tlcore.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-format1"
ROOT = Path(__file__).resolve().parents[1]
TWO_PHASE = "20261130-153156-999-mobilenet_0.25-finetune-0c88"
SCRATCH = "20261130-153214-179-mobilenet_0.25-scratch-b417"


@pytest.fixture
def old_workspace(tmp_path) -> Workspace:
    shutil.copytree(FIXTURE, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def test_runs_written_before_the_redesign_are_listed_as_they_were(old_workspace):
    listed = {info.id: info for info in runs.list_runs(old_workspace)}
    assert set(listed) == {TWO_PHASE, SCRATCH}
    two_phase, scratch = listed[TWO_PHASE], listed[SCRATCH]
    assert (two_phase.name, two_phase.status, two_phase.progress) == ("two-phase, format 1", RunState.COMPLETED, 1.0)
    assert (two_phase.best_val_accuracy, two_phase.best_epoch, two_phase.total_epochs) == (0.5, 1, 2)
    assert two_phase.path == TrainingPath.PREFIX and two_phase.path_note.render("en").startswith(
        "Cached prefix: the 40 frozen"
    )
    assert two_phase.spec.two_phase and [p.name for p in two_phase.spec.phases()] == ["transfer", "finetune"]
    assert (scratch.name, scratch.status, scratch.frozen_layers) == ("scratch baseline", RunState.COMPLETED, 0)


def test_their_curves_read_back_phase_by_phase(old_workspace):
    frame = metrics_log.read_metrics(old_workspace, TWO_PHASE)
    epochs = frame[frame["kind"] == "epoch"]
    assert list(epochs["phase"]) == ["transfer", "finetune"] and list(epochs["epoch"]) == [1, 2]
    assert epochs["val_accuracy"].notna().all() and (frame["kind"] == "batch").sum() == 6


def test_the_compare_page_shows_them_side_by_side(old_workspace, monkeypatch):
    monkeypatch.setenv("TLCORE_WORKSPACE", str(old_workspace.root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"two-phase, format 1", "scratch baseline"}
    assert table.set_index("name").loc["two-phase, format 1", "best_val_accuracy"] == 0.5


def test_a_stored_evaluation_is_read_back_and_a_new_model_file_is_evaluated_again(old_workspace):
    model = old_workspace.run_dir(TWO_PHASE) / runs.BEST_MODEL_FILE
    stored = json.loads((model.parent / evaluation.VAL_FILE).read_text())
    os.utime(model, ns=(stored["model"]["mtime_ns"], stored["model"]["mtime_ns"]))  # as it was when evaluated
    kept = evaluation.load_evaluation(old_workspace, TWO_PHASE)
    assert kept is not None and kept.accuracy == stored["accuracy"] and len(kept.images) == 2

    os.utime(model)  # the model file looks replaced: the evaluation is computed again, and agrees
    assert evaluation.load_evaluation(old_workspace, TWO_PHASE) is None
    fresh = evaluation.evaluate(old_workspace, TWO_PHASE)
    assert not fresh.cached and fresh.accuracy == stored["accuracy"]
    predictions = Predictor.load(old_workspace, SCRATCH).predict([kept.image_path(kept.images[0])])
    assert predictions[0].label in ("circles", "squares")


def test_the_command_line_lists_them(old_workspace):
    result = run_tlcore("runs", "--json", workspace=old_workspace)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows[TWO_PHASE]["status"] == "completed" and rows[SCRATCH]["name"] == "scratch baseline"
