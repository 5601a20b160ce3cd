"""The Home page and the shared chrome: strategies explained with diagrams, language switch, sidebar."""

from pathlib import Path

import pytest
from helpers import chart_data
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_explains_each_strategy_with_its_frozen_part_shaded(app):
    at = app.run()
    assert not at.exception
    assert [h.value for h in at.subheader][:3] == ["Transfer learning", "Fine-tuning", "From scratch"]
    diagrams = chart_data(at)
    assert len(diagrams) == 3
    base_states = [frame.loc[frame["part"] == "base", "state"].tolist() for frame in diagrams]
    assert base_states[0] == ["frozen"] * 5  # transfer: the whole base
    assert "frozen" in base_states[1] and "learns_pretrained" in base_states[1]  # fine-tuning: the bottom
    assert "frozen" not in base_states[2]  # from scratch: nothing


def test_home_links_the_five_steps(app):
    at = app.run()
    labels = [link.proto.label for link in at.get("page_link")]
    assert labels == ["Data", "Model", "Train", "Compare", "Evaluate & export"]


def test_japanese_is_shown_when_chosen_and_kept_across_pages(app):
    at = app.run()
    at.segmented_control(key="lang").set_value("ja").run()
    assert at.title[0].value == "転移学習スタジオ"
    assert at.subheader[0].value == "転移学習"
    at.switch_page("app_pages/data.py").run()
    assert at.title[0].value == "データ"
    assert at.session_state["lang"] == "ja"


def test_sidebar_shows_the_workspace_and_that_nothing_is_chosen_yet(app, workspace):
    at = app.run()
    assert at.sidebar.code[0].value == str(workspace.root)
    summary = at.sidebar.markdown[-1].value
    assert "address" in at.sidebar.caption[-1].value
    assert "Dataset: none" in summary and "Model: none" in summary and "Run: none" in summary


def test_a_workspace_that_is_a_file_is_refused_with_a_message(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("TLCORE_WORKSPACE", str(not_a_folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.error[0].value.startswith("Error:") and "is a file" in at.error[0].value


@pytest.mark.parametrize("page", ["data", "model", "train", "compare"])
def test_every_page_opens_inside_the_app_with_the_shared_sidebar(app, page):
    at = app.run().switch_page(f"app_pages/{page}.py").run()
    assert not at.exception
    assert at.sidebar.segmented_control(key="lang").value == "en"
    assert at.sidebar.markdown[-1].value.startswith("- Dataset:")
