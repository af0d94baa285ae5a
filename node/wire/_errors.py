"""Exception hierarchy of ``node.wire``: one root, split by whose fault it is.

``LocalProtocolError``: this node tried to do something the protocol forbids (a bug here).
``RemoteProtocolError``: the peer sent something invalid. It carries the ``ErrorCode`` to answer
with and whether the byte stream is still in sync (``recoverable``): when it is, the caller may
answer with an ``ErrorMsg`` and keep reading; when not, it should send the error and close.
``IdentityError`` and its subclasses come from the handshake identity payload.
"""

from __future__ import annotations

from ._codes import ErrorCode


class WireError(Exception):
    """Root of every error raised by ``node.wire``."""


class LocalProtocolError(WireError, ValueError):
    """This side attempted to encode or send something the protocol does not allow."""


class RemoteProtocolError(WireError):
    """The peer sent bytes or a message that violate the protocol.

    ``code`` is the ``ErrorCode`` to answer with; ``recoverable`` is True when the offending
    message was consumed whole, so the stream is still in sync; ``request_id`` and ``kind``
    correlate the answer with what caused it (0 when not applicable).
    """

    code: ErrorCode = ErrorCode.PROTOCOL_VIOLATION
    recoverable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        recoverable: bool | None = None,
        request_id: int = 0,
        kind: int = 0,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if recoverable is not None:
            self.recoverable = recoverable
        self.request_id = request_id
        self.kind = kind


class MalformedMessage(RemoteProtocolError):
    """A frame or message body does not parse."""

    code = ErrorCode.MALFORMED


class MessageTooLarge(RemoteProtocolError):
    """A length header exceeds its cap; nothing was allocated for it. Never recoverable."""

    code = ErrorCode.TOO_LARGE
    recoverable = False


class UnknownKind(RemoteProtocolError):
    """A message kind this version does not know; it was skipped, so the stream is in sync."""

    code = ErrorCode.UNKNOWN_KIND
    recoverable = True


class UnsupportedVersion(RemoteProtocolError):
    """The peer's protocol version (handshake payload or Hello) is not supported."""

    code = ErrorCode.UNSUPPORTED_VERSION
    recoverable = False


class IdentityError(WireError):
    """The handshake identity payload is unacceptable; the connection must be dropped."""


class MalformedIdentity(IdentityError, MalformedMessage):
    """The identity payload does not parse."""


class BadSignature(IdentityError):
    """The signature over the Noise static key does not recover to the claimed address."""


class IdentityMismatch(IdentityError):
    """The authenticated address differs from the one the caller expected to reach."""


class IdentityVersionError(IdentityError, UnsupportedVersion):
    """The identity payload announces a version this node does not support."""
