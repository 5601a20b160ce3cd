"""Benchmark: a study against the same members trained as separate cold runs, in whole processes.

Three ways to train the same members (the study's default members unless told otherwise), on the same
data with the same seed, each timed as whole processes from the ingested dataset to the last model:

- study: `python -m tlcore study --dataset ID ...` in one process, members one after another; members
  that freeze the same layers share one feature pass (the cache), TensorFlow is imported once.
- queue: the app's way, `tlcore.study.start`: every member a trainer process of its own waiting in the
  queue, the feature passes shared through the cache on disk, each process importing TensorFlow when
  its turn comes. Timed from the start to the last member's end.
- cold: each member's spec (`spec.json` of the study's run) trained alone with `python -m tlcore train
  --spec`, one process each, with an empty feature cache: what a user pays setting up the runs by hand.

It prints and records each side's wall-clock and CPU time (user + system of the processes), the number
of feature passes, each member's accuracy on each side, and the study's lower bound: the sum of its
members' epochs (`seconds_per_epoch` × epochs, validation included) plus one feature pass per distinct
cut; what the study spends beyond that is its overhead (TensorFlow, building models, decoding images,
tracing, saving models). It also times decoding every image once, which each feature pass and the
in-memory pipeline of training from scratch pay again.

    KERAS_HOME=/work/shared/keras-home nice python bench/study.py [--json out.json]
    python bench/study.py --smoke    # tiny generated data: checks that the script works

Data: `../shared/datasets/flower_photos_224_subset_{train,val}.zip` (1000 training and 550 validation
images of 5 classes, 224 px; CC BY 2.0, credits in `flower_photos_224_subset_ATTRIBUTION.txt`),
MobileNetV2 ×0.35 with its genuine ImageNet weights from `$KERAS_HOME`, 5 epochs, batch 32, seed 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TLCORE_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONPATH"] = str(ROOT)  # every trainer process imports this checkout's tlcore

SHARED = ROOT.parent / "shared"
FLOWERS = SHARED / "datasets" / "flower_photos_224_subset_{}.zip"


def tlcore(*args: str, workspace: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """`python -m tlcore ARGS` in a process of its own: the result, its wall-clock and its CPU seconds."""
    began, cpu_began = time.perf_counter(), children_cpu()
    done = subprocess.run(
        [sys.executable, "-m", "tlcore", *args, "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        cwd=workspace,
        check=False,
    )
    seconds, cpu = time.perf_counter() - began, children_cpu() - cpu_began
    if done.returncode != 0:
        raise RuntimeError(f"tlcore {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done, seconds, cpu


def children_cpu() -> float:
    """User plus system CPU time of the child processes that have ended: what the work cost."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def study_args(args: argparse.Namespace, dataset_id: str) -> list[str]:
    chosen = [
        "study",
        "--dataset",
        dataset_id,
        "--backbone",
        args.backbone,
        "--weights",
        args.weights,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--json",
    ]
    if args.image_size:
        chosen += ["--image-size", str(args.image_size)]
    if args.depths:
        chosen += ["--depths", args.depths]
    return chosen + (["--no-scratch"] if args.no_scratch else []) + (["--no-two-phase"] if args.no_two_phase else [])


def member_rows(workspace: Any, found: dict[str, Any]) -> list[dict[str, Any]]:
    """Each member of a study's result with what its run folder says about its epochs and feature passes."""
    from tlcore import runs

    rows = []
    for member in found["members"]:
        info = runs.load_run(workspace, member["run"])
        epochs = info.epoch or 0
        rows.append(
            {
                **member,
                "epochs": epochs,
                "epochs_seconds": (info.seconds_per_epoch or 0.0) * epochs,
                "elapsed_seconds": info.elapsed_seconds,
                "feature_passes": info.feature_passes or 0,
                "feature_pass_seconds": info.feature_pass_seconds or 0.0,
                "path": info.path,
            }
        )
    return rows


def run_study(args: argparse.Namespace, workspace: Any, dataset_id: str) -> dict[str, Any]:
    """The command line's study, one process."""
    done, seconds, cpu = tlcore(*study_args(args, dataset_id), workspace=workspace.root)
    found = json.loads(done.stdout)
    members = member_rows(workspace, found)
    epochs = sum(m["epochs_seconds"] for m in members)
    passes = sum(m["feature_pass_seconds"] for m in members)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "result": found,
        "members": members,
        "feature_passes": sum(m["feature_passes"] for m in members),
        "epochs_seconds": epochs,
        "feature_pass_seconds": passes,
        "lower_bound_seconds": epochs + passes,
    }


def run_queue(args: argparse.Namespace, workspace: Any, dataset_id: str) -> dict[str, Any]:
    """The app's study: every member a queued trainer process, timed from the start to the last end."""
    from tlcore import runs, study
    from tlcore.study import StudyOptions

    options = StudyOptions(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        depths=tuple(int(d) for d in args.depths.split(",")) if args.depths else None,
        scratch=not args.no_scratch,
        two_phase=not args.no_two_phase,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    planned = study.plan(workspace, dataset_id, options)
    began, cpu_began = time.perf_counter(), children_cpu()
    started = study.start(workspace, planned)
    while any(runs.load_run(workspace, m.run).active for m in started.members):
        time.sleep(0.5)
    seconds = time.perf_counter() - began
    for member in started.members:  # the trainers are children of this process: reap them to count their CPU
        pid = runs.RunStatus.read(workspace.run_dir(member.run)).pid
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # already reaped by subprocess
                pass
    found = study.result(workspace, study.load_study(workspace, started.id)).to_json()
    members = member_rows(workspace, found)
    return {
        "seconds": seconds,
        "cpu_seconds": children_cpu() - cpu_began,
        "result": found,
        "members": members,
        "feature_passes": sum(m["feature_passes"] for m in members),
    }


def run_cold(study_workspace: Any, members: list[dict[str, Any]], workspace: Any) -> dict[str, Any]:
    """Each member's spec trained alone, a process each, the feature cache emptied before each."""
    from tlcore import runs

    cold = []
    for member in members:
        shutil.rmtree(workspace.cache_dir / "features", ignore_errors=True)
        spec_file = study_workspace.run_dir(member["run"]) / runs.SPEC_FILE
        done, seconds, cpu = tlcore("train", "--spec", str(spec_file), "--json", workspace=workspace.root)
        info = json.loads(done.stdout)
        cold.append(
            {
                "strategy": member["strategy"],
                "two_phase": member["two_phase"],
                "frozen_layers": member["frozen_layers"],
                "seconds": seconds,
                "cpu_seconds": cpu,
                "best_val_accuracy": info["best_val_accuracy"],
                "feature_passes": info["feature_passes"],
            }
        )
    return {
        "seconds": sum(c["seconds"] for c in cold),
        "cpu_seconds": sum(c["cpu_seconds"] for c in cold),
        "members": cold,
        "feature_passes": sum(c["feature_passes"] for c in cold),
    }


def decode_seconds(dataset: Any, backbone: str, image_size: int | None) -> float:
    """How long decoding every image of both splits takes, as a feature pass or an in-memory pipeline does:
    what each of them pays again (the study does not keep decoded images between passes)."""
    from tlcore.backbones import get_backbone
    from tlcore.images import load_images

    size = image_size or get_backbone(backbone).default_size
    paths = [path for split in ("train", "val") for path in dataset.files(split)[0]]
    began = time.perf_counter()
    load_images(paths, size)
    return time.perf_counter() - began


def ingest(args: argparse.Namespace, folder: Path, workspace: Any) -> Any:
    from tlcore.datasets import ingest_zip
    from tlcore.demo import demo_zip

    if args.smoke:
        (folder / "demo.zip").write_bytes(demo_zip(classes=3, per_class=8, size=32, seed=0))
        return ingest_zip(folder / "demo.zip", workspace=workspace)
    return ingest_zip(Path(str(FLOWERS).format("train")), val_zip=Path(str(FLOWERS).format("val")), workspace=workspace)


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny generated data: checks that the script works")
    parser.add_argument("--backbone", default="mobilenet_v2_0.35")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depths", default=None, help="N,N,... (default: the study's choice)")
    parser.add_argument("--no-scratch", action="store_true")
    parser.add_argument("--no-two-phase", action="store_true")
    parser.add_argument("--sides", nargs="*", default=["study", "queue", "cold"], choices=["study", "queue", "cold"])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.backbone, args.weights, args.image_size, args.epochs, args.batch_size = "mobilenet_0.25", "none", 32, 1, 8
        args.depths, args.no_scratch, args.no_two_phase = "67", True, True
    elif not FLOWERS.parent.is_dir():
        parser.error(f"the flowers data is not at {FLOWERS.parent}")

    import tensorflow as tf

    from tlcore.workspace import Workspace

    results: dict[str, Any] = {
        "machine": machine(),
        "tensorflow": tf.__version__,
        "args": vars(args) | {"json": None},
        "load_average_before": os.getloadavg(),
    }
    print(f"{results['machine']}; TensorFlow {tf.__version__}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tlcore-bench-study-") as folder:
        spaces = {side: Workspace(Path(folder) / side) for side in ("study", "queue", "cold")}
        datasets = {side: ingest(args, Path(folder), workspace) for side, workspace in spaces.items()}
        dataset_id = datasets["study"].id
        counts = {split: len(datasets["study"].files(split)[0]) for split in ("train", "val")}
        results["images"] = counts
        print(f"{counts['train']} training and {counts['val']} validation images", flush=True)
        results["decode_seconds"] = decode_seconds(datasets["study"], args.backbone, args.image_size)
        print(f"decoding every image once: {results['decode_seconds']:.1f} s", flush=True)
        study = run_study(args, spaces["study"], dataset_id)
        results["study"] = study
        print(
            f"study: {study['seconds']:.1f} s, CPU {study['cpu_seconds']:.1f} s, {study['feature_passes']} feature "
            f"passes ({study['feature_pass_seconds']:.1f} s); members' epochs {study['epochs_seconds']:.1f} s; "
            f"lower bound {study['lower_bound_seconds']:.1f} s; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if "queue" in args.sides:
            queue = run_queue(args, spaces["queue"], dataset_id)
            results["queue"] = queue
            print(
                f"queue: {queue['seconds']:.1f} s, CPU {queue['cpu_seconds']:.1f} s, {queue['feature_passes']} "
                f"feature passes; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        if "cold" in args.sides:
            cold = run_cold(spaces["study"], study["members"], spaces["cold"])
            results["cold"] = cold
            print(
                f"cold: {cold['seconds']:.1f} s, CPU {cold['cpu_seconds']:.1f} s, {cold['feature_passes']} feature "
                f"passes; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            print(
                f"study against cold runs: {cold['seconds'] / study['seconds']:.2f}x faster "
                f"(CPU {cold['cpu_seconds'] / study['cpu_seconds']:.2f}x)",
                flush=True,
            )
        for index, member in enumerate(study["members"]):
            cold_accuracy = results["cold"]["members"][index]["best_val_accuracy"] if "cold" in results else None
            print(
                f"  {member['strategy']:9s} two_phase={member['two_phase']!s:5s} frozen={member['frozen_layers']:4d} "
                f"accuracy {member['best_val_accuracy']:.4f} (cold {cold_accuracy}) "
                f"train {member['train_seconds']:.1f} s "
                f"epochs {member['epochs_seconds']:.1f} s passes {member['feature_passes']} "
                f"({member['feature_pass_seconds']:.1f} s) path {member['path']}",
                flush=True,
            )
    results["load_average_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
