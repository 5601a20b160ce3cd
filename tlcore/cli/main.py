"""The entry point: parse the arguments in the reader's language, run the subcommand, turn errors into one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tlcore.cli import commands, study, train
from tlcore.cli.output import fail
from tlcore.cli.parser import EXIT_BAD_INPUT, build_parser, language_in
from tlcore.errors import TLCoreError
from tlcore.i18n import msg
from tlcore.workspace import Workspace

NEEDS_TENSORFLOW = ("layers", "train", "evaluate", "predict", "export")

COMMANDS = {
    "inspect": commands.cmd_inspect,
    "datasets": commands.cmd_datasets,
    "backbones": commands.cmd_backbones,
    "layers": commands.cmd_layers,
    "train": train.cmd_train,
    "spare": train.cmd_spare,
    "runs": commands.cmd_runs,
    "stop": commands.cmd_stop,
    "evaluate": commands.cmd_evaluate,
    "predict": commands.cmd_predict,
    "export": commands.cmd_export,
    "code": commands.cmd_code,
    "study": study.cmd_study,
    "studies": study.cmd_studies,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        lang = language_in(argv)
    except TLCoreError as exc:  # a TLCORE_LANG that is not a language
        print(msg("cli.error_line", sentence=exc.render("en")).render("en"), file=sys.stderr)
        return EXIT_BAD_INPUT
    args = build_parser(lang).parse_args(argv)
    args.lang = args.lang or lang
    if args.command in NEEDS_TENSORFLOW:
        import_tensorflow_quietly()
    try:
        result = COMMANDS[args.command](args, Workspace(args.workspace))
    except TLCoreError as exc:
        return fail(args, exc.render(args.lang), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return fail(args, msg("cli.interrupted").render(args.lang), EXIT_BAD_INPUT)
    return result if isinstance(result, int) else 0


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, CPU features, and on a machine without a
    GPU the failed `cuInit` when devices are first listed) kept off stderr.

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
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
