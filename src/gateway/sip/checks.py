"""The checks a user agent makes on a message before acting on it (RFC 3261 section 8.2).

``parse`` only frames and splits a message; these functions read the header fields that every
layer relies on, so that a malformed or unacceptable request is answered once, here, with the
right status, and a malformed response is dropped (RFC 3261 section 18.1.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.sip.errors import (
    BadExtension,
    MethodNotAllowed,
    MethodNotImplemented,
    ParseError,
    UnsupportedMediaType,
    UnsupportedURIScheme,
)
from gateway.sip.uri import SipURI, uri_scheme

if TYPE_CHECKING:
    from gateway.sip.message import Message, Request, Response

# RFC 3261 section 8.1.1: the header fields every request carries (Max-Forwards too, but a
# user agent tolerates its absence: RFC 2543 peers did not send it).
MANDATORY_REQUEST = ("Via", "From", "To", "Call-ID", "CSeq")
MANDATORY_RESPONSE = ("Via", "From", "To", "Call-ID", "CSeq")

# Header fields whose grammar allows one value only (RFC 3261 section 20; RFC 4475 3.3.8).
SINGLE_VALUED = (
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Content-Disposition",
    "Expires",
    "Min-Expires",
    "MIME-Version",
    "Date",
    "Timestamp",
    "Retry-After",
    "Subject",
    "Organization",
    "Priority",
    "Reply-To",
    "Server",
    "User-Agent",
)

# Methods of RFC 3261 and its extensions: a request with one of them that we do not serve
# gets 405; any other method 501 (section 8.2.1).
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


def _check_common(message: Message, mandatory: tuple[str, ...]) -> None:
    headers = message.headers
    for name in mandatory:
        if name not in headers:
            raise ParseError(f"Missing {name} header")
    for name in SINGLE_VALUED:
        if len(headers.get_lines(name)) > 1:
            raise ParseError(f"Header {name} appears more than once")
    # Reading each view validates it; each raises ParseError naming the header.
    message.via  # noqa: B018
    message.from_  # noqa: B018
    message.to  # noqa: B018
    message.call_id  # noqa: B018
    message.max_forwards  # noqa: B018
    message.content_type  # noqa: B018
    message.contact  # noqa: B018
    message.record_route  # noqa: B018


def check_response(response: Response) -> None:
    """Raise ``ParseError`` if ``response`` lacks or garbles a header a client relies on.

    A response that fails is discarded, never answered (RFC 3261 section 18.1.2).
    """
    _check_common(response, MANDATORY_RESPONSE)
    response.cseq  # noqa: B018


def check_request(
    request: Request,
    *,
    supported: Iterable[str] = (),
    accepted_content_types: Iterable[str] = ("application/sdp",),
    methods: Iterable[str] | None = None,
) -> None:
    """Raise the ``SipError`` that answers ``request``, or return if it may be processed.

    In the order of RFC 3261 section 8.2:

    - 400: a mandatory header missing (Via, From, To, Call-ID, CSeq), a single-valued header
      repeated, one malformed, a CSeq method unlike the request method (section 8.1.1.5),
      headers in the Request-URI (section 19.1.1, RFC 4475 section 3.1.2.11);
    - 405 with Allow / 501 (section 8.2.1), only when ``methods`` is given: a method not in it,
      405 if it is a known SIP method, 501 otherwise;
    - 416 (section 8.2.2.1): a Request-URI that is not ``sip:`` or ``sips:``;
    - 420 with Unsupported (section 8.2.2.3): a Require option-tag not in ``supported``
      (never for ACK or CANCEL, which cannot be rejected that way);
    - 415 with Accept or Accept-Encoding (section 8.2.3): a body whose Content-Type is not in
      ``accepted_content_types``, or whose Content-Encoding is not ``identity``.

    Max-Forwards 0 is not refused: a user agent processes the request (RFC 4475 section 3.3.11).
    Date is not read, so a non-GMT Date is ignored (RFC 4475 section 3.1.2.12 allows it), and
    Proxy-Require is for proxies only (section 20.29).
    An ACK must never be answered: callers drop it when this raises.
    """
    _check_common(request, MANDATORY_REQUEST)
    cseq = request.cseq
    if cseq.seq >= 2**31:
        # RFC 3261 section 8.1.1.5: the sequence number MUST be less than 2**31.
        raise ParseError(f"CSeq number too large: {cseq.seq}")
    if cseq.method != request.method:
        # Section 8.1.1.5: the CSeq method MUST match that of the request.
        raise ParseError(f"CSeq method {cseq.method!r} differs from {request.method!r}")
    scheme = uri_scheme(request.uri)
    if scheme is None:
        raise ParseError(f"Malformed Request-URI {request.uri!r}")
    if scheme in ("sip", "sips"):
        uri = SipURI.parse(request.uri)
        if uri.headers:
            # Section 19.1.1, table 1: headers are not allowed in a Request-URI.
            raise ParseError("Headers in the Request-URI")

    if methods is not None:
        allowed = list(methods)
        if request.method not in allowed:
            allow = [("Allow", ", ".join(allowed))]
            if request.method in KNOWN_METHODS:
                raise MethodNotAllowed(f"Method {request.method} not allowed", headers=allow)
            raise MethodNotImplemented(f"Method {request.method!r} not implemented", headers=allow)

    if scheme not in ("sip", "sips"):
        raise UnsupportedURIScheme(f"Unsupported Request-URI scheme {scheme!r}")

    if request.method not in ("ACK", "CANCEL"):
        known = {option.lower() for option in supported}
        unknown = [tag for tag in request.headers.get_all("Require") if tag.lower() not in known]
        if unknown:
            raise BadExtension(
                f"Unsupported extensions: {', '.join(unknown)}",
                headers=[("Unsupported", ", ".join(unknown))],
            )

    if request.body:
        accepted = [media_type.lower() for media_type in accepted_content_types]
        content_type = request.content_type
        if content_type is None:
            # Section 20.15: a non-empty body MUST come with Content-Type.
            raise ParseError("Body without Content-Type")
        if content_type not in accepted:
            raise UnsupportedMediaType(
                f"Unsupported Content-Type {content_type!r}",
                headers=[("Accept", ", ".join(accepted))],
            )
        encodings = [e.lower() for e in request.headers.get_all("Content-Encoding")]
        if any(encoding != "identity" for encoding in encodings):
            raise UnsupportedMediaType(
                "Unsupported Content-Encoding", headers=[("Accept-Encoding", "identity")]
            )
