"""Ending a command that has loaded TensorFlow without its second of teardown.

A Python process that ends normally runs its exit handlers, then finalizes its modules and objects.
With TensorFlow loaded, that last part takes about a second on a 2-core machine (1.0 s of a 6.3-s
transfer run on 500 photos, `bench/end_to_end.py`), spent destroying TensorFlow's runtime after
everything the command wrote is on disk: run files are renamed into place or flushed as they are
written (`tlcore.callbacks`), and the trainer waits for its `best.keras` writer before it returns.

`arm` registers an exit handler before TensorFlow is imported. Exit handlers run last-registered
first, so this one runs after those TensorFlow and Keras register (autograph's temporary files
are still removed); it then flushes logging and the standard streams and ends the process with the
command's exit status. Only a command that returned its status through `finish` ends this way; one
that raised is torn down as usual, and a process without TensorFlow has nothing to skip.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import NoReturn

_status: int | None = None


def arm() -> None:
    """Register the early end; call it before anything imports TensorFlow."""
    atexit.register(_end_now)


def finish(status: int) -> NoReturn:
    """Exit with `status`, ending early once the other exit handlers have run (see `arm`)."""
    global _status
    _status = status
    sys.exit(status)


def _end_now() -> None:
    if _status is None or "tensorflow" not in sys.modules:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream or a reader that went away: nothing left to say
            pass
    os._exit(_status)
