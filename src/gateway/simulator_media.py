"""The callees' side of the simulator that does not touch the network: behaviours, results,
key tones, and the recorder of what a callee hears (see :mod:`gateway.simulator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from gateway.media import g711
from gateway.media.inband import DIGITS, HIGH_GROUP, LOW_GROUP
from gateway.media.prompts import SAMPLE_RATE, Prompt
from gateway.media.rtp import ts_diff
from gateway.media.session import MediaSession

__all__ = ["PRESS_SECONDS", "Behaviour", "CalleeResult", "PressHow", "Recorder", "dtmf_tone"]

#: How a callee presses its key: RFC 4733 events, the dual tone in the audio, or SIP INFO.
PressHow = Literal["rfc4733", "inband", "info"]

_KEYS = "0123456789*#ABCD"
#: Length of a key press, whichever way it is sent (ITU-T Q.24 asks at least 40 ms).
PRESS_SECONDS = 0.2
#: Level of each of the two tones of an in-band press, as a fraction of full scale (-12 dBFS).
_TONE_AMPLITUDE = 0.25
#: Audio beyond this gap (RTP timestamp units) belongs to a new talkspurt placed right after.
_MAX_GAP = 10 * SAMPLE_RATE


@dataclass(frozen=True)
class Behaviour:
    """What a callee does when it is called.

    ``answer_after``: seconds of ringing (180) before 200 OK; None never answers, so the
    caller's ring timeout applies (it cancels: 487). ``reject``: a final status (486, 480,
    603 ...) sent at once instead of ringing. ``press``: a key pressed ``press_at`` seconds
    after the answer, sent as ``press_how``. ``hangup_after``: seconds after the answer when
    the callee sends BYE; None waits for the caller's BYE.
    """

    answer_after: float | None = 0.2
    reject: int | None = None
    press: str | None = None
    press_at: float = 3.0
    press_how: PressHow = "rfc4733"
    hangup_after: float | None = None

    def __post_init__(self) -> None:
        if self.reject is not None and not 300 <= self.reject <= 699:
            raise ValueError(f"reject must be a final non-2xx status, got {self.reject}")
        if self.press is not None and (len(self.press) != 1 or self.press not in _KEYS):
            raise ValueError(f"press must be one key of {_KEYS}, got {self.press!r}")
        if self.press_how not in ("rfc4733", "inband", "info"):
            raise ValueError(f"press_how must be rfc4733, inband or info, got {self.press_how!r}")
        for name in ("answer_after", "press_at", "hangup_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


@dataclass
class CalleeResult:
    """One call the simulator received, complete once the call has ended.

    Times are seconds on the event loop's clock (``loop.time()``); ``pressed_at`` counts from
    the answer. ``ended_by`` is ``caller`` (BYE or CANCEL from the gateway), ``callee`` (the
    simulator hung up or rejected), ``network`` (no ACK, transport failure) or ``closed``
    (the simulator was closed before the call could end). ``recording``
    is None for a call that was never answered.
    """

    number: str
    call_id: str
    caller: str
    offered_at: float
    answered: bool = False
    answered_at: float | None = None
    pressed: str | None = None
    pressed_at: float | None = None
    press_how: PressHow | None = None
    ended_by: str = ""
    cause: int = 0
    ended_at: float | None = None
    recording: Path | None = None
    #: Seconds of audio in the recording.
    recorded_seconds: float = 0.0
    packets_received: int = 0


def dtmf_tone(key: str, seconds: float = PRESS_SECONDS) -> Prompt:
    """The dual tone of ``key`` (ITU-T Q.23 frequencies) as a prompt the player can send."""
    if len(key) != 1 or key not in _KEYS:
        raise ValueError(f"no DTMF key {key!r}")
    row = next(r for r, keys in enumerate(DIGITS) if key in keys)
    low, high = LOW_GROUP[row], HIGH_GROUP[DIGITS[row].index(key)]
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave_ = _TONE_AMPLITUDE * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    samples = np.round(wave_ * 32767).astype(np.int16)
    return Prompt(f"dtmf-{key}", samples, digest=f"dtmf-{key}-{seconds}")


class Recorder:
    """The received audio of one stream, each payload placed where its RTP timestamp says.

    It takes the session's ``on_audio`` hook: a lost packet stays a gap of silence instead of
    shifting what follows, and RFC 4733 events, which replace the audio while a key is
    pressed, leave silence of their length.
    """

    def __init__(self, session: MediaSession) -> None:
        self.session = session
        self.recording = True
        self._chunks: list[tuple[int, int, bytes]] = []  # position, payload type, payload
        self._ssrc: int | None = None
        self._base_ts = 0
        self._base_pos = 0
        self._end = 0
        session.on_audio = self._take

    def _take(self, payload_type: int, timestamp: int, ssrc: int, payload: bytes) -> None:
        if not self.recording:
            return
        if ssrc != self._ssrc:
            self._ssrc, self._base_ts, self._base_pos = ssrc, timestamp, self._end
        position = self._base_pos + ts_diff(timestamp, self._base_ts)
        if position < 0 or position > self._end + _MAX_GAP:
            # A jump of the far end's clock: carry on from the end of what we have.
            self._base_ts, self._base_pos, position = timestamp, self._end, self._end
        self._chunks.append((position, payload_type, payload))
        self._end = max(self._end, position + len(payload))

    def samples(self) -> npt.NDArray[np.int16]:
        """The linear audio heard so far (silence where nothing came)."""
        audio = np.zeros(self._end, dtype=np.int16)
        for position, payload_type, payload in self._chunks:
            codec = "PCMU" if payload_type == 0 else "PCMA"
            audio[position : position + len(payload)] = g711.decode(codec, payload)
        return audio
