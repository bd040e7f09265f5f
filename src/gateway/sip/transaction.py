"""SIP transactions: the four machines of RFC 3261 section 17 with RFC 6026, and their table.

The machines live in :mod:`gateway.sip.transaction_client` and
:mod:`gateway.sip.transaction_server`; this module gathers the public names and adds
:class:`TransactionLayer`, which matches incoming messages to transactions (RFC 3261 sections
17.1.3 and 17.2.3) and keeps one heap of deadlines for all of them, so that an endpoint holding
thousands of transactions needs a single timer.

Everything is sans-IO: methods that depend on time take ``now``; ``get_timer()`` gives the
earliest deadline; ``handle_timer(now)`` fires what is due; ``take_outgoing()`` gives what to
send. An endpoint uses it roughly so::

    layer = TransactionLayer()
    tx = client_transaction(invite, reliable=False, timers=timers, now=now)
    layer.add_client(tx)                      # then send tx.take_outgoing()
    # a response arrives:
    tx = layer.match_response(response)       # None: a stray response, dropped (RFC 6026)
    passed = tx.receive(response, now) if tx else None   # not None: give it to the TU
    # a request arrives:
    server = layer.match_request(request)     # retransmission or ACK of a known transaction
    if server is not None:
        passed = server.receive(request, now)  # None: absorbed (the last response re-queued)
    elif request.method != "ACK":             # (an unmatched ACK goes to the dialog layer)
        server = server_transaction(request, reliable=False, timers=timers, now=now)
        layer.add_server(server)              # and hand the request to the TU
    # the one timer of the endpoint:
    for tx in layer.handle_timer(now):        # send tx.take_outgoing(); read tx.timed_out
        ...
"""

from __future__ import annotations

import heapq
import itertools
from typing import TypeVar

from gateway.sip.errors import SipError
from gateway.sip.message import Request, Response
from gateway.sip.transaction_base import (
    DEFAULT_TIMERS,
    MAGIC_COOKIE,
    TRYING_DELAY,
    Key,
    State,
    Timer,
    Timers,
    Transaction,
    TransactionError,
    ack_2543_key,
    has_rfc3261_branch,
    server_key,
)
from gateway.sip.transaction_client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
    build_ack,
    client_key,
    client_transaction,
)
from gateway.sip.transaction_server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    server_transaction,
)

__all__ = [
    "DEFAULT_TIMERS",
    "MAGIC_COOKIE",
    "TRYING_DELAY",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "Key",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "State",
    "Timer",
    "Timers",
    "Transaction",
    "TransactionError",
    "TransactionLayer",
    "build_ack",
    "client_key",
    "client_transaction",
    "has_rfc3261_branch",
    "server_key",
    "server_transaction",
]

_Tx = TypeVar("_Tx", bound=Transaction)


class TransactionLayer:
    """The table of live transactions of one endpoint, with one heap of their deadlines.

    Add each transaction when it is created; match incoming messages with
    :meth:`match_response`, :meth:`match_request` and :meth:`match_cancel` (dictionary look-ups);
    drive time with :meth:`get_timer` and :meth:`handle_timer`, which also drops terminated
    transactions ("destroyed immediately", RFC 3261 sections 17.1.1.2 and 17.2.1).

    Each transaction tells the layer of every deadline it arms, and the layer pushes it on the
    heap; entries whose timer was stopped or fired are skipped when they reach the top. A
    transaction has at most two timers armed at once, so the heap is rebuilt when it holds more
    than four entries per live transaction: the rebuilding cost stays amortised.
    """

    def __init__(self) -> None:
        self._clients: dict[Key, ClientTransaction] = {}
        self._servers: dict[Key, ServerTransaction] = {}
        # RFC 2543 ACK matching: INVITE server transactions by everything but the To tag.
        self._acks_2543: dict[Key, InviteServerTransaction] = {}
        self._ack_key_of: dict[Transaction, Key] = {}
        self._members: set[Transaction] = set()
        self._heap: list[tuple[float, int, Transaction]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, tx: object) -> bool:
        return tx in self._members

    # -- registration -----------------------------------------------------------------------

    def add_client(self, tx: ClientTransaction) -> None:
        """Track a new client transaction; its responses will match by :func:`client_key`."""
        if tx.terminated:
            return
        old = self._clients.get(tx.key)
        if old is not None and old.terminated:
            self.remove(old)
        elif old is not None:
            raise TransactionError(f"a client transaction with key {tx.key!r} exists already")
        self._clients[tx.key] = tx
        self._admit(tx)

    def add_server(self, tx: ServerTransaction) -> None:
        """Track a new server transaction; retransmissions will match by :func:`server_key`."""
        if tx.terminated:
            return
        old = self._servers.get(tx.key)
        if old is not None and old.terminated:
            self.remove(old)
        elif old is not None:
            raise TransactionError(f"a server transaction with key {tx.key!r} exists already")
        self._servers[tx.key] = tx
        if isinstance(tx, InviteServerTransaction) and not has_rfc3261_branch(
            tx.request.top_via.branch
        ):
            ack_key = ack_2543_key(tx.request)
            self._acks_2543[ack_key] = tx
            self._ack_key_of[tx] = ack_key
        self._admit(tx)

    def remove(self, tx: Transaction) -> None:
        """Forget ``tx`` now (the layer also does it itself once ``tx`` is TERMINATED)."""
        if tx not in self._members:
            return
        self._members.discard(tx)
        tx.set_listener(None)
        if isinstance(tx, ClientTransaction):
            if self._clients.get(tx.key) is tx:
                del self._clients[tx.key]
        elif isinstance(tx, ServerTransaction):
            if self._servers.get(tx.key) is tx:
                del self._servers[tx.key]
            ack_key = self._ack_key_of.pop(tx, None)
            if ack_key is not None and self._acks_2543.get(ack_key) is tx:
                del self._acks_2543[ack_key]

    # -- matching ---------------------------------------------------------------------------

    def match_response(self, response: Response) -> ClientTransaction | None:
        """The client transaction ``response`` belongs to (RFC 3261 section 17.1.3), or None.

        A response whose Via or CSeq cannot be read matches nothing: RFC 3261 section 18.1.2
        discards it.
        """
        try:
            key = client_key(response)
        except SipError:
            return None
        return self._live(self._clients.get(key))

    def match_request(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` belongs to (RFC 3261 section 17.2.3), or None.

        A retransmission matches the transaction its original created; an ACK matches the INVITE
        transaction whose non-2xx it acknowledges (same branch, or for RFC 2543 peers the same
        Request-URI, From tag, Call-ID, CSeq number and top Via, with the To tag of the response
        the transaction sent). A CANCEL matches its own transaction here; use
        :meth:`match_cancel` for the INVITE it cancels.
        """
        tx = self._servers.get(server_key(request))
        if (
            tx is None
            and request.method == "ACK"
            and not has_rfc3261_branch(request.top_via.branch)
        ):
            invite = self._acks_2543.get(ack_2543_key(request))
            if invite is not None and invite.response_to_tag == request.to.tag:
                tx = invite
        return self._live(tx)

    def match_cancel(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets, or None (RFC 3261 section 9.2).

        Section 9.2 matches the CANCEL with the rules of 17.2.3 as if its method were not CANCEL:
        the key is computed with method INVITE. A CANCEL of a non-INVITE request is pointless
        (9.1), so only INVITE transactions are returned.
        """
        tx = self._live(self._servers.get(server_key(cancel, method="INVITE")))
        return tx if isinstance(tx, InviteServerTransaction) else None

    # -- time -------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None when none is pending."""
        heap = self._heap
        while heap and not self._is_live_entry(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> list[Transaction]:
        """Fire every deadline due at ``now``; return the transactions concerned, in order.

        The caller then takes each one's outgoing messages and reads its state (``timed_out``,
        TERMINATED). Terminated transactions are removed from the table.
        """
        heap = self._heap
        handled: list[Transaction] = []
        seen: set[Transaction] = set()
        while heap and heap[0][0] <= now:
            _, _, tx = heapq.heappop(heap)
            if tx in seen or tx not in self._members:
                continue
            deadline = tx.get_timer()
            if tx.terminated or (deadline is not None and deadline <= now):
                seen.add(tx)
                tx.handle_timer(now)
                handled.append(tx)
        for tx in handled:
            if tx.terminated:
                self.remove(tx)
        if len(heap) > 4 * len(self._members) + 64:
            self._rebuild(now)
        return handled

    # -- internals --------------------------------------------------------------------------

    def _admit(self, tx: Transaction) -> None:
        # Every deadline the transaction armed before it was added is replayed to the listener,
        # and a terminated transaction is never added (add_* returns before this).
        self._members.add(tx)
        tx.set_listener(self._on_deadline)

    def _on_deadline(self, tx: Transaction, deadline: float) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), tx))

    def _is_live_entry(self, entry: tuple[float, int, Transaction]) -> bool:
        deadline, _, tx = entry
        if tx not in self._members:
            return False
        # Every armed deadline was pushed, so the top entry is stale exactly when the
        # transaction's earliest deadline is now later (that timer was stopped or fired).
        return tx.terminated or tx.get_timer() == deadline

    @staticmethod
    def _live(tx: _Tx | None) -> _Tx | None:
        # A transaction terminated outside a timer (transport_error) waits in the table for the
        # next handle_timer; it matches nothing any more.
        return None if tx is None or tx.terminated else tx

    def _rebuild(self, now: float) -> None:
        # Re-registering the listener replays each transaction's armed deadlines; one that
        # terminated outside a timer is due now.
        self._heap = []
        for tx in self._members:
            if tx.terminated:
                self._on_deadline(tx, now)
            else:
                tx.set_listener(self._on_deadline)
