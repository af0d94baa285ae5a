"""``serve_peers`` (inbound, under admission control) and ``ConnectionManager`` (outbound reuse).

``serve_peers`` accepts TCP peers and applies ``_admission.AdmissionPolicy``: a small
pre-handshake budget (per IP and overall, bounded in time, oldest evicted first), per-IP and
per-identity caps on authenticated connections (refused with ``Error(BUSY)`` + Goodbye), and
watermarks past which the least useful connections are trimmed. See docs/protocol.md,
"Admission control".

ConnectionManager: one connection per peer address, reused, trimmed between watermarks.

libp2p's connection manager in miniature: while more than ``high`` connections are open, the
least recently used ones that nobody is using are closed (with Goodbye) until ``low`` remain.
Connections in use (inside :meth:`use`) are never trimmed. Outbound connections get their
keep-alive task in the manager's nursery.
"""

from __future__ import annotations

import dataclasses
import errno
import heapq
import itertools
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from node.log import get_logger
from node.wire import ErrorCode, ErrorMsg, Message, RemoteProtocolError

from ._admission import AdmissionLimits, AdmissionPolicy, Refusal, ip_key
from ._connect import LocalPeer, _as_local, _NodeIdentity, _tune, open_peer_connection
from ._errors import HandshakeFailed, TransportError
from ._noise_stream import NoiseStream
from ._peer import DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE, PeerConnection

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


# -- inbound: serve_peers under admission control -------------------------------------------

Handler = Callable[[PeerConnection], Awaitable[None]]

#: The sweeper yields to the rest of the node after writing this many keep-alive Pings.
SWEEP_PINGS_BETWEEN_YIELDS = 64

#: Ceiling when the hard RLIMIT_NOFILE is unlimited (the kernel refuses more than nr_open).
_FD_CEILING = 1 << 20


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; returns (old, new).

    A server that runs out of descriptors stops accepting everyone, honest peers included;
    the admission limits are meant to bind long before that. Failure leaves the limit alone.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _FD_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise open-file limit", soft=soft, hard=hard, error=str(exc))
            return soft, soft
        log.info("raised open-file limit", old=soft, new=target)
        return soft, target
    return soft, soft


class _AdmittedConnection(PeerConnection):
    """A PeerConnection that tells the admission policy when the peer is useful or
    misbehaving (the trimming order), without the handler having to."""

    policy: AdmissionPolicy
    conn_id: int

    async def receive(self) -> Message:
        try:
            msg = await super().receive()
        except RemoteProtocolError:
            self.policy.note_strike(self.conn_id)
            raise
        self.policy.note_useful(self.conn_id, trio.current_time())
        return msg

    async def send_chunk(
        self, root: bytes, index: int, data: bytes | memoryview, *, compressed: bool = False
    ) -> None:
        await super().send_chunk(root, index, data, compressed=compressed)
        self.policy.note_useful(self.conn_id, trio.current_time(), len(data))


async def serve_peers(
    handler: Handler,
    port: int,
    identity: LocalPeer | _NodeIdentity,
    *,
    host: str | None = "127.0.0.1",
    handshake_timeout: float | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    keepalive_interval: float = DEFAULT_KEEPALIVE,
    send_timeout: float | None = None,
    limits: AdmissionLimits | None = None,
    policy: AdmissionPolicy | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept peers until cancelled; each admitted one gets a task running ``handler(conn)``.

    Admission (``limits``, defaults in :class:`AdmissionLimits`; ``handshake_timeout``
    overrides ``limits.handshake_timeout``): a socket first needs a pre-handshake slot, then
    after the handshake an established slot; refused sockets are closed (before the handshake)
    or told ``Error(BUSY, retry_after_ms)`` + ``Goodbye(BUSY)`` (after it), logged once per IP
    or identity. Over the high watermark the least useful connections are trimmed
    (``Goodbye(BUSY)``) instead of refusing newcomers. ``policy`` may be passed to inspect
    counts in tests. The open-file soft limit is raised to the hard limit first.

    Liveness without per-connection timers: connections are ``swept`` (``PeerConnection``).
    One task wakes every ``min(1, idle_timeout / 4, keepalive_interval / 4)`` seconds and
    looks at each connection for which something may be due (a heap of the earliest such
    times: an idle connection is looked at once per keep-alive interval, not every round;
    ``policy.looked`` counts the looks). It sends a Ping to each that has been silent towards
    the peer for ``keepalive_interval``, writing it itself with one non-blocking send
    (``PeerConnection.ping_nowait``; a short-lived task only when a write is in progress or
    the socket cannot take it at once; ``policy.keepalive_pings`` / ``keepalive_tasks``),
    yielding to the rest of the node after every ``SWEEP_PINGS_BETWEEN_YIELDS``. It closes
    each connection from which nothing arrived for ``idle_timeout`` (Goodbye), and each whose
    current write (a chunk to a peer that stopped reading) has not completed for
    ``send_timeout`` (default ``idle_timeout``): such a peer must not keep the node's chunk
    buffers. ``policy.sweeps`` counts its rounds and ``policy.idle_closed`` the connections
    it closed.

    ``task_status.started`` receives the listeners (``listeners[0].socket.getsockname()``
    tells the port when ``port`` is 0). The connection is closed (with Goodbye) when the
    handler returns.
    """
    me = _as_local(identity)
    limits = limits or (policy.limits if policy is not None else AdmissionLimits())
    if handshake_timeout is not None:
        limits = dataclasses.replace(limits, handshake_timeout=handshake_timeout)
    pol = policy or AdmissionPolicy(limits)
    pol.limits = limits
    raise_fd_limit()
    listeners = await trio.open_tcp_listeners(port, host=host)
    ids = itertools.count(1)
    pending: dict[int, trio.CancelScope] = {}
    running: dict[int, tuple[trio.CancelScope, PeerConnection]] = {}
    trimmed: set[int] = set()
    idle: set[int] = set()
    looks: list[tuple[float, int]] = []  #: (when to look at a connection next, its id)
    stall = idle_timeout if send_timeout is None else send_timeout
    tick = min(1.0, idle_timeout / 4, keepalive_interval / 4, stall / 4)

    async def ping(conn: PeerConnection) -> None:
        conn.pinging = True
        try:
            await conn.ping()
        except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection's own task sees the broken stream
        finally:
            conn.pinging = False

    def next_look(conn: PeerConnection, now: float) -> float:
        """The earliest time any of the sweeper's conditions can hold for ``conn``: its
        clocks only move forward, and a write starting after ``now`` cannot stall before
        ``now + stall``. Before it the connection is not looked at (an idle one costs
        nothing between its keep-alives)."""
        t = min(conn.last_received + idle_timeout, conn.last_sent + keepalive_interval)
        started = conn.send_started
        if started is not None:
            t = min(t, started + stall)
        return max(min(t, now + stall), now + tick / 2)  # > now: not again this round

    async def sweeper(nursery: trio.Nursery) -> None:
        """Keep-alive and idle timeout for every connection: one timer for the node, and
        each connection looked at only when something may be due (a heap of those times)."""
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            pol.sweeps += 1
            written = 0
            while looks and looks[0][0] <= now:
                cid = heapq.heappop(looks)[1]
                if written >= SWEEP_PINGS_BETWEEN_YIELDS:
                    # let the rest of the node run between batches of Pings (spread in time)
                    written = 0
                    await trio.sleep(0)
                entry = running.get(cid)
                if entry is None:  # ended meanwhile
                    continue
                scope, conn = entry
                pol.looked += 1
                started = conn.send_started
                if now - conn.last_received > idle_timeout or (
                    started is not None and now - started > stall
                ):
                    if cid not in idle:
                        idle.add(cid)
                        scope.cancel()
                    continue
                if now - conn.last_sent >= keepalive_interval and not conn.pinging:
                    pol.keepalive_pings += 1
                    written += 1
                    if not conn.ping_nowait():  # written here, or by a task of its own
                        pol.keepalive_tasks += 1
                        conn.pinging = True
                        nursery.start_soon(ping, conn)
                heapq.heappush(looks, (next_look(conn, now), cid))

    def refused(refusal: Refusal, **kw: object) -> None:
        if refusal.log:
            log.info(
                "connection refused (logged once per key)",
                reason=refusal.reason,
                key=refusal.key,
                **kw,
            )

    async def on_stream(tcp: trio.SocketStream) -> None:
        cid = next(ids)
        try:
            ip = ip_key(str(tcp.socket.getpeername()[0]))
        except OSError:  # already gone
            await trio.aclose_forcefully(tcp)
            return
        grant = pol.begin_handshake(cid, ip, trio.current_time())
        if isinstance(grant, Refusal):
            refused(grant, ip=ip)
            await trio.aclose_forcefully(tcp)
            return
        if grant.evict is not None and grant.evict in pending:
            pending.pop(grant.evict).cancel()
        _tune(tcp)
        stream = NoiseStream(
            tcp,
            initiator=False,
            static=me.static,
            identity_payload=me.payload,
            handshake_timeout=limits.handshake_timeout,
        )
        conn = _AdmittedConnection(
            stream,
            capabilities=me.capabilities,
            idle_timeout=idle_timeout,
            keepalive_interval=keepalive_interval,
        )
        conn.policy, conn.conn_id = pol, cid
        conn.swept = True  # liveness is the sweeper's (above): no timer of its own
        try:
            with trio.CancelScope(deadline=trio.current_time() + limits.handshake_timeout) as hs:
                pending[cid] = hs
                try:
                    await conn.start()
                except (TransportError, trio.TooSlowError) as exc:
                    if pol.first_time(f"handshake-failed:{ip}"):
                        log.info(
                            "handshake failed (logged once per IP)",
                            ip=ip,
                            error=str(exc),
                            kind=type(exc).__name__,
                        )
                    await trio.aclose_forcefully(stream)
                    return
        finally:
            pending.pop(cid, None)
            pol.end_handshake(cid)
        if hs.cancelled_caught:  # timed out or evicted for a newcomer: nothing to say
            await trio.aclose_forcefully(stream)
            return
        admitted = pol.admit(cid, ip, conn.address, trio.current_time())
        if isinstance(admitted, Refusal):
            refused(admitted, ip=ip, peer=conn.address)
            busy = ErrorMsg(
                ErrorCode.BUSY, retry_after_ms=limits.retry_after_ms, message=admitted.reason
            )
            await conn.aclose(ErrorCode.BUSY, admitted.reason, error=busy)
            return
        for victim in admitted.trim:
            if victim in running:
                trimmed.add(victim)
                running[victim][0].cancel()
        if admitted.trim:
            log.info("trimmed connections", count=len(admitted.trim), open=pol.established)
        try:
            with trio.CancelScope() as scope:
                running[cid] = (scope, conn)
                now = trio.current_time()
                heapq.heappush(looks, (next_look(conn, now), cid))
                try:
                    await handler(conn)
                except TransportError as exc:
                    log.debug("peer connection ended", peer=conn.address, reason=str(exc))
                except Exception:
                    # A bug in one connection's handler must not take the server down.
                    log.exception("peer handler crashed", peer=conn.address)
        finally:
            running.pop(cid, None)
            pol.release(cid)
            if cid in trimmed:
                trimmed.discard(cid)
                await conn.aclose(ErrorCode.BUSY, "trimmed: node over its connection watermark")
            elif cid in idle:
                idle.discard(cid)
                pol.idle_closed += 1
                log.debug("closing a silent or stalled peer", peer=conn.address)
                await conn.aclose(ErrorCode.OK, "idle: nothing received, or a write stalled")
            else:
                await conn.aclose()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sweeper, nursery)
            await trio.serve_listeners(on_stream, listeners, task_status=task_status)
    except OSError as exc:  # pragma: no cover - accept() failures other than EMFILE
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise HandshakeFailed(f"out of file descriptors: {exc}") from None
        raise
