"""In-band DTMF detection (ITU-T Q.23 tones, Q.24 reception limits) with numpy Goertzel sums.

Each of the eight DTMF frequencies is measured every 5 ms over its own window, of about
23 / f seconds: long enough that a tone 3.5 % off frequency sits at 0.8 of a DFT bin (-13 dB,
rejected) while one 1.5 % off sits at 0.35 of a bin (-2 dB, accepted). The single-frequency DFT
over every window at once is a difference of two cumulative sums of the demodulated signal,
which is what the Goertzel recurrence computes one window at a time.

A 5 ms step is a *hit* for digit d when (Q.24 section 2 and the usual talk-off guards):

- the strongest row and column frequencies together hold at least half the window's energy
  (speech and music spread theirs; a 15 dB SNR tone pair keeps over 0.6 even 1.5 % off);
- each of them holds at least 6.5 % (the weak tone of an 8 dB twist, 1.5 % off, holds 9 %);
- each is above the sensitivity floor, about -40 dBm0;
- the twist (row power over column power) is within +12 dB (normal) and -8 dB (reverse),
  Q.24's 8 and 4 dB with room for a tolerated frequency offset (2 dB) and noise.

A press is reported after three consecutive hits of the same digit (40 ms tones give five or
more) and ends after three steps without it (a 40 ms pause gives eight), so two presses of the
same key 40 ms apart count twice and a 5 ms dropout does not split a press.

:class:`ToneDetector` runs many streams at once: ``feed`` takes a 2-D block (stream, sample),
so one tick of the send clock costs the same few numpy calls for one stream or a thousand;
:class:`~gateway.media.tonebank.ToneBank` feeds it the audio of the calls in progress.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .events import DtmfReceived

__all__ = ["DIGITS", "HIGH_GROUP", "LOW_GROUP", "ToneDetector", "detect_tones"]

#: Q.23 frequencies, Hz: the low (row) and high (column) groups.
LOW_GROUP = (697.0, 770.0, 852.0, 941.0)
HIGH_GROUP = (1209.0, 1336.0, 1477.0, 1633.0)
#: DIGITS[row][column]
DIGITS = ("123A", "456B", "789C", "*0#D")

#: A G.711 sine at 0 dBm0 peaks at 22,363 (3.17 dB below the coder's overload point).
_DBM0_POWER = 22363.0**2 / 2
_MIN_TONE_POWER = _DBM0_POWER * 10 ** (-40 / 10)
_MIN_PAIR_FRACTION = 0.5
_MIN_TONE_FRACTION = 0.065
_MAX_NORMAL_TWIST_DB = 12.0
_MAX_REVERSE_TWIST_DB = 8.0
#: Largest second-harmonic share, relative to the fundamental's (-10 dB).
_MAX_HARMONIC = 0.1
_ON_STEPS = 3
_OFF_STEPS = 3
#: Window length in periods of the frequency's bin: 1.5 % off lands at 0.35 of a bin.
_WINDOW_CYCLES = 0.35 / 0.015


class ToneDetector:
    """Streaming DTMF detector for ``streams`` parallel streams at ``sample_rate``.

    Media times are counted from the first sample fed. Results lag the audio by about 35 ms.
    """

    def __init__(self, streams: int = 1, sample_rate: int = 8000) -> None:
        if sample_rate < 4000:
            raise ValueError(f"sample rate {sample_rate} Hz cannot carry DTMF (1633 Hz)")
        self.streams = streams
        self.sample_rate = sample_rate
        self.step = round(sample_rate * 0.005)
        freqs = np.array(LOW_GROUP + HIGH_GROUP)
        # Windows are whole numbers of half-steps, so that a window is a run of sub-blocks
        # whose single-bin DFTs one matrix product computes (see _fundamentals).
        self._sub = self.step // 2
        self._blocks = np.round(_WINDOW_CYCLES * sample_rate / freqs / self._sub).astype(np.int64)
        self._lengths = self._blocks * self._sub
        self._block_bases: dict[int, npt.NDArray[np.float64]] = {}
        half_max = int(self._lengths.max() + 1) // 2
        # History of 2 * ceil(max half window / step) steps: every window around the centres of
        # this call's steps starts inside it (see feed()).
        self._history = 2 * math.ceil(half_max / self.step) * self.step
        self._omega = 2 * np.pi * freqs / sample_rate
        self._buffer = np.zeros((streams, self._history), dtype=np.float64)
        bins = sample_rate / (self._lengths[:4] // 2)  # bin width of the harmonic windows, Hz
        self._row_harmonic_clear = np.array(
            [
                abs(2 * LOW_GROUP[r] - HIGH_GROUP[c]) > 1.5 * bins[r]
                for r in range(4)
                for c in range(4)
            ]
        )
        self._pending = np.zeros((streams, 0), dtype=np.float64)
        self._samples_done = np.zeros(streams, dtype=np.int64)  # samples consumed, per stream
        self._current = np.full(streams, -1, dtype=np.int64)
        self._candidate = np.full(streams, -1, dtype=np.int64)
        self._count = np.zeros(streams, dtype=np.int64)
        self._off = np.zeros(streams, dtype=np.int64)
        self._cand_start = np.zeros(streams, dtype=np.float64)
        self._phasors: dict[tuple[int, int, int], npt.NDArray[np.complex128]] = {}

    def reset(self, stream: int) -> None:
        """Forget stream ``stream`` (its slot is reused for a new call): times restart at 0."""
        self._buffer[stream] = 0.0
        self._current[stream] = self._candidate[stream] = -1
        self._count[stream] = self._off[stream] = 0
        self._samples_done[stream] = 0

    def grow(self, streams: int) -> None:
        """Make room for ``streams`` streams; the new ones start empty."""
        extra = streams - self.streams
        if extra <= 0:
            return
        self._buffer = np.concatenate([self._buffer, np.zeros((extra, self._history))])
        self._pending = np.zeros((streams, 0))
        self._samples_done = np.concatenate([self._samples_done, np.zeros(extra, np.int64)])
        self._current = np.concatenate([self._current, np.full(extra, -1, np.int64)])
        self._candidate = np.concatenate([self._candidate, np.full(extra, -1, np.int64)])
        self._count = np.concatenate([self._count, np.zeros(extra, np.int64)])
        self._off = np.concatenate([self._off, np.zeros(extra, np.int64)])
        self._cand_start = np.concatenate([self._cand_start, np.zeros(extra)])
        self.streams = streams

    def feed_rows(
        self, rows: npt.NDArray[np.int64], block: npt.NDArray[np.float64]
    ) -> list[tuple[int, DtmfReceived]]:
        """Add one block for some streams only: ``block[i]`` belongs to stream ``rows[i]``.

        The block's length must be a multiple of :attr:`step` (40 samples at 8 kHz).
        """
        if block.shape[1] % self.step or block.shape[0] != rows.size:
            raise ValueError(f"a block of {rows.size} rows and a multiple of {self.step} samples")
        return self._process(block, rows)

    def feed(self, samples: npt.ArrayLike) -> list[tuple[int, DtmfReceived]]:
        """Add ``samples`` (shape ``(streams, n)``, or ``(n,)`` for one stream).

        Returns (stream index, event) for each press confirmed in this block.
        """
        block = np.asarray(samples, dtype=np.float64)
        if block.ndim == 1:
            block = block[np.newaxis, :]
        if block.shape[0] != self.streams:
            raise ValueError(f"expected {self.streams} streams, got {block.shape[0]}")
        if self._pending.shape[1]:
            block = np.concatenate([self._pending, block], axis=1)
        usable = block.shape[1] - block.shape[1] % self.step
        self._pending = block[:, usable:]
        if usable == 0:
            return []
        return self._process(block[:, :usable], None)

    def _process(
        self, block: npt.NDArray[np.float64], rows: npt.NDArray[np.int64] | None
    ) -> list[tuple[int, DtmfReceived]]:
        if rows is None:
            rows = np.arange(self.streams)
            data = np.concatenate([self._buffer, block], axis=1)
            self._buffer = data[:, -self._history :]
        else:
            data = np.concatenate([self._buffer[rows], block], axis=1)
            self._buffer[rows] = data[:, -self._history :]
        n_steps = block.shape[1] // self.step
        # Step centres, relative to data[0]: the first at history / 2; with T = the start of the
        # block, centre j sits at T - history / 2 + j * step in absolute samples.
        centres = self._history // 2 + self.step * np.arange(n_steps)
        all_ratios, all_powers = self._fundamentals(data, centres)
        codes = self._classify(all_ratios, all_powers)
        hits = np.flatnonzero((codes >= 0).any(axis=1))
        if hits.size:
            # Talk-off guard, only where a pair was found: a DTMF generator's second harmonics
            # are 20 dB down or more (Q.23 section 4), a voice's or an instrument's are not.
            found = data[hits]
            energy_cum = np.concatenate(
                [np.zeros((hits.size, 1)), np.cumsum(found * found, axis=1)], axis=1
            )
            ratios = all_ratios[hits]
            ratios2, _ = self._measure(found, energy_cum, centres, harmonic=2)
            found_codes = codes[hits]
            row = np.where(found_codes >= 0, found_codes // 4, 0)
            col = np.where(found_codes >= 0, 4 + found_codes % 4, 4)
            fund_r = np.take_along_axis(ratios, row[:, np.newaxis, :], axis=1)[:, 0, :]
            fund_c = np.take_along_axis(ratios, col[:, np.newaxis, :], axis=1)[:, 0, :]
            harm_r = np.take_along_axis(ratios2, row[:, np.newaxis, :], axis=1)[:, 0, :]
            harm_c = np.take_along_axis(ratios2, col[:, np.newaxis, :], axis=1)[:, 0, :]
            # A row's harmonic that falls within 1.5 bins of the column tone would measure that
            # tone's leakage: those rows are judged by their column's harmonic alone.
            row_checked = self._row_harmonic_clear[np.where(found_codes >= 0, found_codes, 0)]
            harmonic = (row_checked & (harm_r > fund_r * _MAX_HARMONIC)) | (
                harm_c > fund_c * _MAX_HARMONIC
            )
            codes[hits] = np.where(harmonic, -1, found_codes)
        first_centre = self._samples_done[rows] - self._history // 2
        self._samples_done[rows] += block.shape[1]
        return self._track(codes, first_centre, rows)

    def _fundamentals(
        self, data: npt.NDArray[np.float64], centres: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Share of the window's energy and power at each DTMF frequency, at each centre.

        The signal is cut into sub-blocks of half a step; one stacked matrix product gives every
        sub-block's DFT at the eight frequencies (phases counted from the start of ``data``),
        and running sums over sub-blocks give every window's. It is the arithmetic of Goertzel's
        sum, in an order numpy runs fast for a thousand streams at once.
        """
        streams, n = data.shape
        nb = n // self._sub
        # (sub-block, stream, sample) @ (sub-block, sample, cos 8 | -sin 8)
        blocks = data[:, : nb * self._sub].reshape(streams, nb, self._sub).transpose(1, 0, 2)
        projected = np.matmul(blocks, self._block_basis(nb))
        running = np.empty((nb + 1, streams, 16))
        running[0] = 0.0
        for b in range(nb):  # a loop of nb vector adds beats np.cumsum on this layout
            np.add(running[b], projected[b], out=running[b + 1])
        squares = np.einsum("bsn,bsn->bs", blocks, blocks)
        energy = np.empty((nb + 1, streams))
        energy[0] = 0.0
        np.cumsum(squares, axis=0, out=energy[1:])
        starts = (centres // self._sub)[:, np.newaxis] - self._blocks // 2  # (step, frequency)
        ends = starts + self._blocks
        k = np.arange(8)
        re = running[ends, :, k] - running[starts, :, k]  # (step, frequency, stream)
        im = running[ends, :, k + 8] - running[starts, :, k + 8]
        mag2 = re * re + im * im
        window_energy = energy[ends] - energy[starts]
        lengths = self._lengths.astype(np.float64)[np.newaxis, :, np.newaxis]
        # A sine of amplitude A fills |X|^2 = (A L / 2)^2 and energy L A^2 / 2: ratio 1 for a
        # pure tone, its share of the energy otherwise.
        ratios = mag2 / np.maximum(window_energy * (lengths / 2), 1e-9)
        powers = 2 * mag2 / (lengths * lengths)
        # to (stream, frequency, step)
        return ratios.transpose(2, 1, 0), powers.transpose(2, 1, 0)

    def _block_basis(self, nb: int) -> npt.NDArray[np.float64]:
        basis = self._block_bases.get(nb)
        if basis is None:
            n = np.arange(nb * self._sub).reshape(nb, self._sub, 1)
            angle = n * self._omega
            basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=2)
            if len(self._block_bases) > 64:
                self._block_bases.clear()
            self._block_bases[nb] = basis
        return basis

    def _measure(
        self,
        data: npt.NDArray[np.float64],
        energy_cum: npt.NDArray[np.float64],
        centres: npt.NDArray[np.int64],
        harmonic: int,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Share of the window's energy and power at ``harmonic`` times each DTMF frequency."""
        streams, n = data.shape
        ratios = np.empty((streams, 8, centres.size))
        powers = np.empty((streams, 8, centres.size))
        zero = np.zeros((streams, 1), dtype=np.complex128)
        for k, full in enumerate(self._lengths.tolist()):
            # Same resolution relative to the frequency: a note 2 % off has its harmonic 2 % off.
            length = full // harmonic
            phasor = self._phasor(k, harmonic, n)
            cum = np.concatenate([zero, np.cumsum(data * phasor, axis=1)], axis=1)
            starts = centres - length // 2
            ends = starts + length
            spectrum = cum[:, ends] - cum[:, starts]
            mag2 = spectrum.real**2 + spectrum.imag**2
            energy = energy_cum[:, ends] - energy_cum[:, starts]
            # A sine of amplitude A fills |X|^2 = (A L / 2)^2 and energy L A^2 / 2: ratio 1 for a
            # pure tone, its share of the energy otherwise.
            ratios[:, k, :] = mag2 / np.maximum(energy * (length / 2), 1e-9)
            powers[:, k, :] = 2 * mag2 / float(length * length)
        return ratios, powers

    def _phasor(self, k: int, harmonic: int, n: int) -> npt.NDArray[np.complex128]:
        key = (k, harmonic, n)
        phasor = self._phasors.get(key)
        if phasor is None:
            phasor = np.exp(-1j * harmonic * self._omega[k] * np.arange(n))
            if len(self._phasors) > 64:  # feed() sizes vary only in tests and detect_tones()
                self._phasors.clear()
            self._phasors[key] = phasor
        return phasor

    def _classify(
        self, ratios: npt.NDArray[np.float64], powers: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        """Digit index 0..15 per (stream, step), or -1."""
        row = np.argmax(ratios[:, :4, :], axis=1)
        col = np.argmax(ratios[:, 4:, :], axis=1)
        r_ratio = np.take_along_axis(ratios[:, :4, :], row[:, np.newaxis, :], axis=1)[:, 0, :]
        c_ratio = np.take_along_axis(ratios[:, 4:, :], col[:, np.newaxis, :], axis=1)[:, 0, :]
        r_power = np.take_along_axis(powers[:, :4, :], row[:, np.newaxis, :], axis=1)[:, 0, :]
        c_power = np.take_along_axis(powers[:, 4:, :], col[:, np.newaxis, :], axis=1)[:, 0, :]
        twist = 10 * np.log10(np.maximum(r_power, 1e-12) / np.maximum(c_power, 1e-12))
        hit = (
            (r_ratio + c_ratio >= _MIN_PAIR_FRACTION)
            & (r_ratio >= _MIN_TONE_FRACTION)
            & (c_ratio >= _MIN_TONE_FRACTION)
            & (r_power >= _MIN_TONE_POWER)
            & (c_power >= _MIN_TONE_POWER)
            & (twist <= _MAX_NORMAL_TWIST_DB)
            & (twist >= -_MAX_REVERSE_TWIST_DB)
        )
        return np.where(hit, row * 4 + col, -1).astype(np.int64)

    def _track(
        self,
        codes: npt.NDArray[np.int64],
        first_centre: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
    ) -> list[tuple[int, DtmfReceived]]:
        events: list[tuple[int, DtmfReceived]] = []
        # Only streams with a hit or a press in progress need the per-step state machine.
        busy = (codes >= 0).any(axis=1) | (self._current[rows] >= 0) | (self._candidate[rows] >= 0)
        for i in np.flatnonzero(busy).tolist():
            s = int(rows[i])
            current = int(self._current[s])
            candidate = int(self._candidate[s])
            count = int(self._count[s])
            off = int(self._off[s])
            cand_start = float(self._cand_start[s])
            origin = int(first_centre[i])
            for j, code in enumerate(codes[i].tolist()):
                if code == candidate:
                    count += 1
                else:
                    candidate, count = code, 1
                    cand_start = (origin + j * self.step) / self.sample_rate
                if current >= 0:
                    off = 0 if code == current else off + 1
                    if off >= _OFF_STEPS:
                        current = -1
                if candidate >= 0 and count == _ON_STEPS and candidate != current:
                    current, off = candidate, 0
                    digit = DIGITS[candidate // 4][candidate % 4]
                    events.append((s, DtmfReceived(digit, "inband", max(cand_start, 0.0))))
            self._current[s] = current
            self._candidate[s] = candidate
            self._count[s] = count
            self._off[s] = off
            self._cand_start[s] = cand_start
        events.sort(key=lambda e: e[1].media_time)
        return events


def detect_tones(samples: npt.ArrayLike, sample_rate: int = 8000) -> list[DtmfReceived]:
    """The DTMF key presses in ``samples`` (mono), each with ``.digit`` and ``.start`` (s)."""
    audio = np.asarray(samples, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError("detect_tones takes one channel")
    detector = ToneDetector(1, sample_rate)
    # Trailing silence flushes the steps whose windows reach past the end of the audio.
    tail = np.zeros(detector._history + _ON_STEPS * detector.step)
    return [event for _, event in detector.feed(np.concatenate([audio, tail]))]
