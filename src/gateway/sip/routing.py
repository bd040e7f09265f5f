"""Where messages go and where they came from (RFC 3261 section 18, RFC 3581), and the
early filter that keeps strangers out."""

from __future__ import annotations

from gateway.sip.errors import SipError
from gateway.sip.events import Address
from gateway.sip.headers import Via
from gateway.sip.message import Request
from gateway.sip.uri import SipURI

__all__ = ["SourceFilter", "default_port", "destination", "fix_via", "response_destination"]


def default_port(transport: str) -> int:
    return 5061 if transport == "tls" else 5060


def destination(uri: str, transport: str) -> Address:
    """Where a request for ``uri`` goes (RFC 3263 without DNS: the URI's host and port)."""
    target = SipURI.parse(uri)
    chosen = target.transport or ("tls" if target.scheme == "sips" else transport)
    return Address(chosen, target.host_address, target.port or default_port(chosen))


def fix_via(request: Request, source: Address) -> None:
    """RFC 3261 section 18.2.1 and RFC 3581 section 4: note where the request came from."""
    values = request.headers.get_all("Via")
    if not values:
        return
    top = Via.parse(values[0])
    changed = False
    if top.host.strip("[]") != source.host:
        top.params["received"] = source.host
        changed = True
    if "rport" in top.params and top.params["rport"] is None:
        top.params["rport"] = str(source.port)
        top.params["received"] = source.host
        changed = True
    if changed:
        request.headers.remove("Via")
        request.headers.add("Via", str(top))
        for value in values[1:]:
            request.headers.add("Via", value)


def response_destination(request: Request, source: Address) -> Address:
    """Where the answer to ``request`` goes (RFC 3261 section 18.2.2, RFC 3581 section 4).

    Over a stream, back on the connection the request came on. Over UDP, to the source address
    at the port of ``rport`` when present, else at the sent-by port (5060 when none).
    """
    if source.transport != "udp":
        return source
    try:
        top = request.top_via
    except SipError:
        return source
    host = top.params.get("received") or source.host
    rport = top.params.get("rport")
    if rport:
        return Address("udp", host, int(rport))
    return Address("udp", host, top.port or 5060)


class SourceFilter:
    """Token buckets for addresses that are not trunks: ``rate`` messages per second each,
    and ``10 * rate`` for all of them together, so that a flood from spoofed random sources is
    dropped unread as surely as one from a single address."""

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.total_rate = 10.0 * rate
        self._each: dict[str, tuple[float, float]] = {}
        self._all: tuple[float, float] | None = None

    def allow(self, host: str, now: float) -> bool:
        tokens, last = self._all or (self.total_rate, now)
        tokens = min(self.total_rate, tokens + (now - last) * self.total_rate)
        if tokens < 1.0:
            self._all = (tokens, now)
            return False
        rate = self.rate
        mine, my_last = self._each.get(host, (rate, now))
        mine = min(rate, mine + (now - my_last) * rate)
        allowed = mine >= 1.0
        self._each[host] = (mine - 1.0 if allowed else mine, now)
        self._all = (tokens - 1.0 if allowed else tokens, now)
        if len(self._each) > 10000:
            self._each.clear()  # bounded memory; the global bucket still holds the line
        return allowed
