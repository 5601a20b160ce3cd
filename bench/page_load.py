"""Page reruns under load: five browser sessions open on the app while a run trains.

The workspace holds the shared flowers photos and `--runs` finished runs (copies of one real run, so
that every page has a history to list), and a fine-tuning run of MobileNetV2 ×0.35 trains throughout,
started the way the app starts it (`runs.start`): it keeps both cores busy. Five sessions of headless
Chromium each open one page (Train, which polls the running run every second, Compare, Evaluate,
Model and Data), and each page is rerun every few seconds with Streamlit's rerun key (`r`), in turn.
Every script run is timed from the browser's rerun request to the server's `script_finished`
(`RerunClock`): full reruns and the Train page's polls alike. The target: every page's reruns stay
under 500 ms at the 95th percentile.

    KERAS_HOME=/work/shared/keras-home python bench/page_load.py [--seconds 120] [--runs 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.browser import (
    ROOT,
    RerunClock,
    chromium,
    end_spare,
    machine,
    memory_of,
    streamlit_server,
    wait_until_idle,
)

SHARED = ROOT.parent / "shared"
DATA = SHARED / "datasets"
BACKBONE = "mobilenet_v2_0.35"
PAGES = ("train", "compare", "evaluate", "model", "data")
TITLES = {
    "train": "Train",
    "compare": "Compare runs",
    "evaluate": "Evaluate & export",
    "model": "Model",
    "data": "Data",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long reruns are measured")
    parser.add_argument("--runs", type=int, default=40, help="finished runs in the workspace's history")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two reruns (pages in turn)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    if not (DATA / "flower_photos_224_subset_train.zip").is_file():
        print(f"skipped: the shared flowers data is not in {DATA}")
        return 0
    env = {"KERAS_HOME": os.environ.get("KERAS_HOME", str(SHARED / "keras-home")), "TLCORE_OFFLINE": "1"}
    os.environ.update(env)
    from tlcore import runs
    from tlcore.datasets import ingest_zip
    from tlcore.models import ModelSpec
    from tlcore.spec import RunSpec
    from tlcore.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="tlcore-page-load-") as folder:
        workspace = Workspace(Path(folder) / "ws")
        dataset = ingest_zip(
            DATA / "flower_photos_224_subset_train.zip",
            DATA / "flower_photos_224_subset_val.zip",
            workspace=workspace,
            name="flowers",
        )
        print(f"dataset: {len(dataset.items)} images; training the run the history is made of ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "tlcore", "train", "--dataset", dataset.id, "--backbone", BACKBONE]
            + ["--weights", "imagenet", "--strategy", "transfer", "--epochs", "2", "--workspace", str(workspace.root)],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        (first,) = runs.list_runs(workspace)
        for k in range(1, args.runs):
            shutil.copytree(first.dir, workspace.runs_dir / f"{first.id}-copy{k:03d}")
        model = ModelSpec(backbone=BACKBONE, weights="imagenet", num_classes=5, strategy="finetune", frozen_layers=100)
        training = runs.start(RunSpec(dataset=dataset.id, model=model, epochs=1000, name="training"), workspace)
        # The Train page shows the run training (it polls it every second); the others, a finished one.
        query = f"?dataset={dataset.id}&backbone={BACKBONE}&weights=imagenet&strategy=transfer&run={{run}}"
        with streamlit_server(workspace.root, env, Path(folder) / "streamlit.log") as (url, server_pid):
            try:
                result = _measure(url, query, args, workspace, runs, (training.id, first.id), server_pid)
            finally:
                runs.stop(workspace, training.id)
                deadline = time.monotonic() + 300
                while runs.lock_is_held(training.dir) and time.monotonic() < deadline:
                    time.sleep(0.5)  # its trainer saves what it learned, then exits
                end_spare(workspace)
    summary = {"machine": machine(), "when": datetime.now().isoformat(timespec="seconds"), **result}
    summary["finished_runs"] = args.runs
    _print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _measure(url: str, query: str, args: Any, workspace: Any, runs: Any, shown: tuple, server_pid: int) -> dict:
    """Open the five pages, wait for the run to train, then rerun the pages in turn for `args.seconds`.

    shown: the run training, which the Train page shows, and the finished run the other pages show."""
    run_id, finished = shown
    deadline = time.monotonic() + 600
    while runs.load_run(workspace, run_id).status != "running":  # a spare has claimed it and works on it
        if time.monotonic() > deadline:
            raise TimeoutError("the training run did not start in 10 minutes")
        time.sleep(1)
    with chromium() as browser:
        pages, clocks = {}, {}
        for name in PAGES:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            clocks[name] = RerunClock(page)
            page.goto(f"{url}/{name}" + query.format(run=run_id if name == "train" else finished))
            page.get_by_role("heading", name=TITLES[name], exact=True).first.wait_for()
            if name == "train":  # it polls the run every second: never idle for long
                page.get_by_role("button", name="Stop").wait_for()
            else:
                wait_until_idle(page)
            pages[name] = page
        for clock in clocks.values():
            clock.recording = True
        cpu_before, started = _cpu_seconds(server_pid), time.monotonic()
        turn = 0
        while time.monotonic() - started < args.seconds:
            name = PAGES[turn % len(PAGES)]
            pages[name].locator("body").press("r")  # Streamlit's rerun key
            turn += 1
            # Playwright serves every page's websocket events while one of them waits.
            pages[name].wait_for_timeout(args.every * 1000)
        elapsed = time.monotonic() - started
        server_cpu = (_cpu_seconds(server_pid) - cpu_before) / elapsed
        for clock in clocks.values():
            clock.recording = False
        info = runs.load_run(workspace, run_id)
        memory = {"server": memory_of(server_pid)}
        pid = runs.RunStatus.read(info.dir).pid
        if pid:
            memory["trainer"] = memory_of(pid)
    per_page = {name: _percentiles(clock.runs) for name, clock in clocks.items()}
    everything = [run for clock in clocks.values() for run in clock.runs]
    return {
        "seconds": round(elapsed, 1),
        "pages": per_page,
        "all": _percentiles(everything),
        "server_cpu_cores": round(server_cpu, 2),
        "memory_mib": memory,
        "training_epochs_during": info.epoch,
    }


def _percentiles(reruns: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind, chosen in (("full", False), ("poll", True)):
        seconds = [run["seconds"] for run in reruns if run["fragment"] == chosen]
        if seconds:
            p50, p95 = np.percentile(seconds, [50, 95])
            result[kind] = {"n": len(seconds), "p50": round(p50, 3), "p95": round(p95, 3), "max": max(seconds)}
    seconds = [run["seconds"] for run in reruns]
    if seconds:
        result["p95_all"] = round(float(np.percentile(seconds, 95)), 3)
    return result


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_table(summary: dict[str, Any]) -> None:
    print(f"\nmachine: {summary['machine']}")
    print("| page | full reruns: n, p50, p95, max (s) | polls: n, p50, p95, max (s) | p95 of all (s) |")
    print("|---|---|---|---|")
    for name, stats in summary["pages"].items():
        cells = []
        for kind in ("full", "poll"):
            s = stats.get(kind)
            cells.append(f"{s['n']}, {s['p50']}, {s['p95']}, {s['max']}" if s else "-")
        print(f"| {name} | {cells[0]} | {cells[1]} | {stats.get('p95_all', '-')} |")
    print(
        f"server CPU: {summary['server_cpu_cores']} cores; memory: {summary['memory_mib']}; "
        f"epochs trained meanwhile: {summary['training_epochs_during']}"
    )


if __name__ == "__main__":
    sys.exit(main())
