"""The only asyncio module of media/: RTP and RTCP sockets, and the one send clock.

:class:`MediaEngine` (one per process) allocates ports and runs one timer for every stream:
at each deadline of :class:`~gateway.media.clock.Pacer` (the 20 ms period cut into phases that
the streams share out) it asks each stream due for its
:class:`~gateway.media.session.MediaSession`'s datagram and sends it, then re-arms one
``call_at`` on the next absolute deadline. Received datagrams go straight to their session with
``loop.time()``. It runs on uvloop or on the default loop alike (the loop is the caller's).

Usage by the call layer::

    engine = MediaEngine(host="192.0.2.10", port_min=20000, port_max=29999, rng=rng)
    stream = await engine.open_stream(label=call_id)    # local_port goes in the SDP offer
    stream.start(remote=("198.51.100.7", 4000), payload_type=0, codec="PCMU",
                 telephone_event_pt=101, player=Player("PCMU", segments))
    event = await stream.events.get()                    # DtmfReceived, SegmentStarted, ...
    await stream.close()                                 # RTCP BYE, ports released
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from .clock import Pacer
from .events import MediaEvent
from .player import Player
from .session import MediaSession, StreamStats
from .tonebank import ToneBank

__all__ = ["MediaEngine", "RtpStream"]

log = logging.getLogger(__name__)

_Address = tuple[str, int]
#: Look at RTCP deadlines every 25 periods (0.5 s): they are seconds apart.
_RTCP_EVERY = 25


class _Protocol(asyncio.DatagramProtocol):
    def __init__(
        self, deliver: Callable[[bytes, _Address], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.deliver = deliver
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.deliver(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: the call layer ends calls on BYE
        # or timeout, not on this.
        log.debug("media socket error: %s", exc)


def _ignore(data: bytes, addr: _Address) -> None:
    """Where datagrams go until their stream exists."""


class RtpStream:
    """One call's RTP (even port) and RTCP (the next port), paced by the engine's clock."""

    def __init__(
        self,
        engine: MediaEngine,
        session: MediaSession,
        *,
        rtp: asyncio.DatagramTransport,
        rtcp: asyncio.DatagramTransport,
        local_port: int,
        label: str,
    ) -> None:
        self.engine = engine
        self.session = session
        self.local_port = local_port
        self.label = label
        #: Everything the stream reports: DtmfReceived, SegmentStarted, SegmentEnded.
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        #: Called with each event as well, if set (before it is queued).
        self.on_event: Callable[[MediaEvent], None] | None = None
        self._rtp = rtp
        self._rtcp = rtcp
        self._closed = False
        self._time = engine.loop.time

    def start(
        self,
        *,
        remote: _Address,
        payload_type: int,
        codec: str,
        telephone_event_pt: int | None,
        player: Player,
        rtcp_remote: _Address | None = None,
    ) -> None:
        """Start sending ``player``'s frames to ``remote`` from the next tick of the clock."""
        self.engine._start(
            self,
            remote=remote,
            payload_type=payload_type,
            codec=codec,
            telephone_event_pt=telephone_event_pt,
            player=player,
            rtcp_remote=rtcp_remote,
        )

    def set_remote(self, remote: _Address, rtcp_remote: _Address | None = None) -> None:
        """The far end moved (re-INVITE with a new address)."""
        self.session.set_remote(remote, rtcp_remote)

    def hold(self) -> None:
        """Stop sending; the player waits (re-INVITE with sendonly or inactive)."""
        self.session.hold()

    def resume(self) -> None:
        """Send again after :meth:`hold`."""
        self.session.resume()

    def send_dtmf(self, digit: str, duration: float = 0.1) -> None:
        """Send a key press as RFC 4733 events."""
        self.session.send_dtmf(digit, duration)

    def info_received(self, content_type: str, body: str | bytes) -> None:
        """A SIP INFO body (application/dtmf-relay or application/dtmf) for this call."""
        self.session.info_received(content_type, body, self.engine.loop.time())
        self._flush()

    @property
    def stats(self) -> StreamStats:
        """Packets and octets both ways, loss and jitter both ways (far end's from RTCP)."""
        return self.session.refresh_stats()

    @property
    def player(self) -> Player:
        """The player given to :meth:`start`."""
        return self.session.player

    async def close(self) -> None:
        """Send RTCP BYE, stop pacing, release the ports. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.engine._stop(self)
        if self.session.started and self.session.rtcp_remote is not None:
            bye = self.session.goodbye(self.engine.loop.time(), time.time())
            self._rtcp.sendto(bye, self.session.rtcp_remote)
        self._flush()
        self.session.close()
        self._rtp.close()
        self._rtcp.close()
        # The sockets close on a later turn of the loop; the ports are free once they have.
        for transport in (self._rtp, self._rtcp):
            protocol = transport.get_protocol()
            if isinstance(protocol, _Protocol):
                await protocol.closed
        self.engine._release(self.local_port)

    # --- called by the engine and the protocols ----------------------------------------

    def _on_rtp(self, data: bytes, addr: _Address) -> None:
        # The hot path of receiving: 50 calls a second per stream.
        if self._closed:
            return
        session = self.session
        session.receive_rtp(data, addr, self._time())
        if session.events:
            self._flush()

    def _on_rtcp(self, data: bytes, addr: _Address) -> None:
        if not self._closed:
            self.session.receive_rtcp(data, addr, self.engine.loop.time())

    def _flush(self) -> None:
        events = self.session.events
        while events:
            event = events.popleft()
            if self.on_event is not None:
                self.on_event(event)
            self.events.put_nowait(event)


class MediaEngine:
    """The process's media: port allocation and the one send clock shared by all streams.

    ``port_min`` and ``port_max`` bound the RTP ports (even; RTCP takes the odd one above);
    ``port_min=0`` lets the system choose. ``latch`` sends to where the far end's packets
    come from (NAT). ``rng`` draws SSRCs, first sequence numbers and timestamps, and RTCP
    intervals. ``inband`` turns the in-band DTMF detector on. ``phases`` cuts the 20 ms
    period into slots that streams share out, so each wake-up sends a fraction of the packets.
    ``catch_up`` is how many frames a stream sends at once after a late wake-up (the missed
    ones, oldest first; older ones are skipped).

    The in-band detector runs once a period, on the 100 ms blocks of audio completed since: the
    streams' blocks complete at different times, so each run takes a share of them.
    """

    def __init__(
        self,
        *,
        host: str,
        port_min: int,
        port_max: int,
        rng: random.Random,
        loop: asyncio.AbstractEventLoop | None = None,
        latch: bool = True,
        inband: bool = True,
        cname: str | None = None,
        phases: int = 20,
        catch_up: int = 5,
    ) -> None:
        if port_min and (port_min > port_max or port_max > 65535 or port_min < 1024):
            raise ValueError(f"RTP port range {port_min}-{port_max} is not usable")
        self.host = host
        self.port_min = port_min + (port_min % 2)  # RFC 3550 section 11: RTP on an even port
        self.port_max = port_max
        self.rng = rng
        self.loop = loop or asyncio.get_running_loop()
        self.latch = latch
        self.cname = cname or f"gateway@{host}"
        self.bank = ToneBank() if inband else None
        self._pacer: Pacer[RtpStream] = Pacer(self.loop.time(), phases=phases, catch_up=catch_up)
        self._streams: dict[RtpStream, None] = {}
        self._ports: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._next_detect = 0
        self._next_rtcp = 0
        #: Seconds between each deadline and the wake-up that served it (last 10,000).
        self.lateness: list[float] = []

    @property
    def streams(self) -> int:
        """Streams open."""
        return len(self._streams)

    async def open_stream(self, label: str = "") -> RtpStream:
        """Bind an even RTP port and the RTCP port above it; the stream sends after start()."""
        session = MediaSession(rng=self.rng, cname=self.cname, bank=self.bank, latch=self.latch)
        rtp, rtcp, port = await self._bind_pair(_ignore, _ignore)
        stream = RtpStream(self, session, rtp=rtp, rtcp=rtcp, local_port=port, label=label)
        # Datagrams go straight to the stream from now on (nothing came before it existed).
        for transport, deliver in ((rtp, stream._on_rtp), (rtcp, stream._on_rtcp)):
            protocol = transport.get_protocol()
            if isinstance(protocol, _Protocol):
                protocol.deliver = deliver
        self._streams[stream] = None
        log.debug("%s media on %s:%d", label, self.host, port)
        return stream

    async def close(self) -> None:
        """Close every stream (BYE on each) and stop the clock."""
        for stream in list(self._streams):
            await stream.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _bind_pair(
        self, rtp_in: Callable[[bytes, _Address], None], rtcp_in: Callable[[bytes, _Address], None]
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramTransport, int]:
        if self.port_min == 0:
            candidates = [0] * 64
        else:
            count = (self.port_max - self.port_min) // 2 + 1
            first = self.rng.randrange(count)
            candidates = [self.port_min + 2 * ((first + i) % count) for i in range(count)]
        for port in candidates:
            if port and port in self._ports:
                continue
            try:
                rtp, _ = await self.loop.create_datagram_endpoint(
                    lambda: _Protocol(rtp_in, self.loop), local_addr=(self.host, port)
                )
            except OSError:
                continue
            actual = int(rtp.get_extra_info("sockname")[1])
            if actual % 2:
                rtp.close()
                continue
            try:
                rtcp, _ = await self.loop.create_datagram_endpoint(
                    lambda: _Protocol(rtcp_in, self.loop), local_addr=(self.host, actual + 1)
                )
            except OSError:
                rtp.close()
                continue
            self._ports.add(actual)
            return rtp, rtcp, actual
        raise OSError(f"no free RTP port pair in {self.port_min}-{self.port_max} on {self.host}")

    def _release(self, port: int) -> None:
        self._ports.discard(port)

    # --- the send clock ------------------------------------------------------------------

    def _start(
        self,
        stream: RtpStream,
        *,
        remote: _Address,
        payload_type: int,
        codec: str,
        telephone_event_pt: int | None,
        player: Player,
        rtcp_remote: _Address | None,
    ) -> None:
        if stream.session.started:
            raise RuntimeError("stream already started")
        first = self._pacer.add(stream, self.loop.time())
        stream.session.start(
            remote=remote,
            payload_type=payload_type,
            codec=codec,
            telephone_event_pt=telephone_event_pt,
            player=player,
            origin=self._pacer.deadline(first),
            rtcp_remote=rtcp_remote,
        )
        self._arm()

    def _stop(self, stream: RtpStream) -> None:
        self._pacer.remove(stream)
        self._streams.pop(stream, None)

    def _arm(self) -> None:
        deadline = self._pacer.next_deadline()
        if deadline is None or (self._timer is not None and self._timer_at == deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            self._serve(self.loop.time())
        finally:
            # Whatever went wrong with one stream, the clock of all the others keeps going.
            self._arm()

    def _serve(self, now: float) -> None:
        if self._timer_at is not None:
            lateness = self.lateness
            lateness.append(now - self._timer_at)
            if len(lateness) > 10_000:
                del lateness[:5_000]
        slot = self._pacer.slot_at(now)
        for stream, n in self._pacer.wake(now):
            session = stream.session
            try:
                data = session.frame(n)
                if data is not None and session.remote is not None:
                    stream._rtp.sendto(data, session.remote)
                if session.events:
                    stream._flush()
            except Exception:
                log.exception("%s: frame %d not sent", stream.label, n)
        # Deadlines, not multiples of the slot: a late wake-up may skip any slot.
        if slot >= self._next_detect and self.bank is not None:
            self._next_detect = slot + self._pacer.phases
            self._detect()
        if slot >= self._next_rtcp:
            self._next_rtcp = slot + _RTCP_EVERY * self._pacer.phases
            self._send_rtcp(now)

    def _detect(self) -> None:
        assert self.bank is not None
        found = self.bank.run()
        if not found:
            return
        by_slot = {s.session.slot: s for s in self._streams}
        for slot, event in found:
            stream = by_slot.get(slot)
            if stream is not None:
                stream.session.inband_detected(event)
                stream._flush()

    def _send_rtcp(self, now: float) -> None:
        wallclock = time.time()
        for stream in self._streams:
            session = stream.session
            if session.rtcp_remote is None:
                continue
            data = session.rtcp_due(now, wallclock)
            if data is not None:
                stream._rtcp.sendto(data, session.rtcp_remote)
