"""How the command line answers: text in the reader's language, or JSON with English keys; failures in one line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tlcore.i18n import Message, msg


def status_word(state: str) -> Message:
    """A run's status as a word."""
    return {
        "queued": msg("cli.status.queued"),
        "running": msg("cli.status.running"),
        "stopping": msg("cli.status.stopping"),
        "stopped": msg("cli.status.stopped"),
        "completed": msg("cli.status.completed"),
        "failed": msg("cli.status.failed"),
        "interrupted": msg("cli.status.interrupted"),
        "damaged": msg("cli.status.damaged"),
    }[state]


def say(value: Message | str | None, lang: str) -> str | None:
    """A message (or plain text) as the reader reads it."""
    if isinstance(value, Message):
        return value.render(lang)
    return value


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with `--json`, else `text`."""
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))
    else:
        print(text)


def fail(args: argparse.Namespace, sentence: str, code: int) -> int:
    """Say what went wrong in one line on stderr (and as `{"error": ...}` on stdout with `--json`)."""
    if getattr(args, "json", False):
        print(json.dumps({"error": sentence}, ensure_ascii=False))
    print(msg("cli.error_line", sentence=sentence).render(args.lang), file=sys.stderr)
    return code


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
