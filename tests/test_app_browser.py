"""The app in a real browser: `streamlit run app.py` served to Chromium, as a person would open it.

AppTest runs scripts without a server or a frontend; this test covers what only the real pair shows:
the server starts with this repository's config, every page opens straight from its URL on a fresh
server (inside app.py's navigation, with the shared sidebar), the language switch redraws the app,
and a click on the demo dataset ends in a drawn chart. Skipped without Chromium or Playwright.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = {"home": "Transfer learning studio", "data": "Data", "model": "Model", "train": "Train",
         "compare": "Compare runs"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh Streamlit server on this repository, with an empty workspace of its own."""
    port = free_port()
    env = {**os.environ, "TLCORE_WORKSPACE": str(tmp_path_factory.mktemp("ws")), "TLCORE_OFFLINE": "1"}
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start:\n{log.read()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def wait_for_title(page, text: str) -> None:
    page.get_by_role("heading", name=text, exact=True).first.wait_for(timeout=60_000)


def test_every_page_opens_from_its_url_inside_the_app(server, page):
    # The first visit to a fresh server goes straight to a page, as a bookmark after a restart would.
    for path, title in [("train", "Train"), *PAGES.items()]:
        page.goto(f"{server}/{path}")
        wait_for_title(page, title)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Language / 言語").wait_for(timeout=30_000)
        sidebar.get_by_text("Current choices").wait_for(timeout=30_000)
        assert sidebar.get_by_test_id("stSidebarNavLink").count() == len(PAGES)
        assert page.get_by_test_id("stException").count() == 0


def test_switching_to_japanese_redraws_the_app(server, page):
    page.goto(server)
    wait_for_title(page, PAGES["home"])
    page.get_by_test_id("stSidebar").get_by_text("日本語").click()
    wait_for_title(page, "転移学習スタジオ")
    page.get_by_test_id("stSidebar").get_by_text("現在の選択").wait_for(timeout=30_000)


def test_the_demo_dataset_is_ingested_and_charted(server, page):
    page.goto(f"{server}/data")
    wait_for_title(page, PAGES["data"])
    page.get_by_role("button", name="Demo dataset").click()
    page.get_by_text("Added demo.zip").wait_for(timeout=60_000)
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    assert page.get_by_test_id("stException").count() == 0
