"""The SIP side of the running calls: one Endpoint and its sockets, events routed per call.

Every event of the user agent goes to the call it concerns (a per-call queue that the call's
task reads), inbound calls go to the handler the service was given (the opt-out line), and
trunk states are kept for the dialer, which does not dial through a trunk that is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.sip.endpoint import Endpoint
from gateway.sip.events import (
    CallEnded,
    Event,
    IncomingCall,
    OptionsAnswered,
    TrunkStateChanged,
)
from gateway.sip.transport import SipTransport

__all__ = ["CallService", "HangupRequested"]

log = logging.getLogger(__name__)

InboundHandler = Callable[[IncomingCall], None]


@dataclass(frozen=True)
class HangupRequested:
    """Put on a call's queue by :meth:`CallService.hangup_all`: the call's task ends it and
    records why (shutdown)."""

    reason: str


class CallService:
    """Wraps an :class:`Endpoint` and its :class:`SipTransport` for the call tasks."""

    def __init__(self, endpoint: Endpoint, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.endpoint = endpoint
        self.loop = loop or asyncio.get_running_loop()
        self.transport: SipTransport | None = None
        self.trunk_up: dict[str, bool] = {}
        self.on_incoming: InboundHandler | None = None
        self._queues: dict[str, asyncio.Queue[object]] = {}
        self._options: dict[str, asyncio.Future[OptionsAnswered]] = {}

    def attach(self, transport: SipTransport) -> None:
        self.transport = transport

    def now(self) -> float:
        return self.loop.time()

    def pump(self) -> None:
        if self.transport is not None:
            self.transport.pump()

    # -- events -------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The transport's callback: route one event."""
        if isinstance(event, IncomingCall):
            if self.on_incoming is None:
                # Nobody answers inbound calls in this process: temporarily unavailable.
                self.endpoint.reject(event.call_id, 480, self.now())
            else:
                self.on_incoming(event)
            return
        if isinstance(event, TrunkStateChanged):
            self.trunk_up[event.trunk] = event.up
            log.info("trunk %s is %s (%d)", event.trunk, "up" if event.up else "down", event.status)
            return
        if isinstance(event, OptionsAnswered):
            fut = self._options.pop(event.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(event)
            return
        queue = self._queues.get(event.call_id)
        if queue is not None:
            queue.put_nowait(event)
        if isinstance(event, CallEnded):
            # The call's task has what it needs; the core keeps the call a while to absorb
            # retransmissions and forgets it by itself.
            self._queues.pop(event.call_id, None)

    def subscribe(self, call_id: str) -> asyncio.Queue[object]:
        """A queue receiving every event of ``call_id`` (and anything else put there)."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues[call_id] = queue
        return queue

    # -- actions ------------------------------------------------------------------------------

    def invite(
        self,
        *,
        trunk: str,
        to_user: str,
        from_user: str,
        sdp: bytes,
        ring_timeout: float | None,
        display_name: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[str, asyncio.Queue[object]]:
        """Send an INVITE; returns the Call-ID and the queue its events arrive on."""
        call_id = self.endpoint.invite(
            trunk=trunk,
            to_user=to_user,
            from_user=from_user,
            sdp=sdp,
            now=self.now(),
            ring_timeout=ring_timeout,
            display_name=display_name,
            extra_headers=extra_headers,
        )
        queue = self.subscribe(call_id)
        self.pump()
        return call_id, queue

    def calls(self) -> list[str]:
        """The Call-IDs of the calls whose events are routed (those in progress)."""
        return list(self._queues)

    def hangup_all(self, reason: str) -> int:
        """Ask every call in progress to end (its task sends CANCEL or BYE); how many."""
        for queue in self._queues.values():
            queue.put_nowait(HangupRequested(reason))
        return len(self._queues)

    def hangup(self, call_id: str, reason: str | None = None) -> None:
        self.endpoint.hangup(call_id, self.now(), reason)
        self.pump()

    def accept(self, call_id: str, sdp: bytes) -> None:
        self.endpoint.accept(call_id, sdp, self.now())
        self.pump()

    def reject(self, call_id: str, status: int, reason: str = "") -> None:
        self.endpoint.reject(call_id, status, self.now(), reason)
        self.pump()

    async def options(self, trunk: str, wait: float = 5.0) -> OptionsAnswered | None:
        request_id = self.endpoint.options(trunk, self.now())
        fut: asyncio.Future[OptionsAnswered] = self.loop.create_future()
        self._options[request_id] = fut
        self.pump()
        try:
            return await asyncio.wait_for(fut, wait)
        except TimeoutError:
            self._options.pop(request_id, None)
            return None
