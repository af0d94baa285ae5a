"""Opening peer connections over TCP: ``open_peer_connection``, ``LocalPeer``."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from node.log import get_logger
from node.noise import KeyPair
from node.wire import Capabilities, make_identity_payload

from ._errors import ClosedInHandshake, PeerDisconnected, PeerUnresolvable
from ._noise_stream import DEFAULT_HANDSHAKE_TIMEOUT, NoiseStream
from ._peer import DEFAULT_IDLE_TIMEOUT, PeerConnection
from ._tcp import tune_socket

#: getaddrinfo answers that mean "no such name" (not a resolver outage or a timeout)
_NO_SUCH_NAME = {
    getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL") if hasattr(socket, n)
}

log = get_logger(__name__)


class _NodeIdentity(Protocol):
    """What the transport needs of ``node.identity.Identity``."""

    @property
    def account(self) -> Any: ...
    @property
    def address(self) -> str: ...
    @property
    def noise_private(self) -> bytes: ...
    @property
    def noise_public(self) -> bytes: ...


@dataclass(frozen=True)
class LocalPeer:
    """This node as the transport presents it: Noise key pair and signed identity payload.

    Build once per process with :meth:`from_identity` (the payload signature costs a few ms).
    """

    address: str
    static: KeyPair
    payload: bytes
    capabilities: Capabilities

    @classmethod
    def from_identity(
        cls, identity: _NodeIdentity, capabilities: Capabilities | None = None
    ) -> LocalPeer:
        caps = capabilities or Capabilities()
        static = KeyPair.from_private(identity.noise_private)
        payload = make_identity_payload(identity.account, static.public, caps)
        return cls(identity.address, static, payload, caps)


def _as_local(identity: LocalPeer | _NodeIdentity) -> LocalPeer:
    return identity if isinstance(identity, LocalPeer) else LocalPeer.from_identity(identity)


async def open_peer_connection(
    host: str,
    port: int,
    identity: LocalPeer | _NodeIdentity,
    expected_address: str | None = None,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    connect_timeout: float = 10.0,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> PeerConnection:
    """Connect, run the Noise handshake (pinning ``expected_address`` if given) and Hello."""
    me = _as_local(identity)
    try:
        with trio.fail_after(connect_timeout):
            tcp = await trio.open_tcp_stream(host, port)
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise PeerUnresolvable(f"cannot connect to {host}:{port}: {exc.strerror}") from None
        raise PeerDisconnected(f"cannot connect to {host}:{port}: {exc}") from None
    except (OSError, trio.TooSlowError) as exc:
        raise PeerDisconnected(f"cannot connect to {host}:{port}: {exc}") from None
    _tune(tcp)
    stream = NoiseStream(
        tcp,
        initiator=True,
        static=me.static,
        identity_payload=me.payload,
        expected_address=expected_address,
        handshake_timeout=handshake_timeout,
    )
    conn = PeerConnection(stream, capabilities=me.capabilities, idle_timeout=idle_timeout)
    try:
        await conn.start()
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        if isinstance(exc, PeerDisconnected) and not stream.handshake_complete:
            raise ClosedInHandshake(f"{exc} (before the handshake finished)") from None
        raise
    return conn


def _tune(tcp: trio.SocketStream) -> None:
    """Socket buffers and congestion control (``node.transport._tcp``)."""
    tune_socket(tcp.socket)  # type: ignore[arg-type]


# ``serve_peers`` (inbound, under admission control) lives in ``_manager``.
