"""Polling as the module's QTimers do, for the Slicer tests: one call a tick until a condition holds.

The module never waits on the GUI thread: it polls a worker process (or the
masks' background thread) from a timer.  The tests do the same with
:func:`poll_until`, which fails with what was awaited once a deadline passes.
"""

from __future__ import annotations

import time
from typing import Callable


def poll_until(
    done: Callable[[], bool],
    poll: Callable[[], object] = lambda: None,
    timeout: float = 120.0,
    what: str = "the condition",
    interval: float = 0.05,
) -> float:
    """Call ``poll`` every ``interval`` s until ``done()`` is true; fail after ``timeout`` s. Returns the seconds taken."""
    start = time.monotonic()
    while not done():
        assert time.monotonic() - start < timeout, f"{what} did not happen within {timeout:g} s"
        poll()
        time.sleep(interval)
    return time.monotonic() - start


def wait_for_stage(process, stage: str, timeout: float = 120.0) -> None:
    """Poll a started ``WorkerProcess`` until it reports progress in ``stage`` (it must not finish first)."""

    def reached() -> bool:
        assert not process.finished, process.error_message
        return any(event.get("stage") == stage for event in process.events)

    poll_until(reached, process.poll, timeout, f"the worker's '{stage}' stage")
