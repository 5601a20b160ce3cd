"""The metrics log: a run's `metrics.jsonl`, one JSON object a line, appended as training goes.

`tlcore.callbacks.MetricsLog` writes a row per batch (loss and accuracy are Keras's running means over
the epoch so far) and per epoch (with the validation results); charts and comparisons read them back
with `read_metrics`. A row's columns are `METRIC_COLUMNS`: `kind` ("batch" or "epoch"), `phase`,
`epoch` (from 1), `step` (in the epoch), `global_step`, `loss`, `accuracy`, `val_loss`,
`val_accuracy` and `elapsed` (seconds since training started). Readers ignore a torn last line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.runs import METRICS_FILE

if TYPE_CHECKING:
    import pandas as pd

    from tlcore.workspace import Workspace

METRIC_COLUMNS = (
    "kind",
    "phase",
    "epoch",
    "step",
    "global_step",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "elapsed",
)
LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy")
"""The values of Keras's `logs` a row takes (a batch row has no validation values)."""


def make_row(
    kind: str, phase: str, epoch: int, step: int, global_step: int, logs: Mapping[str, Any], elapsed: float
) -> dict[str, Any]:
    """One row of the log: where training stands, and the values Keras reported (NaN and infinities as null)."""
    values = {key: _finite(logs.get(key)) for key in LOGGED if kind == "epoch" or not key.startswith("val_")}
    return {
        "kind": kind,
        "phase": phase,
        "epoch": epoch,
        "step": step,
        "global_step": global_step,
        **values,
        "elapsed": round(elapsed, 3),
    }


def read_metrics(workspace: Workspace, run_id: str) -> pd.DataFrame:
    """The run's metrics, one row per logged batch or epoch; a torn last line is ignored."""
    import pandas as pd

    return pd.DataFrame(list(iter_metrics(workspace.run_dir(run_id) / METRICS_FILE)), columns=list(METRIC_COLUMNS))


def iter_metrics(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a metrics log, each with every column (missing values as NaN)."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        for line in handle:
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a torn last line (the trainer was killed mid-write) or damage
            if isinstance(row, dict):
                yield {key: _metric_value(key, row.get(key)) for key in METRIC_COLUMNS}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _metric_value(key: str, value: Any) -> Any:
    """The value as charts expect it: text for `kind` and `phase`, a number (or NaN) for the rest."""
    if key in ("kind", "phase"):
        return value if isinstance(value, str) else math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    try:
        number = float(value)
    except OverflowError:
        return math.nan
    return number if math.isfinite(number) else math.nan
