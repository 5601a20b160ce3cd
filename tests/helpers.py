"""Helpers the test files share: tiny specs, the command line, waiting for a condition, and reading the app.

Imported as `from helpers import ...` (pytest puts `tests/` on `sys.path`, as for `corpus`). What builds
uploads (images, zips, the refused-zip table) lives in `corpus.py`; fixtures live in `conftest.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import pyarrow as pa

from tlcore.models import ModelSpec
from tlcore.spec import RunSpec
from tlcore.workspace import Workspace

if TYPE_CHECKING:
    import altair as alt
    from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Tiny specs: MobileNet ×0.25 on 32×32 images, random weights; an epoch of the demo data takes a second.

_MODEL_FIELDS = frozenset(field.name for field in dataclasses.fields(ModelSpec))


def tiny_model(**changes) -> ModelSpec:
    """MobileNet ×0.25 at 32 px with random weights, a head for 3 classes (the demo's), transfer learning;
    `changes` are `ModelSpec` fields that differ."""
    values = {
        "backbone": "mobilenet_0.25",
        "weights": "none",
        "image_size": 32,
        "num_classes": 3,
        "strategy": "transfer",
        **changes,
    }
    return ModelSpec(**values)


def tiny_spec(dataset_id: str, **changes) -> RunSpec:
    """A run of `tiny_model` on `dataset_id`. A keyword naming a `ModelSpec` field (`strategy`,
    `frozen_layers`, `num_classes`, ...) changes the model; any other changes the `RunSpec`
    (`epochs`, `batch_size`, `name`, ...), whose own defaults hold otherwise."""
    model = tiny_model(**{key: changes.pop(key) for key in list(changes) if key in _MODEL_FIELDS})
    return RunSpec(dataset=dataset_id, model=model, **changes)


# ---------------------------------------------------------------------------------------------
# Waiting


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 240.0,
    interval: float = 0.2,
    what: str = "a condition",
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that.

    Fails the test, naming `what`, after `timeout` seconds. `sleep` waits between calls (a Playwright
    test passes `lambda s: page.wait_for_timeout(s * 1000)` so that the page keeps being served).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# Spares


def end_spares(folder: Path) -> list[int]:
    """End every spare (`tlcore.spare`) still waiting for a workspace somewhere under `folder` (two levels
    down at most), and return their pids once they are gone. A spare outlives the test that started it:
    each holds a few hundred megabytes, and a whole test session would pile them up."""
    ended = []
    for lock in [*folder.glob("*/runs/.spare.lock"), *folder.glob("*/*/runs/.spare.lock")]:
        if not flock_held(lock):
            continue
        written = lock.read_text(encoding="ascii").split()
        if written and written[0].isdigit():  # the pid, written right after the spare was started
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(written[0]), signal.SIGKILL)
            ended.append(int(written[0]))
        # The kernel lets go of a killed process's locks a moment later: a test that starts the next run
        # before then would find the dying spare still "waiting".
        wait_for(lambda lock=lock: not flock_held(lock), timeout=30, interval=0.05, what=f"the spare of {lock} to end")
    return ended


def flock_held(lock: Path) -> bool:
    """True while some process holds an exclusive `flock` on the file `lock`."""
    with open(lock, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The command line


def run_tlcore(
    *args: str,
    workspace: Workspace | Path | None,
    env: Mapping[str, str | None] | None = None,
    cwd: Path = ROOT,
    timeout: float = 300,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m tlcore ARGS --workspace WORKSPACE` in a process of its own, offline, importing this tree's
    `tlcore`; its output is captured as text.

    `env` adds variables to this process's environment (a `None` value removes one); `preexec_fn` runs in
    the child before it starts (resource limits).
    """
    command = [sys.executable, "-m", "tlcore", *args]
    if workspace is not None:
        root = workspace.root if isinstance(workspace, Workspace) else workspace
        command += ["--workspace", str(root)]
    environment = {**os.environ, "TLCORE_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=environment,
        preexec_fn=preexec_fn,
    )


# ---------------------------------------------------------------------------------------------
# The app, as AppTest shows it


def unescaped(markdown: str) -> str:
    """Markdown source as it reads on the page: names are escaped (`ui.names.md`), the escapes and the word
    joiners that break autolinks show nothing."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def button(at: AppTest, label: str):
    """The button labelled `label` (the first, if several are)."""
    return next(b for b in at.button if b.label == label)


def chart_data(at: AppTest) -> list[pd.DataFrame]:
    """The data behind each Vega-Lite (Altair) chart on the page, in page order, one frame per chart."""
    return [
        pd.concat([pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets])
        for chart in at.get("vega_lite_chart")
    ]


def altair_data(chart: alt.TopLevelMixin | dict) -> pd.DataFrame:
    """The (first) inline dataset of an Altair chart, or of its `to_dict()` spec."""
    spec = chart if isinstance(chart, dict) else chart.to_dict()
    return pd.DataFrame(next(iter(spec["datasets"].values())))
