"""Benchmark: the fixed costs of one transfer-learning run, each measured on its own.

A run on a small dataset spends most of its time on costs that do not grow with the epochs. This
script measures each of them, in one process, in the order a run pays them:

- import: `import tensorflow, keras` (a whole process pays it once; measured here in a child process);
- ingestion: `ingest_zip` of the training and validation zips;
- building: `tlcore.models.build_model` with the backbone's ImageNet weights;
- feature pass: decoding the images and running the frozen base over them once (`features_seconds`);
- tracing: the first epoch's time beyond a steady epoch's (Keras traces its train and test steps then);
- per epoch: the median epoch of the head's training on cached features, metrics and status included;
- saving `best.keras`: how long `fit` waits for it at an epoch's end (the callback's own time), and
  how many files are written.

It runs the same code as `python -m tlcore train` (`training.train_run`), with timers wrapped around
those parts. Point `PYTHONPATH` at a checkout to measure that checkout:

    KERAS_HOME=../shared/keras-home PYTHONPATH=. python bench/fixed_costs.py [--phone] [--json out.json]

`--phone` measures the same photos upscaled to 4032x3024 (made once by `bench/end_to_end.py`'s data
step, in its cache folder).
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
from pathlib import Path
from typing import Any

os.environ.setdefault("TLCORE_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from end_to_end import CASES, BenchData, prepare_data


def import_seconds() -> float:
    """`import tensorflow, keras` in a fresh Python, the way a trainer process starts."""
    code = "import time; t = time.perf_counter(); import tensorflow, keras; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(data: BenchData, epochs: int) -> dict[str, Any]:
    """Ingest the data and train one run in this process, with a timer around each fixed cost."""
    import keras

    from tlcore import callbacks, runs, training
    from tlcore.datasets import ingest_zip
    from tlcore.models import ModelSpec
    from tlcore.spec import RunSpec
    from tlcore.workspace import Workspace

    timings: dict[str, Any] = {"build_seconds": 0.0, "best_waits": [], "saves": 0, "fits": []}
    build = training.build_model

    def timed_build(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        model = build(*args, **kwargs)
        timings["build_seconds"] += time.perf_counter() - began
        return model

    training.build_model = timed_build
    for hook in ("on_epoch_end", "on_train_end"):
        original = getattr(callbacks.BestModelKeeper, hook)

        def timed(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            began = time.perf_counter()
            _original(self, *args, **kwargs)
            timings["best_waits"].append(time.perf_counter() - began)

        setattr(callbacks.BestModelKeeper, hook, timed)
    save, fit = keras.Model.save, keras.Model.fit

    def counted_save(self: Any, *args: Any, **kwargs: Any) -> Any:
        timings["saves"] += 1
        return save(self, *args, **kwargs)

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.began = time.perf_counter()
            self.ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.ends.append(time.perf_counter())

    def timed_fit(self: Any, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        times = EpochTimes()
        try:
            return fit(self, *args, callbacks=[*(callbacks or []), times], **kwargs)
        finally:
            timings["fits"].append([times.began, *times.ends])

    keras.Model.save, keras.Model.fit = counted_save, timed_fit
    quick = getattr(training, "fit_in_epoch_calls", None)  # the head on cached features, without `fit`
    if quick is not None:

        def timed_quick(model: Any, train: Any, val: Any, initial_epoch: int, epochs: int, callbacks: Any) -> None:
            times = EpochTimes()
            try:
                quick(model, train, val, initial_epoch, epochs, [*callbacks, times])
            finally:
                timings["fits"].append([times.began, *times.ends])

        training.fit_in_epoch_calls = timed_quick

    with tempfile.TemporaryDirectory(prefix="tlcore-fixed-costs-") as folder:
        workspace = Workspace(Path(folder) / "ws")
        began = time.perf_counter()
        dataset = ingest_zip(data.train_zip, val_zip=data.val_zip, workspace=workspace, name=data.train_zip.name)
        ingestion = time.perf_counter() - began
        model = ModelSpec(
            backbone="mobilenet_v2_0.35", weights="imagenet", num_classes=len(dataset.classes), strategy="transfer"
        )
        spec = RunSpec(dataset=dataset.id, model=model, epochs=epochs, batch_size=32, learning_rate=1e-3, seed=0)
        info = runs.create_run(spec.validated(), workspace)
        began = time.perf_counter()
        info = training.train_run(workspace, info.id)
        run_seconds = time.perf_counter() - began
        if info.status != "completed":
            raise RuntimeError(f"the run ended {info.status}: {info.error}")
        status = runs.RunStatus.read(info.dir)
    (marks,) = timings.pop("fits")
    epoch_seconds = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    steady = statistics.median(epoch_seconds[1:])
    waits = timings.pop("best_waits")
    return {
        "images": {"train": len(dataset.files("train")[0]), "val": len(dataset.files("val")[0])},
        "ingestion_seconds": ingestion,
        "build_seconds": timings["build_seconds"],
        "features_seconds": status.features_seconds,
        "tracing_seconds": epoch_seconds[0] - steady,
        "steady_epoch_seconds": steady,
        "epoch_seconds": epoch_seconds,
        "best_keras_wait_seconds": sum(waits),
        "best_keras_longest_wait_seconds": max(waits),
        "best_keras_files_written": timings["saves"],
        "run_seconds": run_seconds,
        "fit_seconds": marks[-1] - marks[0],
        "val_accuracy": info.best_val_accuracy,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phone", action="store_true", help="the photos upscaled to 4032x3024")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = prepare_data(CASES["phone" if args.phone else "photos-224"])
    result = {"import_seconds": import_seconds(), **measure(data, args.epochs)}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
