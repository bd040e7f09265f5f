"""The call's script: a pure state machine from answer to hang-up (COMPLIANCE.md section 6).

Events in (the call was answered, a segment started or finished, a key was pressed, the
opposition was committed, the far end hung up, the maximum duration passed); actions out (play
the announcement, stop playing, commit an opposition, play the confirmation, hang up). The async
``outbound.py`` only carries them between SIP, media and the store, so every rule of the call
is tested here without a socket.

The order on opt-out is the law's: the opposition is written **durably first**; only then,
where the profile allows it (FR), a short confirmation, and the line is dropped; under the US
profile the call is disconnected at once (47 CFR 64.1200(b)(3)).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "Action",
    "Answered",
    "CommitOpposition",
    "Digit",
    "Event",
    "HangUp",
    "HungUp",
    "MaxDurationReached",
    "OppositionCommitted",
    "OppositionFailed",
    "Play",
    "Script",
    "SegmentFinished",
    "SegmentStarted",
    "State",
    "StopPlaying",
]

#: Attempts to write the opposition before the call gives up (the dialer retries afterwards).
COMMIT_ATTEMPTS = 3


class State(enum.Enum):
    RINGING = "ringing"
    PLAYING = "playing"
    COMMITTING = "committing"
    CONFIRMING = "confirming"
    HANGING_UP = "hanging_up"
    ENDED = "ended"


# -- events in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    at: float


@dataclass(frozen=True)
class SegmentStarted:
    name: str
    at: float


@dataclass(frozen=True)
class SegmentFinished:
    name: str
    at: float


@dataclass(frozen=True)
class Digit:
    """A key press, however it came (``rfc4733``, ``info`` or ``inband``)."""

    digit: str
    how: str
    at: float


@dataclass(frozen=True)
class OppositionCommitted:
    at: float


@dataclass(frozen=True)
class OppositionFailed:
    error: str
    at: float


@dataclass(frozen=True)
class HungUp:
    """The far end ended the call (BYE)."""

    at: float


@dataclass(frozen=True)
class MaxDurationReached:
    at: float


Event = (
    Answered
    | SegmentStarted
    | SegmentFinished
    | Digit
    | OppositionCommitted
    | OppositionFailed
    | HungUp
    | MaxDurationReached
)


# -- actions out -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """Play these segments, in order, from the start."""

    segments: tuple[str, ...]


@dataclass(frozen=True)
class StopPlaying:
    pass


@dataclass(frozen=True)
class CommitOpposition:
    """Write the callee's opposition durably; answer with OppositionCommitted or -Failed."""

    digit: str
    how: str


@dataclass(frozen=True)
class HangUp:
    """Send BYE; ``reason`` says why (for the call record)."""

    reason: str


Action = Play | StopPlaying | CommitOpposition | HangUp


@dataclass
class Script:
    """One answered call's script.

    ``segments`` is the announcement in order (identity first, the opt-out instruction right
    after, then the message); ``confirmation`` the segment played after an opt-out, or None
    when the profile forbids one (US) or the campaign has none.
    """

    segments: tuple[str, ...]
    optout_key: str
    confirmation: str | None
    state: State = State.RINGING
    #: What happened, in order, with media times: the call record's timeline.
    timeline: list[tuple[str, float]] = field(default_factory=list)
    opted_out: bool = False
    hangup_reason: str = ""
    _commit_attempts: int = 0
    _pending_digit: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if len(self.optout_key) != 1 or self.optout_key not in "0123456789*#":
            raise ValueError(f"the opt-out key must be one DTMF digit, not {self.optout_key!r}")
        if not self.segments:
            raise ValueError("a call needs at least the identity and opt-out segments")

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; returns the actions to carry out, in order."""
        state = self.state
        if state is State.ENDED:
            if isinstance(event, OppositionCommitted):
                self._note("opposition_committed", event.at)  # written after the far end's BYE
            return []
        if isinstance(event, HungUp):
            self._note("remote_hangup", event.at)
            self.state = State.ENDED
            # An opposition being committed is still written: outbound.py awaits the write
            # whatever the line does, so a BYE never loses it.
            return []
        if isinstance(event, Answered):
            return self._answered(event)
        if isinstance(event, SegmentStarted):
            self._note(f"segment_start:{event.name}", event.at)
            return []
        if isinstance(event, SegmentFinished):
            return self._segment_finished(event)
        if isinstance(event, Digit):
            return self._digit(event)
        if isinstance(event, OppositionCommitted):
            return self._committed(event)
        if isinstance(event, OppositionFailed):
            return self._commit_failed(event)
        if isinstance(event, MaxDurationReached):
            if state in (State.COMMITTING, State.HANGING_UP):
                return []  # the opposition is written first; the hang-up follows it
            return self._hang_up("max_duration", event.at, stop=True)
        raise TypeError(f"unknown event {event!r}")  # pragma: no cover

    # -- transitions --------------------------------------------------------------------------

    def _answered(self, event: Answered) -> list[Action]:
        if self.state is not State.RINGING:
            return []
        self._note("answered", event.at)
        self.state = State.PLAYING
        return [Play(self.segments)]

    def _segment_finished(self, event: SegmentFinished) -> list[Action]:
        self._note(f"segment_end:{event.name}", event.at)
        if self.state is State.PLAYING and event.name == self.segments[-1]:
            return self._hang_up("message_complete", event.at, stop=False)
        if self.state is State.CONFIRMING and event.name == self.confirmation:
            return self._hang_up("opted_out", event.at, stop=False)
        return []

    def _digit(self, event: Digit) -> list[Action]:
        self._note(f"dtmf:{event.digit}:{event.how}", event.at)
        # The key works "from the first packet of audio to the last" (COMPLIANCE.md 6).
        if event.digit != self.optout_key or self.state is not State.PLAYING:
            return []
        self.opted_out = True
        self.state = State.COMMITTING
        self._commit_attempts = 1
        self._pending_digit = (event.digit, event.how)
        return [StopPlaying(), CommitOpposition(event.digit, event.how)]

    def _committed(self, event: OppositionCommitted) -> list[Action]:
        if self.state is not State.COMMITTING:
            return []
        self._note("opposition_committed", event.at)
        if self.confirmation is not None:
            self.state = State.CONFIRMING
            return [Play((self.confirmation,))]
        return self._hang_up("opted_out", event.at, stop=False)

    def _commit_failed(self, event: OppositionFailed) -> list[Action]:
        if self.state is not State.COMMITTING or self._pending_digit is None:
            return []
        self._note("opposition_failed", event.at)
        if self._commit_attempts < COMMIT_ATTEMPTS:
            self._commit_attempts += 1
            digit, how = self._pending_digit
            return [CommitOpposition(digit, how)]
        # No confirmation without a committed opposition: never tell the callee it worked.
        return self._hang_up("opposition_not_committed", event.at, stop=False)

    def _hang_up(self, reason: str, at: float, *, stop: bool) -> list[Action]:
        self.state = State.HANGING_UP
        self.hangup_reason = reason
        self._note(f"hangup:{reason}", at)
        actions: list[Action] = [StopPlaying()] if stop else []
        actions.append(HangUp(reason))
        return actions

    def _note(self, what: str, at: float) -> None:
        self.timeline.append((what, at))
