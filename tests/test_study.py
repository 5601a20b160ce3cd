"""Studies: the members a study plans, training on a share of the data, one feature pass per cut, stopping a
study part way, and the verdict in both languages.

Verdicts are read from run folders written the way the trainer leaves them (`runs.create_run`, then the
status and metrics of a finished run), so the winner, the runner-up and the times come through
`study.result` exactly as the app and the command line get them.
"""

from __future__ import annotations

import fcntl
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_spec

from tlcore import features, runs, study
from tlcore.datasets import stratified_rows
from tlcore.errors import SpecError, StudyError
from tlcore.features import Cut
from tlcore.models import Strategy
from tlcore.spec import RunSpec
from tlcore.study import Member, StudyOptions
from tlcore.training import train_run
from tlcore.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace-format1"
MOBILENET_025_LAYERS = 86
MOBILENET_025_BOUNDARIES = [0, 10, 17, 23, 30, 36, 43, 49, 55, 61, 67, 73, 80, 86]
MOBILENET_V2_035_BOUNDARIES = [0, 18, 27, 36, 45, 54, 63, 72, 81, 90, 98, 107, 116, 125, 134, 143, 151, 154]
TINY = StudyOptions(backbone="mobilenet_0.25", weights="none", image_size=32, epochs=1, batch_size=8)
STRUCTURE = (MOBILENET_025_LAYERS, MOBILENET_025_BOUNDARIES)


@pytest.fixture(autouse=True)
def cold_memory_cache():
    features._memory.clear()
    yield
    features._memory.clear()


# ---------------------------------------------------------------------------------------------
# Planning


def test_fine_tuning_depths_are_block_boundaries_spread_over_the_top_half_of_the_base():
    assert study.auto_depths(MOBILENET_V2_035_BOUNDARIES, 154) == [90, 116, 143]
    assert study.auto_depths(MOBILENET_025_BOUNDARIES, MOBILENET_025_LAYERS) == [49, 67, 80]
    assert study.base_structure("mobilenet_0.25", 32) == STRUCTURE
    assert study.auto_depths([0, 50, 100], 100) == [50], "never the whole base (transfer), never a depth twice"


def test_the_default_members_train_every_strategy_on_the_same_budget_and_seed(workspace, dataset):
    planned = study.plan(workspace, dataset.id, replace(TINY, epochs=5, seed=7), STRUCTURE)
    assert [(m.strategy, m.frozen_layers, m.two_phase, m.fraction) for m in planned.members] == [
        (Strategy.SCRATCH, 0, False, 1.0),
        (Strategy.TRANSFER, 86, False, 1.0),
        (Strategy.FINETUNE, 49, False, 1.0),
        (Strategy.FINETUNE, 67, False, 1.0),
        (Strategy.FINETUNE, 80, False, 1.0),
        (Strategy.FINETUNE, 67, True, 1.0),
    ]
    specs = [study.member_spec(planned, dataset, member) for member in planned.members]
    assert {(s.seed, s.batch_size, s.learning_rate, s.model.image_size) for s in specs} == {(7, 8, 1e-3, 32)}
    assert [s.total_epochs for s in specs] == [5] * 6, "the two-phase recipe splits the same budget (2 + 3)"
    assert (specs[-1].epochs, specs[-1].finetune_epochs, specs[-1].finetune_learning_rate) == (2, 3, 1e-5)
    assert specs[0].model.weights == "none" and specs[3].model.frozen_layers == 67
    assert specs[-1].name == "The two-phase recipe (67 frozen layers)"
    assert list(workspace.studies_dir.iterdir()) == [], "planning writes nothing"


def test_a_data_efficiency_study_trains_every_strategy_on_each_share_full_data_first(workspace, dataset):
    options = replace(TINY, fractions=study.DATA_EFFICIENCY_FRACTIONS, scratch=False, two_phase=False, depths=(67,))
    planned = study.plan(workspace, dataset.id, options, STRUCTURE)
    assert [(m.strategy, m.fraction) for m in planned.members] == [
        (strategy, fraction) for fraction in (1.0, 0.5, 0.25, 0.1) for strategy in (Strategy.TRANSFER, "finetune")
    ]
    name = study.member_spec(planned, dataset, planned.members[-1], "ja").name
    assert name == "67 層を凍結したファインチューニング（画像の 10%）"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"depths": (86,)}, "below 86 (freezing all 86 is transfer learning"),
        ({"depths": (-1, 40)}, "received -1"),
        ({"fractions": (0.0, 1.0)}, "above 0 and at most 1"),
        ({"fractions": (1.5,)}, "received 1.5"),
        ({"epochs": 0}, "epochs must be a whole number"),
    ],
)
def test_options_that_cannot_make_members_are_refused_before_anything_is_written(workspace, dataset, changes, words):
    with pytest.raises((StudyError, SpecError)) as refused:
        study.plan(workspace, dataset.id, replace(TINY, **changes), STRUCTURE)
    assert words in str(refused.value)
    assert list(workspace.studies_dir.iterdir()) == [] and list(workspace.runs_dir.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Training on a share of the data


def test_a_share_of_each_class_is_seeded_stratified_and_grows_by_adding_images():
    labels = [0] * 20 + [1] * 10 + [2] * 3
    shares = {f: stratified_rows(labels, f, seed=4) for f in (0.1, 0.25, 0.5, 1.0)}
    assert [[labels[r] for r in shares[0.1]].count(c) for c in range(3)] == [2, 1, 1], "every class keeps an image"
    assert [[labels[r] for r in shares[0.5]].count(c) for c in range(3)] == [10, 5, 2]
    assert set(shares[0.1]) <= set(shares[0.25]) <= set(shares[0.5]) <= set(shares[1.0]) == set(range(33))
    assert shares[0.5] == sorted(shares[0.5]) == stratified_rows(labels, 0.5, seed=4)
    assert shares[0.5] != stratified_rows(labels, 0.5, seed=5)


@pytest.mark.parametrize("bad", [0, 0.0, 1.01, -0.5, math.nan, True, "half"])
def test_a_run_spec_trains_on_a_share_above_0_and_at_most_1(dataset, bad):
    with pytest.raises(SpecError, match="train_fraction must be a number above 0 and at most 1"):
        tiny_spec(dataset.id, train_fraction=bad).validated()


def test_runs_written_before_the_share_existed_read_as_trained_on_all_the_data(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "ws")
    listed = runs.list_runs(Workspace(tmp_path / "ws"))
    assert [info.spec.train_fraction for info in listed] == [1.0, 1.0]
    assert "train_fraction" not in json.loads((listed[0].dir / runs.SPEC_FILE).read_text())


def test_a_run_on_part_of_the_data_takes_its_rows_from_the_whole_datasets_cached_features(workspace, dataset, counted):
    whole = train_run(workspace, runs.create_run(tiny_spec(dataset.id, epochs=1, batch_size=4), workspace).id)
    features._memory.clear()  # another trainer process: only the disk remembers
    half = train_run(
        workspace, runs.create_run(tiny_spec(dataset.id, epochs=1, batch_size=4, train_fraction=0.5), workspace).id
    )
    assert (whole.status, half.status) == ("completed", "completed")
    assert (whole.feature_passes, half.feature_passes) == (1, 0)
    assert half.features_cached is True and half.features_total == 24, "the cache covers every image"
    assert half.steps_per_epoch == 3, "half of each class's 6 training images: 9 images, 3 batches of 4"
    assert len(counted) == 2, "one pass (training and validation images) for both runs"


# ---------------------------------------------------------------------------------------------
# No work done twice


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Every `Cut.compute` call (one per split of a feature pass), as the frozen layers it ran for."""
    calls: list[int] = []
    compute = Cut.compute

    def counting(self, images, *args, **kwargs):
        calls.append(self.frozen_layers)
        return compute(self, images, *args, **kwargs)

    monkeypatch.setattr(Cut, "compute", counting)
    return calls


def test_members_that_freeze_the_same_layers_share_one_feature_pass(workspace, dataset, counted):
    options = replace(TINY, depths=(49, 67), fractions=(0.5, 1.0), scratch=False)
    planned = study.plan(workspace, dataset.id, options, STRUCTURE)
    assert len(planned.members) == 8  # transfer, two depths, the two-phase recipe; on half and all the data

    def as_a_new_process(_, index, info):
        if info.status == "queued":
            features._memory.clear()  # each member in the app is a process of its own

    trained = study.train_in_foreground(workspace, planned, on_member=as_a_new_process)
    found = study.result(workspace, trained)
    assert [r.status for r in found.members] == ["completed"] * 8
    # Each distinct cut (the whole base, 49 and 67 frozen layers) ran once: training images, then validation.
    assert sorted(counted) == [49, 49, 67, 67, 86, 86]
    assert found.feature_passes == 3
    two_phase = next(r for r in found.members if r.member.two_phase and r.member.fraction == 1.0)
    assert two_phase.feature_passes == 0, "its head phase reuses transfer's pass, its fine-tuning the 67's"


# ---------------------------------------------------------------------------------------------
# Stopping


def test_stopping_a_study_partway_cancels_the_members_not_started_and_keeps_the_finished(workspace, dataset):
    planned = study.plan(workspace, dataset.id, replace(TINY, scratch=False, depths=(67,)), STRUCTURE)

    def stop_after_the_first(found, index, info):
        if index == 0 and info.status != "queued":
            study.stop(workspace, found.id)

    stopped = study.train_in_foreground(workspace, planned, on_member=stop_after_the_first)
    assert stopped.stopped is not None
    found = study.result(workspace, stopped)
    assert [r.status for r in found.members] == ["completed", "stopped", "stopped"]
    assert [str(r.info.error) for r in found.members[1:]] == ["Stopped before training started."] * 2
    assert [r.info.epoch for r in found.members[1:]] == [0, 0]
    assert "Not counted, as not completed: fine-tuning with 67 frozen layers (stopped) and the two-phase recipe" in (
        found.verdict.render("en")
    )
    assert not found.active


# ---------------------------------------------------------------------------------------------
# The verdict


LIVE_TRAINERS: list = []
"""The run locks a "running" member's trainer would hold, held by the test until it ends."""


@pytest.fixture(autouse=True)
def release_trainers():
    yield
    while LIVE_TRAINERS:
        LIVE_TRAINERS.pop().close()


def finished(workspace, dataset, member: Member, accuracy: float | None, seconds: float = 10.0, status="completed"):
    """A run for `member` as the trainer leaves it: `status`, its best accuracy and its time (a running one
    with its lock held, as its live trainer holds it)."""
    info = runs.create_run(
        tiny_spec(
            dataset.id,
            strategy=member.strategy,
            frozen_layers=member.frozen_layers if member.strategy == "finetune" else None,
            two_phase=member.two_phase,
            train_fraction=member.fraction,
        ),
        workspace,
    )
    changes = {"status": status, "elapsed_seconds": seconds, "feature_passes": 1, "feature_pass_seconds": 1.0}
    if accuracy is not None:
        changes |= {"best_val_accuracy": accuracy, "best_epoch": 1}
    if status in ("running", "queued"):
        changes = {"status": status}
    if status == "running":
        lock = open(info.dir / runs.LOCK_FILE, "r+")
        fcntl.flock(lock, fcntl.LOCK_EX)
        LIVE_TRAINERS.append(lock)
    runs.update_status(info.dir, **changes)
    return replace(member, run=info.id)


SCRATCH, TRANSFER = Member(Strategy.SCRATCH, 0), Member(Strategy.TRANSFER, 86)
FINETUNE, TWO_PHASE = Member(Strategy.FINETUNE, 67), Member(Strategy.FINETUNE, 67, two_phase=True)


def verdicts(workspace, dataset, outcomes, fractions=(1.0,)) -> tuple[study.StudyResult, str, str]:
    """The result of a study whose members ended as `outcomes` ((member, accuracy, seconds, status) each)."""
    members = tuple(finished(workspace, dataset, *outcome) for outcome in outcomes)
    made = study.Study(
        id="a-study",
        dataset=dataset.id,
        options=replace(TINY, fractions=fractions),
        base_layers=86,
        members=members,
        created=runs.now_iso(),
    )
    made.write(workspace)
    found = study.result(workspace, study.load_study(workspace, "a-study"))
    return found, found.verdict.render("en"), found.verdict.render("ja")


def test_a_clear_winner_by_points_and_time_and_a_member_at_the_baseline(workspace, dataset):
    # The demo's validation set: 2 images of each of 3 classes, so the baseline is 33.3 %.
    found, en, ja = verdicts(
        workspace,
        dataset,
        [(SCRATCH, 1 / 3, 31.0), (TRANSFER, 2 / 3, 11.0), (FINETUNE, 5 / 6, 35.0), (TWO_PHASE, 4 / 6, 21.0)],
    )
    assert found.winner.member == replace(FINETUNE, run=found.winner.member.run)
    assert found.to_json()["winner"] == found.members[2].member.run
    assert en == (
        "Fine-tuning with 67 frozen layers won: 83.3 %, 16.7 points above transfer learning, in 3.4× its time; "
        "from scratch stayed at or below the majority-class baseline (33.3 %)."
    )
    assert ja == (
        "67 層を凍結したファインチューニングが最も良い結果でした: 83.3%、転移学習を 16.7 ポイント上回りました"
        "（時間は 3.4 倍）。ゼロから学習は多数派クラスのベースライン（33.3%）以下にとどまりました。"
    )


def test_a_tie_goes_to_the_cheaper_member(workspace, dataset):
    found, en, ja = verdicts(
        workspace,
        dataset,
        [(SCRATCH, 2 / 3, 61.0), (TRANSFER, 5 / 6, 7.0), (FINETUNE, 5 / 6, 31.0)],
    )
    assert found.winner.member.strategy == Strategy.TRANSFER and found.runner_up.member.strategy == "finetune"
    assert en == (
        "Transfer learning and fine-tuning with 67 frozen layers tied at 83.3 %; transfer learning wins as the "
        "cheaper, in 20 % of its time; every completed member beat the majority-class baseline (33.3 %)."
    )
    assert ja == (
        "転移学習と67 層を凍結したファインチューニングが 83.3% で並び、"
        "短い時間で済んだ転移学習の勝ちです（時間は 20%）。"
        "完了したどの方法も多数派クラスのベースライン（33.3%）を上回りました。"
    )


def test_when_no_member_beats_the_baseline_the_verdict_says_so(workspace, dataset):
    keras_third = float(np.float32(1 / 3))  # Keras reports accuracies in float32: 0.33333334, not above 1/3
    _, en, ja = verdicts(workspace, dataset, [(SCRATCH, keras_third, 30.0), (TRANSFER, keras_third, 5.0)])
    assert en == ("No member beat the majority-class baseline (33.3 %): the best, transfer learning, reached 33.3 %.")
    assert ja == (
        "多数派クラスのベースライン（33.3%）を上回った方法はありません。最も良かった転移学習でも 33.3% でした。"
    )


def test_members_still_training_or_failed_are_named_and_not_counted(workspace, dataset):
    found, en, ja = verdicts(
        workspace,
        dataset,
        [
            (SCRATCH, None, 0.0, "failed"),
            (TRANSFER, 4 / 6, 5.0),
            (FINETUNE, None, 0.0, "running"),
            (TWO_PHASE, None, 0.0, "queued"),
        ],
    )
    assert found.active and found.winner.member.strategy == Strategy.TRANSFER
    assert en == (
        "Transfer learning reached 66.7 %, above the majority-class baseline (33.3 %); no other member has "
        "completed to compare with. Still training: 2 members; this may change. Not counted, as not completed: "
        "from scratch (failed)."
    )
    assert ja == (
        "転移学習は 66.7% で、多数派クラスのベースライン（33.3%）を上回りました。"
        "比べられるほかの方法はまだ完了していません。まだ学習中: 2 件。結果は変わることがあります。"
        "完了していないため数えていません: ゼロから学習（失敗）。"
    )
    assert [m["status"] for m in found.to_json()["members"]] == ["failed", "completed", "running", "queued"]


def test_before_any_member_completes_there_is_no_winner(workspace, dataset):
    found, en, _ = verdicts(workspace, dataset, [(TRANSFER, None, 0.0, "running"), (FINETUNE, None, 0.0, "queued")])
    assert found.winner is None and found.to_json()["winner"] is None
    assert en == "No member has completed yet. Still training: 2 members; this may change."


def test_a_data_efficiency_study_says_who_led_on_the_least_data(workspace, dataset):
    small = [replace(m, fraction=0.25) for m in (SCRATCH, TRANSFER)]
    _, en, ja = verdicts(
        workspace,
        dataset,
        [(SCRATCH, 4 / 6, 30.0), (TRANSFER, 5 / 6, 6.0), (small[0], 1 / 3, 9.0), (small[1], 4 / 6, 2.0)],
        fractions=(0.25, 1.0),
    )
    assert en.endswith(" With 25 % of the training images, transfer learning led with 66.7 %.")
    assert ja.endswith("学習用画像を 25% にすると、転移学習が 66.7% で最も高くなりました。")
    assert "on 25 %" not in en.split(" With")[0], "the headline compares members on all the data"


def test_studies_are_listed_newest_first_and_a_damaged_one_is_skipped(workspace, dataset):
    first = study.plan(workspace, dataset.id, TINY, STRUCTURE)
    first.write(workspace)
    second = replace(study.plan(workspace, dataset.id, TINY, STRUCTURE), id="z-" + first.id)
    second.write(workspace)
    (workspace.studies_dir / "broken").mkdir()
    (workspace.studies_dir / "broken" / study.STUDY_FILE).write_text("{not json")
    assert [s.id for s in study.list_studies(workspace)] == [second.id, first.id]
    with pytest.raises(StudyError, match="There is no study 'nope'"):
        study.load_study(workspace, "nope")


def test_a_spec_with_a_share_round_trips_through_its_file(dataset):
    spec = tiny_spec(dataset.id, train_fraction=0.25).validated()
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).train_fraction == 0.25
