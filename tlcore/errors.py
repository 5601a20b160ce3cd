"""The errors a person can act on.

Every failure that comes from what a user gave (a zip, a spec, a flag) is raised as a `TLCoreError`
subclass carrying one specific sentence: what was wrong, what was received, what to do. The sentence
is a catalog key with named parameters (`tlcore.i18n`), so it can be shown in the reader's language:
`raise DatasetError("dataset.only_one_class", name=name, ...)`. `str(error)` is the English sentence
(for logs); the CLI prints `error.render(lang)` and exits non-zero; the app shows it in an error box.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any, Self

from tlcore.i18n import DEFAULT_LANGUAGE, Message


class TLCoreError(ValueError):
    """Base class for errors whose message is meant for the user.

    key: the catalog key of the sentence (`tlcore/locales/*/LC_MESSAGES/tlcore.po`); params: its fields.
    """

    def __init__(self, key: str, /, **params: Any) -> None:
        self.message = Message(key, params)
        super().__init__(key)

    @classmethod
    def from_message(cls, message: Message) -> Self:
        """An error of this class that says `message` (another error's sentence, passed on as another kind)."""
        error = cls(message.key or "")
        error.message = message
        return error

    def render(self, lang: str | None = None) -> str:
        """The sentence in `lang` (default: the environment's language)."""
        try:
            return self.message.render(lang)
        except KeyError:  # a sentence not yet in the catalog is shown as it was written
            return self.message.key or ""

    def __str__(self) -> str:
        return self.render(DEFAULT_LANGUAGE)


class DatasetError(TLCoreError):
    """An uploaded dataset was refused (nothing was written to the workspace)."""


class SpecError(TLCoreError):
    """A run or model specification has an invalid or inconsistent value."""


class WeightsUnavailableError(TLCoreError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


class RunError(TLCoreError):
    """A run does not exist, or cannot do what was asked in its current state."""


class StudyError(TLCoreError):
    """A study does not exist, or its options cannot make members."""


class SettingError(TLCoreError):
    """A `TLCORE_*` environment variable holds a value that cannot be understood."""


class EvaluationError(TLCoreError):
    """The data given for evaluation does not fit the run (unknown classes, no images)."""


class ExportError(TLCoreError):
    """An export cannot be made (unknown format, a run without a model, a destination that is a file)."""


class ImageError(TLCoreError):
    """An image given for prediction cannot be used (not an image, damaged, too large, unreadable)."""
