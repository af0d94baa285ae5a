"""Trio transport: Noise-encrypted, identity-authenticated peer connections over TCP.

Layout:

- ``_errors``        error tree (local vs remote; trio's Closed/Broken mixed in)
- ``_noise_stream``  :class:`NoiseStream`, a ``trio.abc.Stream`` in the manner of SSLStream
- ``_peer``          :class:`PeerConnection`: node.wire messages, Hello, keep-alive, Goodbye
- ``_connect``       :func:`open_peer_connection`
- ``_admission``     sans-IO admission policy: handshake budget, per-IP/identity caps, trimming
- ``_manager``       :func:`serve_peers` (admission control), :class:`ConnectionManager`

The sans-IO protocol logic lives in ``node.noise`` and ``node.wire``; this package only moves
bytes and translates failures at the edge.
"""

from ._admission import AdmissionLimits as AdmissionLimits
from ._admission import AdmissionPolicy as AdmissionPolicy
from ._connect import LocalPeer as LocalPeer
from ._connect import open_peer_connection as open_peer_connection
from ._errors import ClosedInHandshake as ClosedInHandshake
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import HandshakeFailed as HandshakeFailed
from ._errors import HandshakeTimeout as HandshakeTimeout
from ._errors import IdleTimeout as IdleTimeout
from ._errors import LocalTransportError as LocalTransportError
from ._errors import PeerDisconnected as PeerDisconnected
from ._errors import PeerIdentityMismatch as PeerIdentityMismatch
from ._errors import PeerUnresolvable as PeerUnresolvable
from ._errors import RemoteTransportError as RemoteTransportError
from ._errors import TransportError as TransportError
from ._errors import TransportProtocolError as TransportProtocolError
from ._manager import ConnectionManager as ConnectionManager
from ._manager import raise_fd_limit as raise_fd_limit
from ._manager import serve_peers as serve_peers
from ._noise_stream import NoiseStream as NoiseStream
from ._peer import MAX_ERROR_TEXT as MAX_ERROR_TEXT
from ._peer import MAX_GOODBYE_TEXT as MAX_GOODBYE_TEXT
from ._peer import PeerConnection as PeerConnection
from ._peer import clip_text as clip_text
from ._tcp import set_congestion as set_congestion

__all__ = [
    "MAX_ERROR_TEXT",
    "MAX_GOODBYE_TEXT",
    "AdmissionLimits",
    "AdmissionPolicy",
    "ClosedInHandshake",
    "ConnectionClosed",
    "ConnectionManager",
    "HandshakeFailed",
    "HandshakeTimeout",
    "IdleTimeout",
    "LocalPeer",
    "LocalTransportError",
    "NoiseStream",
    "PeerConnection",
    "PeerDisconnected",
    "PeerIdentityMismatch",
    "PeerUnresolvable",
    "RemoteTransportError",
    "TransportError",
    "TransportProtocolError",
    "clip_text",
    "open_peer_connection",
    "raise_fd_limit",
    "serve_peers",
    "set_congestion",
]
