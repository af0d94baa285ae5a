"""The swarm: nodes fetching one root serve each other, BitTorrent-style (docs/protocol.md 5.20).

A node run as a daemon serves its store while its own fetch writes verified chunks into that
store, so a crowd fetching one root can be served by itself. Three things make that happen:

1. **Peer exchange.** A receiver that listens says so with ``Announce(root, port)`` on each
   provider connection (the provider pairs the port with the IP it sees, never one named in
   the message); the provider keeps the announcers of each root in a :class:`PeerBook` and
   answers ``GetPeers(root)`` from it with ``Peers``. A fetch asks every ``SWARM`` peer for
   peers every ``PEX_INTERVAL`` s and dials what it learns (:class:`Candidates`, hostile input:
   validated, deduplicated, capped, each address pinned by the Noise handshake), also taking
   peers from a discovery callback.
2. **Fresh availability.** ``Announce`` also subscribes the connection to Have updates: while
   the provider holds the root in part, it sends the chunks it gained (:func:`have_update`),
   at most once per ``HAVE_UPDATE_INTERVAL`` per root and connection, then HaveAll.
3. **Sparing the origin.** The peers a fetch was given (the origin, the chain's hosts) are
   asked only for chunks no learned peer holds, and every peer picks chunks at random among
   the rarest (:class:`SwarmScheduler`), so receivers take different chunks from the origin
   and trade the rest among themselves.

The sans-IO parts (:class:`PeerBook`, :func:`have_update`, :class:`Candidates`,
:class:`SwarmScheduler`) take time as an argument and are tested without sockets. The trio glue
(:class:`SwarmProvider` for the provider, :class:`FetchSwarm` for the fetch) is thin.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from node.content import Manifest
from node.log import get_logger
from node.store import NotFound as StoreNotFound
from node.store import Store, StoreError
from node.transport import PeerConnection, TransportError
from node.wire import (
    MAX_PEERS_PER_MESSAGE,
    Announce,
    CapFlag,
    ErrorCode,
    ErrorMsg,
    GetPeers,
    Have,
    HaveAll,
    Kind,
    Message,
    PeerEntry,
    Peers,
)

from ._bitmap import Bitmap
from ._scheduler import Action, PeerId, PeerState, Scheduler
from ._window import FlowWindow

if TYPE_CHECKING:
    from ._fetch import PeerAddr, _Fetch, _Peer

log = get_logger(__name__)

BOOK_TTL = 600.0  #: seconds an announced peer stays in a provider's book
BOOK_PER_ROOT = 64  #: most recent announcers kept per root
BOOK_ROOTS = 256  #: roots with a book (least recently used go first)
PEX_INTERVAL = 5.0  #: a connection may ask GetPeers for one root this often
HAVE_UPDATE_INTERVAL = 0.5  #: Have updates per root and connection, at most this often
MAX_SUBSCRIPTIONS = 16  #: roots one connection can get Have updates for
MAX_LEARNED = 200  #: learned peers one fetch remembers
DEFAULT_MAX_PEERS = 16  #: connections one fetch opens (given peers included)
SPARE_WINDOW = 4  #: chunks in flight at most at each given peer (origin) in a swarm
RETRY_AFTER = 2.0  #: a learned peer that had nothing yet (NotFound) is asked again after this
MAX_ATTEMPTS = 5  #: ... at most this many times
HAVE_PAGE = 32 * 1024  #: bytes of bitfield per Have page
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


# -- the provider's book of announcers (sans-IO) ------------------------------------------------


@dataclass
class _Seen:
    entry: PeerEntry
    at: float


class PeerBook:
    """Who announced what, recently: per root the ``per_root`` latest announcers, each for
    ``ttl`` seconds, for at most ``max_roots`` roots. Entries are keyed by address (one per
    identity: a new announce replaces the old endpoint)."""

    def __init__(
        self, *, ttl: float = BOOK_TTL, per_root: int = BOOK_PER_ROOT, max_roots: int = BOOK_ROOTS
    ) -> None:
        self.ttl = ttl
        self.per_root = per_root
        self.max_roots = max_roots
        self._roots: OrderedDict[bytes, OrderedDict[str, _Seen]] = OrderedDict()

    def note(self, root: bytes, host: str, port: int, address: str, now: float) -> bool:
        """Record that ``address`` listens at ``host:port`` and fetches ``root``. ``host`` must
        be an IP address and ``port`` 1..65535, else nothing is recorded (False)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if not 1 <= port <= 0xFFFF or not _ADDRESS.fullmatch(address):
            return False
        if ip.is_unspecified or ip.is_multicast:
            return False
        book = self._roots.get(root)
        if book is None:
            book = self._roots[root] = OrderedDict()
        self._roots.move_to_end(root)
        key = address.lower()
        book.pop(key, None)
        book[key] = _Seen(PeerEntry(str(ip), port, address), now)
        while len(book) > self.per_root:
            book.popitem(last=False)
        while len(self._roots) > self.max_roots:
            self._roots.popitem(last=False)
        return True

    def peers(
        self,
        root: bytes,
        now: float,
        *,
        exclude: str | None = None,
        limit: int = MAX_PEERS_PER_MESSAGE,
    ) -> list[PeerEntry]:
        """Up to ``limit`` announcers of ``root`` seen within ``ttl``, most recent first,
        without ``exclude`` (the asker)."""
        book = self._roots.get(root)
        if not book:
            return []
        for key in [k for k, seen in book.items() if now - seen.at > self.ttl]:
            del book[key]
        skip = exclude.lower() if exclude else None
        out = [s.entry for k, s in reversed(book.items()) if k != skip]
        return out[: max(0, min(limit, MAX_PEERS_PER_MESSAGE))]

    def __len__(self) -> int:
        return sum(len(b) for b in self._roots.values())


# -- Have updates (sans-IO) ---------------------------------------------------------------------


def have_update(root: bytes, sent: bytes, now_bits: bytes) -> list[Have]:
    """The Have pages telling a subscriber what ``now_bits`` holds beyond ``sent`` (both
    bitfields of the same length, MSB first): one range from the first to the last byte that
    gained a bit, restated whole (a set bit is a chunk held now), cut into 32 KiB pages."""
    if len(sent) != len(now_bits):
        raise ValueError("bitfields differ in length")
    first = last = -1
    for i, (a, b) in enumerate(zip(sent, now_bits, strict=True)):
        if b & ~a:
            if first < 0:
                first = i
            last = i
    if first < 0:
        return []
    return [
        Have(root, off * 8, bytes(now_bits[off : min(off + HAVE_PAGE, last + 1)]))
        for off in range(first, last + 1, HAVE_PAGE)
    ]


def presence(store: Store, root: bytes) -> tuple[bytes, bool, int]:
    """``(bitfield, complete, present)`` of ``root`` in ``store`` (worker thread)."""
    info = store.info(root)
    n = info.manifest.chunk_count
    if info.complete:
        return b"", True, n
    bm = Bitmap(n, fill=True)
    for i in store.missing_chunks(root):
        bm.clear(i)
    return bm.to_bytes(), False, len(bm)


# -- what a fetch learns (sans-IO) -------------------------------------------------------------


@dataclass
class _Candidate:
    addr: PeerAddr
    attempts: int = 0
    not_before: float = 0.0
    active: bool = False  #: connected (or being dialled) now
    dead: bool = False  #: refused for good (lied, wrong identity, gave up)


class Candidates:
    """Peers a fetch has learned (from ``Peers`` answers or a discovery callback) and which of
    them to dial. Everything is hostile: an entry needs an IP or DNS host, a port, and an
    address (0x + 40 hex digits, pinned when dialled); our own address, loopback hosts named by
    a peer that is not itself on loopback, and duplicates (by address) are dropped; at most
    ``max_learned`` are kept. A candidate that failed is retried after ``retry_after`` s, at
    most ``max_attempts`` times."""

    def __init__(
        self,
        own_address: str | None,
        *,
        max_learned: int = MAX_LEARNED,
        retry_after: float = RETRY_AFTER,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.own = own_address.lower() if own_address else None
        self.max_learned = max_learned
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        self._by_address: dict[str, _Candidate] = {}
        self.skipped = 0  #: entries refused (malformed, loopback from afar, ours, over the cap)

    def __len__(self) -> int:
        return len(self._by_address)

    def __contains__(self, address: str) -> bool:
        return address.lower() in self._by_address

    def learn(self, entries: Iterable[Any], *, source_host: str | None = None) -> list[PeerAddr]:
        """Take ``entries`` (``PeerEntry``, ``PeerAddr`` or ``host:port/0xADDRESS`` strings);
        ``source_host`` is the IP of the peer that sent them (``None``: a local source, e.g.
        discovery, trusted with loopback hosts). Returns the ones new to us."""
        from ._fetch import PeerAddr

        far = source_host is not None and not _is_loopback(source_host)
        added: list[PeerAddr] = []
        for entry in entries:
            try:
                if isinstance(entry, PeerEntry):
                    addr = PeerAddr(entry.host, entry.port, entry.address)
                elif isinstance(entry, PeerAddr):
                    addr = entry
                else:
                    addr = PeerAddr.parse(str(entry))
            except Exception:
                self.skipped += 1
                continue
            address = addr.address
            if (
                address is None
                or not _ADDRESS.fullmatch(address)
                or not 1 <= addr.port <= 0xFFFF
                or not addr.host
                or (far and _is_loopback(addr.host))
            ):
                self.skipped += 1
                continue
            key = address.lower()
            if key == self.own or key in self._by_address:
                continue
            if len(self._by_address) >= self.max_learned:
                self.skipped += 1
                continue
            self._by_address[key] = _Candidate(addr)
            added.append(addr)
        return added

    def due(self, now: float, *, connected: Iterable[str], limit: int) -> list[PeerAddr]:
        """Up to ``limit`` candidates to dial now: not connected, not dead, not waiting."""
        if limit <= 0:
            return []
        busy = {a.lower() for a in connected}
        out = []
        for key, c in self._by_address.items():
            if c.active or c.dead or key in busy or c.not_before > now:
                continue
            if c.attempts >= self.max_attempts:
                continue
            out.append(c.addr)
            if len(out) >= limit:
                break
        return out

    def dialling(self, address: str) -> None:
        c = self._by_address.get(address.lower())
        if c is not None:
            c.active = True
            c.attempts += 1

    def failed(self, address: str, now: float, *, retry: bool) -> None:
        """The dial or the offer failed: retry later (``retry``) or never."""
        c = self._by_address.get(address.lower())
        if c is not None:
            c.active = False
            c.not_before = now + self.retry_after * c.attempts
            c.dead = c.dead or not retry

    def lost(self, address: str, now: float) -> None:
        """A connected candidate went away: it may be dialled again later."""
        self.failed(address, now, retry=True)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


# -- the scheduler that spares the origin (sans-IO) ----------------------------------------------


class SwarmScheduler(Scheduler):
    """A :class:`Scheduler` for a crowd: peers in ``spare`` (the origin, hosts) are asked only
    for chunks no other usable peer holds, and chunks are picked at random among the rarest of
    a window that starts at a random index (so receivers of one root take different chunks
    from the origin). ``spare`` peers are served last in each poll (their rank is raised).
    With no peer outside ``spare`` this is the plain rarest-first, random-start choice."""

    SCAN = 1024  #: most candidates one pick looks at for a spare peer

    def __init__(
        self, *, spare: Iterable[PeerId] = (), spare_window: int = SPARE_WINDOW, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.spare: set[PeerId] = set(spare)
        self.spare_window = spare_window
        #: per given peer: its shallow window, and the one it uses while alone
        self._spare_windows: dict[PeerId, tuple[FlowWindow, FlowWindow]] = {}

    def add_peer(
        self, peer: PeerId, now: float, have: Bitmap | None = None, *, rank: float = 0.0
    ) -> None:
        spare = peer in self.spare
        super().add_peer(peer, now, have, rank=rank + (1e6 if spare else 0.0))
        if spare:  # a shallow queue at the origin: what it has not sent yet may come elsewhere
            chunks = min(self.spare_window, self.max_window)
            shallow = FlowWindow(self.chunk_size, initial_chunks=chunks, max_chunks=chunks)
            # alone (the one given peer, no other usable): the usual window, from the usual
            # start (a get's initial window, not the shallow one: a 100 MiB get through a
            # daemon took 8-13 % longer starting from 4 chunks; a 16-receiver crowd was no
            # worse: origin upload 2.64x -> 2.45x the content, issue #11)
            alone = FlowWindow(
                self.chunk_size,
                initial_chunks=max(chunks, min(self.initial_window, self.max_window)),
                max_chunks=self.max_window,
            )
            self._spare_windows[peer] = (shallow, alone)
            self.peers[peer].window = shallow

    def poll(self, now: float) -> list[Action]:
        """A given peer keeps the shallow window while another peer could serve what it has
        not sent yet (a second given peer, any usable learned one); the one given peer alone
        (a plain single-source get: nobody to spare it for) grows its window as usual. A
        queue of 4 chunks there woke the receiver twice as often per GiB (issue #11)."""
        if self._spare_windows:
            lone = len(self.spare) == 1 and not any(
                st.usable and st.peer not in self.spare for st in self.peers.values()
            )
            for peer, (shallow, alone) in self._spare_windows.items():
                st = self.peers.get(peer)
                if st is not None:
                    st.window = alone if lone else shallow
        return super().poll(now)

    def _random_pending(self) -> Iterator[int]:
        """Needed, not in flight indices from a random start, wrapping around once."""
        n = self.chunk_count
        if not n or not len(self.need):
            return
        start = self.rng.randrange(n)
        for lo, hi in ((start, n), (0, start)):
            i = lo
            while True:
                i = self.need.next_set(i)
                if i >= hi:
                    break
                if i not in self.inflight:
                    yield i
                i += 1

    def _pick(self, st: PeerState, now: float) -> int | None:
        usable = self.usable_peers()
        spare = st.peer in self.spare
        cheap = [p for p in usable if p.peer not in self.spare]
        limit = self.SCAN if spare else self.lookahead
        best: int | None = None
        best_avail = 0
        for seen, index in enumerate(self._random_pending()):
            if seen >= limit and (best is not None or seen >= self.SCAN):
                break
            if not st.has(index):
                continue
            if spare and any(p.has(index) for p in cheap):
                continue
            avail = sum(1 for p in usable if p.has(index))
            if best is None or avail < best_avail:
                best, best_avail = index, avail
                if avail <= 1:
                    break
        if best is not None:
            return self._take(best)
        return self._spare_endgame(st, cheap) if spare else self._endgame_pick(st, now)

    def _spare_endgame(self, st: PeerState, cheap: list[PeerState]) -> int | None:
        """Endgame for a spare peer: only chunks no cheaper peer holds."""
        choice: int | None = None
        fewest = self.endgame_copies
        for index, holders in self.inflight.items():
            if st.peer in holders or not st.has(index) or len(holders) >= fewest:
                continue
            if any(p.has(index) for p in cheap):
                continue
            choice, fewest = index, len(holders)
            if fewest == 1:
                break
        return choice


# -- provider glue (trio) -----------------------------------------------------------------------


@dataclass
class _ConnSwarm:
    """Swarm state of one provider connection."""

    subscribed: dict[bytes, bytes] = field(default_factory=dict)  #: root -> bits last stated
    counts: dict[bytes, int] = field(default_factory=dict)  #: root -> chunks held when stated
    asked: dict[bytes, float] = field(default_factory=dict)  #: root -> last GetPeers answered
    wakeup: trio.Event = field(default_factory=trio.Event)


class SwarmProvider:
    """The provider's side of the swarm: answers Announce and GetPeers, sends Have updates.

    ``handle`` is called by the provider for the swarm messages; ``run`` is one task per
    connection (it sleeps until the connection subscribes to something)."""

    def __init__(
        self,
        store: Store,
        *,
        book: PeerBook | None = None,
        clock: Callable[[], float] = trio.current_time,
        update_interval: float = HAVE_UPDATE_INTERVAL,
        pex_interval: float = PEX_INTERVAL,
    ) -> None:
        self.store = store
        self.book = book if book is not None else PeerBook()
        self.clock = clock
        self.update_interval = update_interval
        self.pex_interval = pex_interval
        self._conns: dict[int, _ConnSwarm] = {}
        self.updates_sent = 0

    def _state(self, conn: PeerConnection) -> _ConnSwarm:
        st = self._conns.get(id(conn))
        if st is None:
            st = self._conns[id(conn)] = _ConnSwarm()
        return st

    async def handle(self, conn: PeerConnection, msg: Message) -> bool:
        """Answer ``msg`` if it is a swarm message (True), else leave it (False)."""
        if isinstance(msg, Announce):
            await self._on_announce(conn, msg)
            return True
        if isinstance(msg, GetPeers):
            await self._on_get_peers(conn, msg)
            return True
        return False

    async def _on_announce(self, conn: PeerConnection, msg: Announce) -> None:
        root = bytes(msg.root)
        try:
            bits, complete, _ = await trio.to_thread.run_sync(presence, self.store, root)
        except (StoreNotFound, StoreError):
            return  # not ours: neither booked nor subscribed
        host = remote_host(conn)
        if msg.port and host is not None:
            self.book.note(root, host, msg.port, conn.address, self.clock())
        st = self._state(conn)
        if complete or root in st.subscribed or len(st.subscribed) >= MAX_SUBSCRIPTIONS:
            return
        # The subscriber read our Want answer before it announced; what we hold now may be
        # more than that answer said, so the first update states everything held now.
        st.subscribed[root] = bytes(len(bits))
        st.wakeup.set()

    async def _on_get_peers(self, conn: PeerConnection, msg: GetPeers) -> None:
        root = bytes(msg.root)
        st = self._state(conn)
        now = self.clock()
        last = st.asked.get(root)
        if last is not None and now - last < self.pex_interval:
            wait = self.pex_interval - (now - last)
            await conn.send(
                ErrorMsg(
                    ErrorCode.RATE_LIMITED,
                    retry_after_ms=max(1, int(wait * 1000)),
                    ref_kind=int(Kind.GET_PEERS),
                    message=f"GetPeers for this root at most every {self.pex_interval:g}s",
                )
            )
            return
        if len(st.asked) >= BOOK_ROOTS:
            st.asked.clear()
        st.asked[root] = now
        await conn.send(Peers(root, tuple(self.book.peers(root, now, exclude=conn.address))))

    async def run(self, conn: PeerConnection) -> None:
        """Send Have updates for this connection's subscriptions until it closes."""
        st = self._state(conn)
        try:
            while True:
                if not st.subscribed:
                    st.wakeup = trio.Event()
                    await st.wakeup.wait()
                await self._send_updates(conn, st)
                await trio.sleep(self.update_interval)
        finally:
            self._conns.pop(id(conn), None)

    async def _send_updates(self, conn: PeerConnection, st: _ConnSwarm) -> None:
        for root, sent in list(st.subscribed.items()):
            try:
                held = self.store.info(root).present_chunks  # cheap: the record, no bitmap
                if held == st.counts.get(root):
                    continue
                bits, complete, held = await trio.to_thread.run_sync(presence, self.store, root)
            except (StoreNotFound, StoreError):
                del st.subscribed[root]  # removed meanwhile: requests will get NotFound
                continue
            msgs: list[Message]
            if complete:
                msgs = [HaveAll(root)]
                del st.subscribed[root]
            else:
                msgs = list(have_update(root, sent, bits))
                st.subscribed[root] = bits
                st.counts[root] = held
            if msgs:
                self.updates_sent += len(msgs)
                await conn.send(*msgs)


def remote_host(conn: PeerConnection) -> str | None:
    """The IP address ``conn`` comes from (``None`` when it is not a TCP socket)."""
    try:
        sock = conn.stream.transport_stream.socket  # type: ignore[attr-defined]
        host = sock.getpeername()[0]
    except (AttributeError, OSError, IndexError, TypeError):
        return None
    return str(host).split("%", 1)[0] if isinstance(host, str) else None


# -- fetch glue (trio) ------------------------------------------------------------------------


@dataclass
class SwarmOptions:
    """How a fetch takes part in a swarm (``fetch(..., swarm=SwarmOptions(...))``)."""

    listen_port: int = 0
    """Port this node accepts connections on, announced to providers (0: none)."""
    max_peers: int = DEFAULT_MAX_PEERS
    """Connections the fetch opens in all, the given peers included."""
    pex_interval: float = PEX_INTERVAL
    """How often each SWARM peer is asked for more peers (and ``learned`` is polled)."""
    learned: Callable[[], Iterable[Any]] | None = None
    """Polled for more peers (``PeerAddr`` or ``host:port/0xADDRESS``), e.g. discovery."""
    on_learned: Callable[[PeerAddr], None] | None = None
    """Told of each peer learned by peer exchange (e.g. the node's ``learned_peers``)."""
    spare_given: bool = True
    """Ask the given peers (origin, hosts) only for chunks no learned peer holds, and keep at
    most ``spare_window`` chunks in flight at each (the one given peer alone, with no learned
    peer usable, grows its window from there as usual: ``SwarmScheduler.poll``)."""
    spare_window: int = SPARE_WINDOW


class FetchSwarm:
    """The fetch's side of the swarm (one per fetch; see the module docstring). It works on
    the ``_Fetch`` it belongs to: its peers, scheduler, nursery and offer logic."""

    def __init__(self, fetch: _Fetch, options: SwarmOptions) -> None:
        self.fetch = fetch
        self.options = options
        self.candidates = Candidates(fetch.me.address)
        self.given: set[str] = set()  #: addresses of the peers the fetch was given
        self.learned_peers: set[str] = set()  #: addresses connected through the swarm
        self.announced: set[str] = set()
        self.asked: dict[str, float] = {}  #: address -> when we last sent GetPeers
        self.updates = 0  #: Have updates applied
        self.kick = trio.Event()

    # -- hooks called by the fetch ----------------------------------------------------------

    def scheduler(self, manifest: Manifest, **kwargs: Any) -> Scheduler:
        """The transfer's scheduler (for the agreed ``manifest``). The given peers are every
        peer the fetch was given, also those whose offer is still to come (they join late,
        through the fetch's one join routine, and are spared like the others)."""
        self.given = set(self.fetch.ranking)
        spare = self.given if self.options.spare_given else set()
        return SwarmScheduler(spare=spare, spare_window=self.options.spare_window, **kwargs)

    async def on_offer(self, peer: _Peer) -> None:
        """``peer`` answered our Want in full: from now on a Have from it is an update; say we
        fetch this root (and where we listen) if it speaks the swarm extension."""
        peer.have_ready = True
        if not _flags(peer) & CapFlag.SWARM or peer.conn.address in self.announced:
            return
        self.announced.add(peer.conn.address)
        try:
            await peer.conn.send(
                Announce(self.fetch.root, self.options.listen_port),
                GetPeers(self.fetch.root),
            )
            self.asked[peer.conn.address] = trio.current_time()
        except TransportError:
            pass  # its reader will see the connection fail

    async def on_message(self, peer: _Peer, msg: Message) -> bool:
        """Take a swarm message off ``peer``'s stream (True), else leave it to the fetch."""
        f = self.fetch
        if isinstance(msg, Peers):
            if bytes(msg.root) == f.root:
                added = self.candidates.learn(msg.peers, source_host=peer.addr.host)
                if added:
                    if self.options.on_learned is not None:
                        for addr in added:
                            self.options.on_learned(addr)
                    self.kick.set()
            return True
        if isinstance(msg, ErrorMsg) and msg.ref_kind in (Kind.GET_PEERS, Kind.ANNOUNCE):
            return True  # rate limited or not understood: we ask again later anyway
        if not isinstance(msg, (Have, HaveAll)) or not getattr(peer, "have_ready", False):
            return False
        if bytes(msg.root) != f.root:
            return True
        sched = f.sched
        address = peer.conn.address
        if isinstance(msg, HaveAll):
            peer.have = None
            if sched is not None and address in sched.peers:
                sched.set_have(address, None)
        elif peer.have is not None:
            have = peer.have
            for j, byte in enumerate(bytes(msg.bitfield)):
                if not byte:
                    continue
                for b in range(8):
                    i = msg.start + j * 8 + b
                    if byte & (0x80 >> b) and i < have.size:
                        have.set(i)
        self.updates += 1
        if sched is not None and address in sched.peers:
            await f._pump()
        return True

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """While the transfer runs: ask peers for peers, poll ``learned``, dial new ones."""
        f = self.fetch
        opts = self.options
        while not f.done.is_set():
            now = trio.current_time()
            if opts.learned is not None:
                try:
                    self.candidates.learn(list(opts.learned()))
                except Exception as exc:  # a discovery callback must not end the fetch
                    log.warning("swarm: learned-peers callback failed", error=str(exc)[:200])
            for address, peer in list(f.peers.items()):
                if peer.gone or peer.dropped or not _flags(peer) & CapFlag.SWARM:
                    continue
                if address not in self.announced:
                    continue
                if now - self.asked.get(address, -1e9) >= opts.pex_interval:
                    self.asked[address] = now
                    try:
                        await peer.conn.send(GetPeers(f.root))
                    except TransportError:
                        continue
            await self._dial(now)
            self.kick = trio.Event()
            with trio.move_on_after(min(opts.pex_interval, 1.0)):
                await self.kick.wait()

    def _connected(self) -> list[str]:
        return [a for a, p in self.fetch.peers.items() if not p.gone]

    async def _dial(self, now: float) -> None:
        f = self.fetch
        connected = self._connected()
        room = self.options.max_peers - len(connected)
        for addr in self.candidates.due(now, connected=connected, limit=room):
            assert addr.address is not None
            self.candidates.dialling(addr.address)
            f.nursery.start_soon(self._join, addr)

    async def _join(self, addr: PeerAddr) -> None:
        """Dial a learned peer, ask it Want and, if it offers the agreed manifest, add it to
        the running transfer. A peer already in this fetch (even one lost) is not dialled."""
        f = self.fetch
        key = str(addr.address).lower()
        port = self.options.listen_port
        # our own listening socket under another address (an identity this endpoint had
        # before, still in the providers' books): a handshake with ourselves, never a peer
        ours = bool(port) and addr.port == port and _is_loopback(addr.host)
        if ours or any(a.lower() == key for a in f.peers):
            self.candidates.failed(key, trio.current_time(), retry=False)
            return
        errors: dict[str, str] = {}
        await f._connect(addr, errors)
        address = next((a for a in f.peers if a.lower() == key), None)
        if address is None:  # not again if it is someone else (or unresolvable)
            retry = str(addr) not in f._permanent
            self.candidates.failed(key, trio.current_time(), retry=retry)
            log.debug("swarm: cannot dial", peer=str(addr), error="; ".join(errors.values()))
            return
        peer = f.peers[address]
        f.nursery.start_soon(f._reader, peer)
        f.nursery.start_soon(peer.conn.keepalive)
        await f._offer(address, peer)
        verdict = await f._join(address)  # the fetch's one join routine (late offers too)
        if verdict == "joined":
            self.learned_peers.add(address)
            return
        if verdict == "absent":
            # Nothing yet (NotFound: it may have the content soon), busy, timed out or gone:
            # forget this connection, dial it again later.
            f.not_found.discard(address)
            f.refused.pop(address, None)
            f._judged.discard(address)
            current = f.peers.get(address)
            if current is not None and current.report is None:
                del f.peers[address]
                await f._close(current)
            if current is not peer:
                await f._close(peer)
        # A lie (a manifest for another shape, a malformed one): dropped by the fetch, in
        # its ledger and ``refused``, and never dialled again.
        self.candidates.failed(key, trio.current_time(), retry=verdict == "absent")


def _flags(peer: _Peer) -> int:
    hello = peer.conn.peer_hello
    return hello.capabilities.flags if hello is not None else 0


__all__ = [
    "Candidates",
    "FetchSwarm",
    "PeerBook",
    "SwarmOptions",
    "SwarmProvider",
    "SwarmScheduler",
    "have_update",
    "presence",
]
