"""The subcommands other than `train`: one function each, answering in the reader's language."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tlcore import runs
from tlcore.backbones import BACKBONES, find_cached_weights
from tlcore.cli.output import emit, say, status_word
from tlcore.cli.parser import EXIT_BAD_INPUT
from tlcore.cli.train import EXIT_RUN_FAILED, model_spec
from tlcore.codegen import run_script
from tlcore.datasets import ingest_folder, ingest_zip, list_datasets
from tlcore.errors import ImageError, TLCoreError
from tlcore.evaluation import evaluate
from tlcore.export import ALL, export_run
from tlcore.i18n import msg
from tlcore.images import convert_image
from tlcore.models import build_model, get_base, layer_table, parameter_counts
from tlcore.predict import Predictor
from tlcore.study import load_study
from tlcore.workspace import Workspace, write_bytes_atomic


def cmd_inspect(args: argparse.Namespace, workspace: Workspace) -> None:
    if Path(args.data).is_dir():
        if args.val:
            raise TLCoreError("cli.val_with_folder")
        dataset = ingest_folder(Path(args.data), workspace=workspace, val_fraction=args.val_fraction, seed=args.seed)
    else:
        dataset = ingest_zip(
            Path(args.data),
            Path(args.val) if args.val else None,
            workspace=workspace,
            val_fraction=args.val_fraction,
            seed=args.seed,
        )
    emit(args, dataset.report(args.lang), dataset.summary(args.lang))


def cmd_datasets(args: argparse.Namespace, workspace: Workspace) -> None:
    found = list_datasets(workspace)
    rows = [
        {"id": d.id, "name": d.name, "classes": list(d.classes), "images": len(d.items), "created": d.created}
        for d in found
    ]
    lines = [
        msg(
            "cli.dataset_row",
            id=row["id"],
            images=msg("count.images", n=row["images"]),
            classes=msg("count.classes", n=len(row["classes"])),
            name=row["name"],
        ).render(args.lang)
        for row in rows
    ]
    emit(args, rows, "\n".join(lines) or msg("cli.no_datasets").render(args.lang))


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
        msg(
            "cli.backbone_row",
            name=f"{row['name']:<20}",
            millions=row["params"] / 1e6,
            speed=f"{row['speed']:<6}",
            weights=msg("cli.weights_cached") if row["imagenet_weights_cached"] else msg("cli.weights_not_cached"),
        ).render(args.lang)
        for row in rows
    ]
    emit(args, rows, "\n".join(lines))


def cmd_layers(args: argparse.Namespace, workspace: Workspace) -> None:
    spec = model_spec(args, args.classes).validated()
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
    totals = msg(
        "cli.layers_totals",
        base_layers=base_layers,
        frozen=frozen,
        total=counts["total"],
        trainable=counts["trainable"],
        non_trainable=counts["non_trainable"],
    )
    emit(args, data, table.to_string(index=False, max_rows=None) + "\n\n" + totals.render(args.lang))


def cmd_runs(args: argparse.Namespace, workspace: Workspace) -> None:
    found = runs.list_runs(workspace)
    if args.dataset:
        found = [info for info in found if info.spec is not None and info.spec.dataset == args.dataset]
    if args.study:
        members = load_study(workspace, args.study).run_ids
        found = [info for info in found if info.id in members]
    if args.tensorboard:
        readable = [info for info in found if info.spec is not None]
        if not readable:
            raise TLCoreError("cli.no_runs_for_tensorboard")
        command = runs.tensorboard_command(readable)
        emit(args, {"command": command, "runs": [info.id for info in readable]}, command)
        return
    rows = [run_row(info, args.lang) for info in found]
    lines = [
        msg(
            "cli.run_row",
            id=f"{info.id:<50}",
            status=f"{status_word(info.status).render(args.lang):<11}",
            accuracy="-" if info.best_val_accuracy is None else f"{info.best_val_accuracy:.4f}",
            name=info.name,
        ).render(args.lang)
        for info in found
    ]
    emit(args, rows, "\n".join(lines) or msg("cli.no_runs").render(args.lang))


def run_row(info: runs.RunInfo, lang: str) -> dict[str, Any]:
    """A run as `runs --json` and `stop --json` give it."""
    spec = info.spec
    return {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "error": say(info.error, lang),
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
        "path_note": say(info.path_note, lang),
        "features_done": info.features_done,
        "features_total": info.features_total,
        "features_cached": info.features_cached,
        "features_seconds": info.features_seconds,
        "created": info.created,
        "dir": str(info.dir),
        "tensorboard": runs.tensorboard_command([info]),
    }


def cmd_stop(args: argparse.Namespace, workspace: Workspace) -> None:
    info = runs.stop(workspace, args.run)
    line = msg("cli.stop_requested", run=info.id, status=status_word(info.status))
    emit(args, run_row(info, args.lang), line.render(args.lang))


def cmd_evaluate(args: argparse.Namespace, workspace: Workspace) -> None:
    result = evaluate(workspace, args.run, Path(args.data) if args.data else None)
    data = {**result.to_dict(), "file": str(result.path), "cached": result.cached}
    emit(args, data, result.summary(args.lang))


def cmd_predict(args: argparse.Namespace, workspace: Workspace) -> int:
    """Each image gets its top classes, or one sentence on stderr saying why not (exit status 2 then)."""
    # Images are converted before the model loads: when none can be used, only their sentences are said.
    usable: dict[str, bytes] = {}
    refused: dict[str, str] = {}
    for image in args.images:
        try:
            usable[image] = convert_image(Path(image), image)
        except ImageError as exc:
            refused[image] = exc.render(args.lang)
    answers: dict[str, Any] = {image: {"image": image, "error": reason} for image, reason in refused.items()}
    lines = []
    if usable:
        predictor = Predictor.load(workspace, args.run)
        for prediction in predictor.predict(list(usable.values()), names=list(usable)):
            answers[prediction.name] = prediction.to_dict(args.top)
            lines.append(f"{prediction.name}: {prediction.label} ({prediction.confidence:.4f})")
            lines += [f"    {name:<24} {probability:.4f}" for name, probability in prediction.top(args.top)]
    if lines or args.json:
        emit(args, [answers[image] for image in dict.fromkeys(args.images)], "\n".join(lines))
    for reason in refused.values():
        print(msg("cli.error_line", sentence=reason).render(args.lang), file=sys.stderr)
    return EXIT_BAD_INPUT if refused else 0


def cmd_export(args: argparse.Namespace, workspace: Workspace) -> int:
    result = export_run(
        workspace, args.run, [args.format], out_dir=args.out, archive=args.format == ALL, lang=args.lang
    )
    emit(args, result.to_dict(), result.summary(args.lang))
    return 0 if result.passed else EXIT_RUN_FAILED


def cmd_code(args: argparse.Namespace, workspace: Workspace) -> None:
    script = run_script(workspace, args.run)
    target = Path(args.out).expanduser().resolve() if args.out else None
    if target is not None:
        if target.is_dir():
            raise TLCoreError("cli.script_target_is_a_folder", path=str(target))
        try:
            write_bytes_atomic(target, script.encode("utf-8"))
        except OSError as exc:
            raise TLCoreError("cli.script_not_written", path=str(target), reason=exc.strerror or str(exc)) from None
    text = msg("cli.script_written", path=str(target)).render(args.lang) if target else script.rstrip("\n")
    emit(args, {"run": args.run, "file": str(target) if target else None, "script": script}, text)
