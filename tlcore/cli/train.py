"""`python -m tlcore train`: a dataset and model options, or a run's spec, trained in the foreground;
and `python -m tlcore spare`, the warm trainer that takes the runs the app queues (`tlcore.spare`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from tlcore import distribute, runs
from tlcore.cli.output import emit, say, status_word
from tlcore.cli.parser import build_parser
from tlcore.cli.tensorflow_import import while_importing
from tlcore.datasets import Dataset, ingest_folder, ingest_zip, load_dataset
from tlcore.errors import TLCoreError
from tlcore.i18n import msg
from tlcore.models import ModelSpec, rules
from tlcore.spec import Augmentation, RunSpec, read_spec_file
from tlcore.workspace import Workspace

EXIT_RUN_FAILED = 1

# Options a spec file already holds: given with --spec they would be silently ignored, so they are refused.
SPEC_FLAGS = (
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


def cmd_train(args: argparse.Namespace, workspace: Workspace) -> int:
    _check_sources(args)
    dataset = while_importing(lambda: None if args.run else dataset_from_options(args, workspace))
    from tlcore import training  # TensorFlow, imported by now

    # Before anything else runs in TensorFlow: a multi-worker strategy configures its runtime.
    distribution = distribute.create(args.distribute, scale_batch=args.scale_batch)
    if args.run and not distribution.is_chief:
        raise TLCoreError("cli.run_on_a_worker", worker=distribution.worker)
    if args.run:
        info = training.train_run(workspace, args.run, distribution=distribution)
        return EXIT_RUN_FAILED if info.status == runs.RunState.FAILED else 0
    spec = _train_spec(args, workspace, dataset)
    lang = args.lang
    if not distribution.is_chief:
        if not args.json:
            print(msg("cli.worker_training", worker=distribution.worker).render(lang), flush=True)
        ended = _train_as_worker(workspace, spec, distribution)
        line = msg("cli.worker_ended", worker=distribution.worker, status=status_word(ended)).render(lang)
        emit(args, {"worker": distribution.worker, "status": ended}, line)
        return 0
    info = runs.create_run(spec, workspace)
    if not args.json:
        line = msg(
            "cli.train_started",
            run=info.id,
            backbone=spec.model.backbone,
            strategy=spec.model.strategy,
            epochs=msg("count.epochs", n=spec.total_epochs),
            folder=str(info.dir),
        )
        print(line.render(lang), flush=True)
        if distribution.kind != "none":
            print(say(distribution.describe(), lang), flush=True)
    report = None if args.json else epoch_printer(lang)
    info = training.train_run(workspace, info.id, report=report, distribution=distribution)
    lines = [msg("cli.train_ended", run=info.id, status=status_word(info.status)).render(lang)]
    if info.best_val_accuracy is not None:
        best = msg("cli.train_best", accuracy=info.best_val_accuracy, epoch=info.best_epoch)
        lines[0] += best.render(lang)
    if info.error:
        lines.append(say(info.error, lang))
    emit(args, info.to_dict(lang), "\n".join(lines))
    return EXIT_RUN_FAILED if info.status == runs.RunState.FAILED else 0


def cmd_spare(args: argparse.Namespace, workspace: Workspace) -> int:
    """Wait for the workspace's next queued run with TensorFlow loaded, train it, exit (`tlcore.spare`)."""
    from tlcore import spare  # TensorFlow comes once the spare lock is held: a second spare leaves at once

    return spare.serve(workspace, args.lock_fd, behind=args.behind)


def _check_sources(args: argparse.Namespace) -> None:
    if not (args.run or args.spec or args.data or args.data_dir or args.dataset):
        raise TLCoreError("cli.nothing_to_train")
    if args.run and args.spec:
        raise TLCoreError("cli.run_with_spec")
    if args.spec:
        defaults = build_parser().parse_args(["train"])
        given = [flag for flag in SPEC_FLAGS if getattr(args, _dest(flag)) != getattr(defaults, _dest(flag))]
        if given:
            raise TLCoreError("cli.spec_with_options", options=", ".join(given))
    if args.val and not args.data:
        raise TLCoreError("cli.val_without_data")
    if args.scale_batch and args.distribute == "none":
        raise TLCoreError("cli.scale_batch_alone")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def epoch_printer(lang: str) -> Any:
    """Prints each epoch's metrics row (`train`, `study`)."""

    def show(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    def print_epoch(row: dict[str, Any]) -> None:
        line = msg(
            "cli.epoch_line",
            epoch=row["epoch"],
            phase=row["phase"],
            loss=show(row.get("loss")),
            accuracy=show(row.get("accuracy")),
            val_loss=show(row.get("val_loss")),
            val_accuracy=show(row.get("val_accuracy")),
            elapsed=row["elapsed"],
        )
        print(line.render(lang), flush=True)

    return print_epoch


def _train_spec(args: argparse.Namespace, workspace: Workspace, dataset: Dataset | None) -> RunSpec:
    if args.spec:
        spec = read_spec_file(Path(args.spec))
        if args.name:
            spec = replace(spec, name=args.name)
        if dataset is not None:
            return replace(spec, dataset=dataset.id)
        if not workspace.dataset_dir(spec.dataset).is_dir():
            raise TLCoreError("cli.spec_dataset_elsewhere", dataset=spec.dataset, workspace=str(workspace.root))
        return spec
    return RunSpec(
        dataset=dataset.id,
        model=model_spec(args, len(dataset.classes)),
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


def model_spec(args: argparse.Namespace, num_classes: int) -> ModelSpec:
    """The model the options describe (`train`, `layers`)."""
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


def _weights(args: argparse.Namespace) -> str:
    if args.weights is None:
        return "imagenet" if rules(args.strategy).pretrained else "none"
    if args.weights in ("imagenet", "none"):
        return args.weights
    return str(Path(args.weights).expanduser().resolve())


def _train_as_worker(workspace: Workspace, spec: RunSpec, distribution: distribute.Distribution) -> str:
    """Train as a non-chief worker; how the job ended, or one sentence when this worker could not go on."""
    from tlcore import training  # TensorFlow, as above

    try:
        return training.train_worker(workspace, spec, distribution)
    except TLCoreError:
        raise
    except Exception as exc:  # a collective that failed elsewhere surfaces here as any TensorFlow error
        raise TLCoreError("cli.worker_stopped", worker=distribution.worker, cause=training.error_summary(exc)) from None


def dataset_from_options(args: argparse.Namespace, workspace: Workspace) -> Dataset | None:
    """The dataset named by --data, --data-dir or --dataset (ingested or registered now, its report printed
    unless --json), or None (`train`, `study`)."""
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
        print(dataset.summary(args.lang), flush=True)
    return dataset
