"""Benchmark: tlcore's cached-feature and frozen-prefix paths against Keras `fit` on the full model.

For each case, in one process, on the same data with the same seed and the same number of epochs:
- naive: the same model (`tlcore.models.build_model`, same initial weights) trained the plain Keras
  way, `fit` on the full model every epoch, with the images decoded once, kept in memory, batched
  and prefetched (`tlcore.pipeline.make_pipelines`) and BatchNormalization in inference mode
  (`tlcore.models.trainable_view`). This is tlcore's full path, i.e. what every run did before.
- ours: a real run (`tlcore.runs.create_run` + `tlcore.training.train_run`), which picks the fast
  path by itself and writes its run folder (metrics, status, best.keras) as in the app.
Two times are compared. Training: naive, the `fit` call (10 epochs, validating after each); ours,
everything the run does once its model is built (decoding and feature pass, `fit` of the trainable
part, metrics, status and best.keras), so ours also carries the decoding naive did before `fit`.
End to end: from the ingested dataset to the trained model, decoding and building included. It
prints both ratios, validation accuracies (last and best epoch), the peak resident memory of the
process during each side, and, per backbone, the feature pass's throughput against a raw forward
pass of the same frozen layers on in-memory float32 tensors. The machine's load average is printed
too: other work on the machine skews wall-clock figures, so the CPU time each side used (user plus
system, all threads) is printed as well; it depends much less on what else runs.

    KERAS_HOME=/work/shared/keras-home python bench/fast_path.py            # the full benchmark
    python bench/fast_path.py --smoke                                      # a tiny run that checks it works

Data: `../shared/datasets/flower_photos_224_subset_{train,val}.zip`, the first `--train-per-class`
and `--val-per-class` images of each class in name order. mobilenet_v2_0.35 uses its genuine
ImageNet weights (from `$KERAS_HOME`), the other backbones random weights (the same compute).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TLCORE_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = ROOT.parent / "shared"
FLOWERS = SHARED / "datasets" / "flower_photos_224_subset_{}.zip"


@dataclass(frozen=True)
class Case:
    """One benchmark case: a backbone, its strategy and weights."""

    name: str
    backbone: str
    strategy: str
    weights: str
    frozen_layers: int | None = None


CASES = {
    case.name: case
    for case in (
        Case("transfer-mobilenet_v2_0.35", "mobilenet_v2_0.35", "transfer", "imagenet"),
        Case("transfer-mobilenet_v2", "mobilenet_v2", "transfer", "none"),
        Case("transfer-resnet50", "resnet50", "transfer", "none"),
        Case("finetune-resnet50-168", "resnet50", "finetune", "none", 168),
        Case("finetune-mobilenet_v2-100", "mobilenet_v2", "finetune", "none", 100),
    )
}
SMOKE_CASES = (Case("transfer-mobilenet_0.25", "mobilenet_0.25", "transfer", "none"),)


class PeakMemory:
    """Samples this process's resident memory in a background thread; `peak()` since the last `reset()`."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self._peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def rss(self) -> int:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * self._page

    def reset(self) -> None:
        with self._lock:
            self._peak = self.rss()

    def peak(self) -> int:
        with self._lock:
            return max(self._peak, self.rss())

    def _run(self) -> None:
        while True:
            value = self.rss()
            with self._lock:
                self._peak = max(self._peak, value)
            time.sleep(self.interval)


def subset_zip(source: Path, target: Path, per_class: int) -> int:
    """Copy the first `per_class` images of every class folder of `source` (in name order) into `target`."""
    with zipfile.ZipFile(source) as archive:
        by_class: dict[str, list[str]] = {}
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 2 and parts[1] and not name.endswith("/"):
                by_class.setdefault(parts[0], []).append(name)
        chosen = [name for names in by_class.values() for name in names[:per_class]]
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
            for name in chosen:
                out.writestr(name, archive.read(name))
    return len(chosen)


def ingest(args: argparse.Namespace, workspace: Any, folder: Path) -> Any:
    from tlcore.datasets import ingest_zip
    from tlcore.demo import demo_zip

    if args.smoke:
        (folder / "demo.zip").write_bytes(demo_zip(classes=3, per_class=8, size=32, seed=0))
        return ingest_zip(folder / "demo.zip", workspace=workspace)
    for split, count in (("train", args.train_per_class), ("val", args.val_per_class)):
        subset_zip(Path(str(FLOWERS).format(split)), folder / f"{split}.zip", count)
    return ingest_zip(folder / "train.zip", val_zip=folder / "val.zip", workspace=workspace, name="flowers-subset.zip")


def run_spec(case: Case, dataset: Any, args: argparse.Namespace) -> Any:
    from tlcore.models import ModelSpec
    from tlcore.spec import RunSpec

    model = ModelSpec(
        backbone=case.backbone,
        weights=case.weights,
        image_size=args.image_size,
        num_classes=len(dataset.classes),
        strategy=case.strategy,
        frozen_layers=case.frozen_layers,
    )
    return RunSpec(
        dataset=dataset.id,
        model=model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
    ).validated()


def naive(spec: Any, workspace: Any, dataset: Any) -> dict[str, Any]:
    """Keras `fit` on the full model every epoch, from the same initial weights as the run."""
    from tlcore.models import build_model
    from tlcore.pipeline import make_pipelines
    from tlcore.training import compile_for_phase, seed_everything

    began, cpu_began = time.perf_counter(), cpu_seconds()
    seed_everything(spec.seed)
    train, val = make_pipelines(dataset, spec.model.image_size, spec.batch_size, spec.seed, spec.augmentation)
    model = build_model(spec.model, workspace)
    view, _ = compile_for_phase(model, spec, spec.phases()[0])
    fit_began = time.perf_counter()
    history = view.fit(train, validation_data=val, epochs=spec.epochs, verbose=0, shuffle=False)
    ended = time.perf_counter()
    accuracy = history.history["val_accuracy"]
    return {
        "seconds": ended - began,
        "cpu_seconds": cpu_seconds() - cpu_began,
        "training_seconds": ended - fit_began,
        "seconds_per_epoch": (ended - fit_began) / spec.epochs,
        "val_accuracy": accuracy[-1],
        "best_val_accuracy": max(accuracy),
    }


def ours(spec: Any, workspace: Any) -> dict[str, Any]:
    """A real tlcore run, trained in this process."""
    from tlcore import metrics_log, runs
    from tlcore.training import train_run

    info = runs.create_run(spec, workspace)
    began, cpu_began = time.perf_counter(), cpu_seconds()
    info = train_run(workspace, info.id)
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu_began
    if info.status != "completed":
        raise RuntimeError(f"run {info.id} ended {info.status}: {info.error}")
    status = runs.RunStatus.read(info.dir)
    epochs = metrics_log.read_metrics(workspace, info.id).query("kind == 'epoch'")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "training_seconds": seconds - status.setup_seconds,
        "path": status.path,
        "path_note": status.path_note,
        "features_seconds": status.features_seconds,
        "seconds_per_epoch": status.seconds_per_epoch,
        "val_accuracy": float(epochs["val_accuracy"].iloc[-1]),
        "best_val_accuracy": float(epochs["val_accuracy"].max()),
    }


def throughput(spec: Any, workspace: Any, dataset: Any, repeats: int) -> dict[str, Any]:
    """Images per second: the feature pass (`Cut.compute`) against a raw forward pass of the same layers.

    The raw pass runs the same frozen layers in a `tf.function` over float32 batches already in
    memory; the feature pass starts from the decoded uint8 images and includes its pipeline and the
    copy of every result into the cache's arrays. Both are traced first; the best of `repeats` counts.
    """
    import numpy as np
    import tensorflow as tf

    from tlcore.features import FEATURE_BATCH_SIZE, cut_model
    from tlcore.images import load_images
    from tlcore.models import build_model, get_base

    model = build_model(spec.model, workspace)
    cut = cut_model(model, len(get_base(model).layers))
    images = np.concatenate([load_images(dataset.files(split)[0], spec.model.image_size) for split in ("train", "val")])
    batches = [
        tf.constant(images[i : i + FEATURE_BATCH_SIZE], tf.float32) for i in range(0, len(images), FEATURE_BATCH_SIZE)
    ]
    raw = tf.function(tf.autograph.experimental.do_not_convert(cut.forward))  # the frozen layers alone

    def raw_pass() -> None:
        for batch in batches:
            raw(batch)[0].numpy()

    def feature_pass() -> None:
        cut.compute(images)

    raw(batches[0])
    cut.compute(images[:FEATURE_BATCH_SIZE])
    timings = {"raw": _best_of(raw_pass, repeats), "features": _best_of(feature_pass, repeats)}
    return {
        "images": len(images),
        "raw_images_per_second": len(images) / timings["raw"],
        "features_images_per_second": len(images) / timings["features"],
        "ratio": timings["raw"] / timings["features"],
    }


def cpu_seconds() -> float:
    """User plus system CPU time of this process, all threads: what the work cost, whatever else runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _best_of(function: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny generated data and models: checks the script works")
    parser.add_argument("--cases", nargs="*", choices=sorted(CASES), help="cases to run (default: all)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-per-class", type=int, default=49, help="training images per class (5 classes)")
    parser.add_argument("--val-per-class", type=int, default=50, help="validation images per class")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="passes per throughput measurement (best counts)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.image_size, args.batch_size, args.repeats = 2, 32, 8, 1
        cases = list(SMOKE_CASES)
    else:
        if not FLOWERS.parent.is_dir():
            parser.error(f"the flowers data is not at {FLOWERS.parent}")
        cases = [CASES[name] for name in (args.cases or CASES)]

    import tensorflow as tf

    from tlcore import features
    from tlcore.workspace import Workspace

    memory = PeakMemory()
    results: dict[str, Any] = {
        "machine": machine(),
        "tensorflow": tf.__version__,
        "args": vars(args) | {"json": None},
        "cases": {},
        "throughput": {},
    }
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-") as folder:
        workspace = Workspace(Path(folder) / "ws")
        dataset = ingest(args, workspace, Path(folder))
        counts = {split: len(dataset.files(split)[0]) for split in ("train", "val")}
        results["images"] = counts
        print(
            f"{machine()}; TensorFlow {tf.__version__}; {counts['train']} training and {counts['val']} validation "
            f"images at {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for case in cases:
            spec = run_spec(case, dataset, args)
            features._memory.clear()  # every case starts cold: its feature pass is part of its time
            memory.reset()
            plain = naive(spec, workspace, dataset)
            plain["peak_rss"] = memory.peak()
            memory.reset()
            fast = ours(spec, workspace)
            fast["peak_rss"] = memory.peak()
            results["cases"][case.name] = {
                "naive": plain,
                "ours": fast,
                "speedup": plain["seconds"] / fast["seconds"],
                "training_speedup": plain["training_seconds"] / fast["training_seconds"],
                "cpu_speedup": plain["cpu_seconds"] / fast["cpu_seconds"],
            }
            results["cases"][case.name]["load_average"] = os.getloadavg()[0]
            print(case_line(case.name, plain, fast), flush=True)
            print(
                f"    {fast['path_note']} Per epoch: naive {plain['seconds_per_epoch']:.2f} s, ours "
                f"{fast['seconds_per_epoch']:.2f} s. Load average {os.getloadavg()[0]:.2f}.",
                flush=True,
            )
        for backbone in dict.fromkeys(case.backbone for case in cases if case.strategy == "transfer"):
            case = next(c for c in cases if c.backbone == backbone and c.strategy == "transfer")
            measured = throughput(run_spec(case, dataset, args), workspace, dataset, args.repeats)
            results["throughput"][backbone] = measured
            print(
                f"feature pass {backbone}: {measured['features_images_per_second']:.1f} images/s, raw forward "
                f"{measured['raw_images_per_second']:.1f} images/s: {measured['ratio']:.0%} of raw",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def case_line(name: str, plain: dict[str, Any], fast: dict[str, Any]) -> str:
    return (
        f"{name:27s} {fast['path']:8s} training: naive {plain['training_seconds']:6.1f} s, ours "
        f"{fast['training_seconds']:5.1f} s = {plain['training_seconds'] / fast['training_seconds']:4.1f}x | "
        f"end to end: {plain['seconds']:6.1f} s vs {fast['seconds']:5.1f} s = "
        f"{plain['seconds'] / fast['seconds']:4.1f}x | CPU time {plain['cpu_seconds']:6.1f} s vs "
        f"{fast['cpu_seconds']:5.1f} s = {plain['cpu_seconds'] / fast['cpu_seconds']:4.1f}x | "
        f"val acc naive {plain['val_accuracy']:.3f} "
        f"(best {plain['best_val_accuracy']:.3f}), ours {fast['val_accuracy']:.3f} "
        f"(best {fast['best_val_accuracy']:.3f}) | peak RSS naive {plain['peak_rss'] / 2**30:.2f} GiB, "
        f"ours {fast['peak_rss'] / 2**30:.2f} GiB"
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    raise SystemExit(main())
