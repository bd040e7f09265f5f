"""Our user agent on loopback, driven by a test: place calls through a trunk, collect events.

A thin harness over the real ``Endpoint`` and ``SipTransport`` (no media: the SDP offer names a
port nobody listens on, which SIP does not care about).
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.events import CallEnded, Event
from gateway.sip.sdp import make_offer
from gateway.sip.transaction import Timers
from gateway.sip.transport import ListenSpec, SipTransport, client_context


@dataclass
class Uac:
    """One endpoint with a UDP and a TCP listener on ephemeral loopback ports."""

    endpoint: Endpoint
    transport: SipTransport
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    ended: dict[str, asyncio.Future[CallEnded]] = field(default_factory=dict)
    waiters: list[tuple[type[Event], str, asyncio.Future[Event]]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        trunks: Sequence[TrunkSettings],
        *,
        ca_file: str = "",
        t1: float = 0.5,
        session_expires: int = 1800,
        seed: int = 7,
        follow_redirects: bool = True,
    ) -> Uac:
        settings = EndpointSettings(
            timers=Timers(t1=t1),
            user_agent="gateway-test",
            session_expires=session_expires,
            follow_redirects=follow_redirects,
        )
        endpoint = Endpoint(settings, trunks, rng=random.Random(seed))
        uac: Uac | None = None

        def on_event(event: Event) -> None:
            assert uac is not None
            uac.dispatch(event)

        transport = SipTransport(
            endpoint, on_event, client_ssl=client_context(ca_file) if ca_file else None
        )
        uac = cls(endpoint, transport)
        await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
        await transport.listen(ListenSpec("tcp", "127.0.0.1", 0))
        return uac

    def dispatch(self, event: Event) -> None:
        call_id = getattr(event, "call_id", "") or getattr(event, "trunk", "")
        self.events[call_id].append(event)
        if isinstance(event, CallEnded):
            fut = self.ended.get(event.call_id)
            if fut is not None and not fut.done():
                fut.set_result(event)
        for kind, key, waiter in list(self.waiters):
            if isinstance(event, kind) and key in ("", call_id) and not waiter.done():
                waiter.set_result(event)
                self.waiters.remove((kind, key, waiter))

    def call(
        self,
        trunk: str,
        to_user: str = "callee",
        *,
        ring_timeout: float | None = None,
        from_user: str = "+33162000001",
    ) -> str:
        loop = asyncio.get_running_loop()
        host, _ = self.endpoint.local_address("udp")
        sdp = bytes(make_offer(address=host, port=40000, session_id=1, version=1))
        call_id = self.endpoint.invite(
            trunk=trunk,
            to_user=to_user,
            from_user=from_user,
            sdp=sdp,
            now=loop.time(),
            ring_timeout=ring_timeout,
        )
        self.ended[call_id] = loop.create_future()
        self.transport.pump()
        return call_id

    def hangup(self, call_id: str) -> None:
        self.endpoint.hangup(call_id, asyncio.get_running_loop().time())
        self.transport.pump()

    async def wait_for(self, kind: type[Event], call_id: str = "", limit: float = 10.0) -> Event:
        for event in self.events.get(call_id, []) if call_id else []:
            if isinstance(event, kind):
                return event
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self.waiters.append((kind, call_id, fut))
        return await asyncio.wait_for(fut, limit)

    async def wait_ended(self, call_id: str, limit: float = 40.0) -> CallEnded:
        return await asyncio.wait_for(self.ended[call_id], limit)

    def kinds(self, call_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events[call_id]]

    async def close(self) -> None:
        await self.transport.close()
