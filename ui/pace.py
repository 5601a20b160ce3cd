"""How often the Train page redraws the live view of a run (`st.fragment(run_every=...)`)."""

from __future__ import annotations

from datetime import UTC, datetime

from tlcore import runs

POLL_SECONDS = 1.0
# A run started moments ago is looked at more often until its first curves are drawn: on cached
# features its first epoch lands a second or two after Start, and a poll once a second would add up
# to a second more before the user sees it.
FIRST_CURVES_POLL_SECONDS = 0.25
FIRST_CURVES_WINDOW_SECONDS = 15.0


def poll_seconds(info: runs.RunInfo, now: datetime | None = None) -> float | None:
    """Seconds between redraws of `info`'s view: None once the run has ended (nothing changes), often
    in the first seconds after it was created while it has no curves yet, else once a second."""
    if info.status not in runs.ACTIVE_STATUSES:
        return None
    if has_curves(info) or info.created is None:
        return POLL_SECONDS
    age = ((now or datetime.now(UTC)) - datetime.fromisoformat(info.created)).total_seconds()
    return FIRST_CURVES_POLL_SECONDS if age < FIRST_CURVES_WINDOW_SECONDS else POLL_SECONDS


def has_curves(info: runs.RunInfo) -> bool:
    """Whether the run has written rows of metrics to draw. On cached features an epoch's batches are
    reported once its validation is done (`tlcore.epoch_calls`), and the status names the epoch while
    it validates, before its rows are written: there, once the first epoch has ended (the status then
    gives the seconds an epoch takes, written after the epoch's row). Elsewhere, once a batch has
    trained (the status names no epoch before)."""
    if info.path == runs.TrainingPath.FEATURES:
        return info.seconds_per_epoch is not None
    return info.epoch > 0
