"""Errors of :mod:`node.transport`, rooted at :class:`TransportError`.

Transport failures are translated at the edge (``raise PeerDisconnected(...) from None``) so
callers never see ``trio.BrokenResourceError``, ``OSError`` or a Noise exception. As in trio,
"you closed it" and "it broke under you" have two names:

- :class:`ConnectionClosed` (local): this side already closed the connection.
- :class:`PeerDisconnected` (remote): the peer closed, reset, or the network failed.

They subclass ``trio.ClosedResourceError`` / ``trio.BrokenResourceError`` so generic trio code
(and ``trio.testing.check_two_way_stream``) treats them as it expects.
"""

from __future__ import annotations

import trio


class TransportError(Exception):
    """Root of every error raised by :mod:`node.transport`."""


class LocalTransportError(TransportError):
    """This side misused the connection."""


class RemoteTransportError(TransportError):
    """The peer or the network failed or misbehaved."""


class ConnectionClosed(LocalTransportError, trio.ClosedResourceError):
    """The connection was closed by this side; it cannot be used any more."""


class PeerDisconnected(RemoteTransportError, trio.BrokenResourceError):
    """The peer went away (EOF, reset, broken pipe) or said Goodbye."""

    def __init__(self, message: str = "peer disconnected", *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ClosedInHandshake(PeerDisconnected):
    """The peer closed the connection before the handshake finished: a node's admission
    control refuses (or evicts) sockets this way during a burst, when nothing can be said
    yet, so another attempt a moment later may well get in (``fetch`` makes two more)."""


class PeerUnresolvable(PeerDisconnected):
    """The peer's host name does not resolve (DNS says there is no such name): running the
    same command again will not help until the name, the resolver or the network changes."""


class HandshakeFailed(RemoteTransportError):
    """The Noise handshake or the identity check failed; no application data was exchanged."""


class HandshakeTimeout(HandshakeFailed):
    """The peer did not finish the handshake in time."""


class PeerIdentityMismatch(HandshakeFailed):
    """The peer proved an address other than the one pinned for it."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected peer {expected}, it is {actual}")
        self.expected = expected
        self.actual = actual


class TransportProtocolError(RemoteTransportError):
    """The peer sent bytes that break framing, decryption or the message grammar.

    ``code`` is the wire ``ErrorCode`` number this side answered with (0 when none was sent,
    e.g. a MAC failure, which gets no answer) and ``kind`` the kind of the offending message.
    """

    def __init__(self, message: str, *, code: int = 0, kind: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind


class IdleTimeout(RemoteTransportError):
    """Nothing arrived from the peer for longer than the idle timeout."""
