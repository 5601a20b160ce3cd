"""Settings: every `TLCORE_*` environment variable, read in one place and checked.

An operator sets these once for a machine (the app, the command line and the trainer processes it
starts all read the same ones). Each is read when it is used, so a test or a long-lived server that
changes one sees the new value. A value that cannot be understood is refused with a `SettingError`
naming the variable and what it received, never silently replaced by the default: `TLCORE_OFFLINE=false`
means online, and `TLCORE_PIPELINE_MEMORY=4G` means four gibibytes.

`SETTINGS` is the table the README's list of settings is checked against.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.errors import SettingError
from tlcore.i18n import Message, msg

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, what it means, and its default as people write it."""

    name: str
    default: str
    meaning: str


SETTINGS = (
    Setting("TLCORE_WORKSPACE", "./workspace", "the folder everything the app and the CLI write lives in"),
    Setting("TLCORE_LANG", "(the locale's)", "the language of the command line's messages: en or ja"),
    Setting("TLCORE_OFFLINE", "false", "true: never try to download ImageNet weights (no network check either)"),
    Setting("TLCORE_FAST_PATH", "true", "false: every phase trains the full model (no cached features)"),
    Setting("TLCORE_MAX_CONCURRENT", "1", "runs that train at the same time on this machine; the others queue"),
    Setting("TLCORE_MAX_QUEUED", "100", "runs that may wait in a workspace's queue; Start is refused beyond"),
    Setting(
        "TLCORE_PIPELINE_MEMORY",
        "4G",
        "decoded images a run keeps in memory when the decoded-image cache cannot hold them; a larger dataset streams",
    ),
    Setting("TLCORE_FEATURES_MEMORY_BUDGET", "2G", "cached activations a run may hold in memory to train on"),
    Setting("TLCORE_FEATURES_DISK_BUDGET", "4G", "the most the feature cache folder may hold on disk"),
    Setting(
        "TLCORE_DECODED_CACHE_BUDGET",
        "4G",
        "the most the decoded-image cache may hold on disk; a larger dataset is decoded as it streams from disk",
    ),
    Setting("TLCORE_DATA_DIRS", "", "folders on the server the app may register datasets from (os.pathsep-separated)"),
    Setting(
        "TLCORE_TRAINER_NICE",
        "19",
        "how far below the app's the CPU priority of the trainers it starts is (0 to 19, as `nice`): pages stay quick",
    ),
)


def parse_bool(text: str, name: str | None = None) -> bool:
    """`"1"`, `"true"`, `"yes"`, `"on"` -> True; `"0"`, `"false"`, `"no"`, `"off"` -> False (any case).

    name: the setting, for the error (`SettingError`) when `text` is neither.
    """
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError("setting.bad_bool", name=_named(name), value=text)


def parse_size(text: str, name: str | None = None) -> int:
    """`"2G"` -> 2147483648: a number of bytes with an optional binary unit K, M, G or T (`"1.5GiB"`, `"512M"`)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if match is None:
        raise SettingError("setting.bad_size", name=_named(name), value=text)
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_positive_int(text: str, name: str | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise SettingError("setting.bad_positive_int", name=_named(name), value=text)
    return value


def parse_niceness(text: str, name: str | None = None) -> int:
    """A `nice` increment: a whole number from 0 to 19."""
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise SettingError("setting.bad_niceness", name=_named(name), value=text)
    return value


def _named(name: str | None) -> str | Message:
    """What an error calls the value: the setting's name, or "The value" (in the reader's language)."""
    return msg("setting.the_value") if name is None else name


def _read(name: str, parse: Callable[[str, str], Any], default: Any) -> Any:
    text = os.environ.get(name, "")
    return default if not text.strip() else parse(text, name)


def workspace_root() -> str:
    return os.environ.get("TLCORE_WORKSPACE") or "workspace"


def language() -> str | None:
    """`TLCORE_LANG` as a language code of `tlcore.i18n.LANGUAGES`, or None when it is not set."""
    from tlcore.i18n import LANGUAGES, normalize_language

    text = os.environ.get("TLCORE_LANG", "").strip()
    if not text:
        return None
    code = normalize_language(text)
    if code is None:
        raise SettingError("setting.bad_language", name="TLCORE_LANG", value=text, choices=", ".join(LANGUAGES))
    return code


def offline() -> bool:
    return _read("TLCORE_OFFLINE", parse_bool, False)


def fast_path() -> bool:
    return _read("TLCORE_FAST_PATH", parse_bool, True)


def max_concurrent() -> int:
    return _read("TLCORE_MAX_CONCURRENT", parse_positive_int, 1)


def max_queued() -> int:
    return _read("TLCORE_MAX_QUEUED", parse_positive_int, 100)


def pipeline_memory() -> int:
    return _read("TLCORE_PIPELINE_MEMORY", parse_size, 4 * 2**30)


def features_memory_budget() -> int:
    return _read("TLCORE_FEATURES_MEMORY_BUDGET", parse_size, 2 * 2**30)


def features_disk_budget() -> int:
    return _read("TLCORE_FEATURES_DISK_BUDGET", parse_size, 4 * 2**30)


def decoded_cache_budget() -> int:
    return _read("TLCORE_DECODED_CACHE_BUDGET", parse_size, 4 * 2**30)


def trainer_niceness() -> int:
    return _read("TLCORE_TRAINER_NICE", parse_niceness, 19)


def data_dirs() -> list[Path]:
    """`TLCORE_DATA_DIRS` as written, split on `os.pathsep` (blank parts left out, nothing checked)."""
    return [
        Path(part.strip()).expanduser()
        for part in os.environ.get("TLCORE_DATA_DIRS", "").split(os.pathsep)
        if part.strip()
    ]


def keras_cache_dirs() -> list[Path]:
    """Where Keras keeps downloaded application weights, as Keras itself decides it.

    `$KERAS_HOME/models` when `KERAS_HOME` is set (Keras then looks nowhere else), otherwise
    `~/.keras/models` and `/tmp/.keras/models` (Keras's fallback when the home folder is read-only).
    """
    home = os.environ.get("KERAS_HOME", "").strip()
    if home:
        return [Path(home).expanduser() / "models"]
    return [Path("~/.keras/models").expanduser(), Path("/tmp/.keras/models")]
