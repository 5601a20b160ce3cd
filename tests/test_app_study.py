"""The Compare page answers the question: a study started from it, its verdict, table and charts, its Stop.

Most studies here are made from run folders written the way the trainer leaves them (no process); one
test starts a real study from the page and polls it to the end, one stops a study whose runs queue.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import replace

import pytest
from helpers import button, chart_data, tiny_model, tiny_spec, wait_for
from streamlit.testing.v1 import AppTest

from tlcore import runs, study
from tlcore.datasets import ingest_zip
from tlcore.demo import demo_zip
from tlcore.study import StudyOptions
from ui import tables

STRUCTURE = (86, [0, 10, 17, 23, 30, 36, 43, 49, 55, 61, 67, 73, 80, 86])
TINY = StudyOptions(backbone="mobilenet_0.25", weights="none", image_size=32, epochs=2, batch_size=8)


def open_compare_page(at: AppTest, dataset=None, model=None) -> AppTest:
    at.run()
    if dataset is not None:
        at.session_state["dataset_id"] = dataset.id
        at.session_state["model_spec"] = model or tiny_model()
    return at.switch_page("app_pages/compare.py").run()


def made_study(workspace, dataset, outcomes: list[tuple[float | None, float, str]], options=TINY) -> study.Study:
    """A study whose members' runs ended as `outcomes` ((best accuracy, seconds, status) in member order),
    each with one metrics line per epoch (the two-phase member's second epoch in its fine-tuning phase)."""
    planned = study.plan(workspace, dataset.id, options, STRUCTURE)
    members = []
    for member, (accuracy, seconds, status) in zip(planned.members, outcomes, strict=True):
        info = runs.create_run(study.member_spec(planned, dataset, member), workspace)
        phases = ["transfer", "finetune"] if member.two_phase else [str(member.strategy)] * 2
        lines = [
            {
                "kind": "epoch",
                "phase": phase,
                "epoch": epoch,
                "step": 3,
                "global_step": 3 * epoch,
                "loss": 1.0 / epoch,
                "accuracy": (accuracy or 0.4) * epoch / 2,
                "val_loss": 1.2 / epoch,
                "val_accuracy": (accuracy or 0.4) * epoch / 2,
                "elapsed": seconds * epoch / 2,
            }
            for epoch, phase in enumerate(phases, start=1)
        ]
        (info.dir / runs.METRICS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
        changes = {"status": status, "elapsed_seconds": seconds, "epoch": 2, "feature_passes": 0}
        if accuracy is not None:
            changes |= {"best_val_accuracy": accuracy, "best_epoch": 2}
        runs.update_status(info.dir, **changes)
        members.append(replace(member, run=info.id))
    made = replace(planned, members=tuple(members))
    made.write(workspace)
    return made


# The demo's validation set: 2 images of each of 3 classes, a baseline of 33.3 %.
# Scratch, transfer, fine-tuning at 49, 67 and 80, the two-phase recipe: (best accuracy, seconds, status).
CLEAR_WIN = [
    (1 / 3, 40.0, "completed"),
    (4 / 6, 8.0, "completed"),
    (4 / 6, 30.0, "completed"),
    (5 / 6, 27.0, "completed"),
    (4 / 6, 12.0, "completed"),
    (4 / 6, 20.0, "completed"),
]


def test_a_study_shows_its_verdict_then_a_table_led_by_the_winners_accuracy(app, workspace, dataset):
    made = made_study(workspace, dataset, CLEAR_WIN)
    at = open_compare_page(app)
    assert not at.exception
    assert at.segmented_control(key="compare.by").value == "study"
    assert at.selectbox(key="compare.study").value == made.id
    assert at.success[0].value == (
        "Fine-tuning with 67 frozen layers won: 83.3 %, 16.7 points above transfer learning, in 3.4× its time; "
        "from scratch stayed at or below the majority-class baseline (33.3 %)."
    )
    table = at.dataframe[0].value
    assert list(table.columns) == ["member", "best_val_accuracy", "frozen_layers", "train_seconds", "status"]
    assert table["member"].tolist()[3] == "Fine-tuning with 67 frozen layers"
    assert table["frozen_layers"].tolist() == [0, 86, 49, 67, 80, 67]
    details = at.dataframe[1].value
    assert details["run"].tolist() == [member.run for member in made.members]
    assert any("6 of 6 runs completed" in caption.value for caption in at.caption)


def test_the_winners_row_is_highlighted():
    from tlcore.study import Member, MemberResult, StudyResult

    members = (Member("transfer", 86, run="a"), Member("finetune", 67, run="b"))
    results = (
        MemberResult(members[0], "completed", None, 0.5, 3.0),
        MemberResult(members[1], "completed", None, 0.8, 9.0),
    )
    made = study.Study("s", "d", TINY, 86, members, "2026-01-01T00:00")
    rows = tables.study_rows(StudyResult(made, results, None, results[1], results[0]))
    styles = tables.study_table(rows, data_efficiency=False)._compute().ctx
    highlighted = {row for (row, _), css in styles.items() if ("background-color", tables.WINNER_BACKGROUND) in css}
    assert highlighted == {1}


def test_the_studys_charts_draw_every_member_against_frozen_layers_time_and_epochs(app, workspace, dataset):
    made_study(workspace, dataset, CLEAR_WIN)
    at = open_compare_page(app)
    by_frozen, by_time, curves = chart_data(at)[:3]
    members = set(at.dataframe[0].value["member"])
    assert set(by_frozen["member"].dropna()) == members and set(by_time["member"].dropna()) == members
    assert by_frozen["y"].dropna().tolist() == [pytest.approx(1 / 3)], "the baseline is drawn"
    assert by_time["y"].dropna().tolist() == [pytest.approx(1 / 3)]
    assert set(curves["member"].dropna()) == members
    two_phase = curves[curves["member"] == "The two-phase recipe (67 frozen layers)"]
    assert two_phase.dropna(subset=["value"])["x"].tolist() == [1.0, 2.0]
    at.segmented_control(key="compare.curve_x").set_value("time").run()
    curves = chart_data(at)[2]
    assert curves[curves["member"] == "From scratch"].dropna(subset=["value"])["x"].tolist() == [20.0, 40.0]
    assert "phase" in curves and "Fine-tuning" in set(curves["phase"].dropna()), "the two-phase boundary is marked"


def test_the_verdict_and_the_table_speak_japanese(app, workspace, dataset):
    made_study(workspace, dataset, CLEAR_WIN)
    app.session_state["lang"] = "ja"
    at = open_compare_page(app)
    assert at.success[0].value.startswith("67 層を凍結したファインチューニングが最も良い結果でした: 83.3%")
    assert at.dataframe[0].value["status"].tolist() == ["完了"] * 6


def test_a_study_where_nothing_beat_the_baseline_says_so_as_a_warning(app, workspace, dataset):
    made_study(workspace, dataset, [(1 / 3, 10.0, "completed")] * 6)
    at = open_compare_page(app)
    assert at.warning[0].value.startswith("No member beat the majority-class baseline (33.3 %)")


def test_a_data_efficiency_study_draws_accuracy_against_training_set_size(app, workspace, dataset):
    options = replace(TINY, scratch=False, two_phase=False, depths=(67,), fractions=(0.5, 1.0))
    outcomes = [(0.8, 5.0, "completed"), (0.7, 9.0, "completed"), (0.6, 3.0, "completed"), (0.5, 6.0, "completed")]
    made_study(workspace, dataset, outcomes, options)
    at = open_compare_page(app)
    assert "train_images" in at.dataframe[0].value.columns
    by_data = chart_data(at)[3]
    points = by_data.dropna(subset=["train_images"]).sort_values(["arm", "train_images"])
    assert points[["arm", "train_images", "best_val_accuracy"]].values.tolist() == [
        ["Fine-tuning with 67 frozen layers", 9, 0.5],
        ["Fine-tuning with 67 frozen layers", 18, 0.7],
        ["Transfer learning", 9, 0.6],
        ["Transfer learning", 18, 0.8],
    ]


# ---------------------------------------------------------------------------------------------
# Starting and stopping a study from the page


def test_the_study_form_asks_for_a_dataset_and_a_model_first(app):
    at = open_compare_page(app)
    assert at.info[0].value == "Choose a dataset first."


def plan_caption(at: AppTest) -> str:
    return next(caption.value for caption in at.main.caption if "queued one after another" in caption.value)


def test_the_study_form_says_what_it_will_train(app, dataset):
    at = open_compare_page(app, dataset)
    assert at.multiselect(key="study.depths").value == [49, 67, 80]
    assert plan_caption(at) == (
        "6 runs of 5 epochs each, queued one after another: From scratch · Transfer learning · Fine-tuning with 49 "
        "frozen layers · Fine-tuning with 67 frozen layers · Fine-tuning with 80 frozen layers · The two-phase "
        "recipe (67 frozen layers)"
    )
    at.toggle(key="study.data_efficiency").set_value(True).run()
    assert plan_caption(at).startswith("24 runs of 5 epochs each")


def test_a_study_started_on_the_page_trains_and_the_page_follows_it_to_the_verdict(
    app, workspace, dataset, calibrated_weights
):
    at = open_compare_page(app, dataset, tiny_model(weights=str(calibrated_weights)))
    at.number_input(key="study.epochs").set_value(2)
    at.toggle(key="study.scratch").set_value(False)
    at.toggle(key="study.two_phase").set_value(False)
    at.multiselect(key="study.depths").set_value([67])
    button(at.run(), "Start the study").click().run()
    assert not at.exception and not at.error
    assert at.success[0].value == "The study has started: 2 runs are in the training queue."
    (started,) = study.list_studies(workspace)
    assert at.selectbox(key="compare.study").value == started.id
    wait_for(
        lambda: at.run() and not study.result(workspace, study.load_study(workspace, started.id)).active,
        timeout=300,
        interval=1,
        what="the study's runs to end",
    )
    at.run()
    found = study.result(workspace, study.load_study(workspace, started.id))
    assert [r.status for r in found.members] == ["completed", "completed"]
    assert (at.success or at.warning)[0].value == found.verdict.render("en")
    assert at.dataframe[0].value["status"].tolist() == ["Completed", "Completed"]
    assert len(at.get("vega_lite_chart")) == 3


def test_stopping_a_study_cancels_its_queued_runs(app, workspace, dataset):
    with open(workspace.runs_dir / ".slot-0", "w") as slot:
        fcntl.flock(slot, fcntl.LOCK_EX)  # another run is training: the study's runs wait in the queue
        at = open_compare_page(app, dataset)
        at.toggle(key="study.scratch").set_value(False)
        at.multiselect(key="study.depths").set_value([67])
        button(at.run(), "Start the study").click().run()
        (started,) = study.list_studies(workspace)
        assert [r.status for r in study.result(workspace, started).members] == ["queued"] * 3
        button(at.run(), "Stop the study").click().run()
        assert at.success[0].value.startswith("The study is stopping")
        wait_for(
            lambda: not any(runs.lock_is_held(runs.load_run(workspace, m.run).dir) for m in started.members),
            timeout=60,
            what="the queued trainers to end",
        )
    found = study.result(workspace, study.load_study(workspace, started.id))
    assert [(r.status, str(r.info.error)) for r in found.members] == [
        ("stopped", "Stopped before training started.")
    ] * 3
    at.run()
    verdict = next(info.value for info in at.info if info.value.startswith("No member has completed yet."))
    assert verdict.startswith("No member has completed yet. Not counted, as not completed: transfer learning (stopped)")
    assert not [b for b in at.button if b.label == "Stop the study"]


# ---------------------------------------------------------------------------------------------
# Runs by dataset


def test_runs_of_different_datasets_are_never_mixed(app, workspace, dataset):
    other = ingest_zip(demo_zip(classes=2, per_class=6, size=32, seed=5), workspace=workspace, name="other.zip")
    runs.create_run(tiny_spec(dataset.id, name="on the demo"), workspace)
    runs.create_run(tiny_spec(other.id, num_classes=2, name="on the other"), workspace)
    at = open_compare_page(app)
    assert at.segmented_control(key="compare.by").value == "dataset", "without studies, runs by dataset"
    assert at.dataframe[0].value["name"].tolist() == ["on the other"]
    assert any(caption.value.startswith("Only runs on this dataset are compared") for caption in at.caption)
    at.selectbox(key="compare.dataset").set_value(dataset.id).run()
    assert at.dataframe[0].value["name"].tolist() == ["on the demo"]
    assert at.multiselect(key="compare.runs").options == ["on the demo"]


def test_the_suggested_depths_follow_the_backbone(app, dataset):
    at = open_compare_page(app, dataset)
    at.multiselect(key="study.depths").set_value([49])
    at.session_state["model_spec"] = tiny_model(backbone="mobilenet_v2_0.35")
    at.run()
    assert not at.exception
    assert at.multiselect(key="study.depths").value == [90, 116, 143]


def test_a_members_evaluate_page_opens_the_whole_study_in_tensorboard(app, workspace, dataset):
    made = made_study(workspace, dataset, CLEAR_WIN)
    app.run()
    app.session_state["run_id"] = made.members[3].run
    at = app.switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert "All 6 runs of this run's study, side by side:" in [block.value for block in at.markdown]
    commands = [block.value for block in at.code if block.value.startswith("tensorboard --logdir_spec")]
    assert commands and all(f"{member.run}:" in commands[0] for member in made.members)
