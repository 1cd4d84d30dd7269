"""Keeping the garbage collector's full passes off the objects a run holds for its whole length.

A run of thousands of tasks keeps hundreds of thousands of live objects (plan, analysis, task
records, reviews, ledger entries). CPython's full collections walk all of them again and again
and find nothing to free: measured at 5,000 tasks, ten full passes of about 0.25 s each, a third
of the run's CPU, growing faster than the run (``evals/bench_dispatch.py``, "collector" column).

So while a node of an orchestrator runs, the objects that existed when it started sit in the
collector's permanent generation (``gc.freeze``); objects the node creates are collected as
usual. When no orchestrator node in the process is running any more they are handed back
(``gc.unfreeze``), so nothing is kept from the collector longer than nodes run. If something
else in the process froze objects first (a pre-fork server does), this stays out of its way.
``ORCHESTRATOR_GRAPH_GC_FREEZE=0`` turns it off."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_running = 0  # orchestrator nodes running in this process
_froze = False  # whether the current freeze is ours


def enabled() -> bool:
    return os.environ.get("ORCHESTRATOR_GRAPH_GC_FREEZE", "1") != "0"


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Around a node: the objects that exist now are left out of full collections until the
    last running node ends."""
    global _running, _froze
    with _lock:
        if _running == 0 and enabled() and gc.get_freeze_count() == 0:
            gc.freeze()
            _froze = True
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _froze:
                gc.unfreeze()
                _froze = False
