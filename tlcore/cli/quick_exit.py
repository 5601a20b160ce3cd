"""Ending a command that has loaded TensorFlow without its second of teardown.

A Python process that ends normally runs its exit handlers, then finalizes its modules and objects.
With TensorFlow loaded, that last part takes about a second on a 2-core machine (1.0 s of a 6.3-s
transfer run on 500 photos, `bench/end_to_end.py`), spent destroying TensorFlow's runtime after
everything the command wrote is on disk: run files are renamed into place or flushed
(`tlcore.callbacks`: `metrics.jsonl` after every row, the TensorBoard events when training ends or
fails), and the trainer waits for its `best.keras` writer before it returns.

`arm` registers an exit handler before TensorFlow is imported. Exit handlers run last-registered
first, so this one runs after those TensorFlow and Keras register (autograph's temporary files
are still removed); it then flushes logging and the standard streams and ends the process with the
command's exit status (or, when its output could not be written out, 120, as Python would). Only a
command that returned its status through `finish` ends this way; one that raised is torn down as
usual, and a process without TensorFlow has nothing to skip.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn

# Python's own exit status when it cannot flush the standard streams at exit.
EXIT_OUTPUT_LOST = 120

_status: int | None = None


def arm() -> None:
    """Register the early end; call it before anything imports TensorFlow.

    Raises:
        RuntimeError: TensorFlow is imported already, so its exit handlers would be skipped.
    """
    if "tensorflow" in sys.modules:
        raise RuntimeError("quick_exit.arm() must come before TensorFlow is imported; it is imported already.")
    atexit.register(_end_now)


def finish(status: int) -> NoReturn:
    """Exit with `status`, ending early once the other exit handlers have run (see `arm`)."""
    global _status
    _status = status
    sys.exit(status)


def _end_now() -> None:
    if _status is None or "tensorflow" not in sys.modules:
        return
    status = _status
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except ValueError:  # closed: nothing left to write
            pass
        except OSError:  # a full disk, or a reader that went away: the output is cut short
            status = status or EXIT_OUTPUT_LOST
    os._exit(status)
