"""Connection reuse: authenticated provider connections kept open between fetches.

A daemon that fetches from the same provider again (small updates: a new 1 MiB content every
few seconds) would pay TCP connect + Noise XX handshake + Hello each time (~3 ms on loopback).
A :class:`ConnectionPool` keeps them: :meth:`ConnectionPool.dial` (pass it to
``fetch(..., dial=pool.dial)``) hands out a :class:`Lease` on an idle connection to the same
endpoint, pinned address and local Hello, or dials a new one. Closing the lease with
``aclose()`` (what the fetch does at its end) gives the connection back instead of closing it,
but only when it is clean: both sides still open (no Goodbye either way), the Noise stream not
broken (a send interrupted half-way breaks it), no chunk request of ours still outstanding, and
no Cancel sent on it (pieces of a cancelled chunk may still be on their way, and could be taken
for the start of the same chunk asked again by the next fetch). Any other close (a Goodbye with a
code or a reason, an Error) closes it for real.

While idle, a connection has one reader task in the pool's nursery, which answers Pings (the
provider's sweeper keeps quiet connections alive that way), takes late receipt answers (below)
and notices the provider leaving (Goodbye, EOF, a broken stream): such a connection is removed
at once, so the next fetch dials afresh. A borrow cancels that reader first (a receive is
cancel-safe: bytes read stay in the connection's buffers) and then uses the connection
directly, with no extra hop per message. The race left: the provider closes the connection
after the borrow began; the fetch then sees a disconnect, like any dropped peer, and
``node.app.Node.fetch`` runs it once more on fresh connections.

Late receipt answers: a fetch run with ``wait_receipts=False`` sends its last receipts and
returns without waiting for the ``ReceiptAck``s; it hands each such connection's pending
answers over with :meth:`Lease.hand_over`, and the idle reader passes each ReceiptAck (or
``Error(BAD_RECEIPT)``) to the fetch's handler, which records it in the provider's report, as
the fetch itself would have. A connection whose answers do not come within
``receipt_timeout`` is closed (``Lease.expired``).

Bounds: at most ``max_idle`` idle connections (the oldest is closed first when another comes
back) and ``max_per_peer`` to one peer (concurrent gets each take one; a return beyond that is
closed), each closed after ``idle_timeout`` seconds unused (default 30 s, below the peers'
default idle timeout of 60 s), and after ``max_uses`` fetches (256: the provider keeps a little
state per root served on a connection, its receipt credit, freed when the connection ends).
``stats`` counts dials, reuses, returns and closes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import trio

from node.log import get_logger
from node.transport import LocalPeer, PeerConnection, TransportError, open_peer_connection
from node.wire import Cancel, ErrorCode, ErrorMsg, Kind, Message, Phase, ReceiptAck, Side

if TYPE_CHECKING:
    from ._fetch import PeerAddr

log = get_logger(__name__)

DEFAULT_MAX_IDLE = 32  #: idle connections kept, all peers together
DEFAULT_MAX_PER_PEER = 4  #: idle connections kept to one peer (concurrent gets each take one)
DEFAULT_MAX_USES = 256  #: fetches one connection carries (the provider keeps per-root state)
DEFAULT_IDLE_TIMEOUT = 30.0  #: seconds an idle connection is kept
DEFAULT_RECEIPT_TIMEOUT = 10.0  #: seconds late receipt answers are waited for
#: a borrow waits this long for an idle connection's due receipt answers (about what a new
#: connection costs; a provider booking receipts slowly is not waited for)
SETTLE_WAIT = 0.005

Key = tuple[str, int, str, str, bytes]


@dataclass
class PoolStats:
    dials: int = 0  #: new connections opened
    reuses: int = 0  #: borrows served by an idle connection
    returned: int = 0  #: leases given back clean
    closed: int = 0  #: connections closed by the pool or not taken back
    lost: int = 0  #: idle connections the peer closed (or broke)
    late_answers: int = 0  #: receipt answers taken while idle

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def _key(addr: PeerAddr, me: LocalPeer) -> Key:
    return (addr.host, addr.port, (addr.address or "").lower(), me.address, bytes(me.payload))


def _clean(conn: PeerConnection) -> bool:
    """The connection can carry another fetch: open both ways, stream sound, nothing of ours
    outstanding."""
    if conn.closed:
        return False
    try:
        conn.stream._check()  # raises when the stream is closed or broken
    except Exception:
        return False
    state = conn.wire.state
    return (
        state.phase[Side.US] is Phase.OPEN
        and state.phase[Side.THEM] is Phase.OPEN
        and not state.requested[Side.US]
    )


class Lease:
    """A borrowed connection: behaves as the :class:`PeerConnection` for the fetch, except that
    :meth:`aclose` without a code gives it back to the pool."""

    def __init__(
        self, pool: ConnectionPool, key: Key, conn: PeerConnection, reused: bool, uses: int = 1
    ) -> None:
        self._pool = pool
        self._key = key
        self.conn = conn
        self.reused = reused  #: this lease is on a connection an earlier fetch used
        self.uses = uses  #: fetches this connection carried, this one included
        self.returned = False
        self.expired = False  #: late receipt answers were handed over and never came
        self._answer: Callable[[Message], None] | None = None
        self._pending: Callable[[], int] | None = None
        self.cancelled = False  #: a Cancel was sent: pieces of it may still be on the way
        # the hot path calls these directly, without a __getattr__ per message
        self.send_soon = conn.send_soon
        self.receive = conn.receive
        self.keepalive = conn.keepalive

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    async def send(self, *messages: Message) -> None:
        if not self.cancelled and any(isinstance(m, Cancel) for m in messages):
            self.cancelled = True
        await self.conn.send(*messages)

    @property
    def pending(self) -> int:
        """Receipt answers handed over and still awaited (0 once answered or given up)."""
        if self._pending is None or self.expired:
            return 0
        return self._pending()

    def hand_over(self, answer: Callable[[Message], None], pending: Callable[[], int]) -> None:
        """After the fetch: pass the receipt answers still due on this connection to
        ``answer`` (the fetch's own handler) while it is idle; ``pending()`` says how many are
        still due."""
        self._answer, self._pending = answer, pending

    async def aclose(
        self, code: ErrorCode | int = ErrorCode.OK, reason: str = "", *, error: Any = None
    ) -> None:
        if self.returned:
            await trio.lowlevel.checkpoint()
            return
        self.returned = True
        if (
            code == ErrorCode.OK
            and not reason
            and error is None
            and not self.cancelled
            and self.uses < self._pool.max_uses
            and _clean(self.conn)
            and self._pool._give_back(self)
        ):
            await trio.lowlevel.checkpoint()
            return
        self._pool.stats.closed += 1
        self.expired = self.expired or self._pending is not None
        await self.conn.aclose(code, reason, error=error)


@dataclass
class _Idle:
    lease: Lease
    scope: trio.CancelScope
    done: trio.Event  #: its reader has returned
    settled: trio.Event  #: no receipt answer is due on it any more
    borrowed: bool = False  #: taken by a fetch: its reader leaves the connection open
    failed: bool = False  #: its reader saw the connection end (or a protocol error)


class ConnectionPool:
    """Idle authenticated connections by (endpoint, pinned address, our Hello); see the
    module docstring. Its reader tasks run in ``nursery``; :meth:`aclose` closes them all."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        max_idle: int = DEFAULT_MAX_IDLE,
        max_per_peer: int = DEFAULT_MAX_PER_PEER,
        max_uses: int = DEFAULT_MAX_USES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        self._nursery = nursery
        self.max_idle = max_idle
        self.max_per_peer = max_per_peer
        self.max_uses = max_uses
        self.idle_timeout = idle_timeout
        self.receipt_timeout = receipt_timeout
        self.on_answer = on_answer  #: called after each late receipt answer (or giving up)
        self._idle: dict[Key, list[_Idle]] = {}
        self._closing = False
        self.stats = PoolStats()

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    async def dial(self, addr: PeerAddr, me: LocalPeer, *, fresh: bool = False) -> PeerConnection:
        """A connection to ``addr`` for ``me``: an idle one (unless ``fresh``), else a new one
        (``open_peer_connection``; its errors pass through). An idle connection whose last
        receipt answers are still due is lent only once they are in (waited for at most
        ``SETTLE_WAIT``: an answer already on its way costs less than a new handshake)."""
        key = _key(addr, me)
        while not fresh and self._idle.get(key):
            entries = self._idle[key]
            idle = next((i for i in reversed(entries) if not i.lease.pending), entries[-1])
            if idle.lease.pending:
                with trio.move_on_after(SETTLE_WAIT):
                    await idle.settled.wait()
                if idle not in entries:
                    continue  # closed (or taken) meanwhile
                if idle.lease.pending:
                    break  # still due: leave it to its answers, dial a new one
            self._remove(idle)
            idle.borrowed = True
            idle.scope.cancel()
            await idle.done.wait()
            if not idle.failed and _clean(idle.lease.conn):
                self.stats.reuses += 1
                lease = Lease(self, key, idle.lease.conn, True, idle.lease.uses + 1)
                return cast(PeerConnection, lease)
            await self._close(idle.lease.conn)
        conn = await open_peer_connection(addr.host, addr.port, me, addr.address)
        self.stats.dials += 1
        return cast(PeerConnection, Lease(self, key, conn, reused=False))

    def _give_back(self, lease: Lease) -> bool:
        """Keep ``lease``'s connection (True), or not (False: the lease closes it)."""
        if self._closing or len(self._idle.get(lease._key, ())) >= self.max_per_peer:
            return False
        idle = _Idle(lease, trio.CancelScope(), trio.Event(), trio.Event())
        try:
            self._nursery.start_soon(self._watch, idle)
        except RuntimeError:  # the nursery is closing (the daemon stops)
            return False
        if self.idle_count() >= self.max_idle:
            oldest = min(
                (i for v in self._idle.values() for i in v), key=lambda i: i.lease.conn.last_sent
            )
            self._remove(oldest)
            oldest.scope.cancel()  # not borrowed: its reader closes it
        self.stats.returned += 1
        if not lease.pending:
            idle.settled.set()
        self._idle.setdefault(lease._key, []).append(idle)
        return True

    def _remove(self, idle: _Idle) -> None:
        entries = self._idle.get(idle.lease._key)
        if entries and idle in entries:
            entries.remove(idle)
            if not entries:
                del self._idle[idle.lease._key]

    async def _watch(self, idle: _Idle) -> None:
        """The idle connection's reader (module docstring)."""
        lease, conn = idle.lease, idle.lease.conn
        now = trio.current_time()
        deadline = now + self.idle_timeout
        answers_by = now + self.receipt_timeout
        try:
            with idle.scope:
                while True:
                    waiting = lease.pending > 0
                    until = min(deadline, answers_by) if waiting else deadline
                    with trio.move_on_after(until - trio.current_time()):
                        msg = await conn.receive()
                        self._on_message(idle, msg)
                        continue
                    if waiting and trio.current_time() >= answers_by:
                        log.info("receipt answers not received", peer=conn.address)
                    break  # idle too long (or answers overdue): closed below
        except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            idle.failed = True
            self.stats.lost += 1
            log.debug("pooled connection lost", peer=conn.address, error=str(exc))
        except Exception as exc:  # a protocol error (e.g. an ack for a receipt never sent)
            idle.failed = True
            log.info("pooled connection dropped", peer=conn.address, error=str(exc))
        finally:
            if not idle.borrowed:
                self._remove(idle)
                if lease.pending:
                    lease.expired = True  # the connection goes: those answers will not come
                    self._answered()
                idle.settled.set()
                await self._close(conn)
            idle.done.set()

    def _on_message(self, idle: _Idle, msg: Message) -> None:
        lease = idle.lease
        is_answer = isinstance(msg, ReceiptAck) or (
            isinstance(msg, ErrorMsg)
            and (msg.code == ErrorCode.BAD_RECEIPT or msg.ref_kind == Kind.RECEIPT)
        )
        if is_answer and lease._answer is not None and lease.pending:
            self.stats.late_answers += 1
            lease._answer(msg)
            if not lease.pending:
                idle.settled.set()
            self._answered()
        else:
            log.debug(
                "message on an idle connection", peer=lease.conn.address, kind=type(msg).__name__
            )

    def _answered(self) -> None:
        if self.on_answer is not None:
            try:
                self.on_answer()
            except Exception as exc:  # a hook's bug must not take the connection down
                log.warning("receipt answer hook failed", error=str(exc))

    async def _close(self, conn: PeerConnection) -> None:
        self.stats.closed += 1
        with trio.CancelScope(shield=True):
            await conn.aclose()

    async def aclose(self) -> None:
        """Close every idle connection (Goodbye); later returns are closed too."""
        self._closing = True
        entries = [i for v in self._idle.values() for i in v]
        self._idle.clear()
        for idle in entries:
            idle.scope.cancel()
        for idle in entries:
            await idle.done.wait()


__all__ = ["ConnectionPool", "Lease", "PoolStats"]
