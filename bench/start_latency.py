"""Click on Start to the first epoch on the chart, cold and warm, in a real browser.

A transfer run of MobileNetV2 ×0.35 with ImageNet weights on the shared flowers photos, whose features
are cached (a first run on the command line fills the cache). The Train page is opened from its address
(dataset and model in the query), the epochs set, and Start clicked; the time runs until the first
epoch's points are drawn on the loss chart. Each measurement is a new run:

- **cold**: no spare waits (the last one is killed first), so `runs.start` starts one and the run
  waits for it to import TensorFlow, as the first run after a server restart does;
- **warm**: a spare waits with TensorFlow loaded (`run_queue.warm_spare`), as for every run after it.

Cold and warm alternate, `--repeat` times each. For each run the time is split using its folder:
click → run created (the page's rerun, `runs.start`), created → started (a spare claims it; cold: the
import), started → first epoch written (`tlcore.training`: loading, building, the cached features,
the first epoch), written → drawn (the page's poll, once a second, and drawing).

    KERAS_HOME=/work/shared/keras-home python bench/start_latency.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.browser import (
    COUNT_POINTS,
    ROOT,
    chromium,
    end_spare,
    machine,
    memory_of,
    streamlit_server,
    wait_for_quiet,
    wait_until_idle,
)

SHARED = ROOT.parent / "shared"
DATA = SHARED / "datasets"
BACKBONE = "mobilenet_v2_0.35"
EPOCHS = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="cold and warm starts measured, each")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for this load average before each start")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    if not (DATA / "flower_photos_224_subset_train.zip").is_file():
        print(f"skipped: the shared flowers data is not in {DATA}")
        return 0
    env = {"KERAS_HOME": os.environ.get("KERAS_HOME", str(SHARED / "keras-home")), "TLCORE_OFFLINE": "1"}
    os.environ.update(env)
    from tlcore import run_queue, runs
    from tlcore.datasets import ingest_zip
    from tlcore.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="tlcore-start-latency-") as folder:
        workspace = Workspace(Path(folder) / "ws")
        dataset = ingest_zip(
            DATA / "flower_photos_224_subset_train.zip",
            DATA / "flower_photos_224_subset_val.zip",
            workspace=workspace,
            name="flowers",
        )
        print(f"dataset: {len(dataset.items)} images; caching the features with a first run ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "tlcore", "train", "--dataset", dataset.id, "--backbone", BACKBONE]
            + ["--weights", "imagenet", "--strategy", "transfer", "--epochs", "1", "--workspace", str(workspace.root)],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        address = f"/train?dataset={dataset.id}&backbone={BACKBONE}&weights=imagenet&strategy=transfer"
        results: list[dict[str, Any]] = []
        spare_memory: dict[str, float] = {}
        with streamlit_server(workspace.root, env, Path(folder) / "streamlit.log") as (url, _), chromium() as browser:
            page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
            page.set_default_timeout(120_000)
            for attempt in range(args.repeat):
                for mode in ("cold", "warm"):
                    if mode == "cold":
                        end_spare(workspace)
                    else:
                        run_queue.ensure_spare(workspace)
                        pid = _wait(lambda: run_queue.warm_spare(workspace), 180)
                        spare_memory = memory_of(pid)
                    load = wait_for_quiet(args.max_load)
                    result = _measure(page, url + address, workspace, runs, f"{mode} start {attempt + 1}")
                    result.update(mode=mode, attempt=attempt + 1, load_average_before=round(load, 2))
                    results.append(result)
                    print(json.dumps(result), flush=True)
            end_spare(workspace)
    summary = {
        "machine": machine(),
        "when": datetime.now().isoformat(timespec="seconds"),
        "epochs": EPOCHS,
        "images": {"train": dataset.counts()["train"].sum().item(), "val": dataset.counts()["val"].sum().item()},
        "results": results,
        "median_seconds": {
            mode: statistics.median(r["click_to_chart"] for r in results if r["mode"] == mode)
            for mode in ("cold", "warm")
        },
        "warm_spare_memory_mib": spare_memory,
    }
    _print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _measure(page: Any, address: str, workspace: Any, runs: Any, name: str) -> dict[str, Any]:
    """Open the Train page, click Start on a run called `name`, and time it until the first epoch is on
    the chart of that run (the page shows the run it has just started)."""
    page.goto(address)
    page.get_by_role("heading", name="Train", exact=True).first.wait_for()
    wait_until_idle(page)
    for label, value in (("Epochs", str(EPOCHS)), ("Run name (optional)", name)):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
        wait_until_idle(page)
    before = {info.id for info in runs.list_runs(workspace)}
    clicked = time.time()
    page.get_by_role("button", name="Start training").click()
    shown = f"""() => [...document.querySelectorAll('[data-testid="stMain"] h3')]
        .some(heading => !heading.closest('[data-stale="true"]') && heading.textContent.includes({json.dumps(name)}))"""
    try:
        page.wait_for_function(f"({shown})() && ({COUNT_POINTS})() >= 1", polling=50)
    except Exception:
        shot = ROOT / "test-artifacts" / "bench" / f"start-latency-{name.replace(' ', '-')}-FAILED.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shot, full_page=True)
        statuses = {info.name: str(info.status) for info in runs.list_runs(workspace)}
        print(f"{name}: the first epoch never reached the chart; runs {statuses}; page {shot}", flush=True)
        raise
    drawn = time.time()
    (info,) = [info for info in runs.list_runs(workspace) if info.id not in before]
    info = _wait(lambda: (now := runs.load_run(workspace, info.id)).status in runs.FINISHED_STATUSES and now, 300)
    first_epoch = next(
        json.loads(line)
        for line in (info.dir / runs.METRICS_FILE).read_text().splitlines()
        if '"kind": "epoch"' in line
    )
    created, started = _epoch(info.created), _epoch(info.started)
    written = started + first_epoch["elapsed"]
    if drawn < written:
        raise RuntimeError(f"the chart showed an epoch {written - drawn:.2f} s before it was written")
    status = runs.RunStatus.read(info.dir)
    return {
        "click_to_chart": round(drawn - clicked, 2),
        "click_to_created": round(created - clicked, 2),
        "created_to_started": round(started - created, 2),
        "started_to_first_epoch_written": round(first_epoch["elapsed"], 2),
        "setup_seconds": status.setup_seconds,
        "written_to_drawn": round(drawn - written, 2),
        "status": str(info.status),
        "path": str(info.path),
        "features_cached": info.features_cached,
    }


def _wait(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"gave up after {timeout} s")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _print_table(summary: dict[str, Any]) -> None:
    print(f"\nmachine: {summary['machine']}")
    columns = ("click_to_chart", "click_to_created", "created_to_started", "started_to_first_epoch_written")
    columns += ("setup_seconds", "written_to_drawn")
    print("| start | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for result in summary["results"]:
        print(f"| {result['mode']} {result['attempt']} | " + " | ".join(str(result[c]) for c in columns) + " |")
    print(f"median click to chart: {summary['median_seconds']}; warm spare: {summary['warm_spare_memory_mib']}")


if __name__ == "__main__":
    sys.exit(main())
