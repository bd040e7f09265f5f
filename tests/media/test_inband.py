"""In-band DTMF across the ITU-T Q.24 limits, and talk-off on speech and music."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from gateway.media import g711
from gateway.media.dtmf import ToneDetector, detect_tones
from gateway.media.inband import DIGITS, HIGH_GROUP, LOW_GROUP
from gateway.media.rtp import RtpPacket

from .pcaps import PEER_PCAPS, udp_payloads

FS = 8000
KEYS = "0123456789*#ABCD"
#: A G.711 sine at 0 dBm0 has this amplitude.
DBM0 = 22363.0
Signal = npt.NDArray[np.float64]


def tone(
    digit: str,
    ms: float,
    *,
    level_dbm0: float = -10.0,
    low_offset: float = 0.0,
    high_offset: float = 0.0,
    twist_db: float = 0.0,
) -> Signal:
    """A Q.23 tone pair; positive twist = low group stronger (normal twist)."""
    row = next(i for i, keys in enumerate(DIGITS) if digit in keys)
    col = DIGITS[row].index(digit)
    t = np.arange(round(FS * ms / 1000)) / FS
    amplitude = DBM0 * 10 ** (level_dbm0 / 20)
    low = amplitude * 10 ** (twist_db / 40)
    high = amplitude * 10 ** (-twist_db / 40)
    return low * np.sin(2 * np.pi * LOW_GROUP[row] * (1 + low_offset) * t) + high * np.sin(
        2 * np.pi * HIGH_GROUP[col] * (1 + high_offset) * t + 0.7
    )


def silence(ms: float) -> Signal:
    return np.zeros(round(FS * ms / 1000))


def noisy(x: Signal, snr_db: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed)
    power = float(np.mean(x[x != 0] ** 2)) / 10 ** (snr_db / 10)
    return x + rng.normal(0.0, np.sqrt(power), x.size)


def through_pcmu(x: Signal) -> Signal:
    """What the far end's tones look like after G.711 coding."""
    clipped = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return g711.ulaw_decode(g711.ulaw_encode(clipped)).astype(np.float64)


def digits_of(x: Signal) -> str:
    return "".join(e.digit for e in detect_tones(x))


def test_all_sixteen_keys_with_40_ms_tones_and_40_ms_pauses_through_pcmu() -> None:
    parts = [silence(100)]
    for key in KEYS:
        parts += [tone(key, 40), silence(40)]
    parts.append(tone("5", 40))
    for key in KEYS:  # each key twice in a row: the 40 ms pause must split them
        parts += [silence(40), tone(key, 40), silence(40), tone(key, 40)]
    parts.append(silence(100))
    events = detect_tones(through_pcmu(np.concatenate(parts)))
    assert "".join(e.digit for e in events) == KEYS + "5" + "".join(k + k for k in KEYS)
    # Each press is dated within 10 ms of where its tone starts.
    expected_starts = [0.1 + 0.08 * i for i in range(17)]
    assert [e.start for e in events[:17]] == pytest.approx(expected_starts, abs=0.01)


@pytest.mark.parametrize("offset", [0.015, -0.015])
def test_frequency_deviation_of_1_5_percent_is_accepted(offset: float) -> None:
    for key in KEYS:
        for low, high in ((offset, 0.0), (0.0, offset), (offset, offset), (offset, -offset)):
            x = np.concatenate(
                [silence(50), tone(key, 40, low_offset=low, high_offset=high), silence(50)]
            )
            assert digits_of(through_pcmu(x)) == key, (key, low, high)


@pytest.mark.parametrize("offset", [0.035, -0.035, 0.05, -0.06])
def test_frequency_deviation_of_3_5_percent_and_beyond_is_rejected(offset: float) -> None:
    for key in KEYS:
        for low, high in ((offset, 0.0), (0.0, offset)):
            x = np.concatenate(
                [silence(50), tone(key, 200, low_offset=low, high_offset=high), silence(50)]
            )
            assert digits_of(through_pcmu(x)) == "", (key, low, high)


@pytest.mark.parametrize("twist", [8.0, -4.0])
def test_twist_of_8_db_normal_and_4_db_reverse_is_accepted(twist: float) -> None:
    for key in KEYS:
        x = np.concatenate([silence(50), tone(key, 40, twist_db=twist), silence(50)])
        assert digits_of(through_pcmu(x)) == key, key


@pytest.mark.parametrize("twist", [16.0, -12.0])
def test_gross_twist_is_rejected(twist: float) -> None:
    for key in KEYS:
        x = np.concatenate([silence(50), tone(key, 100, twist_db=twist), silence(50)])
        assert digits_of(x) == "", key


def test_15_db_snr_white_noise_with_the_other_limits() -> None:
    for i, key in enumerate(KEYS):
        for twist, offset in ((8.0, 0.015), (-4.0, -0.015), (0.0, 0.015)):
            x = np.concatenate(
                [silence(60), tone(key, 40, twist_db=twist, low_offset=offset), silence(60)]
            )
            assert digits_of(through_pcmu(noisy(x, 15.0, seed=i))) == key, (key, twist)


def test_levels_from_minus_30_to_plus_3_dbm0_are_accepted_and_minus_50_is_not() -> None:
    for level in (-30.0, -20.0, 0.0, 3.0):
        x = np.concatenate([silence(50), tone("8", 60, level_dbm0=level), silence(50)])
        assert digits_of(through_pcmu(x)) == "8", level
    assert digits_of(np.concatenate([silence(50), tone("8", 60, level_dbm0=-50)])) == ""


def test_tones_of_10_ms_are_not_a_press() -> None:
    for key in KEYS:
        assert digits_of(np.concatenate([silence(50), tone(key, 10), silence(50)])) == ""


def test_a_short_dropout_inside_a_press_does_not_split_it() -> None:
    x = np.concatenate([silence(50), tone("3", 60), silence(5), tone("3", 60), silence(50)])
    assert digits_of(x) == "3"


def test_streaming_in_frames_matches_the_whole_signal() -> None:
    x = through_pcmu(
        np.concatenate([silence(30), tone("1", 50), silence(45), tone("#", 70), silence(90)])
    )
    whole = detect_tones(x)
    detector = ToneDetector()
    events = []
    for i in range(0, x.size, 160):
        events += [e for _, e in detector.feed(x[i : i + 160])]
    events += [e for _, e in detector.feed(np.zeros(800))]
    assert events == whole
    assert [e.digit for e in events] == ["1", "#"]


def test_many_streams_in_one_block_are_told_apart() -> None:
    detector = ToneDetector(streams=3)
    block = np.zeros((3, 1600))
    block[0, 400:800] = tone("7", 50)
    block[2, 800:1200] = tone("D", 50)
    events = detector.feed(block) + detector.feed(np.zeros((3, 800)))
    assert [(s, e.digit) for s, e in events] == [(0, "7"), (2, "D")]
    detector.reset(0)
    with pytest.raises(ValueError, match="expected 3 streams"):
        detector.feed(np.zeros((2, 160)))


def test_other_sample_rates() -> None:
    x8 = np.concatenate([silence(50), tone("6", 60), silence(50)])
    x16 = soxr.resample(x8, FS, 16000)
    assert "".join(e.digit for e in detect_tones(x16, sample_rate=16000)) == "6"


def test_the_in_band_capture_of_the_sipp_peer_is_a_9() -> None:
    packets = [RtpPacket.parse(p) for _, _, p in udp_payloads(PEER_PCAPS / "inband_9_pcmu.pcap")]
    audio = np.concatenate([g711.ulaw_decode(p.payload) for p in packets])
    events = detect_tones(audio)
    assert [e.digit for e in events] == ["9"]
    assert events[0].how == "inband"


# --- talk-off -------------------------------------------------------------------------------

SPEECH = (
    "Hello, this is an automated message about your appointment tomorrow at nine thirty. "
    "To stop receiving these calls, press nine now. One two three four five six seven eight. "
    "The quick brown fox jumps over the lazy dog, while the orchestra tunes its instruments."
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[Signal]:
    espeak = shutil.which("espeak-ng")
    assert espeak is not None, "espeak-ng is required (Debian package espeak-ng)"
    out = []
    for language in ("en", "fr", "de", "es", "it"):
        for pitch in ("20", "50", "90"):
            path = Path(tmp_path_factory.mktemp("speech")) / f"{language}{pitch}.wav"
            subprocess.run(
                [espeak, "-v", language, "-p", pitch, "-w", str(path), "--stdin"],
                input=SPEECH.encode(),
                check=True,
                capture_output=True,
            )
            data, rate = soundfile.read(path, dtype="float64")
            out.append(soxr.resample(data, rate, FS) * 32767 * 0.9 / np.max(np.abs(data)))
    return out


def test_no_digit_in_synthesised_speech(speech: list[Signal]) -> None:
    total = sum(s.size for s in speech) / FS
    assert total > 150  # seconds of speech in five languages and three pitches
    for signal in speech:
        for gain in (1.0, 0.1):
            assert detect_tones(through_pcmu(signal * gain)) == []


def music(seed: int, notes: int = 400) -> Signal:
    """Chords of one to three equal-tempered notes with harmonics falling as 1/h, vibrato
    and decay: the spectra of plucked and bowed instruments, landing often near the DTMF
    frequencies (F5 is 0.2 % from 697 Hz, F#6 0.2 % from 1477 Hz)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(notes):
        t = np.arange(round(rng.uniform(0.08, 0.5) * FS)) / FS
        s = np.zeros_like(t)
        for note in rng.integers(48, 96, size=rng.integers(1, 4)):
            f0 = 440 * 2 ** ((note - 69) / 12)
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5 * t)
            for h in range(1, int(rng.integers(3, 9))):
                if f0 * h < 3800:
                    phase = 2 * np.pi * np.cumsum(f0 * h * vibrato) / FS
                    s += np.sin(phase + rng.uniform(0, 6)) / h
        out.append(s * np.exp(-t * rng.uniform(0, 6)))
    m = np.concatenate(out)
    return m / np.max(np.abs(m)) * 20000


@pytest.mark.parametrize("seed", range(6))
def test_no_digit_in_music_like_signals(seed: int) -> None:
    assert detect_tones(through_pcmu(music(seed))) == []
