"""Every way an image enters takes any image: a prediction, or one sentence saying why not.

The corpus (`corpus.HOSTILE_IMAGES`): 16-bit grey and RGB, CMYK, palette with transparency, 1×1,
81 megapixels, over Pillow's bomb limit, truncated, and text named `.jpg`. It goes through
ingestion, Try it (AppTest, on the Evaluate page), a test zip on Evaluate and `tlcore predict`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import HOSTILE_IMAGES, make_zip
from helpers import run_tlcore
from streamlit.testing.v1 import AppTest

from tlcore.datasets import ingest_zip
from tlcore.evaluation import evaluate
from tlcore.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
USABLE = sorted(name for name, (_, refused) in HOSTILE_IMAGES.items() if refused is None)
REFUSED = {name: refused for name, (_, refused) in HOSTILE_IMAGES.items() if refused is not None}


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: make() for name, (make, _) in HOSTILE_IMAGES.items()}


@pytest.fixture(scope="module")
def trained(train_calibrated):
    return train_calibrated("hostile-images-ws", epochs=1)


def test_ingestion_keeps_every_usable_image_and_says_why_each_other_one_is_skipped(workspace, corpus):
    entries = {f"{class_name}/{name}": data for class_name in ("a", "b") for name, data in corpus.items()}
    dataset = ingest_zip(make_zip(entries), workspace=workspace, name="hostile.zip")
    assert sorted(Path(item.source).name for item in dataset.items) == sorted(USABLE * 2)
    reasons = {skipped.path: skipped.reason.render("en") for skipped in dataset.skipped}
    assert set(reasons) == {f"{class_name}/{name}" for class_name in ("a", "b") for name in REFUSED}
    for path, reason in reasons.items():
        assert REFUSED[Path(path).name] in reason, (path, reason)


def test_try_it_predicts_every_usable_image_and_refuses_each_other_in_one_sentence(trained, corpus, monkeypatch):
    workspace, _, info = trained
    monkeypatch.setenv("TLCORE_WORKSPACE", str(workspace.root))
    at = AppTest.from_file(str(ROOT / "app_pages" / "evaluate.py"), default_timeout=120)
    at.session_state["run_id"] = info.id
    at.run()
    at.file_uploader(key="evaluate.try_files").set_value(
        [(name, data, "application/octet-stream") for name, data in corpus.items()]
    ).run()
    assert not at.exception
    shown = {image.proto.imgs[0].caption for image in at.get("image")}
    assert shown >= set(USABLE)
    errors = [error.value for error in at.error]
    assert len(errors) == len(REFUSED)
    for name, words in REFUSED.items():
        (error,) = [error for error in errors if f"'{name}'" in error]
        assert words in error and "\n" not in error
    # The tabs after Try it still render.
    assert "keras.applications.MobileNet(" in at.code[0].value


def test_a_test_zip_of_hostile_images_is_evaluated_on_the_usable_ones(trained, corpus):
    workspace, dataset, info = trained
    entries = {f"{class_name}/{name}": data for class_name in dataset.classes[:2] for name, data in corpus.items()}
    result = evaluate(workspace, info.id, test_zip=make_zip(entries), test_name="hostile-test.zip")
    assert len(result.images) == 2 * len(USABLE)
    skipped = {Path(skipped.path).name: skipped.reason.render("en") for skipped in result.dataset.skipped}
    assert set(skipped) == set(REFUSED)
    for name, reason in skipped.items():
        assert REFUSED[name] in reason


def test_cli_predict_answers_every_image_and_says_why_for_each_refused_one(trained, corpus, tmp_path):
    workspace, _, info = trained
    paths = []
    for name, data in corpus.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    result = run_tlcore("predict", info.id, *paths, "--json", workspace=workspace)
    assert result.returncode == 2
    answers = {Path(answer["image"]).name: answer for answer in json.loads(result.stdout)}
    assert set(answers) == set(HOSTILE_IMAGES)
    predictor = Predictor.load(workspace, info.id)
    for name in USABLE:
        assert answers[name]["predicted"] == predictor.predict([tmp_path / name])[0].label
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) == len(REFUSED)
    for name, words in REFUSED.items():
        assert words in answers[name]["error"]
        (line,) = [line for line in stderr if name in line]
        assert words in line
