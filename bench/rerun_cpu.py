"""CPU time of each page's rerun in the app's process, with and without Streamlit's Keras reset.

Streamlit calls `keras.backend.clear_session()` (a full `gc.collect()`) after every script run once
Keras is imported; `ui.cached.leave_keras_alone` stops it. This script runs each page of the app in
`AppTest` over an existing workspace, first as Streamlit would (the reset restored), then as the app
does, and reports the process's CPU time per rerun (all threads, so waiting for a busy machine's cores
does not count): the server-side cost that five sessions and a poll a second multiply.

    KERAS_HOME=/work/shared/keras-home python bench/rerun_cpu.py --workspace WS [--reruns 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGES = ("train", "compare", "evaluate", "model", "data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a workspace with a dataset and runs")
    parser.add_argument("--reruns", type=int, default=5, help="reruns timed per page and mode")
    args = parser.parse_args()
    os.environ["TLCORE_WORKSPACE"] = str(args.workspace)
    os.environ.setdefault("TLCORE_OFFLINE", "1")
    import keras  # as the server has it once a page has built or loaded a model
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    from tlcore import datasets, runs
    from tlcore.workspace import Workspace
    from ui import cached

    streamlit_cleanup = script_runner._clean_problem_modules
    cached.leave_keras_alone()  # once per process, as the app's first script run does
    app_cleanup = script_runner._clean_problem_modules
    workspace = Workspace(args.workspace)
    finished = next(info for info in runs.list_runs(workspace) if info.spec is not None)
    dataset = datasets.list_datasets(workspace)[0]
    query = {"dataset": dataset.id, "backbone": finished.spec.model.backbone, "run": finished.id}
    print(f"{len(runs.list_runs(workspace))} runs, Keras {keras.__version__}")
    print("| page | CPU s per rerun, Streamlit's Keras reset | without it (the app) |")
    print("|---|---|---|")
    for page in PAGES:
        cells = []
        for leave_alone in (False, True):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
            at.query_params.update(query)
            at.run()
            at.switch_page(f"app_pages/{page}.py").run()
            script_runner._clean_problem_modules = app_cleanup if leave_alone else streamlit_cleanup
            seconds = []
            for _ in range(args.reruns + 1):
                started = time.process_time()
                at.run()
                time.sleep(0.5)  # the clean-up runs after the script's end, in the script's thread
                seconds.append(time.process_time() - started)
            cells.append(f"{statistics.median(seconds[1:]):.3f}")
        print(f"| {page} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
