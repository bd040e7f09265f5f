"""Loaded by every Python process of ``make test``'s libfaketime pass (``PYTHONPATH``).

Debian 12's libfaketime 0.9.10 mistranslates ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``
when the monotonic clock is left real (``FAKETIME_DONT_FAKE_MONOTONIC=1``): it shifts the
deadline by the fake offset, and the kernel answers EINVAL (libfaketime issue #426). Python 3.11's
``time.sleep`` makes exactly that call, and ``subprocess.Popen.wait`` sleeps through it. This
puts back a sleep on a relative timeout (``select``), which libfaketime passes through unchanged;
nothing else of the code under test is touched, and only this pass loads it.
"""

from __future__ import annotations

import select
import time

_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = _monotonic() + seconds
    while (left := deadline - _monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
