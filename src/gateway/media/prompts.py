"""Prompts: any audio file, or text, made once into 8 kHz mono G.711 frames of 20 ms.

:func:`load_prompt` reads WAV (8 to 32-bit PCM, float), FLAC, Ogg Vorbis or MP3 through
libsndfile, downmixes to mono, resamples to 8 kHz with soxr, trims leading and trailing silence,
normalises the loudness to a target and limits the peaks, then encodes PCMU and PCMA. The result
is cached on disk under the SHA-256 of the file's bytes and of the settings, so a campaign's
prompts are converted once, and sending a packet is slicing a buffer (ARCHITECTURE.md section 3).

Loudness is measured as in ITU-R BS.1770-4 section 2 without its K-weighting (the telephone band
makes it moot): the mean power of 400 ms blocks, gated at -70 dBFS and then 10 dB below the
ungated mean, so pauses between words do not raise the gain.

:func:`synthesize` is the one place that runs espeak-ng, for announcement segments given as
text in the campaign's language: a file-preparation step, not network I/O.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from . import g711

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Prompt",
    "PromptError",
    "load_prompt",
    "prompt_from_text",
    "synthesize",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms, RFC 3551 section 4.5 default packetisation for G.711
CODECS = ("PCMU", "PCMA")
_CACHE_VERSION = b"prompt-v1"
_SILENCE_DBFS = -60.0  # a block quieter than this is silence whatever the file's level
_TRIM_BELOW_PEAK_DB = 45.0  # and so is one this far below the loudest 10 ms of the file
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*(?:\+[A-Za-z0-9_-]+)?$")


class PromptError(ValueError):
    """A prompt cannot be made; the message names the file (or text) and the problem."""


@dataclass(frozen=True)
class Prompt:
    """A prepared prompt: 8 kHz mono int16 samples and their G.711 encodings.

    ``text`` keeps the words of a synthesised prompt, so what was said is on record.
    """

    name: str
    samples: npt.NDArray[np.int16]
    digest: str
    text: str | None = None
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def duration(self) -> float:
        """Seconds of audio, after trimming."""
        return self.samples.size / SAMPLE_RATE

    @property
    def frame_count(self) -> int:
        """Number of 20 ms frames (the last one padded with silence)."""
        return -(-self.samples.size // FRAME_SAMPLES)

    def encoded(self, codec: str) -> bytes:
        """All frames in ``codec``, back to back: frame i is ``[160 * i : 160 * (i + 1)]``."""
        data = self._encoded.get(codec)
        if data is None:
            padded = np.zeros(self.frame_count * FRAME_SAMPLES, dtype=np.int16)
            padded[: self.samples.size] = self.samples
            data = g711.encode(codec, padded)
            self._encoded[codec] = data
        return data

    def frame(self, codec: str, index: int) -> bytes:
        """The payload of frame ``index`` in ``codec``."""
        start = index * FRAME_SAMPLES
        return self.encoded(codec)[start : start + FRAME_SAMPLES]


def _fail(source: str | Path, problem: str) -> PromptError:
    return PromptError(f"prompt {source}: {problem}")


def load_prompt(
    path: str | Path,
    *,
    target_dbfs: float = -20.0,
    peak_dbfs: float = -1.0,
    max_seconds: float = 300.0,
    max_bytes: int = 50_000_000,
    cache_dir: str | Path | None = None,
    name: str | None = None,
    text: str | None = None,
) -> Prompt:
    """Read an audio file into a :class:`Prompt`; raise :class:`PromptError` if it cannot be.

    ``target_dbfs`` is the gated loudness aimed at (full-scale sine = -3 dBFS), ``peak_dbfs``
    the ceiling of the limiter; ``max_seconds`` and ``max_bytes`` bound the file.
    """
    source = Path(path)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise _fail(source, f"cannot read: {exc.strerror or exc}") from exc
    if size == 0:
        raise _fail(source, "file is empty")
    if size > max_bytes:
        raise _fail(source, f"file is {size} bytes, larger than the limit of {max_bytes}")
    try:
        content = source.read_bytes()
    except OSError as exc:
        raise _fail(source, f"cannot read: {exc.strerror or exc}") from exc
    settings = f"{target_dbfs}|{peak_dbfs}|{max_seconds}".encode()
    digest = hashlib.sha256(_CACHE_VERSION + settings + b"\0" + content).hexdigest()
    label = name or source.stem
    cached = _cache_path(cache_dir, digest)
    if cached is not None and cached.exists():
        try:
            with np.load(cached) as archive:
                samples = archive["samples"].astype(np.int16)
                encoded = {c: archive[c].tobytes() for c in CODECS if c in archive}
            return Prompt(label, samples, digest, text, encoded)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("prompt cache %s unreadable (%s): converting again", cached, exc)
    try:
        with soundfile.SoundFile(source) as audio:
            rate = audio.samplerate
            if audio.frames == 0:
                raise _fail(source, "file holds no audio")
            seconds = audio.frames / rate
            if seconds > max_seconds:
                raise _fail(
                    source, f"{seconds:.1f} s long, longer than the limit of {max_seconds:g} s"
                )
            data = audio.read(dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _fail(source, f"not a readable audio file ({exc})") from exc
    if data.size == 0:
        raise _fail(source, "file holds no audio")
    samples = _prepare(data, rate, target_dbfs, peak_dbfs, source)
    prompt = Prompt(label, samples, digest, text)
    if cached is not None:
        _store(cached, prompt)
    return prompt


def _prepare(
    data: npt.NDArray[np.float64],
    rate: int,
    target_dbfs: float,
    peak_dbfs: float,
    source: Path,
) -> npt.NDArray[np.int16]:
    mono = data.mean(axis=1)  # downmix: the channels' average keeps a centred voice's level
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    mono = _trim(mono)
    if mono.size == 0:
        raise _fail(source, "file is silent")
    loudness = _gated_loudness(mono)
    gain = 10 ** ((target_dbfs - loudness) / 20)
    limited = _limit(mono * gain, 10 ** (peak_dbfs / 20))
    return np.round(limited * 32767).astype(np.int16)


def _trim(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Drop leading and trailing 10 ms blocks that are silent, keeping one block of margin."""
    block = SAMPLE_RATE // 100
    n = x.size // block
    if n == 0:
        return x if np.max(np.abs(x), initial=0.0) > 10 ** (_SILENCE_DBFS / 20) else x[:0]
    power = np.mean(x[: n * block].reshape(n, block) ** 2, axis=1)
    level = 10 * np.log10(np.maximum(power, 1e-20))
    threshold = max(_SILENCE_DBFS, float(level.max()) - _TRIM_BELOW_PEAK_DB)
    loud = np.flatnonzero(level > threshold)
    if loud.size == 0:
        return x[:0]
    first = max(int(loud[0]) - 1, 0)
    last = min(int(loud[-1]) + 2, n)
    end = x.size if last == n else last * block
    return x[first * block : end]


def _gated_loudness(x: npt.NDArray[np.float64]) -> float:
    """Gated mean power in dBFS (BS.1770-4 gating: 400 ms blocks, 75 % overlap)."""
    size, hop = int(0.4 * SAMPLE_RATE), int(0.1 * SAMPLE_RATE)
    if x.size <= size:
        powers = np.array([np.mean(x**2)])
    else:
        windows = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
        powers = np.mean(windows**2, axis=1)
    # Full scale is a square wave here; a full-scale sine reads -3 dBFS.
    powers = powers[powers > 10 ** (-70 / 10)]  # absolute gate
    if powers.size == 0:
        return -70.0
    relative = np.mean(powers) * 10 ** (-10 / 10)  # relative gate, 10 dB below
    gated = powers[powers >= relative]
    return float(10 * np.log10(np.mean(gated if gated.size else powers)))


def _limit(x: npt.NDArray[np.float64], ceiling: float) -> npt.NDArray[np.float64]:
    """Peak limiter: a smoothed gain that never lets a sample pass ``ceiling``.

    The needed gain is min-filtered over 4 ms, then averaged over 2 ms: every average then
    holds only gains at or below what its centre sample needs, so no sample is over, and the
    gain moves without clicks.
    """
    magnitude = np.abs(x)
    if magnitude.max(initial=0.0) <= ceiling:
        return x
    need = np.minimum(1.0, ceiling / np.maximum(magnitude, 1e-12))
    radius = SAMPLE_RATE // 1000 * 2
    padded = np.pad(need, radius, mode="edge")
    floor = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).min(axis=1)
    half = radius // 2
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    smooth = np.convolve(np.pad(floor, half, mode="edge"), kernel, mode="valid")
    return np.clip(x * smooth, -ceiling, ceiling)


def _cache_path(cache_dir: str | Path | None, digest: str) -> Path | None:
    return None if cache_dir is None else Path(cache_dir) / f"{digest}.npz"


def _store(path: Path, prompt: Prompt) -> None:
    """Write the cache entry atomically: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(
                out,
                samples=prompt.samples,
                PCMU=np.frombuffer(prompt.encoded("PCMU"), dtype=np.uint8),
                PCMA=np.frombuffer(prompt.encoded("PCMA"), dtype=np.uint8),
            )
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        log.warning("prompt cache %s not written: %s", path, exc)


def synthesize(text: str, language: str, output: str | Path) -> Path:
    """Speak ``text`` in ``language`` (an espeak-ng voice: ``en``, ``fr``, ``en-us``...) into
    the WAV file ``output``; raise :class:`PromptError` if espeak-ng cannot.

    The text goes through standard input, never the command line, so no text is an option.
    """
    if not text.strip():
        raise PromptError("prompt text is empty")
    if not _LANGUAGE.match(language):
        raise PromptError(f"prompt text: {language!r} is not a language name")
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptError("prompt text: espeak-ng is not installed (Debian package espeak-ng)")
    out = Path(output)
    result = subprocess.run(
        [espeak, "-v", language, "-w", str(out), "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
        raise PromptError(f"prompt text in {language}: espeak-ng failed: {message}")
    return out


def prompt_from_text(
    text: str,
    language: str,
    work_dir: str | Path,
    *,
    name: str = "text",
    target_dbfs: float = -20.0,
    peak_dbfs: float = -1.0,
    cache_dir: str | Path | None = None,
) -> Prompt:
    """Synthesise ``text`` and load it as a prompt that keeps the words in ``.text``."""
    key = hashlib.sha256(f"{language}\0{text}".encode()).hexdigest()[:16]
    wav = synthesize(text, language, Path(work_dir) / f"tts-{key}.wav")
    return load_prompt(
        wav,
        target_dbfs=target_dbfs,
        peak_dbfs=peak_dbfs,
        cache_dir=cache_dir,
        name=name,
        text=text,
    )
