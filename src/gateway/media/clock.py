"""The one send clock of all streams: absolute deadlines, sans-IO.

Frame ``n`` of a stream is due at ``origin + (first + n * phases) * ptime / phases``, computed
afresh every time, so no error accumulates however long the process runs (a ``sleep(0.02)``
loop drifts by its wake-up latency every period).

The 20 ms period is cut into ``phases`` equal slots and each stream is given the least busy
one: one timer still serves every stream, but each wake-up sends only the frames of one slot,
so a thousand streams are not all sent in one burst, 20 ms apart, with the last packet of the
burst late by the time it took to send the others.

On a wake-up at ``now`` each stream whose slot came round gets the frame of its latest deadline
passed, and only that one: when the process wakes late by more than a period, the frames it
missed are skipped, not sent in a burst, so a late wake-up costs each stream a gap and never a
burst of more than one frame (the RTP timestamp still advances by the frames skipped, RFC 3550
section 5.1: the timestamp "reflects the sampling instant", so the far end's playout stays in
time).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["PTIME", "Pacer"]

PTIME = 0.02
K = TypeVar("K", bound=Hashable)


class Pacer(Generic[K]):
    """Which stream sends which frame at each wake-up, for streams keyed by ``K``.

    Times are counted in slots of ``ptime / phases`` from ``origin``; stream ``key`` sends at
    the slots congruent to its phase.
    """

    def __init__(self, origin: float, ptime: float = PTIME, phases: int = 1) -> None:
        if phases < 1:
            raise ValueError("a period has at least one phase")
        self.origin = origin
        self.ptime = ptime
        self.phases = phases
        self.slot = ptime / phases
        self._first: dict[K, int] = {}
        self._by_phase: list[dict[K, int]] = [{} for _ in range(phases)]
        self._earliest: dict[int, int] = {}  # phase -> its streams' earliest frame-0 slot
        self._last_slot = -1
        #: Frames that came and went without a wake-up, summed over streams.
        self.frames_skipped = 0

    def __len__(self) -> int:
        return len(self._first)

    def slot_at(self, now: float) -> int:
        """The latest slot due at ``now`` (-1 before the origin)."""
        # A hair of tolerance: a wake-up exactly at a deadline must count that slot, whatever
        # the float rounding of origin + k * slot.
        return math.floor((now - self.origin) / self.slot + 1e-9)

    def deadline(self, slot: int) -> float:
        """When slot ``slot`` is due."""
        return self.origin + slot * self.slot

    def add(self, key: K, now: float) -> int:
        """Start ``key`` in the least busy phase, at its first slot after ``now``.

        Returns that slot, the one of frame 0; frame ``n`` is at ``slot + n * phases``.
        """
        after = max(self.slot_at(now), self._last_slot) + 1
        # The least busy phase; of those, the one that comes round first.
        phase = min(
            range(self.phases),
            key=lambda p: (len(self._by_phase[p]), (p - after) % self.phases),
        )
        first = after + (phase - after) % self.phases
        self._first[key] = first
        self._by_phase[phase][key] = first
        self._earliest[phase] = min(self._earliest.get(phase, first), first)
        return first

    def remove(self, key: K) -> None:
        """Stop pacing ``key`` (closed)."""
        first = self._first.pop(key, None)
        if first is not None:
            phase = first % self.phases
            keys = self._by_phase[phase]
            del keys[key]
            if not keys:
                del self._earliest[phase]
            elif self._earliest[phase] == first:
                self._earliest[phase] = min(keys.values())

    def first_slot(self, key: K) -> int:
        """The slot of ``key``'s frame 0."""
        return self._first[key]

    def wake(self, now: float) -> list[tuple[K, int]]:
        """For each stream due at ``now``, the frame number it sends now (at most one).

        A slot is served once: a second wake-up before the next deadline returns nothing.
        """
        current = self.slot_at(now)
        last = self._last_slot
        if current <= last:
            return []
        self._last_slot = current
        due: list[tuple[K, int]] = []
        phases = self.phases
        # Only the phases whose slot came round since the last wake-up have frames due.
        for offset in range(min(current - last, phases)):
            slot = current - offset
            for key, first in self._by_phase[slot % phases].items():
                if first <= slot:
                    frame = (slot - first) // phases
                    due.append((key, frame))
                    # the frames whose slots fell between the last wake-up and this one
                    served = (last - first) // phases if last >= first else -1
                    self.frames_skipped += frame - served - 1
        return due

    def next_deadline(self) -> float | None:
        """When to wake next: the next slot after the last served that has a stream due."""
        if not self._first:
            return None
        following = self._last_slot + 1
        best: int | None = None
        for phase, earliest in self._earliest.items():
            slot = max(following + (phase - following) % self.phases, earliest)
            if best is None or slot < best:
                best = slot
        assert best is not None
        return self.deadline(best)
