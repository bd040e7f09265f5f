"""Errors raised when a peer sends something wrong, each carrying the response that answers it.

Following h11, a protocol error is not a crash: it holds the status code (and any extra header
fields) of the SIP response that the user agent core sends back at one boundary. A response that
fails to parse is never answered (RFC 3261 section 18.1.2: it is discarded); the status is then
only a hint for logging.

API misuse by our own code (building a ``Request`` with an illegal method, say) raises
``ValueError`` instead, so the two are never confused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sip.message import Request

# RFC 3261 section 21 and the extensions a user agent meets in practice.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

_CLASS_PHRASES = {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}


def reason_phrase(status: int) -> str:
    """The usual Reason-Phrase for ``status``; a generic one for codes not in the table.

    RFC 3261 section 21: a client treats an unknown code like the x00 code of its class, so a
    class phrase is an honest default.
    """
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_PHRASES.get(status // 100, "Global Failure")


class SipError(Exception):
    """Something the peer sent is wrong.

    ``status`` and ``reason`` give the response that answers it (400, 413/513, 416, 420, 505 ...);
    ``headers`` holds extra header fields for that answer (Unsupported, Accept, Allow).
    ``request``, when set by ``parse``, is the request as far as it could be read (its Via,
    From, To, Call-ID and CSeq), so that the answer can be built with ``response_for``.
    """

    default_status = 400

    def __init__(
        self,
        message: str,
        status: int | None = None,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status: int = self.default_status if status is None else status
        self.reason: str = reason if reason is not None else reason_phrase(self.status)
        self.headers: list[tuple[str, str]] = list(headers) if headers else []
        self.request: Request | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class ParseError(SipError):
    """A malformed message, start line, header field or URI (400 Bad Request)."""

    default_status = 400


class MessageTooLarge(SipError):
    """A message longer than the configured bound (513 Message Too Large, RFC 3261 21.5.7)."""

    default_status = 513


class UnsupportedURIScheme(SipError):
    """A URI scheme this user agent does not serve (416, RFC 3261 section 8.2.2.1)."""

    default_status = 416


class VersionNotSupported(SipError):
    """A SIP-Version other than SIP/2.0 (505, RFC 3261 section 8.2.1 and 21.5.6)."""

    default_status = 505


class MethodNotAllowed(SipError):
    """A known method that this user agent does not serve (405 with Allow, RFC 3261 8.2.1)."""

    default_status = 405


class MethodNotImplemented(SipError):
    """A method this user agent does not recognise (501, RFC 3261 section 8.2.1 and 21.5.2)."""

    default_status = 501


class BadExtension(SipError):
    """A Require option-tag that is not supported (420 with Unsupported, RFC 3261 8.2.2.3)."""

    default_status = 420


class UnsupportedMediaType(SipError):
    """A body this user agent cannot process (415 with Accept, RFC 3261 section 8.2.3)."""

    default_status = 415
