"""Error codes carried by ``ErrorMsg`` and ``Goodbye``; numbers are part of the wire format.

Numbers never change meaning and are never reused. A peer that receives a code it does not know
treats it as ``INTERNAL`` for its own decisions but keeps the number (see ``decode_code``).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Stable wire error codes (u16 on the wire)."""

    OK = 0
    """No error; used by ``Goodbye`` for an orderly close."""
    MALFORMED = 1
    """A message or frame could not be parsed (bad length, bad field value, bad UTF-8)."""
    UNSUPPORTED_VERSION = 2
    """The peer speaks a protocol version this node does not support."""
    UNKNOWN_KIND = 3
    """The message kind byte is not known to this version; the message was skipped."""
    TOO_LARGE = 4
    """A length exceeded the cap for its kind; the connection cannot continue."""
    NOT_FOUND = 5
    """The content (or the asked-for part of it) is not held here."""
    BUSY = 6
    """Temporarily overloaded; retry after ``retry_after_ms``."""
    RATE_LIMITED = 7
    """The peer exceeded an advertised limit (outstanding requests, rate); retry later."""
    INTERNAL = 8
    """A local failure unrelated to what the peer sent (disk error, bug)."""
    PROTOCOL_VIOLATION = 9
    """A well-formed message that is not allowed in the current state."""
    BAD_RECEIPT = 10
    """A receipt whose signature, signer, or fields do not check out."""
    SHUTTING_DOWN = 11
    """The node is stopping; reconnect elsewhere or later."""
    BAD_CHUNK = 12
    """Chunk data did not verify against its chunk root (sent by the receiver, informational)."""
    OUT_OF_RANGE = 13
    """A chunk index or chunk-root range beyond the content's chunk count; recoverable."""


def decode_code(value: int) -> ErrorCode | int:
    """Map a wire number to ``ErrorCode``; an unknown number is kept as a plain ``int``."""
    try:
        return ErrorCode(value)
    except ValueError:
        return value
