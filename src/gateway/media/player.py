"""The player: a playlist of named segments, read out one 20 ms frame at a time.

The send clock asks for the payload due at frame ``n`` (frame 0 is the stream's first packet,
at media time 0); the player answers with a slice of the current segment's cached encoding, or
with silence when the playlist is empty, and notes when each segment starts and ends in media
time (``n * 20 ms``). Frame numbers only grow; when the clock skips a frame after a late
wake-up, the segment skips it too, so the audio stays on time with the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from . import g711
from .events import SegmentEnded, SegmentStarted
from .prompts import FRAME_SAMPLES, SAMPLE_RATE, Prompt

__all__ = ["PTIME", "Player", "Segment"]

#: Seconds per frame.
PTIME = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Segment:
    """One item of a playlist: what the call script calls it, and the prompt it plays."""

    name: str
    prompt: Prompt


class Player:
    """Plays segments in order in ``codec`` (``"PCMU"`` or ``"PCMA"``).

    ``events`` collects :class:`SegmentStarted` and :class:`SegmentEnded` as frames are taken;
    the owner drains it.
    """

    def __init__(self, codec: str, segments: Iterable[Segment] = ()) -> None:
        self.codec = codec
        self._silence = bytes([g711.silence_byte(codec)]) * FRAME_SAMPLES
        self._queue: deque[Segment] = deque(segments)
        self._current: Segment | None = None
        self._data = b""
        self._frames = 0
        self._start = 0
        self._cut = False
        self._last = -1
        self.events: list[SegmentStarted | SegmentEnded] = []

    @property
    def playing(self) -> bool:
        """True while a segment is current or queued."""
        return self._current is not None or bool(self._queue)

    @property
    def current(self) -> str | None:
        """Name of the segment being played."""
        return None if self._current is None else self._current.name

    def enqueue(self, *segments: Segment) -> None:
        """Add segments after those already queued."""
        self._queue.extend(segments)

    def play(self, *segments: Segment) -> None:
        """Replace the playlist: the current segment is cut at the next frame."""
        self._queue.clear()
        self._queue.extend(segments)
        if self._current is not None:
            self._cut = True

    def stop(self) -> None:
        """Empty the playlist; the current segment is cut at the next frame."""
        self.play()

    def frame(self, n: int) -> bytes:
        """The payload due at frame ``n`` (``n`` never smaller than the last one asked)."""
        if n < self._last:
            raise ValueError(f"frame {n} asked after frame {self._last}")
        self._last = n
        if self._current is not None:
            if self._cut:
                self._finish(n, completed=False)
            elif n - self._start >= self._frames:
                self._finish(self._start + self._frames, completed=True)
        while self._current is None and self._queue:
            self._begin(self._queue.popleft(), n)
            if self._frames == 0:
                self._finish(n, completed=True)
        if self._current is None:
            return self._silence
        offset = (n - self._start) * FRAME_SAMPLES
        return self._data[offset : offset + FRAME_SAMPLES]

    def _begin(self, segment: Segment, n: int) -> None:
        self._current = segment
        self._data = segment.prompt.encoded(self.codec)
        self._frames = segment.prompt.frame_count
        self._start = n
        self.events.append(SegmentStarted(segment.name, n * PTIME))

    def _finish(self, end_frame: int, *, completed: bool) -> None:
        assert self._current is not None
        self.events.append(SegmentEnded(self._current.name, end_frame * PTIME, completed))
        self._current = None
        self._cut = False
        self._data = b""
