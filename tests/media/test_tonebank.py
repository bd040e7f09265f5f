"""The tone bank: in-band detection for the calls in progress, batched."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media import g711
from gateway.media.tonebank import ToneBank

from .test_inband import silence, through_pcmu, tone


def test_the_bank_detects_streams_that_come_and_go_in_one_batch() -> None:
    bank = ToneBank(block=800, capacity=2)
    a, b = bank.open(), bank.open()
    c = bank.open()  # grows past the first capacity
    assert len({a, b, c}) == 3
    audio_a = through_pcmu(np.concatenate([silence(100), tone("1", 60), silence(300)]))
    audio_c = through_pcmu(np.concatenate([silence(200), tone("#", 60), silence(200)]))
    events = []
    for i in range(0, audio_a.size, 160):  # frames arrive one by one, as from the network
        bank.push(a, audio_a[i : i + 160])
        bank.push(b, np.zeros(160))
        bank.push(c, audio_c[i : i + 160])
        events += bank.run()
    assert [(slot, e.digit) for slot, e in events] == [(a, "1"), (c, "#")]
    assert [e.start for _, e in events] == pytest.approx([0.1, 0.2], abs=0.01)
    bank.close(a)
    d = bank.open()  # reuses a's slot, from a clean state and time 0
    assert d == a
    bank.push(d, np.concatenate([silence(50), tone("9", 60), silence(300)]))
    (slot, event), *others = bank.run()
    assert (slot, event.digit, others) == (d, "9", [])
    assert event.start == pytest.approx(0.05, abs=0.01)


def test_alaw_payloads_are_detected_like_mulaw_ones() -> None:
    bank = ToneBank()
    slot = bank.open()
    audio = np.concatenate([silence(50), tone("0", 60), silence(400)])
    bank.push_payload(slot, g711.alaw_encode(audio.astype(np.int16)), "PCMA")
    assert [e.digit for _, e in bank.run()] == ["0"]


def test_a_backlog_of_several_blocks_is_detected_in_one_run() -> None:
    bank = ToneBank(block=800)
    slot = bank.open()
    audio = np.concatenate([silence(400), tone("A", 60), silence(600)])  # 1.06 s: 10 blocks
    bank.push(slot, audio)
    ((got, event),) = bank.run()
    assert (got, event.digit) == (slot, "A")
    assert event.start == pytest.approx(0.4, abs=0.01)
    assert bank.run() == []
