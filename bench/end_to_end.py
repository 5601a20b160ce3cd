"""Benchmark: transfer learning end to end, as whole processes, against plain Keras and the physical floor.

For each case, in one sitting on one machine, each part a whole child process timed from its start
to its exit (its imports included), with its peak resident memory (`wait4`'s `ru_maxrss`):

- ours: `python -m tlcore train --data train.zip --val val.zip ...` in a fresh workspace: ingestion,
  the feature pass, 10 epochs of the head, the run folder (metrics, status, `best.keras`);
- plain: `bench/plain_keras.py`, the same model trained the plain Keras way from the same zips
  (`image_dataset_from_directory` and `fit` with a frozen base);
- the physical floor, in three parts that any program doing this job pays at least once:
  - import: `python -c "import os, tensorflow, keras; os._exit(0)"` (ended without TensorFlow's teardown,
    as `python -m tlcore` ends);
  - decode: every image decoded once at the scale it needs (a JPEG's DCT scaling, then the resize to
    the input size), on every core, from bytes already in memory (`--part decode`, no TensorFlow);
  - forward: one pass of the frozen base over every image, float32 batches already in memory,
    traced beforehand (`--part forward`).

`--part forward` also measures the feature pass (`tlcore.features.Cut.compute`) against that raw
forward pass: from the decoded images a run keeps in its decoded-image cache, and from the image
files (decoding included).

    KERAS_HOME=../shared/keras-home python bench/end_to_end.py [--cases photos-224 phone] [--json out.json]
    python bench/end_to_end.py --smoke    # tiny generated data and a tiny model: checks the script works

Data: `../shared/datasets/flower_photos_224_subset_{train,val}.zip`, the first 50 training and 50
validation images of each of the 5 classes in name order (250 + 250). `photos-224` takes them as they
are; `phone` takes the same photos upscaled to 4032x3024 (bicubic) and saved as JPEG at quality 90,
the size of a 12-megapixel phone photo; `photos-224-all` takes every shared photo (1000 + 550). The
zips are made once into the benchmark's cache, `$TLCORE_BENCH_CACHE` (default
`~/.cache/tlcore-bench`), never into the repository.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FLOWERS = ROOT.parent / "shared" / "datasets" / "flower_photos_224_subset_{}.zip"
PHONE_SIZE = (4032, 3024)
PHONE_QUALITY = 90


@dataclass(frozen=True)
class Case:
    """A dataset to train on: how many photos of each class per split, and at which size."""

    name: str
    train_per_class: int | None  # None: every photo
    val_per_class: int | None
    phone: bool


CASES = {
    case.name: case
    for case in (
        Case("photos-224", 50, 50, phone=False),
        Case("phone", 50, 50, phone=True),
        Case("photos-224-all", None, None, phone=False),
    )
}


@dataclass(frozen=True)
class BenchData:
    """A case's zips of class folders, and how many images each holds."""

    train_zip: Path
    val_zip: Path
    images: int


def cache_dir() -> Path:
    return Path(os.environ.get("TLCORE_BENCH_CACHE") or Path.home() / ".cache" / "tlcore-bench")


def prepare_data(case: Case, smoke: bool = False) -> BenchData:
    """The case's zips, made once into the benchmark's cache (smoke data: into a fresh temporary folder)."""
    if smoke:
        return _smoke_data(case)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    counts = f"{case.train_per_class or 'all'}x{case.val_per_class or 'all'}"
    kind = f"{PHONE_SIZE[0]}x{PHONE_SIZE[1]}-q{PHONE_QUALITY}" if case.phone else "224"
    paths = {}
    total = 0
    for split, per_class in (("train", case.train_per_class), ("val", case.val_per_class)):
        target = folder / f"flowers-{kind}-{counts}-{split}.zip"
        if not target.is_file():
            _write_subset(Path(str(FLOWERS).format(split)), target, per_class, case.phone)
        paths[split] = target
        with zipfile.ZipFile(target) as archive:
            total += sum(1 for name in archive.namelist() if not name.endswith("/"))
    return BenchData(paths["train"], paths["val"], total)


def _write_subset(source: Path, target: Path, per_class: int | None, phone: bool) -> None:
    """The first `per_class` photos of every class of `source` (all of them for None), upscaled for `phone`."""
    with zipfile.ZipFile(source) as archive:
        by_class: dict[str, list[str]] = {}
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 2 and parts[1]:
                by_class.setdefault(parts[0], []).append(name)
        chosen = [name for names in by_class.values() for name in names[:per_class]]
        photos = {name: archive.read(name) for name in chosen}
    if phone:
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            photos = dict(zip(photos, pool.map(_upscale, photos.values()), strict=True))
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as out:
        for name, data in photos.items():
            out.writestr(name, data)
    os.replace(partial, target)


def _upscale(data: bytes, size: tuple[int, int] = PHONE_SIZE) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        big = image.convert("RGB").resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=PHONE_QUALITY)
    return buffer.getvalue()


def _smoke_data(case: Case) -> BenchData:
    sys.path.insert(0, str(ROOT))
    from tlcore.demo import demo_zip

    folder = Path(tempfile.mkdtemp(prefix="tlcore-bench-smoke-"))
    paths = {}
    for split, seed in (("train", 0), ("val", 1)):
        source = folder / f"demo-{split}-source.zip"
        source.write_bytes(demo_zip(classes=3, per_class=6, size=32, seed=seed))
        with zipfile.ZipFile(source) as archive:
            photos = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
        if case.phone:
            photos = {name: _upscale(data, (320, 240)) for name, data in photos.items()}
        paths[split] = folder / f"demo-{split}.zip"
        with zipfile.ZipFile(paths[split], "w") as out:
            for name, data in photos.items():
                out.writestr(name, data)
    return BenchData(paths["train"], paths["val"], 36)


# The parts, each run as its own process.


def part_decode(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds to decode every image of the zips once at the input size, on every core, from memory."""
    from PIL import Image

    photos = []
    for source in (args.train, args.val):
        with zipfile.ZipFile(source) as archive:
            photos += [archive.read(name) for name in archive.namelist() if not name.endswith("/")]
    size = (args.image_size, args.image_size)

    def decode(data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", size)  # a JPEG's DCT scaling: a no-op for other formats and small photos
            image.convert("RGB").resize(size, Image.BILINEAR)

    began = time.perf_counter()
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        list(pool.map(decode, photos))
    return {"images": len(photos), "seconds": time.perf_counter() - began}


def part_forward(args: argparse.Namespace) -> dict[str, Any]:
    """The raw forward pass of the frozen base over every image, and the feature pass against it."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import tensorflow as tf

    from tlcore.datasets import ingest_zip
    from tlcore.features import FEATURE_BATCH_SIZE, cut_model
    from tlcore.images import load_images
    from tlcore.models import ModelSpec, build_model, get_base
    from tlcore.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="tlcore-bench-forward-") as folder:
        workspace = Workspace(Path(folder))
        dataset = ingest_zip(args.train, val_zip=args.val, workspace=workspace)
        paths = dataset.files("train")[0] + dataset.files("val")[0]
        spec = ModelSpec(
            backbone=args.backbone,
            weights=args.weights,
            image_size=args.image_size,
            num_classes=len(dataset.classes),
        )
        model = build_model(spec, workspace)
        cut = cut_model(model, len(get_base(model).layers))
        began = time.perf_counter()
        images = load_images(paths, args.image_size)
        decode_seconds = time.perf_counter() - began
        batches = [
            tf.constant(images[i : i + FEATURE_BATCH_SIZE], tf.float32)
            for i in range(0, len(images), FEATURE_BATCH_SIZE)
        ]
        raw = tf.function(tf.autograph.experimental.do_not_convert(cut.forward))
        raw(batches[0])
        cut.compute(images[:FEATURE_BATCH_SIZE])

        # Interleaved, the best of each counts: on a shared machine the load changes from one minute to
        # the next, and measuring the three one after another would compare different loads.
        passes = {
            "raw": lambda: [raw(batch)[0].numpy() for batch in batches],
            "decoded": lambda: cut.compute(images),
            "files": lambda: cut.compute(paths),
        }
        best = dict.fromkeys(passes, float("inf"))
        for _ in range(args.repeats):
            for name, function in passes.items():
                began = time.perf_counter()
                function()
                best[name] = min(best[name], time.perf_counter() - began)
        raw_seconds, from_decoded, from_files = best["raw"], best["decoded"], best["files"]
    count = len(images)
    return {
        "images": count,
        "seconds": raw_seconds,
        "raw_images_per_second": count / raw_seconds,
        "feature_pass_images_per_second": count / from_decoded,
        "feature_pass_from_files_images_per_second": count / from_files,
        "tlcore_decode_images_per_second": count / decode_seconds,
        "checksum": float(np.float64(cut.compute(images[:1])[0].sum())),
    }


PARTS = {"decode": part_decode, "forward": part_forward}


def measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command` to its end: wall seconds from start to exit, its peak resident memory (bytes), its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss": usage.ru_maxrss * 1024, "stdout": stdout}


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object that ends `stdout` (commands print it last, on one line or several)."""
    lines = stdout.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
    raise ValueError(f"no JSON object at the end of: {stdout[-500:]!r}")


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    data = prepare_data(case, args.smoke)
    common = ["--image-size", str(args.image_size)]
    model = ["--backbone", args.backbone, "--weights", args.weights]
    python = sys.executable
    result: dict[str, Any] = {"images": data.images, "load_average_before": os.getloadavg()[0]}

    # Ended without TensorFlow's teardown, as `python -m tlcore` ends (`tlcore.cli.quick_exit`).
    floor_import = measured([python, "-c", "import os, tensorflow, keras; os._exit(0)"])
    decode = measured(
        [python, __file__, "--part", "decode", "--train", str(data.train_zip), "--val", str(data.val_zip), *common]
    )
    forward = measured(
        [
            python,
            __file__,
            "--part",
            "forward",
            "--train",
            str(data.train_zip),
            "--val",
            str(data.val_zip),
            "--repeats",
            str(args.repeats),
            *common,
            *model,
        ]
    )
    floor = {
        "import_seconds": floor_import["seconds"],
        "decode_seconds": last_json(decode["stdout"])["seconds"],
        "forward_seconds": last_json(forward["stdout"])["seconds"],
    }
    floor["seconds"] = sum(floor.values())
    result["floor"] = floor
    result["throughput"] = last_json(forward["stdout"])

    with tempfile.TemporaryDirectory(prefix="tlcore-bench-ws-") as folder:
        ours = measured(
            [
                python,
                "-m",
                "tlcore",
                "train",
                "--data",
                str(data.train_zip),
                "--val",
                str(data.val_zip),
                "--strategy",
                "transfer",
                "--epochs",
                str(args.epochs),
                "--batch-size",
                str(args.batch_size),
                "--lr",
                str(args.learning_rate),
                "--seed",
                "0",
                "--dropout",  # plain Keras's head has none: the same model on both sides
                "0",
                "--workspace",
                folder,
                "--json",
                *common,
                *model,
            ],
            env={"PYTHONPATH": str(ROOT), "TLCORE_OFFLINE": "1"},
        )
        info = last_json(ours["stdout"])
        run_dir = Path(folder) / "runs" / info["id"]
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
        epochs = [
            row
            for row in map(json.loads, (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines())
            if row["kind"] == "epoch"
        ]
    result["ours"] = {
        "seconds": ours["seconds"],
        "peak_rss": ours["peak_rss"],
        "status": info["status"],
        "val_accuracy": epochs[-1]["val_accuracy"],
        "best_val_accuracy": max(row["val_accuracy"] for row in epochs),
        "setup_seconds": status.get("setup_seconds"),
        "features_seconds": status.get("features_seconds"),
        "seconds_per_epoch": status.get("seconds_per_epoch"),
        "trainer_seconds": status.get("elapsed_seconds"),
    }
    plain = measured(
        [
            python,
            str(BENCH / "plain_keras.py"),
            "--train",
            str(data.train_zip),
            "--val",
            str(data.val_zip),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--learning-rate",
            str(args.learning_rate),
            *common,
            *model,
        ]
    )
    result["plain"] = {"seconds": plain["seconds"], "peak_rss": plain["peak_rss"], **last_json(plain["stdout"])}
    result["plain"]["seconds"] = plain["seconds"]  # the whole process, not the script's own clock
    result["speedup"] = result["plain"]["seconds"] / result["ours"]["seconds"]
    result["over_floor"] = result["ours"]["seconds"] / floor["seconds"]
    result["load_average_after"] = os.getloadavg()[0]
    return result


def case_lines(name: str, result: dict[str, Any]) -> list[str]:
    ours, plain, floor, rate = result["ours"], result["plain"], result["floor"], result["throughput"]
    gib = 2**30
    return [
        f"{name} ({result['images']} images): ours {ours['seconds']:.1f} s, plain Keras {plain['seconds']:.1f} s = "
        f"{result['speedup']:.1f}x; floor {floor['seconds']:.1f} s (import {floor['import_seconds']:.1f} + decode "
        f"{floor['decode_seconds']:.1f} + forward {floor['forward_seconds']:.1f}), ours = {result['over_floor']:.2f}x "
        f"the floor",
        f"    val accuracy: ours {ours['val_accuracy']:.3f} (best {ours['best_val_accuracy']:.3f}), plain "
        f"{plain['val_accuracy']:.3f} (best {plain['best_val_accuracy']:.3f}); peak RSS ours "
        f"{ours['peak_rss'] / gib:.2f} GiB, plain {plain['peak_rss'] / gib:.2f} GiB; load average "
        f"{result['load_average_before']:.2f} -> {result['load_average_after']:.2f}",
        f"    ours: setup {ours['setup_seconds']} s, feature pass {ours['features_seconds']} s, "
        f"{ours['seconds_per_epoch']} s per epoch, trainer {ours['trainer_seconds']} s",
        f"    feature pass: {rate['feature_pass_images_per_second']:.1f} images/s from decoded images, "
        f"{rate['feature_pass_from_files_images_per_second']:.1f} images/s from files; raw forward "
        f"{rate['raw_images_per_second']:.1f} images/s: "
        f"{rate['feature_pass_images_per_second'] / rate['raw_images_per_second']:.0%} and "
        f"{rate['feature_pass_from_files_images_per_second'] / rate['raw_images_per_second']:.0%} of raw",
    ]


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = subprocess.run(
        [
            sys.executable,
            "-c",
            "import PIL, numpy, tensorflow, keras; print(PIL.__version__, numpy.__version__, "
            "tensorflow.__version__, keras.__version__)",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout.split()
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "pillow, numpy, tensorflow, keras": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny generated data and a tiny model: checks it works")
    parser.add_argument("--cases", nargs="*", choices=sorted(CASES), default=["photos-224", "phone"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--backbone", default="mobilenet_v2_0.35")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2, help="passes per throughput measurement (best counts)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--val", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return 0
    if args.smoke:
        args.cases, args.epochs, args.batch_size, args.repeats = ["phone"], 1, 8, 1
        args.backbone, args.weights, args.image_size = "mobilenet_0.25", "none", 32
    elif not FLOWERS.parent.is_dir():
        parser.error(f"the flowers data is not at {FLOWERS.parent}")
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "cases": {}}
    print(json.dumps(results["machine"]), flush=True)
    for name in args.cases:
        result = run_case(CASES[name], args)
        results["cases"][name] = result
        print("\n".join(case_lines(name, result)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
