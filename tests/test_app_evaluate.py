"""The Evaluate & export page's "Train it on another machine": the spec, the dataset and the commands."""

from pathlib import Path

import pytest
from helpers import tiny_spec
from streamlit.testing.v1 import AppTest

from tlcore import runs
from tlcore.datasets import ingest_zip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def queued_run(workspace, demo_zip_bytes, monkeypatch):
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    dataset = ingest_zip(demo_zip_bytes, workspace=workspace, name="demo.zip")
    return dataset, runs.create_run(tiny_spec(dataset.id, num_classes=len(dataset.classes), epochs=1), workspace)


def test_the_code_tab_offers_the_spec_the_dataset_and_the_commands_to_train_elsewhere(queued_run):
    dataset, info = queued_run
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at = at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert "Train it on another machine" in [header.value for header in at.subheader]
    downloads = [element.proto.label for element in at.get("download_button")]
    assert "Download spec.json" in downloads and f"Download dataset-{dataset.id}.zip" in downloads
    commands = [block.value for block in at.code if block.language == "bash"]
    assert commands and f"python -m tlcore train --spec spec.json --data dataset-{dataset.id}.zip" in commands[0]
    assert "--distribute mirrored" in commands[0] and "--distribute multiworker" in commands[0]
