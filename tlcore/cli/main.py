"""The entry point: parse the arguments in the reader's language, run the subcommand, turn errors into one line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tlcore.cli import commands, study, train
from tlcore.cli.output import fail
from tlcore.cli.parser import EXIT_BAD_INPUT, build_parser, language_in
from tlcore.cli.tensorflow_import import import_tensorflow_quietly
from tlcore.errors import TLCoreError
from tlcore.i18n import msg
from tlcore.workspace import Workspace

# `train` and `study` import it themselves, beside their ingestion (`tensorflow_import.while_importing`).
NEEDS_TENSORFLOW = ("layers", "evaluate", "predict", "export")

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
