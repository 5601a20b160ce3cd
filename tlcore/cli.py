"""`python -m tlcore`: the app's operations for scripts, servers and bigger machines.

Every subcommand takes `--workspace DIR` and `--json` (machine-readable output on stdout). Bad input
ends with exit status 2 and one line on stderr saying what was wrong; a training run that fails, or
an export whose file does not predict what the app predicts, ends with exit status 1. TensorFlow is
imported only by the subcommands that need it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tlcore import distribute, runs
from tlcore.backbones import BACKBONES, find_cached_weights, list_backbones
from tlcore.codegen import run_script
from tlcore.datasets import ingest_folder, ingest_zip, list_datasets, load_dataset
from tlcore.errors import TLCoreError
from tlcore.evaluation import evaluate
from tlcore.export import ALL, export_run
from tlcore.export import FORMATS as EXPORT_FORMATS
from tlcore.images import convert_image
from tlcore.models import POOLINGS, ModelSpec, Strategy, build_model, get_base, layer_table, parameter_counts, rules
from tlcore.predict import Predictor
from tlcore.spec import OPTIMIZERS, Augmentation, RunSpec, field_defaults, read_spec_file
from tlcore.workspace import Workspace, write_bytes_atomic

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of this CLI."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _common(defaults: bool) -> argparse.ArgumentParser:
    # Subcommands repeat the global options so they can be given after the subcommand too;
    # SUPPRESS keeps a subcommand from overwriting a value given before it.
    parent = _Parser(add_help=False)
    default: Any = None if defaults else argparse.SUPPRESS
    parent.add_argument(
        "--workspace",
        metavar="DIR",
        default=default,
        help="workspace folder (default: $TLCORE_WORKSPACE or ./workspace)",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="print machine-readable JSON on stdout",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:

    parser = _Parser(
        prog="python -m tlcore",
        parents=[_common(True)],
        description="Transfer learning and fine-tuning of image classifiers, without a UI.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    common = _common(False)

    p = sub.add_parser("inspect", parents=[common], help="ingest a dataset zip (or a folder) and print its report")
    p.add_argument(
        "data",
        metavar="DATA",
        help="zip of class folders (or train/ and val/ folders), or such a folder, registered in place",
    )
    p.add_argument("--val", metavar="VAL.zip", help="a separate zip of validation images")
    _split_options(p)

    sub.add_parser("datasets", parents=[common], help="list ingested datasets")
    sub.add_parser("backbones", parents=[common], help="list the available backbones")

    p = sub.add_parser("layers", parents=[common], help="show a model's layers and which ones learn")
    _model_options(p, list_backbones(), list(Strategy), POOLINGS)
    p.add_argument("--classes", type=int, default=2, help="number of classes (default 2)")

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train a model (in the foreground)",
        description="Train on a dataset (--data, --data-dir or --dataset) with the model options "
        "below, or reproduce a run from its --spec, on the spec's dataset or on the one "
        "given. See docs/scaling.md for --distribute.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="TRAIN.zip", help="dataset zip to ingest and train on")
    source.add_argument(
        "--data-dir",
        metavar="DIR",
        help="a folder of class folders on this machine, read in place and streamed from disk",
    )
    source.add_argument("--dataset", metavar="ID", help="an already ingested dataset")
    source.add_argument("--run", metavar="RUN", help="train an existing queued run (used by the app)")
    p.add_argument(
        "--spec",
        metavar="SPEC.json",
        help="reproduce a run from its spec.json (with --data/--data-dir/--dataset: on that dataset)",
    )
    p.add_argument(
        "--distribute",
        choices=distribute.KINDS,
        default="none",
        help="none (default), mirrored (every GPU of this machine) or multiworker (machines in TF_CONFIG)",
    )
    p.add_argument(
        "--scale-batch",
        action="store_true",
        help="with --distribute: the batch size is per replica, learning rates scaled to match",
    )
    p.add_argument("--val", metavar="VAL.zip", help="a separate zip of validation images (with --data)")
    _split_options(p)
    _model_options(p, list_backbones(), list(Strategy), POOLINGS)
    run, augmentation = field_defaults(RunSpec), field_defaults(Augmentation)
    p.add_argument("--epochs", type=int, default=run["epochs"], help="epochs (of the first phase with --two-phase)")
    p.add_argument("--batch-size", type=int, default=run["batch_size"])
    p.add_argument(
        "--lr", type=float, default=run["learning_rate"], help=f"learning rate (default {run['learning_rate']:g})"
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=run["optimizer"])
    p.add_argument(
        "--two-phase",
        action="store_true",
        help="train the head on a frozen base first, then fine-tune at --finetune-lr",
    )
    p.add_argument("--finetune-epochs", type=int, default=run["finetune_epochs"])
    p.add_argument("--finetune-lr", type=float, default=run["finetune_learning_rate"])
    p.add_argument("--flip", action="store_true", help="augment: random horizontal flips")
    p.add_argument(
        "--rotation", type=float, default=augmentation["rotation"], help="augment: max rotation, fraction of a turn"
    )
    p.add_argument("--zoom", type=float, default=augmentation["zoom"], help="augment: max zoom, fraction")
    p.add_argument(
        "--contrast", type=float, default=augmentation["contrast"], help="augment: max contrast change, fraction"
    )
    p.add_argument(
        "--name", default=run["name"], help="a display name for the run (with --spec: in place of the spec's)"
    )
    p.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)

    sub.add_parser("runs", parents=[common], help="list runs with status and best validation accuracy")

    p = sub.add_parser("stop", parents=[common], help="ask a running or queued run to stop")
    p.add_argument("run", metavar="RUN", help="run id")

    p = sub.add_parser(
        "evaluate", parents=[common], help="evaluate a finished run: accuracy, per-class metrics, confusion matrix"
    )
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument(
        "--data", metavar="TEST.zip", help="a zip of class folders to evaluate on (default: the run's validation split)"
    )

    p = sub.add_parser("predict", parents=[common], help="classify images with a run's model")
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (JPEG, PNG, BMP, GIF, WebP, TIFF)")
    p.add_argument("--top", type=_positive_int, default=5, help="classes to show per image (default 5)")

    p = sub.add_parser(
        "export", parents=[common], help="export a finished run's model (Keras, SavedModel, TFLite) and check it"
    )
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument(
        "--format",
        choices=(*EXPORT_FORMATS, "all"),
        default="all",
        help="what to export (default all, which also writes a zip of everything)",
    )
    p.add_argument("--out", metavar="DIR", help="folder to write to (default: the run folder's exports/)")

    p = sub.add_parser("code", parents=[common], help="print the plain Keras script that reproduces a run")
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument("--out", metavar="FILE", help="write the script to FILE instead of printing it")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of images held out for validation when the zip has no val/ folder",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the split, weights and shuffling")


def _model_options(
    p: argparse.ArgumentParser, backbones: list[str], strategies: Sequence[str], poolings: Sequence[str]
) -> None:
    model = field_defaults(ModelSpec)
    p.add_argument(
        "--backbone",
        choices=backbones,
        default=model["backbone"],
        metavar="NAME",
        help=f"one of: {', '.join(backbones)} (default {model['backbone']})",
    )
    p.add_argument(
        "--weights", default=None, help="imagenet, none, or a weights file path (default: imagenet; none for scratch)"
    )
    p.add_argument("--strategy", choices=strategies, default=model["strategy"])
    p.add_argument("--frozen", type=int, default=None, help="frozen base layers, for --strategy finetune")
    p.add_argument("--image-size", type=int, default=None, help="input size in pixels (default: the backbone's)")
    p.add_argument(
        "--head",
        choices=poolings,
        default=model["pooling"],
        help="avg: global average pooling; flatten: as in the original article",
    )
    p.add_argument("--dropout", type=float, default=model["dropout"])
    p.add_argument(
        "--hidden", type=int, default=model["hidden_units"], help="units of an extra dense layer in the head"
    )


def _weights(args: argparse.Namespace) -> str:
    if args.weights is None:
        return "imagenet" if rules(args.strategy).pretrained else "none"
    if args.weights in ("imagenet", "none"):
        return args.weights
    return str(Path(args.weights).expanduser().resolve())


def _model_spec(args: argparse.Namespace, num_classes: int) -> Any:

    return ModelSpec(
        backbone=args.backbone,
        weights=_weights(args),
        image_size=args.image_size,
        num_classes=num_classes,
        pooling=args.head,
        dropout=args.dropout,
        hidden_units=args.hidden,
        strategy=args.strategy,
        frozen_layers=args.frozen,
    )


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, CPU features) kept off stderr.

    Those lines are printed before TensorFlow's logging is configured, so `TF_CPP_MIN_LOG_LEVEL` does
    not silence them, and they would bury the one line a failing command prints.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in NEEDS_TENSORFLOW:
        import_tensorflow_quietly()
    workspace_arg = getattr(args, "workspace", None)
    try:
        workspace = Workspace(workspace_arg)
        result = COMMANDS[args.command](args, workspace)
    except TLCoreError as exc:
        return _fail(args, str(exc))
    except KeyboardInterrupt:
        return _fail(args, "Interrupted.")
    if isinstance(result, int):
        return result
    return 0


def _fail(args: argparse.Namespace, message: str, code: int = EXIT_BAD_INPUT) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": message}, ensure_ascii=False))
    print(f"error: {message}", file=sys.stderr)
    return code


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))
    else:
        print(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def cmd_inspect(args: argparse.Namespace, workspace: Workspace) -> None:

    if Path(args.data).is_dir():
        if args.val:
            raise TLCoreError("--val goes with a zip; a folder gives its split with train/ and val/ folders.")
        dataset = ingest_folder(Path(args.data), workspace=workspace, val_fraction=args.val_fraction, seed=args.seed)
    else:
        dataset = ingest_zip(
            Path(args.data),
            Path(args.val) if args.val else None,
            workspace=workspace,
            val_fraction=args.val_fraction,
            seed=args.seed,
        )
    _emit(args, dataset.report(), dataset.summary())


def cmd_datasets(args: argparse.Namespace, workspace: Workspace) -> None:

    found = list_datasets(workspace)
    rows = [
        {"id": d.id, "name": d.name, "classes": list(d.classes), "images": len(d.items), "created": d.created}
        for d in found
    ]
    lines = [f"{r['id']}  {r['images']:>6} images  {len(r['classes'])} classes  {r['name']}" for r in rows]
    _emit(args, rows, "\n".join(lines) or "No datasets yet: ingest one with `python -m tlcore inspect DATA.zip`.")


def cmd_backbones(args: argparse.Namespace, workspace: Workspace) -> None:

    rows = []
    for b in BACKBONES.values():
        cached = find_cached_weights(b, b.default_size, workspace)
        rows.append(
            {
                "name": b.name,
                "label": b.label,
                "params": b.params,
                "default_size": b.default_size,
                "speed": b.speed,
                "preprocessing": b.preprocessing.mode,
                "weights_file": b.weights_file(b.default_size),
                "imagenet_weights_cached": str(cached) if cached else None,
            }
        )
    lines = [
        f"{r['name']:<20} {r['params'] / 1e6:6.2f}M params  {r['speed']:<6}  "
        f"imagenet weights: {'cached' if r['imagenet_weights_cached'] else 'not cached'}"
        for r in rows
    ]
    _emit(args, rows, "\n".join(lines))


def cmd_layers(args: argparse.Namespace, workspace: Workspace) -> None:

    spec = _model_spec(args, args.classes).validated()
    model = build_model(spec, load_weights=False)
    table = layer_table(model)
    counts = parameter_counts(model)
    base_layers = len(get_base(model).layers)
    frozen = int((~table["trainable"] & (table["part"] == "base")).sum())
    data = {
        "model": spec.to_dict(),
        "base_layers": base_layers,
        "frozen_base_layers": frozen,
        "parameters": counts,
        "layers": json.loads(table.to_json(orient="records")),
    }
    text = table.to_string(index=False, max_rows=None) + (
        f"\n\nbase layers: {base_layers}, frozen: {frozen}\n"
        f"parameters: total {counts['total']:,}, trainable {counts['trainable']:,}, "
        f"non-trainable {counts['non_trainable']:,}"
    )
    _emit(args, data, text)


# Options a spec file already holds: given with --spec they would be silently ignored, so they are refused.
_SPEC_FLAGS = (
    "--backbone",
    "--weights",
    "--strategy",
    "--frozen",
    "--image-size",
    "--head",
    "--dropout",
    "--hidden",
    "--epochs",
    "--batch-size",
    "--lr",
    "--optimizer",
    "--two-phase",
    "--finetune-epochs",
    "--finetune-lr",
    "--flip",
    "--rotation",
    "--zoom",
    "--contrast",
)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def cmd_train(args: argparse.Namespace, workspace: Workspace) -> int:
    from tlcore import training  # imports TensorFlow, seconds that only this command should pay

    if not (args.run or args.spec or args.data or args.data_dir or args.dataset):
        raise TLCoreError(
            "Nothing to train: give a dataset (--data DATA.zip, --data-dir DIR or --dataset ID), "
            "a spec (--spec SPEC.json), or both."
        )
    if args.run and args.spec:
        raise TLCoreError("--run trains a run that already has its spec; leave out --spec.")
    if args.spec:
        defaults = build_parser().parse_args(["train"])
        given = [flag for flag in _SPEC_FLAGS if getattr(args, _dest(flag)) != getattr(defaults, _dest(flag))]
        if given:
            raise TLCoreError(
                f"The spec sets the model and training options; leave out {', '.join(given)} (or edit the spec file)."
            )
    if args.val and not args.data:
        raise TLCoreError(
            "--val is a zip of validation images for --data DATA.zip; a folder gives its split "
            "with train/ and val/ folders, and a stored dataset already has its split."
        )
    if args.scale_batch and args.distribute == "none":
        raise TLCoreError(
            "--scale-batch scales the batch to the number of replicas; use it with --distribute "
            "mirrored or multiworker."
        )
    # Before anything else runs in TensorFlow: a multi-worker strategy configures its runtime.
    distribution = distribute.create(args.distribute, scale_batch=args.scale_batch)
    if args.run and not distribution.is_chief:
        raise TLCoreError(
            f"--run trains a run folder, which only the chief of a multi-worker job writes; give "
            f"{distribution.worker} the run's --spec and data instead."
        )
    if args.run:
        info = training.train_run(workspace, args.run, lock_fd=args.lock_fd, distribution=distribution)
        return 0 if info.status != runs.RunState.FAILED else EXIT_RUN_FAILED
    spec = _train_spec(args, workspace)
    if not distribution.is_chief:
        if not args.json:
            print(f"worker {distribution.worker}: training in step with the chief, which writes the run", flush=True)
        ended = _train_as_worker(workspace, spec, distribution)
        _emit(args, {"worker": distribution.worker, "status": ended}, f"worker {distribution.worker}: {ended}")
        return 0
    info = runs.create_run(spec, workspace)
    if not args.json:
        print(
            f"run {info.id}: training {spec.model.backbone} ({spec.model.strategy}) "
            f"for {spec.total_epochs} epoch(s) in {info.dir}",
            flush=True,
        )
        if distribution.kind != "none":
            print(distribution.describe(), flush=True)
    report = None if args.json else _print_epoch
    info = training.train_run(workspace, info.id, report=report, distribution=distribution)
    text = (
        f"run {info.id}: {info.status}"
        + (
            f", best val_accuracy {info.best_val_accuracy:.4f} at epoch {info.best_epoch}"
            if info.best_val_accuracy is not None
            else ""
        )
        + (f"\n{info.error}" if info.error else "")
    )
    _emit(args, info.to_dict(), text)
    return EXIT_RUN_FAILED if info.status == runs.RunState.FAILED else 0


def _print_epoch(row: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    print(
        f"epoch {row['epoch']:>3} [{row['phase']}]  loss {fmt(row.get('loss'))}  "
        f"accuracy {fmt(row.get('accuracy'))}  val_loss {fmt(row.get('val_loss'))}  "
        f"val_accuracy {fmt(row.get('val_accuracy'))}  ({row['elapsed']:.1f} s since the start)",
        flush=True,
    )


def _train_spec(args: argparse.Namespace, workspace: Workspace) -> Any:
    dataset = _train_dataset(args, workspace)
    if args.spec:
        spec = read_spec_file(Path(args.spec))
        if args.name:
            spec = replace(spec, name=args.name)
        if dataset is not None:
            return replace(spec, dataset=dataset.id)
        if not workspace.dataset_dir(spec.dataset).is_dir():
            raise TLCoreError(
                f"The spec's dataset {spec.dataset!r} is not in the workspace {str(workspace.root)!r}; "
                "give the data with --data DATA.zip, --data-dir DIR or --dataset ID."
            )
        return spec
    return RunSpec(
        dataset=dataset.id,
        model=_model_spec(args, len(dataset.classes)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        two_phase=args.two_phase,
        finetune_epochs=args.finetune_epochs,
        finetune_learning_rate=args.finetune_lr,
        augmentation=Augmentation(flip=args.flip, rotation=args.rotation, zoom=args.zoom, contrast=args.contrast),
        seed=args.seed,
        name=args.name,
    )


def _train_as_worker(workspace: Workspace, spec: Any, distribution: Any) -> str:
    """Train as a non-chief worker; how the job ended, or one sentence when this worker could not go on."""
    from tlcore import training  # TensorFlow, as above

    try:
        return training.train_worker(workspace, spec, distribution)
    except TLCoreError:
        raise
    except Exception as exc:
        raise TLCoreError(
            f"Worker {distribution.worker} stopped: {training.error_summary(exc)} "
            "If the chief's run has ended, its status says why (python -m tlcore runs, on the chief)."
        ) from None


def _train_dataset(args: argparse.Namespace, workspace: Workspace) -> Any:
    """The dataset named by --data, --data-dir or --dataset (ingested or registered now), or None."""

    if args.data:
        dataset = ingest_zip(
            Path(args.data),
            Path(args.val) if args.val else None,
            workspace=workspace,
            val_fraction=args.val_fraction,
            seed=args.seed,
        )
    elif args.data_dir:
        dataset = ingest_folder(
            Path(args.data_dir), workspace=workspace, val_fraction=args.val_fraction, seed=args.seed
        )
    elif args.dataset:
        return load_dataset(workspace, args.dataset)
    else:
        return None
    if not args.json:
        print(dataset.summary(), flush=True)
    return dataset


def cmd_runs(args: argparse.Namespace, workspace: Workspace) -> None:

    found = runs.list_runs(workspace)
    rows = [_run_row(info) for info in found]
    lines = [
        f"{r['id']:<50} {r['status']:<11} best val_accuracy "
        f"{'-' if r['best_val_accuracy'] is None else format(r['best_val_accuracy'], '.4f')}"
        f"  {r['name']}"
        for r in rows
    ]
    _emit(args, rows, "\n".join(lines) or "No runs yet.")


def _run_row(info: Any) -> dict[str, Any]:
    spec = info.spec
    return {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "error": info.error,
        "backbone": spec.model.backbone if spec else None,
        "strategy": spec.model.strategy if spec else None,
        "epoch": info.epoch,
        "total_epochs": info.total_epochs,
        "progress": info.progress,
        "best_val_accuracy": info.best_val_accuracy,
        "best_epoch": info.best_epoch,
        "trainable_params": info.trainable_params,
        "frozen_layers": info.frozen_layers,
        "seconds_per_epoch": info.seconds_per_epoch,
        "elapsed_seconds": info.elapsed_seconds,
        "eta_seconds": info.eta_seconds,
        "path": info.path,
        "path_note": info.path_note,
        "features_done": info.features_done,
        "features_total": info.features_total,
        "features_cached": info.features_cached,
        "features_seconds": info.features_seconds,
        "created": info.created,
        "dir": str(info.dir),
    }


def cmd_stop(args: argparse.Namespace, workspace: Workspace) -> None:

    info = runs.stop(workspace, args.run)
    _emit(args, _run_row(info), f"run {info.id}: stop requested ({info.status})")


def cmd_evaluate(args: argparse.Namespace, workspace: Workspace) -> None:

    result = evaluate(workspace, args.run, Path(args.data) if args.data else None)
    _emit(args, {**result.to_dict(), "file": str(result.path), "cached": result.cached}, result.summary())


def cmd_predict(args: argparse.Namespace, workspace: Workspace) -> None:

    # Images are checked before the model loads, so a bad one fails fast with nothing but its message.
    images = [convert_image(Path(image), image) for image in args.images]
    predictor = Predictor.load(workspace, args.run)
    predictions = predictor.predict(images, names=args.images)
    lines = []
    for prediction in predictions:
        lines.append(f"{prediction.name}: {prediction.label} ({prediction.confidence:.4f})")
        lines += [f"    {name:<24} {probability:.4f}" for name, probability in prediction.top(args.top)]
    _emit(args, [p.to_dict(args.top) for p in predictions], "\n".join(lines))


def cmd_export(args: argparse.Namespace, workspace: Workspace) -> int:

    result = export_run(workspace, args.run, [args.format], out_dir=args.out, archive=args.format == ALL)
    _emit(args, result.to_dict(), result.summary())
    return 0 if all(check.passed for check in result.checks.values()) else EXIT_RUN_FAILED


def cmd_code(args: argparse.Namespace, workspace: Workspace) -> None:

    script = run_script(workspace, args.run)
    target = Path(args.out).expanduser().resolve() if args.out else None
    if target is not None:
        if target.is_dir():
            raise TLCoreError(f"{str(target)!r} is a folder; give the path of the script file to write.")
        try:
            write_bytes_atomic(target, script.encode("utf-8"))
        except OSError as exc:
            raise TLCoreError(f"The script cannot be written to {str(target)!r} ({exc.strerror or exc}).") from None
    _emit(
        args,
        {"run": args.run, "file": str(target) if target else None, "script": script},
        f"wrote {target}" if target else script.rstrip("\n"),
    )


NEEDS_TENSORFLOW = ("layers", "train", "evaluate", "predict", "export")

COMMANDS = {
    "inspect": cmd_inspect,
    "datasets": cmd_datasets,
    "backbones": cmd_backbones,
    "layers": cmd_layers,
    "train": cmd_train,
    "runs": cmd_runs,
    "stop": cmd_stop,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "code": cmd_code,
}
