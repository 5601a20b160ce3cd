"""`python -m tlcore study` and `studies`: a tiny study end to end on the command line, and bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_tlcore

from tlcore import runs
from tlcore.datasets import ingest_zip
from tlcore.workspace import Workspace

TINY = ("--backbone", "mobilenet_0.25", "--image-size", "32", "--epochs", "1", "--batch-size", "8")
ROOT = Path(__file__).resolve().parents[1]
MEMBER_KEYS = {
    "run",
    "strategy",
    "two_phase",
    "frozen_layers",
    "fraction",
    "best_val_accuracy",
    "train_seconds",
    "status",
}


@pytest.fixture(scope="module")
def demo_zip(tmp_path_factory, demo_zip_bytes) -> Path:
    path = tmp_path_factory.mktemp("study-cli") / "demo.zip"
    path.write_bytes(demo_zip_bytes)
    return path


def test_a_study_trains_every_member_and_prints_exactly_the_result_object(demo_zip, tmp_path, calibrated_weights):
    ran = run_tlcore(
        "study", "--data", str(demo_zip), *TINY, "--weights", str(calibrated_weights), "--json", workspace=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert set(found) == {"study", "dataset", "baseline_accuracy", "winner", "members"}
    assert found["baseline_accuracy"] == pytest.approx(1 / 3)
    members = found["members"]
    assert all(set(member) == MEMBER_KEYS for member in members)
    assert [(m["strategy"], m["frozen_layers"], m["two_phase"], m["fraction"]) for m in members] == [
        ("scratch", 0, False, 1.0),
        ("transfer", 86, False, 1.0),
        ("finetune", 49, False, 1.0),
        ("finetune", 67, False, 1.0),
        ("finetune", 80, False, 1.0),
        ("finetune", 67, True, 1.0),
    ]
    assert {m["status"] for m in members} == {"completed"}
    assert all(0 <= m["best_val_accuracy"] <= 1 and m["train_seconds"] > 0 for m in members)
    best = max(m["best_val_accuracy"] for m in members)
    winner = next(m for m in members if m["run"] == found["winner"])
    assert winner["best_val_accuracy"] == best
    assert winner["train_seconds"] == min(m["train_seconds"] for m in members if m["best_val_accuracy"] == best)
    workspace = Workspace(tmp_path)
    assert sorted(info.id for info in runs.list_runs(workspace)) == sorted(m["run"] for m in members)
    assert sum(runs.load_run(workspace, m["run"]).feature_passes for m in members) == 4, "one per distinct cut"
    listed = json.loads(run_tlcore("studies", "--json", workspace=tmp_path).stdout)
    assert [(s["study"], s["winner"], s["backbone"]) for s in listed] == [
        (found["study"], found["winner"], "mobilenet_0.25")
    ]
    tensorboard = json.loads(
        run_tlcore("runs", "--study", found["study"], "--tensorboard", "--json", workspace=tmp_path).stdout
    )
    assert sorted(tensorboard["runs"]) == sorted(m["run"] for m in members)
    assert tensorboard["command"].startswith("tensorboard --logdir_spec ")


def test_a_study_says_each_member_as_it_goes_then_the_verdict(demo_zip_bytes, tmp_path):
    dataset = ingest_zip(demo_zip_bytes, workspace=Workspace(tmp_path), name="demo.zip")
    args = ("study", "--dataset", dataset.id, *TINY, "--weights", "none", "--no-scratch", "--no-two-phase")
    ran = run_tlcore(*args, "--depths", "67", workspace=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("Study ") and lines[0].endswith(
        ": 2 members with mobilenet_0.25, trained one after another"
    )
    assert lines[1].startswith("[1/2] Transfer learning: run ") and "-mobilenet_0.25-transfer-" in lines[1]
    assert lines[2].startswith("epoch   1 [transfer]  loss ")
    assert lines[3].startswith("[1/2] Transfer learning: completed, best validation accuracy ")
    assert lines[4].startswith("[2/2] Fine-tuning with 67 frozen layers: run ")
    rows = [line for line in lines if line.endswith("(completed)")]
    assert len(rows) == 2 and sum(row.startswith("*") for row in rows) == 1
    assert "Majority-class baseline: 33.3 % (always answering 'circles')" in lines
    assert "Feature passes computed: 2 (members that freeze the same layers share one)" in lines
    assert "majority-class baseline (33.3 %)" in lines[-1]
    listed = run_tlcore("studies", "--lang", "ja", workspace=tmp_path)
    assert listed.returncode == 0 and "2 件中 2 件が完了" in listed.stdout


@pytest.mark.parametrize(
    "args, line",
    [
        (
            TINY,
            "error: Give the data to study: --data TRAIN.zip (with --val VAL.zip if the validation images are "
            "apart), --data-dir DIR, or --dataset ID.",
        ),
        (
            ("--dataset", "x", "--depths", "60,x", *TINY),
            "python -m tlcore study: error: argument --depths: auto, or whole numbers separated by commas "
            "(90,116,143); received '60,x' (see --help)",
        ),
        (
            ("--dataset", "x", "--fractions", "half", *TINY),
            "python -m tlcore study: error: argument --fractions: numbers separated by commas "
            "(0.1,0.25,0.5,1); received 'half' (see --help)",
        ),
        (
            ("--dataset", "x", "--image-size", "32"),
            "python -m tlcore study: error: the following arguments are required: --backbone",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(args, line, tmp_path):
    ran = run_tlcore("study", *args, workspace=tmp_path)
    assert ran.returncode == 2
    assert len(ran.stderr.strip().splitlines()) == 1 and ran.stderr.strip().startswith(line)
    assert not (tmp_path / "studies").exists() or list((tmp_path / "studies").iterdir()) == []


@pytest.mark.parametrize(
    "option, words",
    [
        (("--depths", "86"), "Each frozen depth must be a whole number of base layers, at least 0 and below 86"),
        (("--fractions", "0,1"), "Each share of the training images must be above 0 and at most 1"),
    ],
)
def test_options_that_make_no_member_exit_2_before_anything_trains(demo_zip_bytes, tmp_path, option, words):
    dataset = ingest_zip(demo_zip_bytes, workspace=Workspace(tmp_path), name="demo.zip")
    ran = run_tlcore("study", "--dataset", dataset.id, *TINY, *option, "--json", workspace=tmp_path)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [f"error: {json.loads(ran.stdout)['error']}"]
    assert words in ran.stderr
    assert list(Workspace(tmp_path).runs_dir.iterdir()) == []


def test_no_studies_yet(tmp_path):
    ran = run_tlcore("studies", workspace=tmp_path)
    assert (ran.returncode, ran.stdout.strip()) == (0, "No studies yet.")


def test_the_study_benchmark_runs_in_smoke_mode():
    ran = subprocess.run(
        [sys.executable, "bench/study.py", "--smoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "TLCORE_OFFLINE": "1"},
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stdout.splitlines()
    assert any(line.startswith("study: ") and "2 feature passes" in line for line in lines)
    assert any(line.startswith("queue: ") and "2 feature passes" in line for line in lines)
    assert any(line.startswith("cold: ") and "2 feature passes" in line for line in lines)
