"""Call-level timers of the user agent (ring timeout, session refresh, 2xx retransmission).

Deadlines on one heap, as the transaction layer keeps its own; a cancelled timer drops its
callback at once, so a call cancelled long before its deadline is not kept alive by the heap.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["Scheduler"]


class Scheduler:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._pending: dict[int, Callable[[float], None]] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._pending)

    def schedule(self, deadline: float, fn: Callable[[float], None]) -> int:
        """Call ``fn(now)`` at ``deadline``; returns a handle for :meth:`cancel`."""
        handle = next(self._order)
        heapq.heappush(self._heap, (deadline, handle))
        self._pending[handle] = fn
        return handle

    def cancel(self, handle: int | None) -> None:
        """Forget a timer; cancelling one that fired or was cancelled does nothing."""
        if handle is not None:
            self._pending.pop(handle, None)
        # Stale heap entries go when they reach the top; rebuild when they dominate.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._pending):
            self._heap = [(d, h) for d, h in self._heap if h in self._pending]
            heapq.heapify(self._heap)

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._pending:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> None:
        """Run every callback due at ``now``, earliest first (new ones due now included)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, handle = heapq.heappop(heap)
            fn = self._pending.pop(handle, None)
            if fn is not None:
                fn(now)
