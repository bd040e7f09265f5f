"""What every test owes the next one: no thread and no process left running behind it.

A store that is opened and not closed keeps aiosqlite's worker thread alive, and that thread is
not a daemon: the interpreter (a ``gateway`` command, or this test run) then waits for it for
ever at exit. A peer left running holds ports and CPU for the tests after it. So each test is
checked after it ends, errors included: a new non-daemon thread or a new child process still
running (after a short grace for those already on their way out) fails that test, and the
processes are killed so that the run goes on. If a thread is still left when the run ends, the
run exits at once with an error rather than hanging.
"""

from __future__ import annotations

import concurrent.futures.thread
import contextlib
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: How long a thread or process that is ending anyway gets, after the test, before it counts.
GRACE = 5.0


def _lingering_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and not t.daemon
        # Idle workers of a thread pool (asyncio's default executor among them) are joined by
        # the interpreter at exit (concurrent.futures registers that), so they never hang it.
        and getattr(t, "_target", None) is not concurrent.futures.thread._worker
    ]


def _interpreter_helpers() -> set[int]:
    """Processes the standard library keeps for the whole interpreter, started on first use
    (the forkserver of ``consent import``'s validating pool and its resource tracker)."""
    pids = {
        getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
        getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None),
    }
    return {p for p in pids if p is not None}


def _descendants() -> dict[int, str]:
    """Every live (not zombie) process below this one: pid -> command line."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it.
        pid = int(text.split(" ", 1)[0])
        fields = text.rsplit(")", 1)[1].split()
        states[pid], parents[pid] = fields[0], int(fields[1])
    me, found = os.getpid(), {}
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = states[pid]
                frontier.append(pid)
    out = {}
    for pid, state in found.items():
        if state == "Z":
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out[pid] = cmd.strip()
    return out


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    threads = set(threading.enumerate())
    processes = set(_descendants())
    yield
    deadline = time.monotonic() + GRACE
    while True:
        left_threads = _lingering_threads(threads)
        helpers = _interpreter_helpers()
        left = {
            pid: cmd
            for pid, cmd in _descendants().items()
            if pid not in processes and pid not in helpers
        }
        if (not left_threads and not left) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    problems = [f"thread {t.name!r} ({getattr(t, '_target', None)!r})" for t in left_threads]
    problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
    if problems:
        pytest.fail("left running after the test: " + "; ".join(problems), pytrace=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A non-daemon thread still alive now would keep this process from exiting: say which and
    exit with an error instead of hanging."""
    left = _lingering_threads({threading.main_thread()})
    if left:
        names = ", ".join(t.name for t in left)
        print(f"\nthreads left running at the end of the run: {names}", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(3)
