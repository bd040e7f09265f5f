"""G.711 against the standard library's audioop, on every input of every table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gateway.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encoder_is_bit_exact_on_all_65536_inputs() -> None:
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encoder_is_bit_exact_on_all_65536_inputs() -> None:
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_decoder_is_bit_exact_on_all_256_codes() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    decoded = g711.ulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


def test_alaw_decoder_is_bit_exact_on_all_256_codes() -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype=np.int16)
    decoded = g711.alaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_decode_then_encode_returns_every_code(codec: str) -> None:
    # Each code decodes to a value inside its own step, so re-encoding is the identity
    # (but for the two zero codes of mu-law, which G.711 maps to one).
    codes = ALL_CODES
    again = g711.encode(codec, g711.decode(codec, codes))
    differing = [c for c, d in zip(codes, again, strict=True) if c != d]
    assert differing == ([0x7F] if codec == "PCMU" else [])


@pytest.mark.parametrize(("codec", "byte"), [("PCMU", 0xFF), ("PCMA", 0xD5)])
def test_zero_encodes_to_the_silence_byte(codec: str, byte: int) -> None:
    assert g711.encode(codec, np.zeros(160, dtype=np.int16)) == bytes([byte]) * 160
    assert g711.silence_byte(codec) == byte


def test_encoder_accepts_wider_integer_arrays_in_range_and_rejects_others() -> None:
    assert g711.ulaw_encode(np.array([0, 1000, -1000], dtype=np.int64)) == g711.ulaw_encode(
        np.array([0, 1000, -1000], dtype=np.int16)
    )
    with pytest.raises(ValueError, match="out of range"):
        g711.ulaw_encode(np.array([40000]))
    with pytest.raises(ValueError, match="float"):
        g711.alaw_encode(np.array([0.5]))


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="G722"):
        g711.encode("G722", np.zeros(1, dtype=np.int16))
