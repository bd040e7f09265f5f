"""The one send clock of all streams: absolute 20 ms deadlines, sans-IO.

Tick ``k`` is due at ``origin + k * ptime``, computed afresh every time, so no error accumulates
however long the process runs (a ``sleep(0.02)`` loop drifts by its wake-up latency every
period). A stream joins at the next tick; its frame ``n`` is due at tick ``first + n``.

On a wake-up at ``now`` every stream gets the frame of the latest tick due, and only that one:
when the process wakes late by more than a period, the frames of the ticks it missed are
skipped, not sent in a burst, so a late wake-up costs each stream one gap and never a burst of
more than one frame (the RTP timestamp still advances by the ticks missed, RFC 3550 section
5.1: the timestamp "reflects the sampling instant", so the far end's playout stays in time).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["PTIME", "Pacer"]

PTIME = 0.02
K = TypeVar("K", bound=Hashable)


class Pacer(Generic[K]):
    """Which stream sends which frame at each wake-up, for streams keyed by ``K``."""

    def __init__(self, origin: float, ptime: float = PTIME) -> None:
        self.origin = origin
        self.ptime = ptime
        self._first: dict[K, int] = {}
        self._last_tick = -1
        #: Ticks that came and went without a wake-up (each cost every stream one frame).
        self.ticks_skipped = 0

    def __len__(self) -> int:
        return len(self._first)

    def tick_at(self, now: float) -> int:
        """The latest tick due at ``now`` (-1 before the origin)."""
        # A hair of tolerance: a wake-up exactly at a deadline must count that tick, whatever
        # the float rounding of origin + k * ptime.
        return math.floor((now - self.origin) / self.ptime + 1e-9)

    def deadline(self, tick: int) -> float:
        """When tick ``tick`` is due."""
        return self.origin + tick * self.ptime

    def add(self, key: K, now: float) -> int:
        """Start ``key`` at the next tick after ``now``; returns that tick (its frame 0)."""
        first = max(self.tick_at(now), self._last_tick) + 1
        self._first[key] = first
        return first

    def remove(self, key: K) -> None:
        """Stop pacing ``key`` (closed, or on hold)."""
        self._first.pop(key, None)

    def first_tick(self, key: K) -> int:
        """The tick of ``key``'s frame 0."""
        return self._first[key]

    def wake(self, now: float) -> tuple[int, list[tuple[K, int]]]:
        """The tick due at ``now`` and, for each stream due, the frame number it sends now.

        A tick is served once: a second wake-up before the next deadline returns no frames.
        """
        tick = self.tick_at(now)
        if tick <= self._last_tick:
            return tick, []
        if self._last_tick >= 0:
            self.ticks_skipped += tick - self._last_tick - 1
        self._last_tick = tick
        return tick, [(key, tick - first) for key, first in self._first.items() if first <= tick]

    def next_deadline(self) -> float | None:
        """When to wake next: the deadline after the last tick served (None with no stream)."""
        if not self._first:
            return None
        following = self._last_tick + 1
        earliest = min(self._first.values())
        return self.deadline(max(following, earliest))
