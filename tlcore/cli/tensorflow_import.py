"""Importing TensorFlow for a command: quietly, and beside the work that does not need it.

The import takes seconds (about 5 on a 2-core machine). `train` and `study` start by ingesting their
dataset, which needs only Pillow and NumPy: `while_importing` runs that in a thread while this one
imports TensorFlow, so a command pays the longer of the two instead of their sum.

What the import makes lives as long as the process, so the garbage collector is kept out of it and
then told to leave it alone (`gc.freeze`): without that, the full collections of a short transfer
run, each walking TensorFlow's objects, took 0.6 s of its 6 s on a 2-core machine.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


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
    collecting = gc.isenabled()
    gc.disable()
    try:
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        if collecting:
            gc.enable()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Without a collection first: the import leaves about 2,000 unreachable objects among its 400,000,
    # kept for good, where a full collection would cost 0.2 s.
    gc.freeze()


def while_importing(work: Callable[[], T]) -> T:
    """What `work()` returns (or raises), run in a thread while this thread imports TensorFlow.

    `work` must not import TensorFlow itself: two threads importing its circular modules at once find
    them half initialised.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="tlcore-beside-import") as pool:
        done = pool.submit(work)
        import_tensorflow_quietly()
        return done.result()
