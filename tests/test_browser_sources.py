"""In a real browser: a folder chosen from the desktop, and pictures from a camera, become datasets.

Chromium's fake camera (`--use-fake-device-for-media-stream`, permission granted by
`--use-fake-ui-for-media-stream`) stands in for a webcam: it shows a moving test pattern, so every
picture differs. Screenshots go to `test-artifacts/browser/sources-*.png`. Skipped without Chromium
or Playwright.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import wait_for
from PIL import Image
from test_app_browser import (
    CHROMIUM,
    LAUNCH_ARGS,
    Steps,
    no_exception,
    page_sleep,
    server,  # noqa: F401  (a fixture)
    sync_api,
    wait_for_title,
    wait_until_idle,
)

from tlcore import datasets
from tlcore.datasets import drafts
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]

CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def camera_browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[*LAUNCH_ARGS, *CAMERA_ARGS])
        yield chromium
        chromium.close()


@pytest.fixture
def page(camera_browser):
    context = camera_browser.new_context(viewport={"width": 1400, "height": 1100}, permissions=["camera"])
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def open_data_page(page, url: str, source: str) -> None:
    page.goto(f"{url}/data")
    wait_for_title(page, "Data")
    wait_until_idle(page)
    page.get_by_role("radiogroup", name="Add from").get_by_role("radio", name=source, exact=True).click()
    wait_until_idle(page)


def photo_folder(root, name: str = "kitchen") -> None:
    """`root/name/<class>/<n>.jpg`, two classes of three photos, and a hidden file to be skipped."""
    for k, class_name in enumerate(("cups", "plates")):
        folder = root / name / class_name
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = np.random.default_rng(10 * k + i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG")
            (folder / f"{i}.jpg").write_bytes(buffer.getvalue())
    (root / name / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def test_a_folder_chosen_in_the_browser_becomes_a_dataset(server, page, tmp_path):  # noqa: F811
    photo_folder(tmp_path)
    with Steps(page, "sources-folder") as steps:
        open_data_page(page, server.url, "Folder")
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Dataset folder (or training folder)")
        uploader.locator('input[type="file"]').set_input_files(tmp_path / "kitchen")
        page.get_by_text("7 files chosen.").wait_for()
        steps.shot("chosen")
        page.get_by_role("button", name="Add folder").click()
        page.get_by_text("Added kitchen: 6 images in 2 classes.").wait_for(timeout=60_000)
        wait_until_idle(page)
        no_exception(page)
        steps.shot("added")
    workspace = Workspace(server.workspace)
    (dataset,) = [d for d in datasets.list_datasets(workspace) if d.name == "kitchen"]
    assert dataset.classes == ("cups", "plates")
    assert [skipped.path for skipped in dataset.skipped] == ["kitchen/.DS_Store"]


def take_picture(page) -> None:
    page.get_by_role("button", name="Take Photo").click()
    page.get_by_role("button", name="Clear photo").wait_for()
    wait_until_idle(page)


def test_pictures_from_the_camera_build_a_dataset_class_by_class(server, page):  # noqa: F811
    workspace = Workspace(server.workspace)
    before = {dataset.id for dataset in datasets.list_datasets(workspace)}
    with Steps(page, "sources-camera") as steps:
        open_data_page(page, server.url, "Camera")
        page.get_by_role("button", name="Start taking pictures").click()
        wait_until_idle(page)
        for class_name in ("left", "right"):
            page.get_by_label("New class").fill(class_name)
            page.get_by_role("button", name="Add class").click()
            page.get_by_text(f"{class_name} (0)").wait_for()
            wait_until_idle(page)
            page.get_by_role("button", name="Take Photo").wait_for(timeout=30_000)
            for count in range(1, 4):
                # A busy machine can hand the fake camera's same frame over twice: the page says the
                # picture is kept once, and a person takes another.
                kept = page.get_by_text(f"{class_name} ({count})")
                same = page.get_by_text("the same picture is kept once")
                for attempt in range(5):
                    # The fake stream restarts with each new picture, so the same delay gives the same
                    # frame: wait a different time before each shot.
                    page.wait_for_timeout(300 * count + 700 * attempt)
                    take_picture(page)
                    # The picture reaches the server after the button has changed: wait for its answer.
                    kept.or_(same).first.wait_for()
                    if kept.count():
                        break
                    page.get_by_role("button", name="Clear photo").click()
                    wait_until_idle(page)
                else:
                    pytest.fail(f"the fake camera gave the same frame five times for {class_name} ({count})")
                page.get_by_role("button", name="Clear photo").click()
                wait_until_idle(page)
        steps.shot("taken")
        (draft,) = drafts.list_drafts(workspace)
        assert draft.counts() == {"left": 3, "right": 3}

        page.get_by_role("button", name="Remove").first.click()
        page.get_by_text("right (2)").wait_for()
        wait_until_idle(page)
        steps.shot("removed")
        page.get_by_role("button", name="Make dataset").click()
        wait_for(
            lambda: {d.id for d in datasets.list_datasets(workspace)} - before,
            timeout=60,
            interval=0.5,
            sleep=page_sleep(page),
            what="the camera dataset",
        )
        wait_until_idle(page)
        no_exception(page)
        steps.shot("made")
    (new_id,) = {d.id for d in datasets.list_datasets(workspace)} - before
    assert datasets.load_dataset(workspace, new_id).counts().set_index("class")["total"].to_dict() == {
        "left": 3,
        "right": 2,
    }
