"""Two endpoints in memory (ARCHITECTURE.md section 5, "endpoint pair").

``ours`` is the gateway's user agent placing calls through its trunk ``main``, which points at
``far``; ``far`` is a second :class:`Endpoint` acting as the callee (it gets ``IncomingCall`` and
a :class:`Callee` script accepts, rings or rejects), and its own trunk ``gw`` lists our address
as a source. Both share one clock, ``pair.now``, which only moves by jumping to the earliest of
what is due: a datagram in flight, an endpoint's ``get_timer()``, or an action of the test.

The network is a list of scripted rules applied to each datagram as it is sent: drop,
duplicate, delay, rewrite, or answer in place of the destination (a digest challenger, a
redirect server). Every datagram is logged with the time it was sent, so tests read exact
retransmission times off :attr:`Network.log`.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from gateway.sip.dialog import Dialog
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.events import Address, Event, IncomingCall
from gateway.sip.invite import InboundCall
from gateway.sip.message import Request, Response, parse, response_for
from gateway.sip.sdp import SessionDescription, make_answer, make_offer
from gateway.sip.transaction import ClientTransaction

E = TypeVar("E")

OURS = Address("udp", "192.0.2.1", 5060)
FAR = Address("udp", "192.0.2.2", 5070)

OFFER = bytes(make_offer(address="192.0.2.1", port=20000, session_id=1, version=1))


def far_answer(offer: bytes, *, direction: str | None = None, version: int = 1) -> bytes:
    """The far end's SDP answer to ``offer`` (PCMU or PCMA at 192.0.2.2:30000)."""
    answer, _ = make_answer(
        SessionDescription.parse(offer),
        address="192.0.2.2",
        port=30000,
        session_id=7,
        version=version,
        direction=direction,
    )
    return bytes(answer)


# -- the network ----------------------------------------------------------------------------


@dataclass
class Sent:
    """One datagram as it left its sender."""

    at: float
    source: Address
    dest: Address
    data: bytes
    fate: str = "delivered"  # "delivered", "dropped", "delayed", "duplicated", "answered"

    @cached_property
    def message(self) -> Request | Response:
        return parse(self.data)

    @property
    def request(self) -> Request:
        assert isinstance(self.message, Request), self
        return self.message

    @property
    def kind(self) -> str:
        """``INVITE`` for a request, ``180 INVITE`` for a response."""
        m = self.message
        if isinstance(m, Request):
            return m.method
        return f"{m.status} {m.cseq.method}"

    def __repr__(self) -> str:
        return f"<{self.at:g} {self.source.host}->{self.dest.host} {self.kind} {self.fate}>"


Match = Callable[[Sent], bool]


def kind(name: str) -> Match:
    """Match a datagram by :attr:`Sent.kind`: ``"INVITE"``, ``"200 INVITE"``."""
    return lambda s: s.kind == name


@dataclass
class Rule:
    match: Match
    action: str
    times: int | None  # None: every matching datagram
    delay: float = 0.0
    rewrite: Callable[[Request | Response], Request | Response] | None = None
    answer: Callable[[Request], list[Response] | None] | None = None
    used: int = 0


class Network:
    """Datagrams between addresses, with scripted loss; zero latency unless delayed."""

    def __init__(self) -> None:
        self.log: list[Sent] = []
        self.rules: list[Rule] = []
        self._flight: list[tuple[float, int, Sent]] = []
        self._order = itertools.count()

    # -- the script -------------------------------------------------------------------------

    def drop(self, match: Match, times: int | None = 1) -> None:
        self.rules.append(Rule(match, "dropped", times))

    def duplicate(self, match: Match, times: int | None = 1) -> None:
        self.rules.append(Rule(match, "duplicated", times))

    def delay(self, match: Match, seconds: float, times: int | None = 1) -> None:
        self.rules.append(Rule(match, "delayed", times, delay=seconds))

    def rewrite(
        self,
        match: Match,
        fn: Callable[[Request | Response], Request | Response],
        times: int | None = 1,
    ) -> None:
        self.rules.append(Rule(match, "rewritten", times, rewrite=fn))

    def answer(self, match: Match, fn: Callable[[Request], list[Response] | None]) -> None:
        """Requests that ``match`` are answered by ``fn`` instead of reaching their destination
        (a proxy that challenges, a redirect server): ``fn`` returns the responses, an empty
        list to swallow the request, or None to let it through. ACKs are swallowed."""
        self.rules.append(Rule(match, "answered", None, answer=fn))

    # -- carrying ---------------------------------------------------------------------------

    def send(self, sent: Sent) -> None:
        self.log.append(sent)
        for rule in self.rules:
            if (rule.times is not None and rule.used >= rule.times) or not rule.match(sent):
                continue
            rule.used += 1
            sent.fate = rule.action
            if rule.action == "dropped":
                return
            if rule.action == "duplicated":
                self._enqueue(sent.at, sent)
            elif rule.action == "delayed":
                self._enqueue(sent.at + rule.delay, sent)
                return
            elif rule.action == "rewritten":
                assert rule.rewrite is not None
                sent.data = bytes(rule.rewrite(sent.message))
                del sent.__dict__["message"]
            elif rule.action == "answered":
                assert rule.answer is not None
                request = sent.message
                assert isinstance(request, Request)
                responses = [] if request.method == "ACK" else rule.answer(request)
                if responses is None:
                    sent.fate = "delivered"  # let through, as a proxy forwards it
                    break
                for response in responses:
                    self.send(Sent(sent.at, sent.dest, sent.source, bytes(response)))
                return
            break
        self._enqueue(sent.at, sent)

    def _enqueue(self, at: float, sent: Sent) -> None:
        heapq.heappush(self._flight, (at, next(self._order), sent))

    def next_delivery(self) -> float | None:
        return self._flight[0][0] if self._flight else None

    def take_due(self, now: float) -> list[Sent]:
        out = []
        while self._flight and self._flight[0][0] <= now:
            out.append(heapq.heappop(self._flight)[2])
        return out

    # -- reading ----------------------------------------------------------------------------

    def sent(self, name: str, source: Address | None = None) -> list[Sent]:
        """Every datagram of kind ``name`` (``"INVITE"``, ``"200 BYE"``) in the order sent."""
        return [s for s in self.log if s.kind == name and (source is None or s.source == source)]

    def times(self, name: str, source: Address | None = None) -> list[float]:
        return [s.at for s in self.sent(name, source)]


# -- the far end's user -----------------------------------------------------------------------


@dataclass
class Callee:
    """What the far end's user does with an incoming call, in seconds after the INVITE.

    ``ring`` sends 180; ``answer`` accepts with ``sdp`` (the answer to the offer when None);
    ``reject`` answers that final status at ``reject_after``.
    """

    ring: float | None = 0.0
    answer: float | None = 1.0
    sdp: bytes | None = None
    reject: int | None = None
    reject_after: float = 1.0


# -- the pair ---------------------------------------------------------------------------------


@dataclass
class Pair:
    """Our endpoint (UAC, trunk ``main``) and the far end (callee), on one clock."""

    settings: EndpointSettings = field(default_factory=EndpointSettings)
    trunk: TrunkSettings = field(
        default_factory=lambda: TrunkSettings(
            "main", f"sip:{FAR.host}:{FAR.port}", keepalive_interval=0
        )
    )
    callee: Callee = field(default_factory=Callee)
    #: How the far end reaches us when it calls (its trunk's ``transport`` parameter).
    far_transport: str = "udp"
    now: float = 0.0

    def __post_init__(self) -> None:
        self.net = Network()
        self.ours = Endpoint(self.settings, [self.trunk], rng=random.Random(1))
        # Both listen on UDP and TCP at the same port, as a `gateway run` with both listeners.
        for transport in ("udp", "tcp"):
            self.ours.add_listener(transport, OURS.host, OURS.port)
        params = "" if self.far_transport == "udp" else f";transport={self.far_transport}"
        far_trunk = TrunkSettings(
            "gw", f"sip:{OURS.host}:{OURS.port}{params}", keepalive_interval=0, sources=(OURS.host,)
        )
        self.far = Endpoint(EndpointSettings(), [far_trunk], rng=random.Random(2))
        for transport in ("udp", "tcp"):
            self.far.add_listener(transport, FAR.host, FAR.port)
        self.nodes: dict[tuple[str, int], Endpoint] = {
            (OURS.host, OURS.port): self.ours,
            (FAR.host, FAR.port): self.far,
        }
        self.names = {id(self.ours): OURS, id(self.far): FAR}
        self.events: list[Event] = []  # ours
        self.far_events: list[Event] = []
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    # -- driving ----------------------------------------------------------------------------

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Do ``fn`` (a user's action) when the clock reaches ``when``."""
        heapq.heappush(self._actions, (when, next(self._order), fn))

    def add_node(self, address: Address, endpoint: Endpoint) -> None:
        endpoint.add_listener("udp", address.host, address.port)
        self.nodes[(address.host, address.port)] = endpoint
        self.names[id(endpoint)] = address

    def next_time(self) -> float | None:
        candidates = [self.net.next_delivery(), self._actions[0][0] if self._actions else None]
        candidates += [node.get_timer() for node in self.nodes.values()]
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    def run(self, until: float) -> None:
        """Jump from one due time to the next until ``until``; the clock ends at ``until``."""
        self.pump()
        for _ in range(100_000):
            due = self.next_time()
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            self.step()
        else:  # pragma: no cover - a loop that never settles is a bug in the code under test
            raise AssertionError("the pair never settled")
        self.now = max(self.now, until)

    def run_for(self, seconds: float) -> None:
        self.run(self.now + seconds)

    def step(self) -> None:
        now = self.now
        for sent in self.net.take_due(now):
            node = self.nodes.get((sent.dest.host, sent.dest.port))
            if node is not None:
                node.receive(sent.data, sent.source, now)
            self.pump()
        for node in list(self.nodes.values()):
            due = node.get_timer()
            if due is not None and due <= now:
                node.handle_timer(now)
                self.pump()
        while self._actions and self._actions[0][0] <= now:
            heapq.heappop(self._actions)[2]()
            self.pump()

    def pump(self) -> None:
        """Carry what every endpoint queued, and hand out their events."""
        for _ in range(100):
            moved = False
            for node in list(self.nodes.values()):
                source = self.names[id(node)]
                for data, dest in node.datagrams_to_send():
                    # Streams are carried like datagrams; only the transport name differs.
                    origin = source._replace(transport=dest.transport)
                    self.net.send(Sent(self.now, origin, dest, data))
                while (event := node.next_event()) is not None:
                    moved = True
                    if node is self.ours:
                        self.events.append(event)
                    else:
                        if node is self.far:
                            self.far_events.append(event)
                        self._far_user(node, event)
            if not moved:
                return

    # -- the far end's user -----------------------------------------------------------------

    def _far_user(self, node: Endpoint, event: Event) -> None:
        """The callee script, for the far end and any other callee added with add_node."""
        if not isinstance(event, IncomingCall):
            return
        script, call_id, start = self.callee, event.call_id, event.at
        if script.ring is not None:
            self.at(start + script.ring, lambda: self.ring(call_id, node))
        if script.reject is not None:
            status = script.reject
            self.at(start + script.reject_after, lambda: node.reject(call_id, status, self.now))
        elif script.answer is not None:
            sdp = script.sdp if script.sdp is not None else far_answer(event.offer)
            self.at(start + script.answer, lambda: node.accept(call_id, sdp, self.now))

    def ring(self, call_id: str, node: Endpoint | None = None) -> None:
        """The far end sends 180 Ringing.

        Endpoint has no call for a provisional response, so the 180 is built here, with a To
        tag of its own: the 200 that ``accept`` sends later carries another one (a UAS should
        keep one tag, RFC 3261 section 12.1.1; our UAC keeps no early dialog, so it is harmless).
        """
        node = node or self.far
        call = self.far_call(call_id, node)
        assert call.stx is not None and call.request is not None
        if call.dialog is None and not call.ended:
            ringing = response_for(call.request, 180, "Ringing", to_tag="r1ng")
            node.respond(call.stx, ringing, self.now)

    def far_call(self, call_id: str, node: Endpoint | None = None) -> InboundCall:
        call = (node or self.far).calls[call_id]
        assert isinstance(call, InboundCall)
        return call

    def far_request(
        self,
        call_id: str,
        method: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> list[Response]:
        """The far end sends ``method`` in its dialog; returns the list its answers go to
        (a 2xx to an INVITE is ACKed)."""
        call = self.far_call(call_id)
        dialog = call.dialog
        assert dialog is not None
        request = dialog.create_request(
            method,
            via=self.far.via("udp"),
            contact=self.far.contact("udp") if method == "INVITE" else None,
            headers=headers,
            body=body,
        )
        return self.far_send(dialog, request)

    def far_send(self, dialog: Dialog, request: Request) -> list[Response]:
        answers: list[Response] = []
        dest = self.far.destination(str(dialog.next_hop()), "udp")

        def answered(tx: ClientTransaction, response: Response | None, at: float) -> None:
            if response is None:
                return
            answers.append(response)
            if request.method == "INVITE" and 200 <= response.status < 300:
                ack = dialog.create_request("ACK", via=self.far.via("udp"), cseq=request.cseq.seq)
                self.far.send_stateless(ack, dest)

        self.far.send_request(request, dest, self.now, answered)
        self.pump()
        return answers

    def inject(self, data: bytes, source: Address, dest: Address = OURS) -> None:
        """A datagram from anywhere (a stranger, a raw request from the trunk's host)."""
        self.net.send(Sent(self.now, source, dest, data))

    # -- calls ------------------------------------------------------------------------------

    def call(self, *, ring_timeout: float | None = None, sdp: bytes = OFFER) -> str:
        call_id = self.ours.invite(
            trunk="main",
            to_user="33123456789",
            from_user="gw",
            sdp=sdp,
            now=self.now,
            ring_timeout=ring_timeout,
        )
        self.pump()
        return call_id

    def of(self, cls: type[E]) -> list[E]:
        """Our events of one class, in order."""
        return [e for e in self.events if isinstance(e, cls)]
