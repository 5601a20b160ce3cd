"""The Compare page: runs side by side, renaming, and deleting only after a confirmation."""

import json

import pandas as pd
import pytest
from helpers import button, chart_data, tiny_spec
from streamlit.testing.v1 import AppTest

from tlcore import runs


def make_run(
    workspace,
    dataset,
    name: str,
    strategy: str = "transfer",
    status: str | None = "completed",
    val_accuracy: tuple[float, ...] = (0.4, 0.6),
) -> runs.RunInfo:
    """A run made with `runs.create_run`, moved to `status` with one metrics line per epoch."""
    spec = tiny_spec(
        dataset.id,
        strategy=strategy,
        frozen_layers=20 if strategy == "finetune" else None,
        epochs=len(val_accuracy),
        name=name,
    )
    info = runs.create_run(spec, workspace)
    lines = [
        {
            "kind": "epoch",
            "phase": strategy,
            "epoch": epoch,
            "step": 2,
            "global_step": 2 * epoch,
            "loss": 1.0 / epoch,
            "accuracy": acc,
            "val_loss": 1.1 / epoch,
            "val_accuracy": acc,
            "elapsed": epoch,
        }
        for epoch, acc in enumerate(val_accuracy, start=1)
    ]
    (info.dir / runs.METRICS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    if status is not None:
        best = max(val_accuracy)
        runs.update_status(
            info.dir,
            status=status,
            best_val_accuracy=best,
            best_epoch=val_accuracy.index(best) + 1,
            elapsed_seconds=12.0,
            seconds_per_epoch=6.0,
            frozen_layers=20,
            trainable_params=771,
        )
    return runs.load_run(workspace, info.id)


def open_compare_page(at: AppTest) -> AppTest:
    return at.run().switch_page("app_pages/compare.py").run()


def chart_runs(at: AppTest) -> set[str]:
    return set(chart_data(at)[0]["run"])


def test_without_runs_the_page_says_where_to_start(app):
    at = open_compare_page(app)
    assert "No runs yet: start one on the Train page." in [info.value for info in at.info]


def test_runs_are_overlaid_and_tabulated(app, workspace, dataset):
    make_run(workspace, dataset, "frozen base", "transfer", val_accuracy=(0.5, 0.7))
    make_run(workspace, dataset, "random start", "scratch", val_accuracy=(0.3, 0.35, 0.4))
    make_run(workspace, dataset, "still waiting", status=None)
    at = open_compare_page(app)
    assert not at.exception
    assert len(at.multiselect(key="compare.runs").value) == 3
    assert chart_runs(at) == {"frozen base", "random start", "still waiting"}
    table, details = (frame.value.set_index("name") for frame in at.dataframe[:2])
    assert list(table.columns)[0] == "best_val_accuracy", "the best accuracy is the first number of a row"
    assert table.loc["frozen base", "best_val_accuracy"] == pytest.approx(0.7)
    assert details.loc["frozen base", "best_epoch"] == 2
    assert table.loc["random start", "strategy"] == "From scratch"
    assert details.loc["frozen base", "seconds_per_epoch"] == 6.0
    assert table.loc["still waiting", "status"] == "Queued"


def test_choosing_fewer_runs_narrows_the_curves_and_the_table(app, workspace, dataset):
    keep = make_run(workspace, dataset, "keep")
    make_run(workspace, dataset, "drop")
    at = open_compare_page(app)
    at.multiselect(key="compare.runs").set_value([keep.id]).run()
    assert chart_runs(at) == {"keep"}
    assert at.dataframe[0].value["name"].tolist() == ["keep"]


def test_the_curves_follow_a_run_as_it_writes_new_epochs(app, workspace, dataset):
    """The curves are kept between reruns (`ui.cached.compare_curve`) only while no metrics file changes."""
    growing = make_run(workspace, dataset, "growing", val_accuracy=(0.5, 0.6))
    at = open_compare_page(app)
    assert sorted(set(chart_data(at)[1]["x"])) == [1.0, 2.0]
    row = {"kind": "epoch", "phase": "transfer", "epoch": 3, "step": 2, "global_step": 6, "loss": 0.3}
    row |= {"accuracy": 0.7, "val_loss": 0.35, "val_accuracy": 0.7, "elapsed": 3}
    with open(growing.dir / runs.METRICS_FILE, "a") as metrics:
        metrics.write(json.dumps(row) + "\n")
    at.run()
    accuracy = chart_data(at)[1]
    assert sorted(set(accuracy["x"])) == [1.0, 2.0, 3.0]
    assert accuracy[accuracy["x"] == 3.0]["value"].tolist() == [0.7, 0.7]  # train and validation


def test_the_table_says_which_path_each_run_trained_on(app, workspace, dataset):
    fast = make_run(workspace, dataset, "cached features")
    runs.update_status(fast.dir, path="features", path_note="Cached features: the frozen base ran once over …")
    full = make_run(workspace, dataset, "from scratch", "scratch")
    runs.update_status(full.dir, path="full", path_note="Training from scratch: every layer learns, …")
    make_run(workspace, dataset, "still waiting", status=None)
    at = open_compare_page(app)
    table = at.dataframe[1].value.set_index("name")  # the details
    assert table.loc["cached features", "path"] == "Fast path: cached features"
    assert table.loc["from scratch", "path"] == "Full network every epoch"
    assert pd.isna(table.loc["still waiting", "path"])


def test_a_run_is_renamed_everywhere(app, workspace, dataset):
    info = make_run(workspace, dataset, "run 1")
    at = open_compare_page(app)
    at.selectbox(key="compare.target").set_value(info.id).run()
    assert at.text_input(key="compare.new_name").value == "run 1"
    at.text_input(key="compare.new_name").set_value("ImageNet, frozen base")
    button(at.run(), "Rename").click().run()
    assert at.success[0].value == "Renamed to ImageNet, frozen base."
    assert runs.load_run(workspace, info.id).name == "ImageNet, frozen base"
    assert at.dataframe[0].value["name"].tolist() == ["ImageNet, frozen base"]


def test_an_empty_name_is_refused_with_a_message(app, workspace, dataset):
    info = make_run(workspace, dataset, "keeps its name")
    at = open_compare_page(app)
    at.text_input(key="compare.new_name").set_value("   ")
    button(at.run(), "Rename").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("Error:")
    assert runs.load_run(workspace, info.id).name == "keeps its name"


def test_delete_asks_for_confirmation_and_cancel_keeps_the_run(app, workspace, dataset):
    info = make_run(workspace, dataset, "precious")
    at = open_compare_page(app)
    button(at, "Delete").click().run()
    assert at.warning[0].value.startswith("Delete the run **precious**")
    assert info.dir.exists()
    button(at, "Cancel").click().run()
    assert not at.warning
    assert [run.id for run in runs.list_runs(workspace)] == [info.id]


def test_a_confirmed_delete_removes_the_run(app, workspace, dataset):
    doomed = make_run(workspace, dataset, "doomed")
    kept = make_run(workspace, dataset, "kept")
    at = open_compare_page(app)
    at.selectbox(key="compare.target").set_value(doomed.id).run()
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    assert at.success[0].value == "Deleted doomed."
    assert [run.id for run in runs.list_runs(workspace)] == [kept.id]
    assert at.dataframe[0].value["name"].tolist() == ["kept"]


def test_an_active_run_cannot_be_deleted(app, workspace, dataset):
    queued = make_run(workspace, dataset, "in the queue", status=None)
    at = open_compare_page(app)
    at.selectbox(key="compare.target").set_value(queued.id).run()
    assert button(at, "Delete").disabled


def test_the_compare_page_speaks_japanese(app, workspace, dataset):
    make_run(workspace, dataset, "run")
    app.session_state["lang"] = "ja"
    at = open_compare_page(app)
    assert at.title[0].value == "実行の比較"
    assert at.dataframe[0].value["status"].tolist() == ["完了"]
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["total_seconds"]["type_config"]["format"] == "%.0f 秒"


def test_a_damaged_run_folder_is_listed_not_fatal(app, workspace, dataset):
    make_run(workspace, dataset, "fine")
    (workspace.runs_dir / "broken-run").mkdir()
    at = open_compare_page(app)
    assert not at.exception
    groups = at.selectbox(key="compare.dataset").options
    assert sorted(groups) == ["Runs whose settings cannot be read · 1 run", "demo.zip · 1 run"]
    at.selectbox(key="compare.dataset").set_value("").run()
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["broken-run", "status"] == "Damaged"
