"""The app in a real browser: `streamlit run app.py` served to Chromium, as a person would open it.

AppTest runs scripts without a server or a frontend; this test covers what only the real pair shows:
the server starts with this repository's config, every page opens straight from its URL on a fresh
server (inside app.py's navigation, with the shared sidebar), the language switch redraws the app,
a click on the demo dataset ends in a drawn chart, and the whole path a newcomer takes: upload a zip,
choose fine-tuning, move the frozen-layers slider and watch the layer table's colours follow it,
start a run, watch its live chart gain points, stop it and find it on Compare; and a study on Compare, its
verdict, table and charts whole in a 1400-pixel window in English and Japanese.

The full-path test keeps a screenshot of every step in `test-artifacts/browser/` (numbered, at the
repository root) and the time each page rerun took while the run trained (`flow-rerun-times.json`).
Skipped without Chromium or Playwright.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import wait_for
from test_app_study import CLEAR_WIN, made_study

from tlcore.datasets import ingest_zip
from tlcore.demo import demo_zip
from tlcore.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PAGES = {
    "home": "Transfer learning studio",
    "data": "Data",
    "model": "Model",
    "train": "Train",
    "compare": "Compare runs",
    "evaluate": "Evaluate & export",
}
RUN_NAME = "browser check"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    workspace: Path


def stop_active_runs(workspace: Path, timeout: float = 60) -> None:
    """Stop every run still training in `workspace` and wait for its process (a failed test must not
    leave a 1000-epoch trainer behind)."""
    from tlcore import runs
    from tlcore.workspace import Workspace

    ws = Workspace(workspace)
    for info in runs.list_runs(ws):
        if info.active and info.status != "stopping":
            runs.stop(ws, info.id)
    with contextlib.suppress(AssertionError):  # best effort: the server is stopped next either way
        wait_for(
            lambda: not any(runs.lock_is_held(info.dir) for info in runs.list_runs(ws)),
            timeout=timeout,
            interval=0.5,
            what="the runs' trainers to end",
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh Streamlit server on this repository, with an empty workspace of its own."""
    port = free_port()
    workspace = tmp_path_factory.mktemp("ws")
    env = {**os.environ, "TLCORE_WORKSPACE": str(workspace), "TLCORE_OFFLINE": "1"}
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"

    def healthy_or_exited() -> str | None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return "healthy"
        except OSError:
            pass
        return "exited" if process.poll() is not None else None

    try:
        try:
            state = wait_for(healthy_or_exited, timeout=60, interval=0.5, what="streamlit to start")
        except AssertionError:
            state = "timed out"
        if state != "healthy":
            log.seek(0)
            pytest.fail(f"streamlit did not start:\n{log.read()}")
        yield Server(url, workspace)
    finally:
        stop_active_runs(workspace)
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def page_sleep(page):
    """Waiting in the page (for `helpers.wait_for`), which lets Playwright handle its events meanwhile."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def wait_for_title(page, text: str) -> None:
    page.get_by_role("heading", name=text, exact=True).first.wait_for(timeout=60_000)


def wait_until_idle(page, timeout: float = 60_000) -> None:
    """Wait until the script has finished and nothing on the page is stale or a skeleton for 300 ms,
    so what a screenshot or a check sees is what this rerun drew."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const idle = app && app.dataset.testScriptState === "notRunning"
                && !document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]');
            if (!idle) { window.__idleSince = null; return false; }
            window.__idleSince = window.__idleSince || performance.now();
            return performance.now() - window.__idleSince > 300;
        }""",
        polling=100,
        timeout=timeout,
    )


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def go_to(page, link: str, title: str) -> None:
    """Follow a sidebar link, as a person would (a new URL would start a new session)."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=link).click()
    wait_for_title(page, title)
    wait_until_idle(page)


class Steps:
    """Numbered full-page screenshots in test-artifacts/browser/, one per step."""

    def __init__(self, page, prefix: str):
        self.page, self.prefix, self.count = page, prefix, 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in [*ARTIFACTS.glob(f"{prefix}-*.png"), *ARTIFACTS.glob(f"{prefix}-*.json")]:
            old.unlink()

    def shot(self, name: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:  # the page as it was when the test failed
            try:
                self.shot("FAILED")
            except Exception:
                pass


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` by typing it, as with a keyboard."""
    combobox = page.get_by_role("combobox", name=label, exact=True)
    combobox.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option).first.wait_for()
    page.keyboard.press("Enter")
    sync_api.expect(combobox).to_have_value(re.compile(f"^{re.escape(option)}"))


def open_advanced(page, title: str = "Advanced") -> None:
    """Open the page's section whose title starts with `title` (the advanced settings), as a person would."""
    summary = page.get_by_test_id("stExpander").locator("summary").filter(has_text=title)
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()
    summary.locator("xpath=..").get_by_test_id("stExpanderDetails").wait_for()


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_role("spinbutton", name=label, exact=True)
    field.fill(str(value))
    field.press("Enter")


def metric_value(page, label: str) -> str:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue").inner_text()


# --- reading the layer table's colours -------------------------------------------------------------


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def layer_row_colours(grid) -> list[str]:
    """The background of each row the layer table shows, top to bottom: "learns" or "frozen".

    `st.dataframe` draws on a canvas (glide-data-grid), so the colours are read from a screenshot of
    the table: a one-pixel column at the left edge of the `#` cells (numbers are right-aligned, so it
    is background only) is cut into runs of one colour; every run of a row's height in the app's
    trainable or frozen colour is a row. The header and the lines between rows match neither.
    """
    from PIL import Image

    from ui.tables import FROZEN_BACKGROUND, TRAINABLE_BACKGROUND

    palette = {"learns": _rgb(TRAINABLE_BACKGROUND), "frozen": _rgb(FROZEN_BACKGROUND)}
    image = Image.open(io.BytesIO(grid.screenshot())).convert("RGB")
    column = [image.getpixel((4, y)) for y in range(image.height)]

    def kind(pixel: tuple[int, int, int]) -> str | None:
        for name, colour in palette.items():
            if sum(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 6:
                return name
        return None

    rows: list[str] = []
    run_kind, run_length = None, 0
    for pixel in column + [(0, 0, 0)]:
        current = kind(pixel)
        if current == run_kind:
            run_length += 1
            continue
        if run_kind is not None and run_length >= 15:  # a row (≈34 px), not an anti-aliased edge
            rows.append(run_kind)
        run_kind, run_length = current, 1
    return rows


def expected_colours(frozen: int, shown: int) -> list[str]:
    """The first `shown` rows for `frozen` frozen layers: the preprocessing row, then base layer i is
    frozen when i < frozen (`model.layers[:frozen]`)."""
    return ["frozen"] + ["frozen" if index < frozen else "learns" for index in range(shown - 1)]


def wait_for_layer_colours(page, grid, frozen: int, timeout: float = 30) -> list[str]:
    """Poll the table until its rows show `frozen` frozen layers (the canvas redraws after the rerun)."""
    seen: list[str] = []

    def rows_showing_frozen() -> list[str] | None:
        try:
            seen[:] = layer_row_colours(grid)
        except sync_api.Error:  # the table was being replaced by the rerun: look again
            seen[:] = []
        # Row 0 is the preprocessing layer; only the base rows are checked against the slider.
        if len(seen) >= 8 and seen[1:] == expected_colours(frozen, len(seen))[1:]:
            return list(seen)
        return None

    try:
        return wait_for(rows_showing_frozen, timeout, interval=0.2, what="the layer table", sleep=page_sleep(page))
    except AssertionError:
        pytest.fail(f"the layer table does not show {frozen} frozen layers; its rows are {seen}")


def strip_colours(page) -> dict[str, int]:
    """How many layers the Model page's layer strip draws green (learns) and grey (frozen): the strip is
    an SVG Vega chart, one `rect` mark per layer, so its colours are in the DOM."""
    from ui.charts import FROZEN_COLOUR, LEARNS_COLOUR

    fills = (
        page.get_by_test_id("stMain")
        .get_by_test_id("stVegaLiteChart")
        .first.evaluate(
            "chart => [...chart.querySelectorAll('.mark-rect.role-mark path')].map(mark => mark.getAttribute('fill'))"
        )
    )
    return {"learns": fills.count(LEARNS_COLOUR), "frozen": fills.count(FROZEN_COLOUR), "layers": len(fills)}


# --- reading the live chart --------------------------------------------------------------------------

COUNT_POINTS = """() => {
    const chart = document.querySelector('[data-testid="stMain"] [data-testid="stVegaLiteChart"]');
    if (!chart) return -1;
    return chart.querySelectorAll('.mark-symbol.role-mark path').length;
}"""


def chart_points(page) -> int:
    """Per-epoch points drawn in the run's loss chart (Vega renders SVG: one path per point)."""
    return page.evaluate(COUNT_POINTS)


def epoch_shown(page) -> int:
    text = page.get_by_test_id("stMain").get_by_test_id("stProgress").inner_text()
    match = re.search(r"Epoch (\d+) / (\d+)", text)
    assert match, text
    return int(match.group(1))


class RerunClock:
    """The time each script run takes, from the browser's rerun request to the server's
    `script_finished`, read off the app's websocket (Streamlit's protobuf messages)."""

    def __init__(self, page):
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._back, self._forward = BackMsg, ForwardMsg
        self._pending: tuple[float, bool] | None = None
        self.runs: list[dict] = []
        self.recording = False
        page.on("websocket", self._watch)

    def _watch(self, websocket) -> None:
        websocket.on("framesent", self._sent)
        websocket.on("framereceived", self._received)

    def _sent(self, payload) -> None:
        if isinstance(payload, str):
            return
        message = self._back.FromString(payload)
        if message.WhichOneof("type") == "rerun_script":
            self._pending = (time.perf_counter(), bool(message.rerun_script.fragment_id))

    def _received(self, payload) -> None:
        if isinstance(payload, str) or self._pending is None:
            return
        try:
            message = self._forward.FromString(payload)
        except Exception:
            return
        if message.WhichOneof("type") == "script_finished":
            started, fragment = self._pending
            self._pending = None
            if self.recording:
                self.runs.append({"seconds": round(time.perf_counter() - started, 3), "fragment": fragment})


# --- tests -------------------------------------------------------------------------------------------


def test_every_page_opens_from_its_url_inside_the_app(server, page):
    # The first visit to a fresh server goes straight to a page, as a bookmark after a restart would.
    for path, title in [("train", "Train"), *PAGES.items()]:
        page.goto(f"{server.url}/{path}")
        wait_for_title(page, title)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Language / 言語").wait_for(timeout=30_000)
        sidebar.get_by_text("Current choices").wait_for(timeout=30_000)
        assert sidebar.get_by_test_id("stSidebarNavLink").count() == len(PAGES)
        assert page.get_by_test_id("stException").count() == 0


def test_switching_to_japanese_redraws_the_app(server, page):
    page.goto(server.url)
    wait_for_title(page, PAGES["home"])
    page.get_by_test_id("stSidebar").get_by_text("日本語").click()
    wait_for_title(page, "転移学習スタジオ")
    page.get_by_test_id("stSidebar").get_by_text("現在の選択").wait_for(timeout=30_000)


def test_choices_keep_their_value_after_a_language_switch(server, page):
    # The browser sends a selectbox's or radio's choice back as its shown words; after a switch those
    # were the old language's and the next click reset the backbone to the first one (ResNet50).
    clock = RerunClock(page)
    page.goto(f"{server.url}/model")
    wait_for_title(page, "Model")
    wait_until_idle(page)
    choose(page, "Backbone", "MobileNet ×0.25")
    wait_until_idle(page)
    open_advanced(page)
    page.get_by_test_id("stRadio").get_by_text("Random", exact=True).click()
    wait_until_idle(page)
    page.get_by_test_id("stSidebar").get_by_text("日本語").click()
    wait_for_title(page, "モデル")
    wait_until_idle(page)
    backbone = page.get_by_role("combobox", name="バックボーン", exact=True)
    sync_api.expect(backbone).to_have_value(re.compile(r"^MobileNet ×0\.25 · パラメータ"))
    open_advanced(page, "詳細設定")
    dropout = page.get_by_role("slider", name=re.compile("ドロップアウト"))
    dropout.focus()
    clock.recording = True
    page.keyboard.press("ArrowRight")  # any other widget: a rerun that sends every widget's value
    wait_for(
        lambda: clock.runs,
        timeout=30,
        interval=0.05,
        what="moving the slider to rerun the page",
        sleep=page_sleep(page),
    )
    wait_until_idle(page)
    page.get_by_test_id("stSidebar").get_by_text("MobileNet ×0.25 · 転移学習").wait_for()
    sync_api.expect(backbone).to_have_value(re.compile(r"^MobileNet ×0\.25 · パラメータ"))
    sync_api.expect(
        page.get_by_role("radiogroup", name="初期の重み").get_by_role("radio", name="ランダム")
    ).to_be_checked()
    no_exception(page)


def test_the_demo_dataset_is_ingested_and_charted(server, page):
    page.goto(f"{server.url}/data")
    wait_for_title(page, PAGES["data"])
    page.get_by_role("button", name="Demo dataset").click()
    page.get_by_text("Added demo.zip").wait_for(timeout=60_000)
    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    assert page.get_by_test_id("stException").count() == 0


def test_upload_fine_tune_train_stop_and_compare(server, browser, tmp_path):
    """The newcomer's path, end to end, with a screenshot of every step."""
    from tlcore import demo, runs
    from tlcore.workspace import Workspace

    context = browser.new_context(viewport={"width": 1400, "height": 1700})  # tall: whole pages in the shots
    context.set_default_timeout(30_000)
    page = context.new_page()
    with context, Steps(page, "flow") as steps:
        clock = RerunClock(page)
        tiny_zip = tmp_path / "tiny.zip"
        tiny_zip.write_bytes(demo.demo_zip(classes=3, per_class=8, size=32))

        # 1. Data: upload the zip and add it.
        page.goto(f"{server.url}/data")
        wait_for_title(page, "Data")
        wait_until_idle(page)
        page.locator("input[type=file]").first.set_input_files(str(tiny_zip))
        add = page.get_by_role("button", name="Add dataset")
        page.wait_for_function("b => !b.disabled", arg=add.element_handle())
        steps.shot("data-zip-chosen")
        add.click()
        page.get_by_text("Added tiny.zip: 24 images in 3 classes.").wait_for(timeout=60_000)
        wait_until_idle(page)
        page.get_by_test_id("stSidebar").get_by_text("tiny.zip (3 classes)").wait_for()
        no_exception(page)
        steps.shot("data-added")

        # 2. Model: a small backbone at a small size, random weights (the server is offline), fine-tuning.
        go_to(page, "Model", "Model")
        choose(page, "Backbone", "MobileNet ×0.25")
        wait_until_idle(page)
        open_advanced(page)
        set_number(page, "Input size (pixels)", 32)
        wait_until_idle(page)
        page.get_by_test_id("stRadio").get_by_text("Random", exact=True).click()
        wait_until_idle(page)
        page.get_by_role("radiogroup", name="Strategy").get_by_role("radio", name="Fine-tuning").click()
        thumb = page.get_by_role("slider", name=re.compile(r"^Frozen base layers"))
        page.get_by_test_id("stCheckbox").filter(has_text="Snap to block boundaries").wait_for()
        wait_until_idle(page)
        no_exception(page)
        grid = page.get_by_test_id("stDataFrame")
        steps.shot("model-fine-tuning")

        # 3. The slider, moved with the keyboard: first to 0 frozen layers (every base row learns) ...
        thumb.focus()
        page.keyboard.press("Home")
        page.wait_for_function("e => e.getAttribute('aria-valuetext') === '0'", arg=thumb.element_handle())
        before = wait_for_layer_colours(page, grid, frozen=0)
        wait_until_idle(page)
        trainable_before = metric_value(page, "Trainable parameters")
        strip_before = strip_colours(page)
        assert before[1:].count("learns") == len(before) - 1, before
        steps.shot("model-none-frozen")

        # ... then one block boundary to the right: the first rows turn grey, the counts follow.
        thumb.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("e => e.getAttribute('aria-valuetext') !== '0'", arg=thumb.element_handle())
        frozen = int(thumb.get_attribute("aria-valuetext"))
        assert frozen > 0
        after = wait_for_layer_colours(page, grid, frozen=frozen)
        wait_until_idle(page)
        trainable_after = metric_value(page, "Trainable parameters")
        assert after != before
        assert after[1:].count("frozen") == min(frozen, len(after) - 1), after
        assert int(trainable_after.replace(",", "")) < int(trainable_before.replace(",", ""))
        # The strip above the table draws every layer: exactly `frozen` more of them are grey now.
        assert strip_before["layers"] == strip_before["learns"] + strip_before["frozen"] > frozen
        strip_after = wait_for(
            lambda: (strip := strip_colours(page))["frozen"] == strip_before["frozen"] + frozen and strip,
            timeout=15,
            what=f"the strip to draw {frozen} more frozen layers than {strip_before}",
            sleep=page_sleep(page),
        )
        assert strip_after["layers"] == strip_before["layers"]
        page.get_by_test_id("stSidebar").get_by_text(f"{frozen} frozen layers").wait_for()
        steps.shot(f"model-{frozen}-frozen")

        # 4. Train: many epochs (it must still be running when stopped), small batches, a name; Start.
        go_to(page, "Train", "Train")
        page.get_by_test_id("stMain").get_by_text(
            f"Model: MobileNet ×0.25 · Fine-tuning · {frozen} frozen layers"
        ).wait_for()
        set_number(page, "Epochs", 1000)
        wait_until_idle(page)
        open_advanced(page)
        choose(page, "Batch size", "8")
        wait_until_idle(page)
        name = page.get_by_role("textbox", name="Run name (optional)")
        name.fill(RUN_NAME)
        name.press("Enter")
        wait_until_idle(page)
        steps.shot("train-settings")
        clock.recording = True
        page.get_by_role("button", name="Start training").click()
        main = page.get_by_test_id("stMain")
        main.get_by_role("heading", name=RUN_NAME).wait_for()
        stop = main.get_by_role("button", name="Stop")
        stop.wait_for()
        steps.shot("train-started")

        # 5. The live chart gains points while the page is left alone (polled from the run folder).
        page.wait_for_function(f"({COUNT_POINTS})() >= 4", timeout=120_000, polling=250)
        main.get_by_text("Running", exact=True).wait_for()
        first_points, first_epoch = chart_points(page), epoch_shown(page)
        steps.shot("train-first-points")
        page.wait_for_function(f"({COUNT_POINTS})() >= {first_points + 4}", timeout=60_000, polling=250)
        wait_until_idle(page)
        later_points, later_epoch = chart_points(page), epoch_shown(page)
        assert later_points > first_points and later_epoch > first_epoch
        no_exception(page)
        steps.shot("train-more-points")

        # 6. Stop: the run ends as stopped, on the page and on disk, and stops drawing points.
        stop.click()
        main.get_by_text("Stopped", exact=True).wait_for(timeout=60_000)
        clock.recording = False
        wait_until_idle(page)
        (info,) = [info for info in runs.list_runs(Workspace(server.workspace)) if info.name == RUN_NAME]
        assert info.status == "stopped"
        assert main.get_by_role("button", name="Stop").count() == 0
        # The New run form stays closed, so the stopped run stays where it was on the page.
        assert not page.get_by_role("spinbutton", name="Epochs", exact=True).is_visible()
        assert main.get_by_role("heading", name=RUN_NAME).is_visible()
        stopped_points = chart_points(page)
        page.wait_for_timeout(2_500)  # more than two polling periods: nothing may be added any more
        assert chart_points(page) == stopped_points >= later_points
        no_exception(page)
        steps.shot("train-stopped")

        # 7. Compare: the run is in the runs picker and the table.
        go_to(page, "Compare", "Compare runs")
        main.get_by_test_id("stMultiSelect").get_by_text(RUN_NAME).wait_for()
        # The table is a canvas; its cells are also in an accessible <table> inside it.
        cells = main.get_by_test_id("stDataFrame").locator("td[role=gridcell]")
        cells.filter(has_text=RUN_NAME).first.wait_for(state="attached")  # the table and its details
        assert main.get_by_test_id("stVegaLiteChart").count() == 2
        no_exception(page)
        steps.shot("compare")

        # Page reruns while the run trained: the polled fragment (once a second) must stay quick.
        fragment_runs = [run["seconds"] for run in clock.runs if run["fragment"]]
        (ARTIFACTS / "flow-rerun-times.json").write_text(
            json.dumps(
                {
                    "fragment_runs_seconds": fragment_runs,
                    "full_runs_seconds": [run["seconds"] for run in clock.runs if not run["fragment"]],
                    "median_fragment_seconds": statistics.median(fragment_runs) if fragment_runs else None,
                    "chart_points": [first_points, later_points],
                    "epoch_shown": [first_epoch, later_epoch],
                    "layer_rows": {"0 frozen": before, f"{frozen} frozen": after},
                    "layer_strip": {"0 frozen": strip_before, f"{frozen} frozen": strip_after},
                },
                indent=2,
            )
        )
        assert len(fragment_runs) >= 3
        assert statistics.median(fragment_runs) < 1.0, fragment_runs


# --- a study on the Compare page ----------------------------------------------------------------------
# Last in this file: its study in the server's workspace makes Compare open on studies.

# A grid whose content is wider than its box scrolls sideways: its last columns would be cut off.
OVERFLOW = """grid => {
    const scroller = grid.querySelector('.dvn-scroller') || grid;
    return scroller.scrollWidth - scroller.clientWidth;
}"""


def shoot_charts(page, steps: Steps, lang: str) -> None:
    """Screenshots of the study's charts: the two accuracy charts, then the learning curves."""
    charts = page.get_by_test_id("stMain").get_by_test_id("stVegaLiteChart")
    for index, name in ((1, "accuracy"), (2, "curves")):
        charts.nth(index).evaluate("chart => chart.scrollIntoView({block: 'end'})")
        wait_until_idle(page)
        steps.shot(f"{lang}-{name}")


def test_the_compare_page_shows_a_studys_verdict_table_and_charts_whole_in_both_languages(server, page):
    workspace = Workspace(server.workspace)
    dataset = ingest_zip(demo_zip(classes=3, per_class=8, size=32, seed=0), workspace=workspace, name="demo.zip")
    made_study(workspace, dataset, CLEAR_WIN)
    with Steps(page, "study") as steps:
        page.goto(f"{server.url}/compare")
        wait_for_title(page, "Compare runs")
        main = page.get_by_test_id("stMain")
        main.get_by_text("Fine-tuning with 67 frozen layers won: 83.3 %").wait_for(timeout=60_000)
        main.get_by_test_id("stVegaLiteChart").nth(2).wait_for()
        wait_until_idle(page)
        no_exception(page)
        table = main.get_by_test_id("stDataFrame").first
        assert table.evaluate(OVERFLOW) <= 1, "the study table is wider than its place on the page"
        cells = table.locator("td[role=gridcell]")
        cells.filter(has_text="Fine-tuning with 67 frozen layers").first.wait_for(state="attached")
        assert main.get_by_test_id("stVegaLiteChart").count() == 3
        steps.shot("en")
        shoot_charts(page, steps, "en")

        page.get_by_test_id("stSidebar").get_by_text("日本語").click()
        wait_for_title(page, "実行の比較")
        main.get_by_text("67 層を凍結したファインチューニングが最も良い結果でした").wait_for(timeout=60_000)
        wait_until_idle(page)
        no_exception(page)
        table = main.get_by_test_id("stDataFrame").first
        assert table.evaluate(OVERFLOW) <= 1, "the study table is wider than its place on the page in Japanese"
        page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
        wait_until_idle(page)
        steps.shot("ja")
        shoot_charts(page, steps, "ja")
