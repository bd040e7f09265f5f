"""G.711 mu-law and A-law (ITU-T G.711, 1988), as numpy lookup tables.

Both encoders map every 16-bit linear sample through a 65,536-entry table built once at import,
and both decoders through a 256-entry table, so encoding a 20 ms frame is one fancy index. The
tables follow the segment (chord) and step layout of G.711 tables 1a and 2a; the tests check
them against the standard library's ``audioop`` on every input.

16-bit input is reduced to the 14-bit (mu-law) or 13-bit (A-law) range of the standard by an
arithmetic right shift, which is what the reference implementations (and ``audioop``) do.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_SILENCE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "silence_byte",
    "ulaw_decode",
    "ulaw_encode",
]

Samples = npt.NDArray[np.int16]

#: The code of a zero sample: what a silent frame is filled with.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

# mu-law: the magnitude is biased by 33 (in 14-bit units) so that segment k covers
# [2**(k+5), 2**(k+6)); G.711 table 2a, with the clip at 8159 of the 14-bit range.
_ULAW_BIAS = 33
_ULAW_CLIP = 8159


def _build_ulaw_encoder() -> npt.NDArray[np.uint8]:
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 16-bit -> 14-bit
    negative = linear < 0
    magnitude = np.minimum(np.where(negative, -linear, linear), _ULAW_CLIP) + _ULAW_BIAS
    # Segment = position of the highest set bit above bit 5 (magnitude >= 33 > 2**5).
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    step = (magnitude >> (segment + 1)) & 0x0F
    # The clip value itself lands in a ninth segment: saturate it to the largest code.
    code = np.minimum((segment << 4) | step, 0x7F)
    # Codes are sent inverted (G.711 section 3.1: "all bits inverted"); the sign bit is 1 for
    # positive values after inversion.
    code = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    table = np.empty(65536, dtype=np.uint8)
    # Index the table by the sample's bit pattern as unsigned 16-bit, as encode() does.
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)] = code
    return table


def _build_ulaw_decoder() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    # Reconstruct at the middle of the step (the "decision value" of table 2a), in 16-bit units:
    # ((2*step + 33) << segment) - 33, scaled by 4 from 14 to 16 bits.
    magnitude = (((step << 3) + (_ULAW_BIAS << 2)) << segment) - (_ULAW_BIAS << 2)
    value = np.where(code & 0x80, -magnitude, magnitude)
    return value.astype(np.int16)


def _build_alaw_encoder() -> npt.NDArray[np.uint8]:
    linear = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 16-bit -> 13-bit
    negative = linear < 0
    # One's complement for negatives: A-law is symmetric around -0.5 (table 1a).
    magnitude = np.where(negative, -linear - 1, linear)
    magnitude = np.minimum(magnitude, 0x0FFF)
    # Segments 0 and 1 share the same step size; segment k >= 1 covers [2**(k+4), 2**(k+5)).
    segment = np.where(
        magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4
    )
    shift = np.maximum(segment, 1)
    step = (magnitude >> shift) & 0x0F
    code = (segment << 4) | step
    # Even bits inverted (G.711 section 2.2, "alternate digit inversion"): XOR 0x55, and the sign
    # bit is 1 for positive values.
    code = np.where(negative, code ^ 0x55, code ^ 0xD5)
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)] = code
    return table


def _build_alaw_decoder() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    # Middle of the step, in 16-bit units (13-bit value << 3).
    base = (step << 4) + 8
    magnitude = np.where(segment == 0, base, (base + 0x100) << np.maximum(segment - 1, 0))
    value = np.where(code & 0x80, magnitude, -magnitude)
    return value.astype(np.int16)


_ULAW_ENC = _build_ulaw_encoder()
_ULAW_DEC = _build_ulaw_decoder()
_ALAW_ENC = _build_alaw_encoder()
_ALAW_DEC = _build_alaw_decoder()


def _as_index(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    array = np.asarray(samples)
    if array.dtype != np.int16:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"G.711 encodes int16 samples, not {array.dtype}")
        if array.size and (array.min() < -32768 or array.max() > 32767):
            raise ValueError("G.711 encodes int16 samples: value out of range")
        array = array.astype(np.int16)
    return np.ascontiguousarray(array).view(np.uint16)


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear samples as G.711 mu-law (RFC 3551 section 4.5.14, PCMU)."""
    return bytes(_ULAW_ENC[_as_index(samples)].tobytes())


def ulaw_decode(data: bytes) -> Samples:
    """Decode G.711 mu-law octets to 16-bit linear samples."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode 16-bit linear samples as G.711 A-law (RFC 3551 section 4.5.14, PCMA)."""
    return bytes(_ALAW_ENC[_as_index(samples)].tobytes())


def alaw_decode(data: bytes) -> Samples:
    """Decode G.711 A-law octets to 16-bit linear samples."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def encode(codec: str, samples: npt.ArrayLike) -> bytes:
    """Encode for the RTP encoding name ``codec`` (``"PCMU"`` or ``"PCMA"``)."""
    if codec == "PCMU":
        return ulaw_encode(samples)
    if codec == "PCMA":
        return alaw_encode(samples)
    raise ValueError(f"unsupported codec {codec!r}: PCMU or PCMA")


def decode(codec: str, data: bytes) -> Samples:
    """Decode a payload of the RTP encoding ``codec`` (``"PCMU"`` or ``"PCMA"``)."""
    if codec == "PCMU":
        return ulaw_decode(data)
    if codec == "PCMA":
        return alaw_decode(data)
    raise ValueError(f"unsupported codec {codec!r}: PCMU or PCMA")


def silence_byte(codec: str) -> int:
    """The octet of a zero sample in ``codec``."""
    if codec == "PCMU":
        return ULAW_SILENCE
    if codec == "PCMA":
        return ALAW_SILENCE
    raise ValueError(f"unsupported codec {codec!r}: PCMU or PCMA")
