"""Message framing for stream transports (TCP, TLS): RFC 3261 section 18.3.

A stream carries messages back to back; the header section ends at the first empty line and
Content-Length gives the body. The buffer is bounded: a peer cannot make us hold more than
``max_size`` octets for one message.
"""

from __future__ import annotations

import re

from gateway.sip.errors import MessageTooLarge, ParseError, SipError

# Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT, at the start of a header line;
# the value may be folded onto continuation lines (LWS = [*WSP CRLF] 1*WSP).
_CONTENT_LENGTH = re.compile(rb"\n(?:content-length|l)[ \t]*:((?:[^\r\n]|\r\n[ \t])*)", re.I)
_FOLD = re.compile(rb"\r\n[ \t]+")


class StreamFramer:
    """Cuts a byte stream into whole SIP messages.

    ``feed`` returns the complete messages, each as bytes for ``parse``. CRLFs between messages
    are keep-alives and are skipped (RFC 3261 section 7.5); each double CRLF "ping" (RFC 5626
    section 3.5.1) is counted in ``pings`` so that the transport can answer it with a single
    CRLF "pong" (``take_pings`` returns and resets the count not yet answered).

    Errors: ``MessageTooLarge`` (513) for a message, or a header section without its empty
    line, longer than ``max_size``; ``ParseError`` (400) for a missing, repeated-and-differing
    or malformed Content-Length, which a stream MUST carry (section 18.3). After an error the
    framer is unusable, since the stream can no longer be cut: close the connection.
    """

    def __init__(self, max_size: int = 65536) -> None:
        self.max_size = max_size
        self.pings = 0
        self._unanswered = 0
        self._buffer = bytearray()
        self._scanned = 0  # offset up to which no CRLFCRLF was found in the buffer
        self._body_end: int | None = None  # end of the current message, once known
        self._error: SipError | None = None

    def take_pings(self) -> int:
        """The double-CRLF pings received since the last call, each owed a CRLF pong."""
        count, self._unanswered = self._unanswered, 0
        return count

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` from the stream; return the messages it completes, in order."""
        if self._error is not None:
            raise ParseError(f"Stream unusable after an earlier error: {self._error}")
        self._buffer += data
        messages: list[bytes] = []
        try:
            while True:
                message = self._next()
                if message is None:
                    return messages
                messages.append(message)
        except SipError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _skip_keepalives(self) -> bool:
        """Drop the CRLFs before a message; False if more data is needed to tell."""
        buf = self._buffer
        while buf and buf[0] in (0x0D, 0x0A):
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                self.pings += 1
                self._unanswered += 1
            elif len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                return False  # maybe the start of a ping: wait for the rest
            elif buf[:2] == b"\r\n":
                del buf[:2]
            else:
                del buf[:1]  # a bare CR or LF outside a message: tolerated, dropped
        return True

    def _next(self) -> bytes | None:
        buf = self._buffer
        if self._body_end is None:
            if self._scanned == 0 and not self._skip_keepalives():
                return None
            head_end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if head_end < 0:
                if len(buf) > self.max_size:
                    raise MessageTooLarge(
                        f"Header section longer than {self.max_size} octets without its end"
                    )
                self._scanned = len(buf)
                return None
            length = self._content_length(bytes(buf[:head_end]))
            self._body_end = head_end + 4 + length
            if self._body_end > self.max_size:
                raise MessageTooLarge(f"Message of {self._body_end} octets over {self.max_size}")
        if len(buf) < self._body_end:
            return None
        message = bytes(buf[: self._body_end])
        del buf[: self._body_end]
        self._body_end = None
        self._scanned = 0
        return message

    @staticmethod
    def _content_length(head: bytes) -> int:
        values = {_FOLD.sub(b" ", m).strip(b" \t") for m in _CONTENT_LENGTH.findall(head)}
        if not values:
            # RFC 3261 section 18.3: on a stream, Content-Length MUST be present.
            raise ParseError("Missing Content-Length on a stream transport")
        if len(values) > 1:
            # Two different lengths: no safe way to find where the next message starts.
            raise ParseError("Conflicting Content-Length values")
        value = values.pop()
        if not value.isdigit() or len(value) > 10:
            raise ParseError(f"Malformed Content-Length {value!r}")
        return int(value)
