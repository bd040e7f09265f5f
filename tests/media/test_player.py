"""The player: payload due at frame n, segment start and end in media time."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media import g711
from gateway.media.events import SegmentEnded, SegmentStarted
from gateway.media.player import Player, Segment
from gateway.media.prompts import Prompt


def make_prompt(name: str, frames: float, value: int) -> Prompt:
    samples = np.full(round(frames * 160), value, dtype=np.int16)
    return Prompt(name, samples, digest=name)


IDENTITY = Segment("identity", make_prompt("identity", 3, 1000))
OPTOUT = Segment("optout", make_prompt("optout", 2.5, -2000))  # last frame padded
MESSAGE = Segment("message", make_prompt("message", 4, 3000))


def decoded(payload: bytes) -> set[int]:
    return set(g711.ulaw_decode(payload).tolist())


def test_plays_segments_in_order_then_silence_and_reports_media_times() -> None:
    player = Player("PCMU", [IDENTITY, OPTOUT])
    payloads = [player.frame(n) for n in range(8)]
    assert all(len(p) == 160 for p in payloads)
    ulaw_1000 = decoded(g711.ulaw_encode(np.array([1000], dtype=np.int16)))
    assert [decoded(p) == ulaw_1000 for p in payloads[:3]] == [True] * 3
    assert decoded(payloads[3]) == decoded(g711.ulaw_encode(np.array([-2000], dtype=np.int16)))
    assert len(decoded(payloads[5])) == 2  # half prompt, half padding
    assert payloads[6] == payloads[7] == b"\xff" * 160
    assert player.events == [
        SegmentStarted("identity", 0.0),
        SegmentEnded("identity", 0.06),
        SegmentStarted("optout", 0.06),
        SegmentEnded("optout", 0.12),
    ]
    assert not player.playing


def test_idle_player_sends_codec_silence() -> None:
    assert Player("PCMA").frame(0) == b"\xd5" * 160
    assert Player("PCMU").frame(5) == b"\xff" * 160


def test_a_skipped_frame_is_skipped_in_the_segment_too() -> None:
    player = Player("PCMU", [IDENTITY, MESSAGE])
    player.frame(0)
    player.frame(2)  # frame 1 skipped after a late wake-up
    player.frame(4)  # identity had 3 frames: ended at frame 3, message starts at 4
    assert player.events == [
        SegmentStarted("identity", 0.0),
        SegmentEnded("identity", 0.06),
        SegmentStarted("message", 0.08),
    ]


def test_play_cuts_the_current_segment_at_the_next_frame() -> None:
    player = Player("PCMU", [MESSAGE, IDENTITY])
    player.frame(10)
    player.frame(11)
    player.play(OPTOUT)
    assert player.current == "message"
    player.frame(12)
    assert player.current == "optout"
    assert player.events == [
        SegmentStarted("message", 0.2),
        SegmentEnded("message", 0.24, completed=False),
        SegmentStarted("optout", 0.24),
    ]


def test_stop_empties_the_playlist() -> None:
    player = Player("PCMA", [MESSAGE, IDENTITY])
    player.frame(0)
    player.stop()
    assert player.frame(1) == b"\xd5" * 160
    assert player.events[-1] == SegmentEnded("message", 0.02, completed=False)
    assert not player.playing


def test_enqueue_while_idle_starts_at_the_next_frame() -> None:
    player = Player("PCMU")
    player.frame(0)
    player.enqueue(IDENTITY)
    player.frame(1)
    assert player.events == [SegmentStarted("identity", 0.02)]


def test_frames_cannot_go_back() -> None:
    player = Player("PCMU", [IDENTITY])
    player.frame(5)
    with pytest.raises(ValueError, match="frame 4 asked after frame 5"):
        player.frame(4)


def test_an_empty_prompt_starts_and_ends_at_once() -> None:
    empty = Segment("empty", Prompt("empty", np.zeros(0, dtype=np.int16), "e"))
    player = Player("PCMU", [empty, IDENTITY])
    player.frame(0)
    assert player.events[:3] == [
        SegmentStarted("empty", 0.0),
        SegmentEnded("empty", 0.0),
        SegmentStarted("identity", 0.0),
    ]
