"""The errors a person can act on.

Every failure that comes from what a user gave (a zip, a spec, a flag) is raised as a `TLCoreError`
subclass whose message is one specific sentence: what was wrong, what was received, what to do.
The CLI prints that sentence and exits non-zero; the app shows it in an error box. Anything else
is a bug and keeps its traceback.
"""


class TLCoreError(ValueError):
    """Base class for errors whose message is meant for the user."""


class DatasetError(TLCoreError):
    """An uploaded dataset was refused (nothing was written to the workspace)."""


class SpecError(TLCoreError):
    """A run or model specification has an invalid or inconsistent value."""


class WeightsUnavailableError(TLCoreError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


class RunError(TLCoreError):
    """A run does not exist, or cannot do what was asked in its current state."""


class SettingError(TLCoreError):
    """A `TLCORE_*` environment variable holds a value that cannot be understood."""


class ImageError(TLCoreError):
    """An image given for prediction cannot be used (not an image, damaged, too large, unreadable)."""
