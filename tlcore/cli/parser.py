"""The command line's arguments, with their help in the reader's language.

The language must be known before the parser exists (the help is part of it), so `language_in`
looks for `--lang` in the arguments first. Argparse's own words ("usage:", "options:") and the
details of its refusals ("invalid int value") are argparse's, in English.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from tlcore import distribute
from tlcore.backbones import list_backbones
from tlcore.export import FORMATS as EXPORT_FORMATS
from tlcore.i18n import LANGUAGES, Message, language_from_environment, msg, normalize_language
from tlcore.models import POOLINGS, ModelSpec, Strategy
from tlcore.spec import OPTIMIZERS, Augmentation, RunSpec, field_defaults
from tlcore.study import DATA_EFFICIENCY_FRACTIONS, StudyOptions

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of this CLI."""

    lang = "en"

    def error(self, message: str) -> NoReturn:
        line = msg("cli.argument_error", prog=self.prog, detail=message).render(self.lang)
        self.exit(EXIT_BAD_INPUT, line + "\n")


def language_in(argv: Sequence[str]) -> str:
    """The language `--lang` asks for in `argv`, else the environment's (a bad `--lang` is the parser's to refuse)."""
    for index, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--lang=") else None
        if arg == "--lang" and index + 1 < len(argv):
            value = argv[index + 1]
        if value is not None and normalize_language(value):
            return normalize_language(value)
    return language_from_environment()


def build_parser(lang: str = "en") -> argparse.ArgumentParser:
    """The parser, with every help text in `lang`."""

    def h(message: Message) -> str:
        return message.render(lang)

    def parser_class(**kwargs: Any) -> Parser:
        parser = Parser(**kwargs)
        parser.lang = lang
        return parser

    parser = parser_class(prog="python -m tlcore", parents=[_common(lang, True)], description=h(msg("cli.help.tlcore")))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=parser_class, metavar="COMMAND")
    common = _common(lang, False)

    p = sub.add_parser("inspect", parents=[common], help=h(msg("cli.help.inspect")))
    p.add_argument("data", metavar="DATA", help=h(msg("cli.help.inspect_data")))
    p.add_argument("--val", metavar="VAL.zip", help=h(msg("cli.help.val")))
    _split_options(p, h)

    sub.add_parser("datasets", parents=[common], help=h(msg("cli.help.datasets")))
    sub.add_parser("backbones", parents=[common], help=h(msg("cli.help.backbones")))

    p = sub.add_parser("layers", parents=[common], help=h(msg("cli.help.layers")))
    _model_options(p, h)
    p.add_argument("--classes", type=int, default=2, help=h(msg("cli.help.classes")))

    p = sub.add_parser(
        "train", parents=[common], help=h(msg("cli.help.train")), description=h(msg("cli.help.train_more"))
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="TRAIN.zip", help=h(msg("cli.help.data")))
    source.add_argument("--data-dir", metavar="DIR", help=h(msg("cli.help.data_dir")))
    source.add_argument("--dataset", metavar="ID", help=h(msg("cli.help.dataset")))
    source.add_argument("--run", metavar="RUN", help=h(msg("cli.help.run_queued")))
    p.add_argument("--spec", metavar="SPEC.json", help=h(msg("cli.help.spec")))
    p.add_argument("--distribute", choices=distribute.KINDS, default="none", help=h(msg("cli.help.distribute")))
    p.add_argument("--scale-batch", action="store_true", help=h(msg("cli.help.scale_batch")))
    p.add_argument("--val", metavar="VAL.zip", help=h(msg("cli.help.val_with_data")))
    _split_options(p, h)
    _model_options(p, h)
    run, augmentation = field_defaults(RunSpec), field_defaults(Augmentation)
    p.add_argument("--epochs", type=int, default=run["epochs"], help=h(msg("cli.help.epochs")))
    p.add_argument("--batch-size", type=int, default=run["batch_size"], help=h(msg("cli.help.batch_size")))
    p.add_argument(
        "--lr", type=float, default=run["learning_rate"], help=h(msg("cli.help.lr", default=run["learning_rate"]))
    )
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=run["optimizer"], help=h(msg("cli.help.optimizer")))
    p.add_argument("--two-phase", action="store_true", help=h(msg("cli.help.two_phase")))
    p.add_argument(
        "--finetune-epochs", type=int, default=run["finetune_epochs"], help=h(msg("cli.help.finetune_epochs"))
    )
    p.add_argument(
        "--finetune-lr",
        type=float,
        default=run["finetune_learning_rate"],
        help=h(msg("cli.help.finetune_lr", default=run["finetune_learning_rate"])),
    )
    p.add_argument("--flip", action="store_true", help=h(msg("cli.help.flip")))
    p.add_argument("--rotation", type=float, default=augmentation["rotation"], help=h(msg("cli.help.rotation")))
    p.add_argument("--zoom", type=float, default=augmentation["zoom"], help=h(msg("cli.help.zoom")))
    p.add_argument("--contrast", type=float, default=augmentation["contrast"], help=h(msg("cli.help.contrast")))
    p.add_argument("--name", default=run["name"], help=h(msg("cli.help.name")))

    p = sub.add_parser("spare", parents=[common], help=h(msg("cli.help.spare")))
    p.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # the spare lock, from `run_queue.ensure_spare`
    p.add_argument("--behind", metavar="RUN", help=argparse.SUPPRESS)  # the run its starter claimed

    p = sub.add_parser("runs", parents=[common], help=h(msg("cli.help.runs")))
    p.add_argument("--dataset", metavar="ID", help=h(msg("cli.help.runs_dataset")))
    p.add_argument("--study", metavar="ID", help=h(msg("cli.help.runs_study")))
    p.add_argument("--tensorboard", action="store_true", help=h(msg("cli.help.runs_tensorboard")))

    p = sub.add_parser("stop", parents=[common], help=h(msg("cli.help.stop")))
    p.add_argument("run", metavar="RUN", help=h(msg("cli.help.run_id")))

    p = sub.add_parser("evaluate", parents=[common], help=h(msg("cli.help.evaluate")))
    p.add_argument("run", metavar="RUN", help=h(msg("cli.help.run_id")))
    p.add_argument("--data", metavar="TEST.zip", help=h(msg("cli.help.test_data")))

    p = sub.add_parser("predict", parents=[common], help=h(msg("cli.help.predict")))
    p.add_argument("run", metavar="RUN", help=h(msg("cli.help.run_id")))
    p.add_argument("images", metavar="IMAGE", nargs="+", help=h(msg("cli.help.images")))
    p.add_argument("--top", type=_positive_int(lang), default=5, help=h(msg("cli.help.top")))

    p = sub.add_parser("export", parents=[common], help=h(msg("cli.help.export")))
    p.add_argument("run", metavar="RUN", help=h(msg("cli.help.run_id")))
    p.add_argument("--format", choices=(*EXPORT_FORMATS, "all"), default="all", help=h(msg("cli.help.format")))
    p.add_argument("--out", metavar="DIR", help=h(msg("cli.help.export_out")))

    p = sub.add_parser("code", parents=[common], help=h(msg("cli.help.code")))
    p.add_argument("run", metavar="RUN", help=h(msg("cli.help.run_id")))
    p.add_argument("--out", metavar="FILE", help=h(msg("cli.help.code_out")))
    _study_parsers(sub, common, lang)
    return parser


def _study_parsers(sub: Any, common: argparse.ArgumentParser, lang: str) -> None:
    """`study` (members trained in the foreground, `tlcore.cli.study`) and `studies`."""

    def h(message: Message) -> str:
        return message.render(lang)

    options = field_defaults(StudyOptions)
    backbones = list_backbones()
    p = sub.add_parser(
        "study", parents=[common], help=h(msg("cli.help.study")), description=h(msg("cli.help.study_more"))
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="TRAIN.zip", help=h(msg("cli.help.data")))
    source.add_argument("--data-dir", metavar="DIR", help=h(msg("cli.help.data_dir")))
    source.add_argument("--dataset", metavar="ID", help=h(msg("cli.help.dataset")))
    p.add_argument("--val", metavar="VAL.zip", help=h(msg("cli.help.val_with_data")))
    _split_options(p, h)
    p.add_argument(
        "--backbone",
        choices=backbones,
        required=True,
        metavar="NAME",
        help=h(msg("cli.help.study_backbone", choices=", ".join(backbones))),
    )
    p.add_argument("--weights", default=options["weights"], help=h(msg("cli.help.study_weights")))
    p.add_argument("--image-size", type=int, default=None, help=h(msg("cli.help.image_size")))
    p.add_argument(
        "--epochs",
        type=_positive_int(lang),
        default=options["epochs"],
        help=h(msg("cli.help.study_epochs", default=options["epochs"])),
    )
    p.add_argument(
        "--batch-size", type=_positive_int(lang), default=options["batch_size"], help=h(msg("cli.help.batch_size"))
    )
    p.add_argument("--depths", type=_depths(lang), default=None, metavar="auto|N,N,...", help=h(msg("cli.help.depths")))
    p.add_argument(
        "--fractions",
        type=_fractions(lang),
        nargs="?",
        const=DATA_EFFICIENCY_FRACTIONS,
        default=options["fractions"],
        metavar="F,F,...",
        help=h(msg("cli.help.fractions")),
    )
    p.add_argument("--no-scratch", action="store_true", help=h(msg("cli.help.no_scratch")))
    p.add_argument("--no-two-phase", action="store_true", help=h(msg("cli.help.no_two_phase")))
    sub.add_parser("studies", parents=[common], help=h(msg("cli.help.studies")))


def _depths(lang: str) -> Any:
    """`auto` (None) or frozen depths separated by commas."""

    def parse(text: str) -> tuple[int, ...] | None:
        if text.strip().lower() == "auto":
            return None
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(msg("cli.bad_depths", value=text).render(lang)) from None

    return parse


def _fractions(lang: str) -> Any:
    """Shares of the training images separated by commas (checked for range by `StudyOptions`)."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            return tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(msg("cli.bad_fractions", value=text).render(lang)) from None

    return parse


def _common(lang: str, defaults: bool) -> argparse.ArgumentParser:
    # Subcommands repeat the global options so they can be given after the subcommand too;
    # SUPPRESS keeps a subcommand from overwriting a value given before it.
    parent = Parser(add_help=False)
    parent.lang = lang
    default: Any = None if defaults else argparse.SUPPRESS
    parent.add_argument("--workspace", metavar="DIR", default=default, help=msg("cli.help.workspace").render(lang))
    parent.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help=msg("cli.help.json").render(lang),
    )
    parent.add_argument(
        "--lang",
        choices=list(LANGUAGES),
        default=default,
        help=msg("cli.help.lang").render(lang),
    )
    return parent


def _positive_int(lang: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(msg("cli.not_a_whole_number", value=text).render(lang)) from None
        if value < 1:
            raise argparse.ArgumentTypeError(msg("cli.below_one", value=value).render(lang))
        return value

    return parse


def _split_options(p: argparse.ArgumentParser, h: Any) -> None:
    p.add_argument("--val-fraction", type=float, default=0.2, help=h(msg("cli.help.val_fraction")))
    p.add_argument("--seed", type=int, default=0, help=h(msg("cli.help.seed")))


def _model_options(p: argparse.ArgumentParser, h: Any) -> None:
    model = field_defaults(ModelSpec)
    backbones = list_backbones()
    p.add_argument(
        "--backbone",
        choices=backbones,
        default=model["backbone"],
        metavar="NAME",
        help=h(msg("cli.help.backbone", choices=", ".join(backbones), default=model["backbone"])),
    )
    p.add_argument("--weights", default=None, help=h(msg("cli.help.weights")))
    p.add_argument("--strategy", choices=list(Strategy), default=model["strategy"], help=h(msg("cli.help.strategy")))
    p.add_argument("--frozen", type=int, default=None, help=h(msg("cli.help.frozen")))
    p.add_argument("--image-size", type=int, default=None, help=h(msg("cli.help.image_size")))
    p.add_argument("--head", choices=POOLINGS, default=model["pooling"], help=h(msg("cli.help.head")))
    p.add_argument("--dropout", type=float, default=model["dropout"], help=h(msg("cli.help.dropout")))
    p.add_argument("--hidden", type=int, default=model["hidden_units"], help=h(msg("cli.help.hidden")))
