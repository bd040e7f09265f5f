"""Prompts from files in every accepted format, every kind of bad file, and the cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from gateway.media import g711, prompts
from gateway.media.prompts import PromptError, load_prompt, prompt_from_text, synthesize


def program(
    rate: int, seconds: float = 1.5, lead: float = 0.3, tail: float = 0.4
) -> npt.NDArray[np.float64]:
    """Silence, a 440 Hz tone with a 1 kHz partial under a slow swell, silence."""
    t = np.arange(round(rate * seconds)) / rate
    body = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    )
    return np.concatenate([np.zeros(round(rate * lead)), body, np.zeros(round(rate * tail))])


def dominant_frequency(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * prompts.SAMPLE_RATE / samples.size)


def gated_level(samples: npt.NDArray[np.int16]) -> float:
    return prompts._gated_loudness(samples.astype(np.float64) / 32767)


FORMATS = [
    ("wav", "PCM_U8", 8000, 1),
    ("wav", "PCM_16", 11025, 2),
    ("wav", "PCM_24", 44100, 1),
    ("wav", "PCM_32", 48000, 6),
    ("wav", "FLOAT", 22050, 2),
    ("wav", "DOUBLE", 96000, 1),
    ("flac", "PCM_16", 16000, 2),
    ("flac", "PCM_24", 32000, 1),
    ("ogg", "VORBIS", 44100, 2),
    ("mp3", "MPEG_LAYER_III", 44100, 2),
    ("mp3", "MPEG_LAYER_III", 16000, 1),
]


@pytest.mark.parametrize(("ext", "subtype", "rate", "channels"), FORMATS)
def test_every_accepted_format_becomes_8_khz_mono_normalised_and_trimmed(
    tmp_path: Path, ext: str, subtype: str, rate: int, channels: int
) -> None:
    mono = program(rate)
    data = np.repeat(mono[:, np.newaxis], channels, axis=1)
    path = tmp_path / f"in.{ext}"
    soundfile.write(path, data, rate, subtype=subtype)
    prompt = load_prompt(path, target_dbfs=-20.0, peak_dbfs=-1.0)
    assert prompt.samples.dtype == np.int16
    assert prompt.samples.ndim == 1
    # 0.3 s of lead and 0.4 s of tail trimmed, to within 20 ms (lossy coders add a little).
    lossy = ext in ("ogg", "mp3")
    # (one 10 ms block of margin is kept at each end).
    assert prompt.duration == pytest.approx(1.5, abs=0.06 if lossy else 0.04)
    assert gated_level(prompt.samples) == pytest.approx(-20.0, abs=0.3)
    assert np.abs(prompt.samples).max() <= round(32767 * 10 ** (-1 / 20)) + 1
    assert dominant_frequency(prompt.samples) == pytest.approx(440, abs=3)
    assert prompt.name == "in"
    assert prompt.frame_count == -(-prompt.samples.size // 160)


def test_a_file_made_by_sox_is_accepted(tmp_path: Path) -> None:
    sox = shutil.which("sox")
    assert sox is not None, "sox is required (Debian package sox)"
    path = tmp_path / "sox.wav"
    subprocess.run(
        [sox, "-n", "-r", "44100", "-c", "2", "-b", "24", str(path), "synth", "2", "sine", "700"],
        check=True,
    )
    prompt = load_prompt(path)
    assert prompt.duration == pytest.approx(2.0, abs=0.02)
    assert dominant_frequency(prompt.samples) == pytest.approx(700, abs=3)


def test_encoded_frames_are_the_g711_of_the_samples_padded_with_silence(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    soundfile.write(path, program(8000, seconds=0.333, lead=0, tail=0), 8000)
    prompt = load_prompt(path)
    for codec, silence in (("PCMU", 0xFF), ("PCMA", 0xD5)):
        data = prompt.encoded(codec)
        assert len(data) == prompt.frame_count * 160
        np.testing.assert_array_equal(
            g711.decode(codec, data[: prompt.samples.size]),
            g711.decode(codec, g711.encode(codec, prompt.samples)),
        )
        assert set(data[prompt.samples.size :]) <= {silence}
        last = prompt.frame_count - 1
        assert prompt.frame(codec, last) == data[last * 160 :]


def test_peaks_are_limited_to_the_ceiling(tmp_path: Path) -> None:
    # Quiet speech-like body with a few loud clicks: the gain to reach the target would clip.
    rate = 8000
    x = program(rate, lead=0, tail=0) * 0.2
    x[2000:2003] = 0.95
    x[6000:6003] = -0.95
    path = tmp_path / "clicks.wav"
    soundfile.write(path, x, rate, subtype="FLOAT")
    prompt = load_prompt(path, target_dbfs=-16.0, peak_dbfs=-3.0)
    ceiling = 32767 * 10 ** (-3 / 20)
    assert np.abs(prompt.samples).max() <= ceiling + 1
    # The clicks count in the measured loudness, and the limiter takes them out: within 1 dB.
    assert gated_level(prompt.samples) == pytest.approx(-16.0, abs=1.0)
    # Away from the clicks the limiter leaves the waveform alone: a constant gain.
    ratio = prompt.samples[4000:5000] / np.where(x[4000:5000] == 0, 1, x[4000:5000])
    assert np.ptp(ratio[np.abs(x[4000:5000]) > 0.01]) < 0.01 * np.median(ratio)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "missing.wav: cannot read"),
        (lambda d: _write(d / "empty.wav", b""), "empty.wav: file is empty"),
        (lambda d: _write(d / "junk.mp3", b"not audio at all" * 100), "junk.mp3: not a readable"),
        (lambda d: d, "cannot read|not a readable"),
    ],
)
def test_unreadable_files_raise_prompt_error_naming_the_file(
    tmp_path: Path, make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(PromptError, match=message):
        load_prompt(path)


def test_truncated_and_headerless_wav_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    soundfile.write(good, program(8000), 8000)
    header_only = _write(tmp_path / "header.wav", good.read_bytes()[:44])
    with pytest.raises(PromptError, match=r"header\.wav: (file holds no audio|not a readable)"):
        load_prompt(header_only)
    cut = _write(tmp_path / "cut.wav", good.read_bytes()[:30])
    with pytest.raises(PromptError, match=r"cut\.wav: not a readable"):
        load_prompt(cut)


def test_silent_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "silent.flac"
    soundfile.write(path, np.zeros(16000), 16000)
    with pytest.raises(PromptError, match=r"silent\.flac: file is silent"):
        load_prompt(path)
    hiss = tmp_path / "hiss.wav"
    soundfile.write(hiss, np.random.default_rng(1).normal(0, 1e-4, 16000), 16000)
    with pytest.raises(PromptError, match=r"hiss\.wav: file is silent"):
        load_prompt(hiss)


def test_too_long_file_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(8000 * 301, dtype=np.int16), 8000)
    with pytest.raises(
        PromptError, match=r"long.wav: 301.0 s long, longer than the limit of 300 s"
    ):
        load_prompt(path)
    short = tmp_path / "short.wav"
    soundfile.write(short, program(8000, seconds=2.0), 8000)
    with pytest.raises(PromptError, match=r"limit of 1\.5 s"):
        load_prompt(short, max_seconds=1.5)


def test_too_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    soundfile.write(path, program(8000), 8000)
    with pytest.raises(
        PromptError, match=r"big\.wav: file is .* bytes, larger than the limit of 1000"
    ):
        load_prompt(path, max_bytes=1000)


def test_cache_serves_the_second_load_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.ogg"
    soundfile.write(path, program(44100), 44100, subtype="VORBIS")
    cache = tmp_path / "cache"
    first = load_prompt(path, cache_dir=cache)
    assert [p.name for p in cache.iterdir()] == [f"{first.digest}.npz"]

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(soundfile, "SoundFile", no_decoding)
    second = load_prompt(path, cache_dir=cache)
    np.testing.assert_array_equal(second.samples, first.samples)
    assert second.encoded("PCMA") == first.encoded("PCMA")
    monkeypatch.undo()
    # Other settings, or other bytes, are another entry.
    assert load_prompt(path, cache_dir=cache, target_dbfs=-24.0).digest != first.digest
    assert len(list(cache.iterdir())) == 2


def test_a_corrupt_cache_entry_is_converted_again(tmp_path: Path) -> None:
    path = tmp_path / "p.wav"
    soundfile.write(path, program(8000), 8000)
    cache = tmp_path / "cache"
    first = load_prompt(path, cache_dir=cache)
    (cache / f"{first.digest}.npz").write_bytes(b"garbage")
    again = load_prompt(path, cache_dir=cache)
    np.testing.assert_array_equal(again.samples, first.samples)


def test_text_is_synthesised_in_the_language_and_kept_on_record(tmp_path: Path) -> None:
    text = "Pour ne plus recevoir nos appels, appuyez sur la touche neuf."
    prompt = prompt_from_text(text, "fr", tmp_path, name="optout")
    assert prompt.text == text
    assert prompt.name == "optout"
    assert 2.0 < prompt.duration < 8.0
    assert gated_level(prompt.samples) == pytest.approx(-20.0, abs=0.5)
    english = prompt_from_text("Press nine.", "en", tmp_path)
    assert english.duration < prompt.duration


@pytest.mark.parametrize(
    ("text", "language", "message"),
    [
        ("hello", "--help", "not a language name"),
        ("hello", "en; rm", "not a language name"),
        ("   ", "en", "text is empty"),
        ("hello", "xx-nolang", "espeak-ng failed"),
    ],
)
def test_synthesis_errors_are_prompt_errors(
    tmp_path: Path, text: str, language: str, message: str
) -> None:
    with pytest.raises(PromptError, match=message):
        synthesize(text, language, tmp_path / "out.wav")
