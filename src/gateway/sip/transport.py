"""The asyncio side of the SIP user agent: UDP, TCP and TLS sockets around one Endpoint.

The only asyncio module of ``sip``. It feeds the endpoint ``loop.time()``, sends what it
returns, hands its events to a callback, and keeps **one** ``call_at`` timer re-armed after
every input (after aioquic's ``asyncio/protocol.py``). Streams are framed by Content-Length
with a bounded buffer; connections are reused per remote address (RFC 3261 section 18).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from gateway.sip.endpoint import Endpoint
from gateway.sip.errors import SipError
from gateway.sip.events import Address, Event
from gateway.sip.framing import StreamFramer

__all__ = ["ListenSpec", "SipTransport", "parse_listen"]

log = logging.getLogger(__name__)
#: Seconds close() waits for its sockets to be released (a deadline, never for ever).
CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ListenSpec:
    transport: str
    host: str
    port: int


def parse_listen(text: str) -> ListenSpec:
    """``udp:127.0.0.1:5060``, ``tls:[::1]:5061`` -> :class:`ListenSpec` (ValueError if bad)."""
    transport, _, rest = text.partition(":")
    transport = transport.lower()
    if transport not in ("udp", "tcp", "tls"):
        raise ValueError(f"listen address {text!r}: transport must be udp, tcp or tls")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"listen address {text!r}: expected transport:host:port")
    return ListenSpec(transport, host.strip("[]"), int(port))


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        #: Done once the socket is closed (close() returns before it is).
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's classes.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.owner.received(data, Address("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction's timers decide what it means.
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection, either accepted or opened by us."""

    def __init__(self, owner: SipTransport, kind: str, address: Address | None = None) -> None:
        self.owner = owner
        self.kind = kind
        self.address = address
        self.framer = StreamFramer(owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.address is None:
            peer = self.transport.get_extra_info("peername")
            self.address = Address(self.kind, str(peer[0]), int(peer[1]))
        self.owner.connections[self.address] = self
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()
        self.touch()

    def data_received(self, data: bytes) -> None:
        self.touch()
        try:
            messages = self.framer.feed(data)
        except SipError as exc:
            # A stream that lost its framing cannot be resynchronised: close it (RFC 3261 18.3).
            log.warning("closing %s: %s", self.address, exc)
            self.owner.endpoint.stats["malformed"] += 1
            if self.transport is not None:
                self.transport.close()
            return
        if self.framer.take_pings() and self.transport is not None:
            self.transport.write(b"\r\n")  # RFC 5626 section 3.5.1: a CRLF pong
        assert self.address is not None
        for message in messages:
            self.owner.received(message, self.address)

    def send(self, data: bytes) -> None:
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.write(data)
            self.touch()

    def touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = self.owner.loop
        self.idle = loop.call_later(self.owner.idle_timeout, self._idle_close)

    def _idle_close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        if self.address is not None and self.owner.connections.get(self.address) is self:
            del self.owner.connections[self.address]


class SipTransport:
    """Sockets for one :class:`Endpoint`; ``on_event`` receives every event it produces."""

    def __init__(
        self,
        endpoint: Endpoint,
        on_event: Callable[[Event], None],
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_message_size: int = 65536,
        idle_timeout: float = 300.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.loop = loop or asyncio.get_running_loop()
        self.connections: dict[Address, _Stream] = {}
        self._udp: dict[int, _Udp] = {}
        self._servers: list[asyncio.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # Host names of UDP destinations (a trunk configured by name) -> the address used.
        self._resolved: dict[str, str] = {}
        self._resolving: set[asyncio.Task[None]] = set()

    async def listen(self, spec: ListenSpec) -> tuple[str, int]:
        """Open one listening socket; returns the address it really bound (port 0 resolved)."""
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        if spec.transport == "udp":
            sock = socket.socket(family, socket.SOCK_DGRAM)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                # Large buffers: a burst of a thousand set-ups must not overflow the kernel's.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
            sock.bind((spec.host, spec.port))
            _, proto = await self.loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            bound = sock.getsockname()
            self._udp[family] = proto
        else:
            context = None
            if spec.transport == "tls":
                if self.server_ssl is None:
                    raise ValueError("a tls listener needs [sip.tls] certificate and private_key")
                context = self.server_ssl
            kind = spec.transport
            server = await self.loop.create_server(
                lambda: _Stream(self, kind),
                spec.host,
                spec.port,
                ssl=context,
                family=family,
                reuse_address=True,
            )
            self._servers.append(server)
            bound = server.sockets[0].getsockname()
        host, port = str(bound[0]), int(bound[1])
        self.endpoint.add_listener(spec.transport, host, port)
        return host, port

    # -- the endpoint's I/O ---------------------------------------------------------------------

    def received(self, data: bytes, source: Address) -> None:
        try:
            self.endpoint.receive(data, source, self.loop.time())
        except Exception:
            # The last line of defence: whatever a message does to the core, the socket keeps
            # serving. The core answers protocol errors itself; this is a bug, logged loudly.
            self.endpoint.stats["internal_errors"] = (
                self.endpoint.stats.get("internal_errors", 0) + 1
            )
            log.exception("internal error on a message from %s", source)
        self.pump()

    def pump(self) -> None:
        """Send what the endpoint queued, deliver its events, re-arm the one timer."""
        endpoint = self.endpoint
        for data, dest in endpoint.datagrams_to_send():
            self._send(data, dest)
        while (event := endpoint.next_event()) is not None:
            self.on_event(event)
        # Events may have made the endpoint send (an accept, a hang-up): go round once more.
        for data, dest in endpoint.datagrams_to_send():
            self._send(data, dest)
        deadline = endpoint.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None if deadline is None else self.loop.call_at(deadline, self._fire)
            self._timer_at = deadline

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.endpoint.handle_timer(self.loop.time())
        except Exception:
            # As in received(): an exception here used to skip pump(), leaving the one timer
            # of the endpoint unarmed and every transaction of every call frozen.
            self.endpoint.stats["internal_errors"] = (
                self.endpoint.stats.get("internal_errors", 0) + 1
            )
            log.exception("internal error in a timer")
        self.pump()

    def _send(self, data: bytes, dest: Address) -> None:
        if dest.transport == "udp":
            host = dest.host if _is_address(dest.host) else self._resolved.get(dest.host)
            if host is None:
                # A host name: sendto() needs an address (uvloop raised ValueError out of the
                # timer callback, which then was never re-armed). Resolve it off the loop.
                task = self.loop.create_task(self._resolve_and_send(data, dest))
                self._resolving.add(task)
                task.add_done_callback(self._resolving.discard)
                return
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            proto = self._udp.get(family)
            if proto is None or proto.transport is None:
                self.endpoint.transport_error(dest, self.loop.time())
                return
            proto.transport.sendto(data, (host, dest.port))
            return
        conn = self.connections.get(dest)
        if conn is None:
            conn = self._connect(dest)
        conn.send(data)

    async def _resolve_and_send(self, data: bytes, dest: Address) -> None:
        try:
            infos = await self.loop.getaddrinfo(dest.host, dest.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("cannot resolve %s: %s", dest.host, exc)
            infos = []
        usable = [str(info[4][0]) for info in infos if info[0] in self._udp]
        if not usable:
            self.endpoint.transport_error(dest, self.loop.time())
            self.pump()
            return
        self._resolved[dest.host] = usable[0]
        self._send(data, dest)

    def _connect(self, dest: Address) -> _Stream:
        stream = _Stream(self, dest.transport, dest)
        # Registered at once so that every message to ``dest`` waits for this one connection.
        self.connections[dest] = stream
        context = self.client_ssl if dest.transport == "tls" else None
        if dest.transport == "tls" and context is None:
            context = ssl.create_default_context()

        async def connect() -> None:
            try:
                await self.loop.create_connection(
                    lambda: stream,
                    dest.host,
                    dest.port,
                    ssl=context,
                    server_hostname=dest.host if context is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:
                log.warning("cannot connect to %s: %s", dest, exc)
                if self.connections.get(dest) is stream:
                    del self.connections[dest]
                self.endpoint.transport_error(dest, self.loop.time())
                self.pump()

        self.loop.create_task(connect())
        return stream

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        closing = []
        for proto in self._udp.values():
            if proto.transport is not None:
                proto.transport.close()
                closing.append(proto.lost)
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        # The sockets are closed when the loop next runs: on return, the ports are free.
        if closing:
            await asyncio.wait(closing, timeout=CLOSE_TIMEOUT)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def client_context(ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    """The TLS context for connections to trunks: certificates verified by default."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certificate: str, private_key: str) -> ssl.SSLContext:
    """The TLS context of our listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, private_key)
    return context
