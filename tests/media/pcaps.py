"""Read the UDP payloads of a classic pcap file (Ethernet or Linux cooked, IPv4), for tests."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.paths import PEER_PCAPS, SIPP_PCAPS

__all__ = ["PEER_PCAPS", "SIPP_PCAPS", "udp_payloads"]


def udp_payloads(path: Path) -> list[tuple[float, int, bytes]]:
    """(capture time, destination port, UDP payload) of every IPv4 UDP packet in ``path``."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    link_header = {1: 14, 113: 16, 101: 0}[linktype]
    pos = 24
    out = []
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[link_header:]
        if not ip or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        _, dport, length, _ = struct.unpack_from("!HHHH", ip, ihl)
        out.append((sec + frac / (1e9 if nano else 1e6), dport, ip[ihl + 8 : ihl + length]))
    return out
