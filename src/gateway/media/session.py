"""One call's media, sans-IO: what to send at frame n, what received datagrams mean.

:class:`MediaSession` holds the RTP sender, the player, the reception statistics, the RFC 4733
receiver and a slot of the in-band :class:`~gateway.media.inband.ToneBank`, and RTCP. The
asyncio layer (``transport.py``) hands it datagrams with the time they came and asks it for the
datagram of each frame on the shared send clock; everything it reports goes to :attr:`events`.

Media time is seconds since frame 0 of the stream (``origin``), on the monotonic clock.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import g711
from .dtmf import TelephoneEventReceiver, dtmf_from_info, telephone_event_payloads
from .events import DtmfReceived, MediaEvent
from .player import Player
from .rtcp import (
    SDES_CNAME,
    Goodbye,
    ReceiverReport,
    ReceptionStats,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_compound,
)
from .rtp import RtpPacket, RtpSender
from .tonebank import ToneBank

__all__ = ["MediaSession", "StreamStats"]

FRAME_SAMPLES = 160
PTIME = 0.02
#: RFC 3550 section 6.2: 5 s minimum interval, randomised to [0.5, 1.5] times (section 6.3.1).
RTCP_INTERVAL = 5.0
#: A key reported one way is not reported again another way within this time (a phone that
#: sends both RFC 4733 events and the tones in its audio).
_SAME_PRESS = 0.5
_MAX_GAP_FILL = 8000  # samples of silence put in for lost audio, at most one second
_ULAW_SILENCE = bytes([g711.ULAW_SILENCE])
_FAST_HEADER = struct.Struct("!BHII")


@dataclass
class StreamStats:
    """Counters for the call record. ``far_*`` come from the far end's RTCP reports."""

    packets_sent: int = 0
    octets_sent: int = 0
    packets_received: int = 0
    octets_received: int = 0
    #: Packets of the far end's stream that never reached us (RFC 3550 appendix A.3).
    packets_lost: int = 0
    #: Interarrival jitter of the far end's stream, milliseconds (appendix A.8).
    jitter_ms: float = 0.0
    far_fraction_lost: float | None = None
    far_packets_lost: int | None = None
    far_jitter_ms: float | None = None
    rtt_ms: float | None = None
    #: Frames not sent because the send clock woke up late.
    frames_skipped: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    malformed: int = 0
    #: When the far end's last RTP packet came (monotonic seconds), for an RTP timeout.
    last_received: float | None = None


class MediaSession:
    """The media of one call. ``bank`` is the process's in-band detector (None: no in-band)."""

    def __init__(
        self,
        *,
        rng: random.Random,
        cname: str,
        bank: ToneBank | None = None,
        latch: bool = True,
    ) -> None:
        self._rng = rng
        self.sender = RtpSender(rng)
        self.cname = cname.encode()
        self.latch = latch
        self.events: deque[MediaEvent] = deque()
        self.stats = StreamStats()
        self.remote: tuple[str, int] | None = None
        self.rtcp_remote: tuple[str, int] | None = None
        self.origin = 0.0
        self.sending = False
        self.started = False
        #: Called with (payload type, RTP timestamp, SSRC, payload) for each G.711 packet
        #: received after the start: a recorder's hook (the demo's simulated callees).
        self.on_audio: Callable[[int, int, int, bytes], None] | None = None
        self.payload_type = 0
        self.codec = "PCMU"
        self.telephone_event_pt: int | None = None
        self.player = Player("PCMU")
        self._bank = bank
        self._slot = bank.open() if bank is not None else -1
        self._rtp_latched = False
        self._rtcp_latched = False
        self._marker = True
        self._last_frame = -1
        self._player_offset = 0
        self._dtmf_out: deque[tuple[bytes, bool]] = deque()
        self._dtmf_timestamp = 0
        self._te_receiver = TelephoneEventReceiver()
        self._sources: dict[int, ReceptionStats] = {}
        self._audio_ts: dict[int, int] = {}
        self._inband_origin: float | None = None
        self._last_press: tuple[str, str, float] | None = None
        self._next_rtcp: float | None = None
        self._sent_since_report = False
        self._sr_sent: deque[tuple[int, float]] = deque(maxlen=8)
        self._closed = False

    # --- control ------------------------------------------------------------------------

    def start(
        self,
        *,
        remote: tuple[str, int],
        payload_type: int,
        codec: str,
        telephone_event_pt: int | None,
        player: Player,
        origin: float,
        rtcp_remote: tuple[str, int] | None = None,
    ) -> None:
        """Send to ``remote`` from frame 0 at ``origin`` (the address of the SDP answer)."""
        g711.silence_byte(codec)  # ValueError on a codec we cannot send
        if player.codec != codec:
            raise ValueError(f"player encodes {player.codec}, the stream sends {codec}")
        self.payload_type = payload_type
        self.codec = codec
        self.telephone_event_pt = telephone_event_pt
        self.player = player
        self.origin = origin
        self.set_remote(remote, rtcp_remote)
        self.sending = self.started = True
        # Section 6.2: the first report after a random part of the interval (half of it).
        self._next_rtcp = origin + RTCP_INTERVAL * 0.5 * self._rng.uniform(0.5, 1.5)

    def set_remote(
        self, remote: tuple[str, int], rtcp_remote: tuple[str, int] | None = None
    ) -> None:
        """New far-end address (a re-INVITE); latching may move it again."""
        self.remote = remote
        # RFC 3550 section 11: RTCP on the next port, unless SDP says otherwise (RFC 3605).
        self.rtcp_remote = rtcp_remote or (remote[0], remote[1] + 1)
        self._rtp_latched = self._rtcp_latched = False

    def hold(self) -> None:
        """Stop sending (the far end put us on hold); the player waits where it is."""
        self.sending = False

    def resume(self) -> None:
        """Send again; the next packet starts a talkspurt (marker bit)."""
        if not self.sending:
            self.sending = True
            self._marker = True

    def send_dtmf(self, digit: str, duration: float = 0.1) -> None:
        """Send a key press as RFC 4733 events in place of the audio for its duration."""
        if self.telephone_event_pt is None:
            raise ValueError("the far end accepted no telephone-event payload type")
        self._dtmf_out.extend(telephone_event_payloads(digit, duration))

    def info_received(self, content_type: str, body: str | bytes, now: float) -> None:
        """A SIP INFO body the SIP layer handed over."""
        event = dtmf_from_info(content_type, body, now - self.origin)
        if event is not None:
            self._report_press(event)

    def close(self) -> None:
        """Give back the in-band slot."""
        if not self._closed and self._bank is not None:
            self._bank.close(self._slot)
        self._closed = True

    # --- sending ------------------------------------------------------------------------

    def frame(self, n: int) -> bytes | None:
        """The datagram of frame ``n`` (due at ``origin + n * 20 ms``), None when not sending."""
        if not self.started:
            return None
        advance = n - self._last_frame
        if self._last_frame >= 0 and advance > 1:
            self.stats.frames_skipped += advance - 1
        self._last_frame = n
        if not self.sending:
            self._player_offset += advance  # the player waits: its frames do not advance
            return None
        payload = self.player.frame(n - self._player_offset)
        if self.player.events:
            self._take_player_events()
        samples = n * FRAME_SAMPLES
        if self._dtmf_out:
            event_payload, first = self._dtmf_out.popleft()
            if first:
                self._dtmf_timestamp = samples
            assert self.telephone_event_pt is not None
            data = self.sender.next_packet(
                self.telephone_event_pt, event_payload, self._dtmf_timestamp, marker=first
            )
        else:
            data = self.sender.next_packet(self.payload_type, payload, samples, marker=self._marker)
            self._marker = False
        self._sent_since_report = True
        return data

    def _take_player_events(self) -> None:
        shift = self._player_offset * PTIME
        for event in self.player.events:
            self.events.append(
                dataclasses.replace(event, media_time=event.media_time + shift) if shift else event
            )
        self.player.events.clear()

    # --- receiving ----------------------------------------------------------------------

    def receive_rtp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One datagram from the RTP socket."""
        if len(data) >= 12 and data[0] == 0x80:
            # The usual packet (version 2; no padding, extension or CSRC): read the header in
            # place rather than build a packet object, this runs 50 times a second per call.
            second, seq, timestamp, ssrc = _FAST_HEADER.unpack_from(data, 1)
            payload_type = second & 0x7F
            payload = data[12:]
        else:
            try:
                packet = RtpPacket.parse(data)
            except ValueError:
                self.stats.malformed += 1
                return
            payload_type, seq = packet.payload_type, packet.sequence_number
            timestamp, ssrc, payload = packet.timestamp, packet.ssrc, packet.payload
        if not self.started:
            return  # early media before the answer: nothing to report yet, nowhere to latch
        if self.latch and not self._rtp_latched:
            # Symmetric RTP (RFC 4961) behind NAT: answer where the packets come from.
            self.remote = addr
            self._rtp_latched = True
        stats = self._sources.get(ssrc)
        if stats is None:
            if len(self._sources) >= 8:
                self._sources.pop(next(iter(self._sources)))
            stats = self._sources[ssrc] = ReceptionStats(ssrc)
        stats.receive(seq, timestamp, now)
        stats_out = self.stats
        stats_out.packets_received += 1
        stats_out.octets_received += len(payload)
        stats_out.last_received = now
        if payload_type == self.telephone_event_pt:
            packet = RtpPacket(payload_type, seq, timestamp, ssrc, payload)
            event = self._te_receiver.receive(packet, now - self.origin)
            if event is not None:
                self._report_press(event)
        elif payload_type == 0 or payload_type == 8:  # noqa: PLR1714
            if self.on_audio is not None:
                self.on_audio(payload_type, timestamp, ssrc, payload)
            if self._bank is not None:
                self._push_audio(payload, payload_type, timestamp, ssrc, now - self.origin)

    def _push_audio(
        self, payload: bytes, payload_type: int, timestamp: int, ssrc: int, media_time: float
    ) -> None:
        assert self._bank is not None
        expected = self._audio_ts.get(ssrc)
        if expected is None:
            self._audio_ts.clear()  # a new source: the old one's place no longer matters
            gap = 0
        else:
            gap = ((timestamp - expected + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            if gap < 0:
                return  # late or duplicate: its place in the detector's audio has passed
        if self._inband_origin is None:
            # The first sample is heard when its packet arrives.
            self._inband_origin = media_time
        if 0 < gap <= _MAX_GAP_FILL:
            # Lost packets become silence, so the detector's clock keeps to the RTP clock.
            self._bank.push_payload(self._slot, _ULAW_SILENCE * gap)
        self._bank.push_payload(self._slot, payload, "PCMU" if payload_type == 0 else "PCMA")
        self._audio_ts[ssrc] = (timestamp + len(payload)) & 0xFFFFFFFF

    def inband_detected(self, event: DtmfReceived) -> None:
        """A press the tone bank found in this session's slot (times from its first sample)."""
        origin = self._inband_origin or 0.0
        self._report_press(dataclasses.replace(event, media_time=origin + event.media_time))

    @property
    def slot(self) -> int:
        """This session's row in the tone bank (-1 without one)."""
        return self._slot

    def _report_press(self, event: DtmfReceived) -> None:
        last = self._last_press
        if (
            last is not None
            and last[0] == event.digit
            and last[1] != event.how
            and abs(last[2] - event.media_time) < _SAME_PRESS
        ):
            return
        self._last_press = (event.digit, event.how, event.media_time)
        self.events.append(event)

    def receive_rtcp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One datagram from the RTCP socket."""
        try:
            packets = parse_compound(data)
        except ValueError:
            self.stats.malformed += 1
            return
        if self.latch and not self._rtcp_latched and self.started:
            self.rtcp_remote = addr
            self._rtcp_latched = True
        self.stats.rtcp_received += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                source = self._sources.get(packet.ssrc)
                if source is not None:
                    source.sender_report_received(packet.ntp_timestamp, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.sender.ssrc:
                        self._far_report(block.fraction_lost, block.packets_lost, block.jitter)
                        self._round_trip(block.lsr, block.dlsr, now)

    def _far_report(self, fraction: int, lost: int, jitter: int) -> None:
        self.stats.far_fraction_lost = fraction / 256
        self.stats.far_packets_lost = lost
        self.stats.far_jitter_ms = jitter / 8.0

    def _round_trip(self, lsr: int, dlsr: int, now: float) -> None:
        # Section 6.4.1: RTT = arrival - LSR - DLSR; we keep when each SR left, on our clock.
        for middle, sent in self._sr_sent:
            if middle == lsr and lsr:
                self.stats.rtt_ms = max(now - sent - dlsr / 65536, 0.0) * 1000
                return

    # --- RTCP out -----------------------------------------------------------------------

    def rtcp_due(self, now: float, wallclock: float) -> bytes | None:
        """The compound report to send now, if its time has come (every 5 s on average)."""
        if self._next_rtcp is None or now < self._next_rtcp:
            return None
        self._next_rtcp = now + RTCP_INTERVAL * self._rng.uniform(0.5, 1.5)
        return self._compound(now, wallclock, None)

    def goodbye(self, now: float, wallclock: float, reason: bytes = b"") -> bytes:
        """The last compound packet: a report, SDES and BYE (section 6.6)."""
        return self._compound(now, wallclock, Goodbye((self.sender.ssrc,), reason))

    def _compound(self, now: float, wallclock: float, bye: Goodbye | None) -> bytes:
        # Section 6.4: at most 31 report blocks (the count field has 5 bits).
        blocks = tuple(s.report_block(now) for s in list(self._sources.values())[:31])
        report: RtcpPacket
        if self._sent_since_report:
            ntp = ntp_timestamp(wallclock)
            samples = round((now - self.origin) * 8000)
            report = SenderReport(
                self.sender.ssrc,
                ntp,
                self.sender.timestamp_at(samples),
                self.sender.packet_count,
                self.sender.octet_count,
                blocks,
            )
            self._sr_sent.append(((ntp >> 16) & 0xFFFFFFFF, now))
        else:
            report = ReceiverReport(self.sender.ssrc, blocks)
        self._sent_since_report = False
        parts: list[RtcpPacket] = [
            report,
            SourceDescription(((self.sender.ssrc, ((SDES_CNAME, self.cname),)),)),
        ]
        if bye is not None:
            parts.append(bye)
        self.stats.rtcp_sent += 1
        return b"".join(bytes(p) for p in parts)

    def refresh_stats(self) -> StreamStats:
        """The counters, brought up to date."""
        self.stats.packets_sent = self.sender.packet_count
        self.stats.octets_sent = self.sender.octet_count
        if self._sources:
            source = next(reversed(self._sources.values()))
            self.stats.packets_lost = max(source.lost, 0)
            self.stats.jitter_ms = source.jitter / 8.0
        return self.stats
