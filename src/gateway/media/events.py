"""What the media layer reports, as past-tense dataclasses (one module for all of them).

Times are media time: seconds since the stream started sending (or since the start of the audio
given to :func:`gateway.media.dtmf.detect_tones`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DtmfHow", "DtmfReceived", "MediaEvent", "SegmentEnded", "SegmentStarted"]

#: How a key press reached us: an RFC 4733 event, a SIP INFO body, or a tone in the audio.
DtmfHow = Literal["rfc4733", "inband", "info"]


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The far end pressed ``digit`` (one of ``0123456789*#ABCD``), reported once per press."""

    digit: str
    how: DtmfHow
    media_time: float

    @property
    def start(self) -> float:
        """When the press began, in media time (the detector's ``.start``)."""
        return self.media_time


@dataclass(frozen=True, slots=True)
class SegmentStarted:
    """The first frame of playlist segment ``name`` was sent at ``media_time``."""

    name: str
    media_time: float


@dataclass(frozen=True, slots=True)
class SegmentEnded:
    """Segment ``name`` finished (``completed``) or was cut short, at ``media_time``."""

    name: str
    media_time: float
    completed: bool = True


MediaEvent = DtmfReceived | SegmentStarted | SegmentEnded
