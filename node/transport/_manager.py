"""ConnectionManager: one connection per peer address, reused, trimmed between watermarks.

libp2p's connection manager in miniature: while more than ``high`` connections are open, the
least recently used ones that nobody is using are closed (with Goodbye) until ``low`` remain.
Connections in use (inside :meth:`use`) are never trimmed. Outbound connections get their
keep-alive task in the manager's nursery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from node.log import get_logger

from ._connect import LocalPeer, open_peer_connection
from ._peer import PeerConnection

log = get_logger(__name__)


@dataclass
class _Entry:
    conn: PeerConnection
    users: int = 0
    last_used: float = field(default_factory=trio.current_time)


class ConnectionManager:
    def __init__(
        self, identity: LocalPeer, nursery: trio.Nursery, *, low: int = 32, high: int = 64
    ) -> None:
        if not 0 < low <= high:
            raise ValueError("need 0 < low <= high")
        self.identity = identity
        self.nursery = nursery
        self.low = low
        self.high = high
        self._by_address: dict[str, _Entry] = {}
        self._by_endpoint: dict[tuple[str, int], str] = {}
        self._connecting: dict[tuple[str, int], trio.Event] = {}

    def __len__(self) -> int:
        return len(self._by_address)

    def get(self, address: str) -> PeerConnection | None:
        entry = self._by_address.get(address)
        if entry is None or entry.conn.closed:
            return None
        return entry.conn

    async def connect(
        self, host: str, port: int, expected_address: str | None = None
    ) -> PeerConnection:
        """A live connection to ``host:port`` (reused when one exists), pinned if asked."""
        endpoint = (host, port)
        while endpoint in self._connecting:
            await self._connecting[endpoint].wait()
        address = expected_address or self._by_endpoint.get(endpoint)
        if address is not None and (conn := self.get(address)) is not None:
            self._by_address[address].last_used = trio.current_time()
            return conn
        done = self._connecting[endpoint] = trio.Event()
        try:
            conn = await open_peer_connection(host, port, self.identity, expected_address)
        finally:
            del self._connecting[endpoint]
            done.set()
        self._by_endpoint[endpoint] = conn.address
        self.add(conn)
        self.nursery.start_soon(conn.keepalive)
        return conn

    def add(self, conn: PeerConnection) -> None:
        """Track a connection (inbound ones too); a duplicate to the same address is kept
        until trimmed, the newest wins the slot."""
        self._by_address[conn.address] = _Entry(conn)
        if len(self._by_address) > self.high:
            self.nursery.start_soon(self.trim)

    @asynccontextmanager
    async def use(self, conn: PeerConnection) -> AsyncIterator[PeerConnection]:
        entry = self._by_address.get(conn.address)
        if entry is not None:
            entry.users += 1
        try:
            yield conn
        finally:
            if entry is not None:
                entry.users -= 1
                entry.last_used = trio.current_time()

    async def trim(self) -> int:
        """Close idle connections, least recently used first, down to ``low``. Returns count."""
        self._forget_closed()
        if len(self._by_address) <= self.high:
            return 0
        idle = sorted(
            (e for e in self._by_address.values() if e.users == 0), key=lambda e: e.last_used
        )
        closed = 0
        for entry in idle:
            if len(self._by_address) <= self.low:
                break
            del self._by_address[entry.conn.address]
            await entry.conn.aclose()
            closed += 1
        log.debug("trimmed connections", closed=closed, open=len(self._by_address))
        return closed

    def _forget_closed(self) -> None:
        for address, entry in list(self._by_address.items()):
            if entry.conn.closed:
                del self._by_address[address]

    async def aclose(self) -> None:
        for entry in list(self._by_address.values()):
            await entry.conn.aclose()
        self._by_address.clear()
