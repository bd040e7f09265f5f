"""The one send clock of all streams: absolute deadlines, sans-IO.

Frame ``n`` of a stream is due at ``origin + (first + n * phases) * ptime / phases``, computed
afresh every time, so no error accumulates however long the process runs (a ``sleep(0.02)``
loop drifts by its wake-up latency every period).

The 20 ms period is cut into ``phases`` equal slots and each stream is given the least busy
one: one timer still serves every stream, but each wake-up sends only the frames of one slot,
so a thousand streams are not all sent in one burst, 20 ms apart, with the last packet of the
burst late by the time it took to send the others.

On a wake-up at ``now`` each stream whose slot came round gets the frames whose deadlines passed
since it was last served. On time that is one frame. When the process wakes late (a busy host,
a pause of the collector), the frames it missed are sent at once, oldest first, up to
``catch_up`` of them: what is played is a recording, not live sound, and every frame dropped is
a hole in the announcement the callee hears (the identity, the opt-out instruction), while
frames that arrive late together are absorbed by the far end's jitter buffer, their RTP
timestamps telling it when each was due. Beyond ``catch_up`` frames the far end has given them
up anyway: the older ones are skipped, so a long stall costs a gap and never a burst of more
than ``catch_up`` packets (the RTP timestamp still advances by the frames skipped, RFC 3550
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
    the slots congruent to its phase. After a late wake-up each stream sends at most
    ``catch_up`` frames at once (1: never more than one, the missed ones skipped).
    """

    def __init__(
        self, origin: float, ptime: float = PTIME, phases: int = 1, catch_up: int = 5
    ) -> None:
        if phases < 1:
            raise ValueError("a period has at least one phase")
        if catch_up < 1:
            raise ValueError("a wake-up sends at least the frame due")
        self.catch_up = catch_up
        self.origin = origin
        self.ptime = ptime
        self.phases = phases
        self.slot = ptime / phases
        self._first: dict[K, int] = {}
        self._by_phase: list[dict[K, int]] = [{} for _ in range(phases)]
        self._earliest: dict[int, int] = {}  # phase -> its streams' earliest frame-0 slot
        self._last_slot = -1
        #: Frames more than ``catch_up`` behind at a wake-up, never sent, summed over streams.
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
        """(stream, frame number) of each frame to send now: for each stream due, the frames
        whose deadlines passed since its last wake-up, oldest first, at most ``catch_up``.

        A slot is served once: a second wake-up before the next deadline returns nothing.
        """
        current = self.slot_at(now)
        last = self._last_slot
        if current <= last:
            return []
        self._last_slot = current
        due: list[tuple[K, int]] = []
        phases, catch_up = self.phases, self.catch_up
        # Only the phases whose slot came round since the last wake-up have frames due.
        for offset in range(min(current - last, phases)):
            slot = current - offset
            for key, first in self._by_phase[slot % phases].items():
                if first <= slot:
                    frame = (slot - first) // phases
                    # the last frame sent: its slot was at or before the last wake-up
                    served = (last - first) // phases if last >= first else -1
                    if frame == served + 1:  # on time: the common case, one frame
                        due.append((key, frame))
                        continue
                    oldest = max(served + 1, frame - catch_up + 1)
                    self.frames_skipped += oldest - served - 1
                    due.extend((key, n) for n in range(oldest, frame + 1))
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
