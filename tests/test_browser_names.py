"""Names full of markup, in a real browser: nothing is fetched from another host, nothing links elsewhere,
and renaming a run twice on Compare keeps the page whole.

The server's workspace holds the payload corpus of `test_awkward_workspaces` (markdown images and links to
another host, colour, LaTeX, icons, HTML, line breaks, a right-to-left override, a 5,000-character dataset
name) as run, dataset and class names. Every page, and every tab of Evaluate & export, is opened with those
runs chosen while the browser records each request the page makes and reads each link it shows.
Screenshots go to `test-artifacts/browser/names-*.png`. Skipped without Chromium or Playwright.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from test_app_browser import (
    CHROMIUM,
    Steps,
    browser,  # noqa: F401  (a fixture)
    choose,
    no_exception,
    page,  # noqa: F401  (a fixture)
    server,  # noqa: F401  (a fixture)
    sync_api,
    wait_for_title,
    wait_until_idle,
)
from test_awkward_workspaces import CLASS_PAYLOADS, LONG, PAYLOADS, made, payload_zip

from tlcore import runs
from tlcore.datasets import ingest_zip
from tlcore.demo import demo_zip
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]

PAGES = {
    "home": "Transfer learning studio",
    "data": "Data",
    "model": "Model",
    "train": "Train",
    "compare": "Compare runs",
    "evaluate": "Evaluate & export",
}
EVALUATE_TABS = ("Evaluate", "Try it", "Export", "Code & reproduce")
# Every link the app shows, next to Streamlit's own (its page links, the "#" of a heading's anchor).
LINKS = """() => [...document.querySelectorAll('a[href]')].map(a => a.href)"""


@pytest.fixture(scope="module")
def named(server):  # noqa: F811
    """The payload corpus in the server's workspace, and a run with a plain name to rename."""
    workspace = Workspace(server.workspace)
    dataset = ingest_zip(
        payload_zip(list(CLASS_PAYLOADS.values())), workspace=workspace, name=PAYLOADS["image and link"] + ".zip"
    )
    ingest_zip(demo_zip(classes=2, per_class=4, size=32, seed=1), workspace=workspace, name=LONG + ".zip")
    made_runs = {}
    for key, name in PAYLOADS.items():
        info = made(workspace, dataset, "plain", "completed", best_val_accuracy=0.5, best_epoch=1)
        (info.dir / runs.NAME_FILE).write_text(name, encoding="utf-8")
        made_runs[key] = info
    plain = made(workspace, dataset, "to rename", "completed", best_val_accuracy=0.5, best_epoch=1)
    return workspace, dataset, made_runs, plain


def test_no_request_leaves_for_another_host_and_no_link_points_elsewhere(server, page, named):  # noqa: F811
    _, dataset, made_runs, _ = named
    origin = urlsplit(server.url)
    foreign: list[str] = []
    page.on("request", lambda request: foreign.append(request.url) if away(request.url, origin) else None)
    links: dict[str, list[str]] = {}
    with Steps(page, "names") as steps:
        for key in ("image and link", "long"):
            run_id = made_runs[key].id
            for path, title in PAGES.items():
                page.goto(f"{server.url}/{path}?dataset={dataset.id}&run={run_id}")
                wait_for_title(page, title)
                wait_until_idle(page)
                no_exception(page)
                where = f"{path} with the {key} run"
                links[where] = [href for href in page.evaluate(LINKS) if away(href, origin)]
                if path == "evaluate":
                    for tab in EVALUATE_TABS:
                        page.get_by_role("tab", name=tab, exact=True).click()
                        wait_until_idle(page)
                        no_exception(page)
                        links[f"{where}, {tab}"] = [href for href in page.evaluate(LINKS) if away(href, origin)]
                if key == "image and link":
                    steps.shot(path)
        # Streamlit's own menu (Print, About, ...): its items and dialogs are drawn when opened.
        page.get_by_test_id("stMainMenu").click()
        menu = page.get_by_test_id("stMainMenuList")
        menu.wait_for()
        links["the main menu"] = [href for href in page.evaluate(LINKS) if away(href, origin)]
        about = menu.get_by_text("About")
        if about.count():
            about.click()
            page.get_by_role("dialog").wait_for()
            links["the About dialog"] = [href for href in page.evaluate(LINKS) if away(href, origin)]
            steps.shot("about")
    assert not foreign, f"requests to another host: {foreign}"
    assert not any(links.values()), {where: hrefs for where, hrefs in links.items() if hrefs}


def away(url: str, origin) -> bool:
    """Whether `url` reaches a host other than the app's server (data: and blob: URLs reach none)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return False
    if parts.scheme == "javascript":
        return True
    return parts.hostname != origin.hostname or parts.port != origin.port


def test_renaming_a_run_twice_on_compare_keeps_the_page_whole(server, page, named):  # noqa: F811
    """Issue 17's steps: pick a run under "Rename or delete a run", rename it alpha, then beta."""
    workspace, dataset, _, plain = named
    with Steps(page, "names-rename") as steps:
        page.goto(f"{server.url}/compare?dataset={dataset.id}&run={plain.id}")
        wait_for_title(page, "Compare runs")
        wait_until_idle(page)
        choose(page, "Run", "to rename")
        wait_until_idle(page)
        main, sidebar = page.get_by_test_id("stMain"), page.get_by_test_id("stSidebar")
        name = main.get_by_role("textbox", name="Name", exact=True)
        run_box = main.get_by_role("combobox", name="Run", exact=True)
        for new_name in ("alpha", "beta"):
            name.fill(new_name)
            name.press("Enter")
            main.get_by_role("button", name="Rename", exact=True).click()
            main.get_by_text(f"Renamed to {new_name}.").wait_for()
            wait_until_idle(page)
            no_exception(page)
            sync_api.expect(run_box).to_have_value(new_name)
            steps.shot(new_name)
        sidebar.get_by_text(re.compile(r"beta \(")).wait_for()
        assert runs.load_run(workspace, plain.id).name == "beta"
