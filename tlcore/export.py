"""Export a finished run's model for use outside the app, and prove each file predicts what the app predicts.

Formats (the `--format` names), written to the run folder's `exports/` or to a folder the user gives:

| format | file | loaded with | checked against the app |
| --- | --- | --- | --- |
| `keras` | `model.keras` | `keras.models.load_model` | max abs. difference of probabilities ≤ 1e-6 |
| `savedmodel` | `saved_model/` | `tf.saved_model.load(...).serve` | ≤ 1e-5 |
| `tflite` | `model.tflite` (float32) | `tf.lite.Interpreter` | ≤ 1e-4 |
| `tflite-quant` | `model_quant.tflite` (8-bit weights) | `tf.lite.Interpreter` | same top-1 where the app is decisive |
| `onnx` | `model.onnx` | `onnxruntime.InferenceSession` | ≤ 1e-5 |

ONNX is converted by tf2onnx from the same SavedModel (`python -m tf2onnx.convert --saved-model`,
in a process of its own), not by Keras's `model.export(format="onnx")`: Keras converts the model
function, where EfficientNet's Normalization constants become extra graph inputs the file then asks
for; the SavedModel's serving signature converts every backbone of the registry. When a model cannot
be converted, the export says why in one sentence and the other formats are written all the same.

Quantized weights move probabilities by up to a few tenths on small networks (0.28 for ImageNet
MobileNet ×0.25), so an image the model is unsure about can change class (that MobileNet kept the
top-1 class of 98% of the images; every change was on an image whose top two classes were less than
0.4 apart). So the quantized file must give the app's top-1 class on every image where the app's
top class leads the next by more than `QUANT_DECISIVE_MARGIN`; its agreement on all images is
reported beside.

Every export also writes `labels.txt` (class names in output order) and `README.txt` (input, output,
how to load each file, the check results); `archive=True` adds `<run-id>.zip` holding all of them.
Every model takes what the app's model takes, float32 RGB images of shape (n, size, size, 3) with
values 0-255, and returns class probabilities: the backbone's preprocessing is inside the model.

After writing, each file is loaded again and run on up to `CHECK_IMAGES` validation images of the
run's dataset (random images if the dataset is gone); the result (`Check`) is stored in
`export.json` beside the files and shown by the app and the CLI. Files whose model has not changed
since (same `best.keras` modification time and size) are reused, not rebuilt.

Every file is written under a temporary name and renamed into place, so a failed export never
leaves a half-written model where a good one was.
"""

from __future__ import annotations

import importlib.util
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import runs
from tlcore.errors import ExportError, TLCoreError
from tlcore.i18n import DEFAULT_LANGUAGE, Message, language_from_environment, msg
from tlcore.predict import Predictor, model_file, model_stamp
from tlcore.workspace import Workspace, read_json, write_bytes_atomic, write_json_atomic

if TYPE_CHECKING:
    import numpy as np

EXPORT_FORMAT = 1
FORMATS = ("keras", "savedmodel", "tflite", "tflite-quant", "onnx")
ALL = "all"
FILES = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "tflite-quant": "model_quant.tflite",
    "onnx": "model.onnx",
}
TOLERANCES: dict[str, float | None] = {
    "keras": 1e-6,
    "savedmodel": 1e-5,
    "tflite": 1e-4,
    "tflite-quant": None,
    "onnx": 1e-4,  # onnxruntime fuses convolutions and activations: float32 sums in another order
}
"""Largest allowed absolute difference from the app's probabilities; None: top-1 agreement is checked."""
QUANT_DECISIVE_MARGIN = 0.5
"""Lead of the app's top class over the next above which the quantized model must agree with it."""

EXPORTS_FOLDER = "exports"
MANIFEST_FILE = "export.json"
README_FILE = "README.txt"
CHECK_IMAGES = 32
ONNX_OPSET = 17
ONNX_SECONDS = 900


@dataclass(frozen=True)
class Check:
    """How an exported file's predictions compare with the app's on the same images."""

    format: str
    images: int
    max_abs_diff: float
    top1_agreement: float
    tolerance: float | None
    passed: bool

    @property
    def criterion(self) -> Message:
        """The pass condition in words."""
        if self.tolerance is None:
            return msg("export.criterion_top1", margin=f"{QUANT_DECISIVE_MARGIN:g}")
        return msg("export.criterion_tolerance", tolerance=f"{self.tolerance:g}")

    def result(self, verdict: Message) -> Message:
        """The check's numbers and criterion after `verdict` ("ok", "passed" or "FAILED")."""
        return msg(
            "export.check_result",
            verdict=verdict,
            difference=f"{self.max_abs_diff:.2e}",
            agreement=f"{self.top1_agreement:.0%}",
            images=msg("count.images", n=self.images),
            criterion=self.criterion,
        )


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    files: path by format, plus `labels`, `readme` and (with `archive`) `zip`.
    checks: the comparison with the app, by format (absent when checking was turned off).
    reused: formats whose files were already current and were not rebuilt.
    failed: formats that could not be written, each with the reason in one sentence.
    """

    run_id: str
    out_dir: Path
    files: dict[str, Path]
    checks: dict[str, Check]
    reused: tuple[str, ...]
    failed: dict[str, Message] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every format asked for was written, and every file predicts what the app predicts."""
        return not self.failed and all(check.passed for check in self.checks.values())

    def to_dict(self, lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
        """What was written as JSON-able data (the CLI's `--json`), the criteria in `lang`."""
        return {
            "run": self.run_id,
            "out_dir": str(self.out_dir),
            "files": {key: str(path) for key, path in self.files.items()},
            "checks": {
                key: {**asdict(check), "criterion": check.criterion.render(lang)} for key, check in self.checks.items()
            },
            "reused": list(self.reused),
            "failed": {key: reason.render(lang) for key, reason in self.failed.items()},
        }

    def summary(self, lang: str | None = None) -> str:
        """What was written and how each file compared with the app, as text in `lang` (None: the
        environment's language)."""
        lang = lang or language_from_environment()
        lines = [msg("export.summary_title", run=self.run_id, folder=str(self.out_dir)).render(lang)]
        current = " " + msg("export.already_current").render(lang)
        for key, path in self.files.items():
            lines.append(f"  {key:<13} {path}{current if key in self.reused else ''}")
        if self.checks:
            lines.append(msg("export.summary_checked").render(lang))
        for key, check in self.checks.items():
            verdict = msg("export.verdict_ok") if check.passed else msg("export.verdict_failed")
            lines.append(f"  {key:<13} {check.result(verdict).render(lang)}")
        for key, reason in self.failed.items():
            lines.append(f"  {key:<13} {reason.render(lang)}")
        return "\n".join(lines)


def parse_formats(names: Iterable[str]) -> tuple[str, ...]:
    """The formats named (`all` for every one), in the order of `FORMATS`; `ExportError` on an unknown name."""
    chosen = set()
    for name in names:
        if name == ALL:
            chosen.update(FORMATS)
        elif name in FORMATS:
            chosen.add(name)
        else:
            raise ExportError("export.unknown_format", name=repr(name), choices=", ".join((*FORMATS, ALL)))
    if not chosen:
        raise ExportError("export.no_format", choices=", ".join((*FORMATS, ALL)))
    return tuple(f for f in FORMATS if f in chosen)


def export_run(
    workspace: Workspace,
    run_id: str,
    formats: Iterable[str] = (ALL,),
    out_dir: str | os.PathLike[str] | None = None,
    archive: bool = False,
    check: bool = True,
    predictor: Predictor | None = None,
    lang: str | None = None,
) -> ExportResult:
    """Export a finished run's model in `formats` (see the module docstring) and check each file.

    out_dir: where to write; default the run folder's `exports/`. Created if missing.
    archive: also write `<run-id>.zip` holding everything exported.
    check: load each file again and compare its predictions with the app's (`Check`).
    predictor: the run's already loaded model, to save loading it again (used if it is current).
    lang: the language of README.txt (None: the environment's language).
    """
    chosen = parse_formats(formats)
    info = runs.load_run(workspace, run_id)
    stamp = model_stamp(model_file(info, require_finished=True))
    target = Path(out_dir).expanduser().resolve() if out_dir is not None else info.dir / EXPORTS_FOLDER
    if target.exists() and not target.is_dir():
        raise ExportError("export.folder_is_file", folder=str(target))
    if predictor is None or predictor.run_id != info.id or predictor.stamp != stamp:
        predictor = Predictor.load(workspace, info.id, require_finished=True)
    try:
        target.mkdir(parents=True, exist_ok=True)
        return _export(workspace, info, predictor, stamp, chosen, target, archive, check, lang)
    except OSError as exc:
        raise ExportError("export.failed", folder=str(target), error=exc.strerror or str(exc)) from None


def _export(
    workspace: Workspace,
    info: runs.RunInfo,
    predictor: Predictor,
    stamp: dict[str, int],
    chosen: tuple[str, ...],
    target: Path,
    archive: bool,
    check: bool,
    lang: str | None,
) -> ExportResult:
    manifest = _current_manifest(target, info.id, stamp)
    done: dict[str, dict[str, Any]] = manifest["formats"]
    reused = tuple(
        f
        for f in chosen
        if f in done and (target / FILES[f]).exists() and (not check or done[f].get("check") is not None)
    )
    build = [f for f in chosen if f not in reused]
    failed: dict[str, Message] = {}
    if build:
        failed = _write_models(info, predictor, build, target)
        written = [f for f in build if f not in failed]
        checks = (
            check_files(predictor, {f: target / FILES[f] for f in written}, check_images(workspace, info, predictor))
            if check
            else {}
        )
        for f in written:
            done[f] = {"file": FILES[f], "check": asdict(checks[f]) if f in checks else None}
        for f in failed:
            done.pop(f, None)
    chosen = tuple(f for f in chosen if f not in failed)
    files = {f: target / FILES[f] for f in chosen}
    checks = {f: Check(**done[f]["check"]) for f in chosen if check and done[f].get("check")}
    write_bytes_atomic(target / runs.LABELS_FILE, ("\n".join(predictor.classes) + "\n").encode("utf-8"))
    files["labels"] = target / runs.LABELS_FILE
    write_bytes_atomic(target / README_FILE, readme(info, predictor, chosen, checks, lang).encode("utf-8"))
    files["readme"] = target / README_FILE
    if archive:
        archive_path = target / archive_name(info.id)
        if build or manifest.get("archive") != list(chosen) or not archive_path.is_file():
            write_zip(archive_path, list(files.values()))
            manifest["archive"] = list(chosen)
        files["zip"] = archive_path
    write_json_atomic(target / MANIFEST_FILE, manifest)
    return ExportResult(info.id, target, files, checks, reused, failed)


def load_export(workspace: Workspace, run_id: str) -> ExportResult | None:
    """What an earlier export wrote to the run's `exports/`, if it is still current; never exports.

    None when nothing was exported, or when `best.keras` changed since.
    """
    info = runs.load_run(workspace, run_id)
    try:
        stamp = model_stamp(model_file(info, require_finished=True))
    except (TLCoreError, OSError):
        return None
    target = info.dir / EXPORTS_FOLDER
    manifest = _current_manifest(target, info.id, stamp)
    formats = tuple(f for f in FORMATS if f in manifest["formats"] and (target / FILES[f]).exists())
    if not formats:
        return None
    files = {f: target / FILES[f] for f in formats}
    for key, name in (("labels", runs.LABELS_FILE), ("readme", README_FILE), ("zip", archive_name(info.id))):
        if (target / name).is_file() and (key != "zip" or manifest.get("archive")):
            files[key] = target / name
    checks = {f: Check(**manifest["formats"][f]["check"]) for f in formats if manifest["formats"][f].get("check")}
    return ExportResult(info.id, target, files, checks, formats)


def archive_name(run_id: str) -> str:
    """The file name of the zip of everything exported."""
    return f"{run_id}.zip"


def _current_manifest(target: Path, run_id: str, stamp: dict[str, int]) -> dict[str, Any]:
    """The folder's `export.json` if it describes this run's current model, else a fresh one."""
    fresh = {"format": EXPORT_FORMAT, "run": run_id, "model": stamp, "formats": {}}
    try:
        manifest = read_json(target / MANIFEST_FILE)
    except (OSError, ValueError):
        return fresh
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != EXPORT_FORMAT
        or manifest.get("run") != run_id
        or manifest.get("model") != stamp
        or not isinstance(manifest.get("formats"), dict)
    ):
        return fresh
    return manifest


def _write_models(info: runs.RunInfo, predictor: Predictor, build: list[str], target: Path) -> dict[str, Message]:
    """Write the files of the formats in `build`; return the formats that could not be written, and why."""
    if "keras" in build:
        partial = target / f".{FILES['keras']}.{secrets.token_hex(4)}.tmp"
        try:
            shutil.copyfile(info.dir / runs.BEST_MODEL_FILE, partial)
            os.replace(partial, target / FILES["keras"])
        finally:
            partial.unlink(missing_ok=True)
    failed: dict[str, Message] = {}
    if not {"savedmodel", "tflite", "tflite-quant", "onnx"} & set(build):
        return failed
    # TFLite and ONNX are converted from a SavedModel, which is written (to a temporary folder) even when
    # only they were asked for.
    staged = target / f".{FILES['savedmodel']}.{secrets.token_hex(4)}.tmp"
    try:
        predictor.model.export(str(staged), format="tf_saved_model", verbose=False)
        for name, quantize in (("tflite", False), ("tflite-quant", True)):
            if name in build:
                write_bytes_atomic(target / FILES[name], tflite_bytes(staged, quantize))
        if "onnx" in build:
            try:
                write_bytes_atomic(target / FILES["onnx"], onnx_bytes(staged))
            except ExportError as exc:
                failed["onnx"] = exc.message
        if "savedmodel" in build:
            _replace_folder(staged, target / FILES["savedmodel"])
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return failed


def tflite_bytes(saved_model: Path, quantize: bool) -> bytes:
    """Convert a SavedModel to TFLite: float32, or with dynamic-range quantization (8-bit weights)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def onnx_bytes(saved_model: Path) -> bytes:
    """Convert a SavedModel's serving signature to ONNX with tf2onnx, in a process of its own (the converter
    holds on to memory and prints TensorFlow's logs); `ExportError` in one sentence when it cannot."""
    if importlib.util.find_spec("tf2onnx") is None:
        raise ExportError("export.onnx_missing")
    with tempfile.TemporaryDirectory(prefix="onnx-", dir=saved_model.parent) as folder:
        output = Path(folder) / FILES["onnx"]
        command = [
            sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--signature_def", "serve",
            "--opset", str(ONNX_OPSET), "--output", str(output),
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=ONNX_SECONDS,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
        except subprocess.TimeoutExpired:
            raise ExportError("export.onnx_timeout", seconds=ONNX_SECONDS) from None
        if result.returncode != 0 or not output.is_file():
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise ExportError("export.onnx_failed", reason=(lines[-1] if lines else f"exit {result.returncode}")[:300])
        return output.read_bytes()


def _replace_folder(staged: Path, target: Path) -> None:
    """Move `staged` to `target`, replacing any folder there with as short a gap as two renames."""
    if target.exists():
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)


def check_images(workspace: Workspace, info: runs.RunInfo, predictor: Predictor) -> np.ndarray:
    """Up to `CHECK_IMAGES` images of the run's dataset, validation first, as the app feeds them to the model.

    If the dataset is gone, seeded random images of the right shape stand in.
    """
    import numpy as np

    from tlcore.datasets import load_dataset
    from tlcore.images import load_images

    try:
        dataset = load_dataset(workspace, info.spec.dataset)
    except TLCoreError:
        size = predictor.image_size
        return np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, size, size, 3), dtype="uint8")
    paths = dataset.files("val")[0] + dataset.files("train")[0]
    step = max(1, len(paths) // CHECK_IMAGES)
    return load_images(paths[::step][:CHECK_IMAGES], predictor.image_size)


def runner(fmt: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load an exported file and return a function from float32 images (n, s, s, 3) to probabilities."""
    import numpy as np

    if fmt == "keras":
        import keras

        model = keras.models.load_model(path, compile=False, safe_mode=True)
        return lambda images: np.asarray(model.predict(images, verbose=0))
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return lambda images: loaded.serve(tf.constant(images)).numpy()
    if fmt in ("tflite", "tflite-quant"):
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's notice that LiteRT will replace it
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(model_path=str(path))

        def run(images: np.ndarray) -> np.ndarray:
            source = interpreter.get_input_details()[0]
            interpreter.resize_tensor_input(source["index"], images.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(source["index"], images)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

        return run
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda images: session.run(None, {name: images})[0]
    raise ExportError("export.unknown_format", name=repr(fmt), choices=", ".join(FORMATS))


def check_files(predictor: Predictor, files: dict[str, Path], images: np.ndarray) -> dict[str, Check]:
    """Compare each exported file's predictions on `images` (uint8) with the app's (`predictor`)."""
    import numpy as np

    expected = predictor.probabilities(images)
    ranked = np.sort(expected, axis=1)
    decisive = ranked[:, -1] - ranked[:, -2] > QUANT_DECISIVE_MARGIN
    inputs = images.astype("float32")
    checks = {}
    for fmt, path in files.items():
        got = runner(fmt, path)(inputs)
        diff = float(np.abs(got - expected).max())
        agrees = got.argmax(axis=1) == expected.argmax(axis=1)
        tolerance = TOLERANCES[fmt]
        passed = bool(agrees[decisive].all()) if tolerance is None else diff <= tolerance
        checks[fmt] = Check(fmt, len(images), diff, float(agrees.mean()), tolerance, passed)
    return checks


def readme(
    info: runs.RunInfo,
    predictor: Predictor,
    formats: Iterable[str],
    checks: dict[str, Check],
    lang: str | None = None,
) -> str:
    """The README.txt written beside exported files, in `lang` (None: the environment's language): what goes
    in, what comes out, how to load each file."""
    from tlcore.backbones import get_backbone

    lang = lang or language_from_environment()
    size, classes = predictor.image_size, len(predictor.classes)
    how = {
        "keras": ('model = keras.models.load_model("model.keras"); model.predict(images)', None),
        "savedmodel": ('model = tf.saved_model.load("saved_model"); model.serve(images)', None),
        "tflite": ('tf.lite.Interpreter(model_path="model.tflite")', msg("export.readme_float_weights")),
        "tflite-quant": ('tf.lite.Interpreter(model_path="model_quant.tflite")', msg("export.readme_quant_weights")),
        "onnx": ('onnxruntime.InferenceSession("model.onnx").run(None, {"image": images})', None),
    }
    if info.name != info.id:
        title = msg("export.readme_title_named", run=info.id, name=info.name)
    else:
        title = msg("export.readme_title", run=info.id)
    model = msg(
        "export.readme_model",
        backbone=get_backbone(info.spec.model.backbone).label,
        classes=msg("count.classes", n=classes),
    )
    lines = [
        title.render(lang),
        model.render(lang),
        "",
        msg("export.readme_input", size=size).render(lang),
        msg("export.readme_output", classes=classes).render(lang),
        "",
    ]
    for f in formats:
        code, note = how[f]
        line = f"{FILES[f] + ('/' if f == 'savedmodel' else ''):<20} {code}"
        lines.append(f"{line}: {note.render(lang)}" if note else line)
    if "savedmodel" in formats:
        lines.append(msg("export.readme_savedmodel_note").render(lang))
    if checks:
        lines += ["", msg("export.readme_checked").render(lang)]
        for f, c in checks.items():
            verdict = msg("export.verdict_passed") if c.passed else msg("export.verdict_failed")
            lines.append(f"{FILES[f]:<20} {c.result(verdict).render(lang)}")
    return "\n".join(lines) + "\n"


def zip_paths(paths: Iterable[Path]) -> bytes:
    """A zip of files and folders (folders with everything in them), each under its own name, in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_to_zip(archive, paths)
    return buffer.getvalue()


def write_zip(target: Path, paths: Iterable[Path]) -> None:
    """`zip_paths` streamed to the file `target` (atomically), for archives too large to hold in memory."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            _add_to_zip(archive, paths)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _add_to_zip(archive: zipfile.ZipFile, paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file():
                    archive.write(item, f"{path.name}/{item.relative_to(path).as_posix()}")
        else:
            archive.write(path, path.name)
