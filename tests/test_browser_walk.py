"""A Japanese reader's first walk through the app in a real browser, with nothing left in English.

The walk switches the sidebar to 日本語, uploads a tiny zip, picks a small model with random weights,
trains it for two epochs at 32 pixels, then reads Compare and every tab of Evaluate & export. On each
page it reads the words a person sees (the visible text of the main area and the sidebar, chart titles,
axes and legends, table headers and cells; not code blocks) and fails on any English sentence, naming
the page and the text, so the message says exactly what to translate. What may stay English: what
Streamlit itself draws on its widgets (the app says in Japanese what those mean), technical names,
the user's own data (dataset, class, run and file names), paths and numbers with units.

Then the same pages are shown in English on the same run. Both walks keep full-page screenshots in
`test-artifacts/browser/walk-{ja,en}-*.png`. Skipped without Chromium or Playwright.
"""

from __future__ import annotations

import re

import pytest
from test_app_browser import (
    CHROMIUM,
    Steps,
    browser,  # noqa: F401  (a fixture)
    choose,
    no_exception,
    open_advanced,
    server,  # noqa: F401  (a fixture)
    set_number,
    wait_for_title,
    wait_until_idle,
)

from tlcore import datasets, demo, runs
from tlcore.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]

ZIP_NAME = "tiny.zip"
RUN_NAME = "はじめての実行"

STREAMLIT_WORDS = (
    "Browse files",
    "Drag and drop files here",
    "Drag and drop file here",
    "Drag and drop a directory here",
    "Upload",
    "Take Photo",
    "Clear photo",
    "add icon",  # the words Streamlit puts under the uploader's "+" icon, for screen readers
    "Press Enter to apply",
    "Press Enter to submit form",
    "Language / 言語",
    "English",
)
"""What Streamlit itself draws on its widgets (the app cannot word it; a Japanese note says what it means),
and the language switch, which names each language in its own words. "Limit 200MB per file • ZIP" and the
like are matched by `STREAMLIT_PATTERNS`."""
STREAMLIT_PATTERNS = (r"(Limit )?\d+(\.\d+)?\s*[KMG]B per file", r"•?\s*\b[A-Z0-9]{2,5}(, [A-Z0-9]{2,5})+\b")
TECHNICAL = (
    "EfficientNetB0",
    "DenseNet121",
    "MobileNetV2",
    "MobileNet",
    "ResNet50",
    "VGG16",
    "ImageNet",
    "TensorFlow",
    "TensorBoard",
    "Keras",
    "SavedModel",
    "TFLite",
    "ONNX",
    "Grad-CAM",
    "Adam",
    "SGD",
    "RMSprop",
    "AdamW",
    "CPU",
    "GPU",
    "JPEG",
    "PNG",
    "ZIP",
    "zip",
    "Python",
    "Flatten",
    "Dense",
    "Dropout",
    "Rescaling",
    "rescale",  # the app's preprocessing layer, by its Keras name
    "F1",
    "int8",
    "float32",
    "top-1",
    "top-k",
    "README.txt",
    "labels.txt",
    "spec.json",
    "TLCORE_WORKSPACE",
    "KERAS_HOME",
)
"""Names of models, libraries, optimizers, layers, formats and files, written the same in Japanese."""
# Identifiers (Keras layer names and classes, file names): snake_case, CamelCase, or with digits.
IDENTIFIER = r"(?a)\b\w*[A-Za-z]\w*(_|[a-z][A-Z]|\d)\w*\b"
# Paths, file names, numbers with units, times and sizes.
NEUTRAL = (
    r"\S*/\S*",
    r"(?a)[\w.\-]+\.(zip|jpe?g|png|keras|tflite|onnx|json|py|txt|h5|csv)\b",
    r"\d[\d,.]*\s*(px|KiB|MiB|GiB|KB|MB|GB|ms|s|M|k|%)(?![A-Za-z])",
    r"\d+(\.\d+)?e[+-]?\d+",
    r"\b\d{8}-\d{6}-[\w-]+\b",  # a run id
)
# Japanese (kana, kanji, full-width forms) tells a Japanese sentence from an English one.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# In a Japanese sentence, a single Latin word is a term ("zip", "spec"); three in a row are English.
ENGLISH_PHRASE = re.compile(r"[A-Za-z]{2,}(?:[\s,'’-]+[A-Za-z]+){2,}")

# The visible words of the main area and the sidebar: every visible text node (SVG chart text too),
# and the cells of tables (drawn on a canvas, kept in an accessible table), outside code blocks.
VISIBLE_TEXT = """() => {
    const roots = ['stMain', 'stSidebar'].map(id => document.querySelector(`[data-testid="${id}"]`));
    const found = [];
    // Code blocks, SVG titles, and Material icons (drawn from their names' letters by the icon font).
    const skip = el => el.closest('[data-testid="stCode"], pre, code, title')
        || getComputedStyle(el).fontFamily.includes('Material');
    for (const root of roots.filter(Boolean)) {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent.trim();
            const el = node.parentElement;
            if (!text || !el || skip(el)) continue;
            const inTable = el.closest('[data-testid="stDataFrame"] table');
            if (!inTable && !el.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
            if (inTable && !el.closest('[data-testid="stDataFrame"]').checkVisibility()) continue;
            if (inTable && (text === 'true' || text === 'false')) continue;  // checkbox cells, drawn as boxes
            found.push(text);
        }
        for (const input of root.querySelectorAll('input[role="combobox"], input[type="text"]')) {
            if (input.checkVisibility() && input.value) found.push(input.value);
        }
    }
    return found;
}"""


def user_words(workspace: Workspace) -> list[str]:
    """The user's own data in the workspace: dataset, class, file and run names, and run ids."""
    found = [ZIP_NAME]
    for dataset in datasets.list_datasets(workspace):
        found += [dataset.name, *dataset.classes, *(item.source for item in dataset.items)]
    for info in runs.list_runs(workspace):
        found += [info.name, info.id]
    return sorted(set(found), key=len, reverse=True)


def english_left(texts: list[str], workspace: Workspace) -> list[str]:
    """The texts that still hold an English word once the allowed words are taken out."""
    allowed = [*user_words(workspace), *sorted((*STREAMLIT_WORDS, *TECHNICAL), key=len, reverse=True)]
    offending = []
    for text in dict.fromkeys(texts):
        rest = text
        for pattern in STREAMLIT_PATTERNS:
            rest = re.sub(pattern, " ", rest)
        for word in allowed:
            rest = rest.replace(word, " ")
        for pattern in (*NEUTRAL, IDENTIFIER):
            rest = re.sub(pattern, " ", rest)
        if (ENGLISH_PHRASE if JAPANESE.search(text) else LATIN_WORD).search(rest):
            offending.append(text)
    return offending


class Walk:
    """One language's walk: a screenshot of every page, and in Japanese the English left on each."""

    def __init__(self, page, lang: str, workspace: Workspace):
        self.page, self.lang, self.workspace = page, lang, workspace
        self.steps = Steps(page, f"walk-{lang}")
        self.leaks: dict[str, list[str]] = {}

    def read(self, where: str) -> None:
        """Wait for the page to settle, check it drew without an exception, keep its screenshot and its English."""
        wait_until_idle(self.page)
        no_exception(self.page)
        # The app scrolls inside its main area: a window as tall as its content puts the whole page in the shot.
        height = self.page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
        self.page.set_viewport_size({"width": 1400, "height": min(max(height, 1100), 8000)})
        wait_until_idle(self.page)
        self.steps.shot(where)
        if self.lang == "ja":
            if left := english_left(self.page.evaluate(VISIBLE_TEXT), self.workspace):
                self.leaks.setdefault(where, []).extend(left)

    def tab(self, name: str, where: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()
        self.read(where)

    def __enter__(self) -> Walk:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.steps.__exit__(kind, value, traceback)

    def report(self) -> str:
        return "English left in the Japanese app:\n" + "\n".join(
            f"  {where}: {text!r}" for where, texts in self.leaks.items() for text in texts
        )


def go(page, link: str, title: str) -> None:
    page.get_by_test_id("stSidebar").get_by_role("link", name=link, exact=True).click()
    wait_for_title(page, title)
    wait_until_idle(page)


def tall_page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(30_000)
    return context, context.new_page()


def test_a_japanese_walk_from_data_to_evaluation_shows_no_english(server, browser, tmp_path):  # noqa: F811
    workspace = Workspace(server.workspace)
    tiny_zip = tmp_path / ZIP_NAME
    tiny_zip.write_bytes(demo.demo_zip(classes=2, per_class=8, size=32))
    context, page = tall_page(browser)
    with context, Walk(page, "ja", workspace) as walk:
        page.goto(f"{server.url}/data")
        wait_for_title(page, "Data")
        page.get_by_test_id("stSidebar").get_by_text("日本語").click()
        wait_for_title(page, "データ")
        walk.read("data-empty")

        # Data: the zip, added.
        page.locator("input[type=file]").first.set_input_files(str(tiny_zip))
        add = page.get_by_role("button", name="データセットを追加")
        page.wait_for_function("b => !b.disabled", arg=add.element_handle())
        walk.read("data-chosen")
        add.click()
        page.get_by_text(f"{ZIP_NAME} を追加しました").wait_for(timeout=60_000)
        walk.read("data")

        # Model: a small backbone at 32 px with random weights, transfer learning.
        go(page, "モデル", "モデル")
        choose(page, "バックボーン", "MobileNet ×0.25")
        wait_until_idle(page)
        open_advanced(page, "詳細設定")
        set_number(page, "入力サイズ（ピクセル）", 32)
        wait_until_idle(page)
        page.get_by_test_id("stRadio").get_by_text("ランダム", exact=True).click()
        walk.read("model")

        # Train: two epochs, a name; the run completes and its chart is drawn.
        go(page, "学習", "学習")
        set_number(page, "エポック数", 2)
        wait_until_idle(page)
        open_advanced(page, "詳細設定")
        choose(page, "バッチサイズ", "8")
        wait_until_idle(page)
        name = page.get_by_role("textbox", name="実行の名前（任意）")
        name.fill(RUN_NAME)
        name.press("Enter")
        walk.read("train-settings")
        page.get_by_role("button", name="学習を開始").click()
        main = page.get_by_test_id("stMain")
        main.get_by_text("完了", exact=True).wait_for(timeout=180_000)
        main.get_by_test_id("stVegaLiteChart").first.wait_for()
        walk.read("train")

        go(page, "比較", "実行の比較")
        main.get_by_test_id("stVegaLiteChart").nth(1).wait_for()
        walk.read("compare")

        go(page, "評価と書き出し", "評価と書き出し")
        page.get_by_role("button", name="評価する", exact=True).click()
        main.get_by_test_id("stMetric").first.wait_for(timeout=120_000)
        walk.read("evaluate")
        page.get_by_role("tab", name="試す", exact=True).click()
        page.get_by_role("combobox", name="検証画像").click()
        page.get_by_role("option").first.click()
        page.keyboard.press("Escape")
        main.locator("[data-testid=stImage]:visible").first.wait_for()
        walk.read("evaluate-try")
        page.get_by_role("tab", name="書き出し", exact=True).click()
        page.get_by_role("button", name="すべての形式で書き出す").click()
        main.locator("[data-testid=stDataFrame]:visible").first.wait_for(timeout=240_000)
        walk.read("evaluate-export")
        walk.tab("コードと再現", "evaluate-code")
    assert not walk.leaks, walk.report()


def test_the_same_pages_in_english_on_the_same_run(server, browser):  # noqa: F811
    """The English screenshots beside the Japanese ones, on the run the Japanese walk trained."""
    workspace = Workspace(server.workspace)
    if not any(info.status == "completed" for info in runs.list_runs(workspace)):
        pytest.skip("the Japanese walk trained no run")
    context, page = tall_page(browser)
    with context, Walk(page, "en", workspace) as walk:
        page.goto(f"{server.url}/data")
        wait_for_title(page, "Data")
        walk.read("data")
        go(page, "Model", "Model")
        choose(page, "Backbone", "MobileNet ×0.25")
        walk.read("model")
        go(page, "Train", "Train")
        page.get_by_test_id("stMain").get_by_test_id("stVegaLiteChart").first.wait_for()
        walk.read("train")
        go(page, "Compare", "Compare runs")
        page.get_by_test_id("stMain").get_by_test_id("stVegaLiteChart").nth(1).wait_for()
        walk.read("compare")
        go(page, "Evaluate & export", "Evaluate & export")
        page.get_by_test_id("stMain").get_by_test_id("stMetric").first.wait_for()
        walk.read("evaluate")
        walk.tab("Try it", "evaluate-try")
        walk.tab("Export", "evaluate-export")
        walk.tab("Code & reproduce", "evaluate-code")
