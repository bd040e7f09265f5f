"""The in-band detector of all calls in progress, fed as their packets arrive.

See :class:`ToneBank`; the detection itself is :class:`~gateway.media.inband.ToneDetector`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import g711
from .events import DtmfReceived
from .inband import ToneDetector

__all__ = ["ToneBank"]

#: A-law octet -> the mu-law octet of the same (or the nearest) value.
_ALAW_TO_ULAW = g711.ulaw_encode(g711.alaw_decode(bytes(range(256))))


class ToneBank:
    """In-band detection for a changing set of streams, batched (one detector, one row each).

    A stream's audio is pushed as it arrives, as the mu-law octets of its RTP payloads (A-law
    is mapped to mu-law by a table, a step of quantisation at most, nothing a tone detector
    notices), so receiving a packet costs no numpy call. :meth:`run`, called on the send clock,
    decodes and detects over every stream holding at least ``block`` samples in one batch, so
    the numpy cost of a tick is shared by all the calls in progress. Times are counted from
    each slot's first sample.
    """

    def __init__(self, block: int = 800, sample_rate: int = 8000, capacity: int = 16) -> None:
        self.detector = ToneDetector(capacity, sample_rate)
        if block % self.detector.step:
            raise ValueError(f"block of {block} samples is not a multiple of {self.detector.step}")
        self.block = block
        self._free = list(range(capacity - 1, -1, -1))
        self._pending: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}

    def open(self) -> int:
        """A slot for a new stream."""
        if not self._free:
            size = self.detector.streams
            self.detector.grow(2 * size)
            self._free = list(range(2 * size - 1, size - 1, -1))
        slot = self._free.pop()
        self.detector.reset(slot)
        self._pending[slot] = []
        self._sizes[slot] = 0
        return slot

    def close(self, slot: int) -> None:
        """Give the slot back."""
        if self._pending.pop(slot, None) is not None:
            del self._sizes[slot]
            self._free.append(slot)

    def push_payload(self, slot: int, payload: bytes, codec: str = "PCMU") -> None:
        """G.711 octets received on ``slot``, in order, gaps filled by the caller."""
        if codec == "PCMA":
            payload = payload.translate(_ALAW_TO_ULAW)
        self._pending[slot].append(payload)
        self._sizes[slot] += len(payload)

    def push(self, slot: int, samples: npt.ArrayLike) -> None:
        """Linear samples received on ``slot`` (coded as mu-law on the way in)."""
        clipped = np.clip(np.round(np.asarray(samples, dtype=np.float64)), -32768, 32767)
        self.push_payload(slot, g711.ulaw_encode(clipped.astype(np.int16)))

    def run(self) -> list[tuple[int, DtmfReceived]]:
        """Detect over every whole block held, in as few batches as there are blocks per slot."""
        events: list[tuple[int, DtmfReceived]] = []
        joined: dict[int, bytes] = {}
        for slot, size in self._sizes.items():
            if size >= self.block:
                parts = self._pending[slot]
                joined[slot] = parts[0] if len(parts) == 1 else b"".join(parts)
        if not joined:
            return events
        offset = 0
        while True:
            ready = [slot for slot, audio in joined.items() if len(audio) >= offset + self.block]
            if not ready:
                break
            octets = b"".join(joined[slot][offset : offset + self.block] for slot in ready)
            block = g711.ulaw_decode(octets).reshape(len(ready), self.block).astype(np.float64)
            events += self.detector.feed_rows(np.array(ready, dtype=np.int64), block)
            offset += self.block
        for slot, audio in joined.items():
            used = len(audio) - len(audio) % self.block
            rest = audio[used:]
            self._pending[slot] = [rest] if rest else []
            self._sizes[slot] = len(rest)
        return events
