"""No page ever shows Streamlit's exception box, and no command a traceback, whatever the workspace holds.

One workspace gathers what real ones accumulate: runs in every status (one queued without a trainer
yet, one running and one stopping with a live trainer, stopped, completed, failed, interrupted), a run
renamed with markup and a very long name, damaged run folders, a damaged dataset, a dataset whose
folder was removed while runs still point at it, studies over all of these (and a damaged one), and a
session that still has a deleted run and the removed dataset selected. Every page opens on every run, in
English and in Japanese; every subcommand of the command line answers, or says what is wrong in one line
with exit status 2.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import ROOT, run_tlcore, tiny_spec
from streamlit.testing.v1 import AppTest

from tlcore import runs, study
from tlcore.datasets import Dataset, ingest_zip
from tlcore.demo import demo_zip
from tlcore.models import Strategy
from tlcore.workspace import Workspace, write_json_atomic

PAGES = ("home", "data", "model", "train", "compare", "evaluate")
PAYLOAD_NAME = "![px](http://evil.example/x.png) [click me](http://evil.example/p) :red[red] $x$ " + "long " * 20
# Holds the locks of the runs whose trainer is alive, for as long as the test module runs.
HOLD_LOCKS = "import fcntl, sys, time\nfiles = [open(p, 'r+') for p in sys.argv[1:]]\n" + (
    "[fcntl.flock(f, fcntl.LOCK_EX) for f in files]\nprint('held', flush=True)\ntime.sleep(3600)\n"
)


def made(workspace: Workspace, dataset: Dataset, name: str, status: str | None, **fields) -> runs.RunInfo:
    """A run folder as the trainer leaves it in `status` (None: just created, no trainer yet)."""
    spec = tiny_spec(dataset.id, strategy="scratch", num_classes=len(dataset.classes), name=name, epochs=2)
    info = runs.create_run(spec, workspace)
    if status is None:
        return info
    rows = [
        {"kind": "batch", "phase": "scratch", "epoch": 1, "step": 1, "global_step": 1, "loss": 1.2, "accuracy": 0.3},
        {"kind": "epoch", "phase": "scratch", "epoch": 1, "step": 2, "global_step": 2, "loss": 1.1, "accuracy": 0.4,
         "val_loss": 1.0, "val_accuracy": 0.5, "elapsed": 2.0},
    ]  # fmt: skip
    (info.dir / runs.METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    runs.update_status(
        info.dir, status=status, pid=999_999, started=runs.now_iso(), epoch=1, step=2, steps_per_epoch=2, **fields
    )
    return info


def make_studies(workspace: Workspace, dataset: Dataset, gone: Dataset, made_runs: dict, deleted: str) -> None:
    """A study whose members are runs in every state (one deleted, one not started yet), a study on the
    removed dataset, and a study folder whose file is damaged."""
    options = study.StudyOptions(backbone="mobilenet_0.25", weights="none", image_size=32)
    members = (
        study.Member(Strategy.SCRATCH, 0, run=made_runs["queued"].id),
        study.Member(Strategy.TRANSFER, 86, run=made_runs["running"].id),
        study.Member(Strategy.FINETUNE, 49, run=made_runs["completed"].id),
        study.Member(Strategy.FINETUNE, 67, run=made_runs["failed"].id),
        study.Member(Strategy.FINETUNE, 80, run=deleted),
        study.Member(Strategy.FINETUNE, 67, two_phase=True),
    )
    every_state = study.Study("20000101-000000-every-state", dataset.id, options, 86, members, runs.now_iso())
    every_state.write(workspace)
    on_gone = (study.Member(Strategy.TRANSFER, 86, run=made_runs["on a removed dataset"].id),)
    study.Study("20000101-000001-on-gone", gone.id, options, 86, on_gone, runs.now_iso()).write(workspace)
    (workspace.studies_dir / "20000101-000002-damaged").mkdir()
    (workspace.studies_dir / "20000101-000002-damaged" / study.STUDY_FILE).write_text('{"format": 1, "members": [')


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("awkward") / "ws")
    dataset = ingest_zip(demo_zip(classes=3, per_class=6, size=32, seed=0), workspace=workspace, name="demo.zip")
    gone = ingest_zip(demo_zip(classes=2, per_class=4, size=32, seed=5), workspace=workspace, name="gone.zip")
    damaged = ingest_zip(demo_zip(classes=2, per_class=4, size=32, seed=6), workspace=workspace, name="damaged.zip")
    made_runs = {
        "queued": made(workspace, dataset, "queued, no trainer yet", None),
        "running": made(workspace, dataset, "running", "running", phase="scratch"),
        "stopping": made(workspace, dataset, "stopping", "running"),
        "stopped": made(workspace, dataset, "stopped", "stopped", ended=runs.now_iso()),
        "completed": made(workspace, dataset, "completed", "completed", best_val_accuracy=0.5, best_epoch=1),
        "failed": made(workspace, dataset, "failed", "failed", error="Training failed: ValueError: no"),
        "interrupted": made(workspace, dataset, "interrupted", "running"),  # its trainer died: no lock held
        "renamed": made(workspace, dataset, "plain", "completed", best_val_accuracy=0.4, best_epoch=1),
        "on a removed dataset": made(workspace, gone, "on gone", "completed", best_val_accuracy=0.4),
    }
    (made_runs["stopping"].dir / runs.STOP_FILE).touch()
    (made_runs["completed"].dir / runs.BEST_MODEL_FILE).write_bytes(b"PK\x03\x04 not a model")
    runs.rename(workspace, made_runs["renamed"].id, PAYLOAD_NAME)
    deleted = made(workspace, dataset, "deleted", "completed")
    runs.delete(workspace, deleted.id)
    for name, content in (("bad-json", '{"dataset": '), ("no-spec", None)):
        folder = workspace.runs_dir / f"20000101-000000-{name}"
        folder.mkdir()
        if content is not None:
            (folder / runs.SPEC_FILE).write_text(content)
    make_studies(workspace, dataset, gone, made_runs, deleted.id)
    write_json_atomic(workspace.dataset_dir(damaged.id) / "manifest.json", {"format": 1, "id": damaged.id})
    shutil.rmtree(workspace.dataset_dir(gone.id))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKS]
        + [str(made_runs[key].dir / runs.LOCK_FILE) for key in ("running", "stopping")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    try:
        yield SimpleNamespace(
            workspace=workspace, runs=made_runs, deleted=deleted.id, dataset=dataset.id, gone=gone.id, damaged=damaged
        )
    finally:
        holder.kill()
        holder.wait()


def test_the_workspace_holds_every_status(awkward):
    listed = {info.id: info.status for info in runs.list_runs(awkward.workspace)}
    expected = {
        "queued": "queued",
        "running": "running",
        "stopping": "stopping",
        "stopped": "stopped",
        "completed": "completed",
        "failed": "failed",
        "interrupted": "interrupted",
    }
    assert {key: listed[awkward.runs[key].id] for key in expected} == expected
    assert sum(status == "damaged" for status in listed.values()) == 2


def open_page(workspace: Workspace, page: str, lang: str, **session) -> AppTest:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLCORE_WORKSPACE", str(workspace.root))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.session_state["lang"] = lang
        for key, value in session.items():
            at.session_state[key] = value
        at.run()
        if page != "home":
            at.switch_page(f"app_pages/{page}.py").run()
    return at


def no_crash(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_with_a_deleted_run_and_a_removed_dataset_still_chosen(awkward, page, lang):
    at = open_page(awkward.workspace, page, lang, run_id=awkward.deleted, dataset_id=awkward.gone)
    no_crash(at, page)


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("page", ("train", "evaluate", "compare"))
def test_every_run_can_be_shown_on_the_run_pages(awkward, page, lang):
    for key, info in awkward.runs.items():
        at = open_page(awkward.workspace, page, lang, run_id=info.id, dataset_id=awkward.dataset)
        no_crash(at, f"{page} with the {key} run")
        if page == "evaluate":
            for tab in at.tabs:  # every tab drew
                assert tab.label


@pytest.mark.parametrize(
    "args",
    [
        ("runs",),
        ("runs", "--json"),
        ("datasets",),
        ("stop", "{stopped}"),
        ("stop", "{deleted}"),
        ("stop", "20000101-000000-bad-json"),
        ("code", "{on a removed dataset}"),
        ("code", "20000101-000000-no-spec"),
        ("evaluate", "{completed}"),
        ("evaluate", "{failed}"),
        ("evaluate", "{running}"),
        ("predict", "{completed}", "{image}"),
        ("export", "{interrupted}", "--out", "{tmp}"),
        ("train", "--dataset", "{damaged}"),
        ("train", "--dataset", "{gone}"),
        ("studies",),
        ("studies", "--json"),
        ("study", "--dataset", "{damaged}", "--backbone", "mobilenet_0.25"),
        ("study", "--dataset", "{gone}", "--backbone", "mobilenet_0.25", "--json"),
    ],
)
def test_every_command_answers_or_says_what_is_wrong_in_one_line(awkward, args, tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(Path(ROOT / "tests" / "fixtures" / "workspace-format1" / "datasets").joinpath(
        "4400a64028bc1696", "files", "000000.jpg").read_bytes())  # fmt: skip
    values = {key: info.id for key, info in awkward.runs.items()}
    values.update(deleted=awkward.deleted, image=str(image), tmp=str(tmp_path / "out"), gone=awkward.gone)
    values["damaged"] = awkward.damaged.id
    result = run_tlcore(*(arg.format(**values) for arg in args), workspace=awkward.workspace.root)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if result.returncode != 0:
        assert result.returncode in (1, 2), result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]


# --- names as text: a corpus of payloads as run, dataset and class names ----------------------------------

HOST = "evil.example"
LONG = "long" + "x" * 4996
PAYLOADS = {
    "image and link": f"![px](http://{HOST}/x.png) [click me](http://{HOST}/p)",
    "colour": ":red[red] :blue-background[blue]",
    "latex": "$x^2$ and $$y$$",
    "icon": ":material/bug_report: :smile:",
    "html": f'<img src="http://{HOST}/i.png"> <script>alert(1)</script>',
    "newlines": "line one\n# heading\n- item",
    "right-to-left": "photo\u202egpj.exe",
    "long": LONG,
}
# Folder names inside a zip cannot hold "/" (nor "\\", which ingestion reads as one too): a class name
# points at a relative image and a script address instead.
CLASS_PAYLOADS = {
    "image and link": "![px](x.png) [click me](javascript:alert(1))",
    "colour": PAYLOADS["colour"],
    "latex": PAYLOADS["latex"],
    "icon": PAYLOADS["icon"],
    "html": "<img src=x onerror=alert(1)>",
    "right-to-left": PAYLOADS["right-to-left"],
    "long": "long" + "x" * 196,
}
# Markup that must never reach the screen unescaped, in any text Streamlit renders as Markdown.
MARKUP = re.compile(
    r"(?<!\\)!\[|(?<!\\)\]\(|(?<!\\):red\[|(?<!\\):blue-background\[|(?<!\\)\$x|(?<!\\)\$\$y"
    r"|(?<!\\):material/bug_report|(?<!\\):smile:|(?<!\\)<(img|script)|line one\n|\u202e"
    r"|(?i:https?|www)\\?[:.]"  # an address Markdown would make a live link, escaped or not
)
MARKDOWN_FIELDS = {"body", "label", "text", "caption"}
"""Proto fields Streamlit renders as Markdown (element bodies, widget labels, progress texts); `help`
(a tooltip) is Markdown too."""
PLAIN_FIELDS = {"options", "default", "value", "placeholder"}
"""Proto fields shown as plain text (select-box options, field values)."""


def payload_zip(classes: list[str]) -> bytes:
    """A zip with one folder per class name and two tiny JPEGs in each."""
    import io
    import zipfile

    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, class_name in enumerate(classes):
            for i in range(2):
                image = io.BytesIO()
                Image.new("RGB", (16, 16), (40 * k, 100 + 50 * i, 20)).save(image, "JPEG")
                archive.writestr(f"{class_name}/{i}.jpg", image.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """A workspace whose every name is a payload: a dataset named with markup whose classes are payloads,
    one with a 5,000-character name, a run per payload (the long one cut at the 200 characters a name
    may have), and a study on the payload dataset."""
    from test_app_study import CLEAR_WIN, made_study

    workspace = Workspace(tmp_path_factory.mktemp("payloads") / "ws")
    dataset = ingest_zip(
        payload_zip(list(CLASS_PAYLOADS.values())), workspace=workspace, name=PAYLOADS["image and link"] + ".zip"
    )
    ingest_zip(demo_zip(classes=2, per_class=4, size=32, seed=1), workspace=workspace, name=LONG + ".zip")
    made_runs = {}
    for key, name in PAYLOADS.items():
        info = made(workspace, dataset, "plain", "completed", best_val_accuracy=0.5, best_epoch=1)
        # A name file as another tool may write it: the app copes with what `runs.rename` would refuse.
        (info.dir / runs.NAME_FILE).write_text(name, encoding="utf-8")
        made_runs[key] = info
    made_study(workspace, dataset, CLEAR_WIN)
    return SimpleNamespace(workspace=workspace, dataset=dataset, runs=made_runs)


def shown_strings(at: AppTest) -> dict[str, list[str]]:
    """Every string the rendered page hands the browser, read from each element's message as Streamlit
    sends it: "markdown" (rendered as Markdown), "tooltip" (help, also Markdown), "plain" (options,
    table cells and headers) and "field" (what a text field holds, for the user to edit)."""
    from google.protobuf.json_format import MessageToDict

    found: dict[str, list[str]] = {"markdown": [], "tooltip": [], "plain": [], "field": []}

    def visit(value, field: str | None, kind: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, key, kind)
        elif isinstance(value, list):
            for item in value:
                visit(item, field, kind)
        elif isinstance(value, str):
            if field == "help":
                found["tooltip"].append(value)
            elif field in MARKDOWN_FIELDS:
                found["markdown"].append(value)
            elif field in PLAIN_FIELDS:
                found["field" if kind == "text_input" else "plain"].append(value)

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if (proto := getattr(node, "proto", None)) is not None:
            visit(MessageToDict(proto), None, kind)
        if kind == "arrow_data_frame":
            found["plain"] += [str(cell) for cell in node.value.astype(str).to_numpy().ravel()]
            found["plain"] += [str(column) for column in node.value.columns]
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


@pytest.mark.parametrize("page", [*PAGES, "compare-runs"])
@pytest.mark.parametrize("chosen", ["image and link", "newlines", "long"])
def test_every_payload_name_is_shown_as_text_on_every_page(payloads, page, chosen):
    """Run, dataset and class names full of markup render as their own characters: no link, image,
    colour, formula, icon or HTML survives, line breaks and reordering characters are gone, and a long
    name is shortened (its whole text only in a tooltip or the field that edits it)."""
    session = {"run_id": payloads.runs[chosen].id, "dataset_id": payloads.dataset.id}
    if page == "compare-runs":  # Compare opens on its study: this is its other view, the runs of a dataset
        page, session["compare.by"] = "compare", "dataset"
    at = open_page(payloads.workspace, page, "en", **session)
    no_crash(at, page)
    shown = shown_strings(at)
    assert shown["markdown"]
    for text in shown["markdown"] + shown["tooltip"]:
        assert not MARKUP.search(text), f"{page}: markup shown as Markdown: {text[:300]!r}"
    for text in shown["plain"]:
        assert "\u202e" not in text and "line one\n" not in text, f"{page}: {text[:300]!r}"
    for text in shown["markdown"] + shown["plain"]:
        assert "x" * 100 not in text, f"{page}: a long name shown whole: {text[:120]!r}…"


def test_a_long_name_is_shortened_with_the_whole_name_in_a_tooltip(payloads):
    at = open_page(payloads.workspace, "train", "en", run_id=payloads.runs["long"].id)
    no_crash(at, "train")
    whole = "long" + "x" * 196
    assert any(whole in text for text in shown_strings(at)["tooltip"]), "no tooltip holds the whole name"
    sidebar = " ".join(element.value for element in at.sidebar.markdown)
    assert whole not in sidebar and "longxxx" in sidebar
