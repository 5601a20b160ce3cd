"""The server's garbage collector: full collections that leave alone what imports made.

The Streamlit server is one long-lived process whose sessions share one interpreter. Once a page has
imported TensorFlow and Keras (to list a model's layers, to evaluate one), the process holds millions
of objects that live as long as it does, and CPython's full collections walk every one of them. With
the allocations of a few sessions' reruns they ran more than once a second, each 30 to 300 ms on a
2-core machine with a run training (379 in five minutes of `bench/page_load.py`), and every session
waits while one runs.

`settle` moves the objects alive after new imports into the collector's permanent generation
(`gc.freeze`), so that full collections walk only what reruns allocate. A collection runs first, so
only live objects are moved; it runs again only when `sys.modules` has grown, a few times in a
server's life.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_settled_modules = 0


def settle() -> None:
    """Freeze what the imports since the last call made (cheap when nothing was imported)."""
    global _settled_modules
    if len(sys.modules) <= _settled_modules:
        return
    with _lock:
        if len(sys.modules) <= _settled_modules:
            return
        gc.collect()
        gc.freeze()
        _settled_modules = len(sys.modules)
