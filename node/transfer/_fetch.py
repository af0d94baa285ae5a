"""Receiver side: fetch one content root from one or more peers into the store (trio driver).

The decisions are made by the sans-IO :class:`Scheduler`; this module does the I/O around it:

1. Connect to every peer (pinning its address when given) and ask each ``Want``, all at once,
   each answer bounded by ``control_timeout``. A peer is dropped (and told why, and listed in
   ``FetchResult.refused``) when it answers ``NotFound``, does not answer in time, sends a
   manifest that does not parse or is for another root, states a ``Price`` above
   ``max_price_per_gib`` or a receipt domain other than ours, or sends no Have/HaveAll; nothing
   a single peer does fails the fetch. A peer whose Hello lacks the PROVIDER flag is not asked
   at all (listed in ``refused``). Nobody waits for the slowest: once one provider has
   offered the content (Manifest, Price, Have), the others get ``offer_grace`` (1.5 s) more,
   then the manifest is agreed from the offers in; a later offer joins the running transfer
   (or, with another shape, is dropped as a lie), and one that never comes is dropped at its
   ``control_timeout`` (a timeout in the ledger), without delaying the transfer.
2. The manifest is agreed from the requested root, not taken from whoever answered first. The
   offers are grouped by what decides the chunking (``size``, ``chunk_size``; name and
   creation time may differ between honest providers); a manifest already in the store (a
   resume) wins outright, else the group with the most peers, then the best ledger score. The
   chunk-root list is fetched from a peer of that group in pages of 2048 (the first page is
   asked of the best-ranked peer together with its Want when nothing of the root is held: a
   round trip less for a small content; with that page in hand, before the list is checked
   and stored and the plan made, the first chunks (up to ``EARLY_BYTES``) are asked of that
   peer, the *early Request*: they are on the way while the rest is set up, and
   ``_take_early`` hands them to the scheduler as that peer's requests, or forgets them if the
   peer is not used after all) and streamed into ``Store.begin_partial`` from a
   worker thread, which checks it hashes to the content root and
   has the manifest's chunk count (O(log n) memory; each page is also checked against a
   :class:`RootListVerifier`, and its ``total`` against the manifest, so a bad list is blamed
   on its peer). A peer whose list fails is dropped and the next peer of the group tried, then
   the next group; peers whose manifest disagrees with the agreed one are dropped. Only when
   no usable peer is left does the fetch fail, with :class:`NoUsablePeer` naming every peer and
   why it was dropped (or :class:`ContentNotFound` / :class:`PriceTooHigh` when that is all
   there was).
3. Take the missing chunks from the store's presence bitmap (this is what makes an interrupted
   fetch resumable: only chunks that were in flight are fetched again) and run the scheduler:
   per-peer reader tasks assemble ChunkData pieces; each whole chunk goes to a
   ``Store.partial_writer`` in a worker thread, which verifies it against its chunk root before
   writing (at most ``put_workers`` chunks in that pipeline: backpressure reaches the sender
   through TCP) and commits the index in groups (16 MiB or 0.5 s; a crash loses at most the
   uncommitted group, which a resume fetches again). The verdict goes back to the scheduler,
   whose actions (Request / Cancel) are sent at once. A timer task polls the scheduler for
   stalls and backoffs.
4. Receipts (with a receipt domain): each provider that takes receipts (its Hello has
   RECEIPTS and its Price states our receipt domain; others get no receipt and no Complete)
   is paid for the verified bytes it delivered, at its stated price (``payment_for``), in
   receipts that each cover the bytes since the previous one on that connection: one every
   ``receipt_every_chunks`` chunks or ``receipt_every_bytes`` bytes during the transfer, and
   one for the rest at the end, after
   ``Complete``, or when the fetch ends early (failure, Ctrl-C), then we wait (briefly) for
   the ``ReceiptAck``s. A provider whose connection is already gone cannot be sent the last
   receipt: the bytes since its previous receipt stay unpaid (the periodic receipts bound
   that). On cancellation the last receipts are sent without waiting for acks.
5. A provider that sends a chunk which fails verification is dropped at once: nothing more it
   sends is taken; once its chunks already being verified are done it gets a last receipt
   for its verified bytes only (never for the bad chunk) and no ``Complete``, then
   ``Error(BAD_CHUNK)`` (the index in the message, request_id 0) and ``Goodbye(BAD_CHUNK)``,
   and the connection is closed. The chunk is fetched elsewhere.
6. With a ``ledger`` (:class:`PeerLedger`, e.g. ``node.ledger.LocalLedger``): peers are asked
   in the order of their ledger score (best first; ``FetchResult.ranking``) and the scheduler
   serves them in that order; verified chunks, bad chunks (and lying manifests or chunk-root
   lists) and timeouts are recorded, so a peer caught cheating is not asked first next time.
   A timeout is a stall (no delivery for ``stall_timeout``; time a piece waits on our own
   rate limit does not count), a peer overtaken and judged *stalled* (no byte for
   ``Scheduler.stalled_after`` since its oldest request while others delivered: a staller
   beside a fast peer that finishes first), or no answer to Want by the end. A peer
   overtaken that answers is *slow* (``record_slow``, a small mark). Cancels to a peer
   whose verdict is open are held back, and the end of the transfer waits for open
   verdicts (at most ``VERDICT_WAIT``; see ``_await_verdicts``).
7. With an ``observer`` (:class:`TransferObserver`, e.g. the node's metrics): each connection
   opened and closed (``inbound=False``); each verified chunk counted by the fetch
   (``chunk_received``, seconds from its Request to its verification); each chunk that
   failed verification (``chunk_rejected(peer, "corrupt")``) and each stall of a peer
   (``chunk_rejected(peer, "timeout")``, once per stall, not per chunk); and a peer's chunks
   in flight and window, in chunks (``requests_outstanding``), whenever a Request, Cancel,
   verified chunk, stall or loss changes them, and 0 for every peer at the end.
8. Delta and compression (docs/transfer.md). Before requesting, the chunks of the root that the
   store already holds under any content (same chunk root) are made present by reference
   (``Store.adopt_held``, ``delta``; ``FetchResult.local_chunks``/``local_bytes``), so a
   node holding version 1 of a model moves only what version 2 changed. With ``compress``
   our Hello has COMPRESS and a provider may send a chunk as one zstd frame (ChunkDataZ); it
   is reassembled, decompressed (the declared size must be the chunk's) and verified over the
   decompressed bytes in the put worker; a frame that does not decode is a bad chunk.
   ``FetchResult.wire_bytes`` counts the chunk payload bytes received (frames as sent).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import trio

from node.content import Manifest
from node.log import get_logger
from node.receipt import (
    DEFAULT_PRICE_PER_GIB,
    Receipt,
    ReceiptDomain,
    SignedReceipt,
    payment_for,
    sign_receipt,
)
from node.store import ChunkMismatch, InvalidChunkRoots, PartialWriter, Store
from node.store import NotFound as StoreNotFound
from node.transport import (
    MAX_ERROR_TEXT,
    MAX_GOODBYE_TEXT,
    ClosedInHandshake,
    LocalPeer,
    PeerConnection,
    PeerIdentityMismatch,
    PeerUnresolvable,
    TransportError,
    clip_text,
    open_peer_connection,
)
from node.wire import (
    MAX_REQUEST_INDICES,
    MAX_ROOTS_PER_PAGE,
    Cancel,
    Capabilities,
    CapFlag,
    ChunkData,
    ChunkRoots,
    Complete,
    CompressedChunkError,
    ErrorCode,
    ErrorMsg,
    GetChunkRoots,
    Goodbye,
    Have,
    HaveAll,
    Kind,
    ManifestMsg,
    Message,
    NotFound,
    Price,
    ReceiptAck,
    ReceiptMsg,
    RemoteProtocolError,
    Request,
    Want,
)

from ._acceptance import ReceiptRefused
from ._bitmap import Bitmap
from ._bucket import TokenBucket
from ._buffers import POOL
from ._compress import decompress
from ._errors import (
    ChunkRootsMismatch,
    ContentNotFound,
    InvalidArgument,
    ManifestMismatch,
    PeerFailed,
    PeersUnreachable,
    PriceMissing,
    PriceTooHigh,
    ProtocolViolation,
    ReceiptDomainMismatch,
    TransferError,
)
from ._groups import collapse_groups
from ._observer import NULL_OBSERVER, TransferObserver
from ._output import OutputFile
from ._progress import Progress, ProgressTracker
from ._rootlist import RootListVerifier
from ._scheduler import CancelChunks, RequestChunks, Scheduler
from ._shaper import Lane
from ._swarm import FetchSwarm, SwarmOptions

log = get_logger(__name__)

CONTROL_TIMEOUT = 20.0  #: bound on each control answer (Manifest, Price, Have, ChunkRoots)
OFFER_GRACE = 1.5  #: after the first provider's offer, how long the others get to answer Want
BUSY_RETRY_MAX = 10.0  #: longest wait honoured from a BUSY Error's retry_after_ms
RECEIPT_TIMEOUT = 10.0
GOODBYE_DRAIN = 2.0  #: after our Goodbye, read on this long for the peer's close (protocol 8a)
CANCELLED_RECEIPT_TIMEOUT = 2.0  #: bound on sending the last receipts after a cancellation
HANDSHAKE_RETRY = (0.1, 0.4)  #: waits (+-50%) before the 2nd and 3rd connection attempts
VERDICT_WAIT = 2.0  #: after the transfer, longest wait for an overtaken peer to answer or not
RECEIPT_EVERY_CHUNKS = 256
DEFAULT_PUT_WORKERS = 8
"""Chunks verified and written at once (``put_workers``). Writes with ``O_DIRECT`` wait for the
disk, and one that stalls (a journal commit, a discard of freed blocks) holds its slot; with
all slots held the reader stops and the sender with it. 1 GiB gets through a daemon, ABBA, 6
per arm, quiet: 3 -> 8 slots, median wall 2.46 -> 2.30 s (3 -> 6: 2.45 -> 2.34), receiver
CPU unchanged (issue #11). Each slot holds one chunk buffer while it works."""
PUT_BUFFER_BYTES = 12 << 20
"""Most chunk bytes the put slots hold at once: a content of larger chunks gets fewer slots
(4 MiB chunks: 3), never fewer than 2. 8 slots of 4 MiB took the receiver daemon's peak RSS
to 98-105 MiB; 3 slots: 82-83 MiB, as fast (issue #11)."""
RECEIPT_EVERY_BYTES = 256 * 1024 * 1024
EARLY_BYTES = 4 << 20
"""What the early Request asks (module docstring, item 2): the first chunks up to this many
bytes, at least one. One 4 MiB chunk takes about as long to arrive as the rest of the set-up
takes (issue #11); more would only sit in the provider's queue ahead of the plan's choice."""


class PeerLedger(Protocol):
    """What the fetch needs of a persistent peer ledger (``node.ledger.LocalLedger``).

    A protocol, not an import: the ledger layer sits above the transfer layer. ``now`` is
    wall-clock (``time.time()``); higher scores are better.
    """

    def score(self, address: str) -> float: ...
    def record_chunk(self, address: str, nbytes: int, seconds: float, now: float) -> None: ...
    def record_bad_chunk(self, address: str, now: float) -> None: ...
    def record_timeout(self, address: str, now: float) -> None: ...
    def record_slow(self, address: str, now: float) -> None: ...


class NoUsablePeer(PeerFailed):
    """Every peer was dropped before the transfer could start; ``dropped`` says why each was.

    Retryable only when some peer was dropped for a transient reason (timeout, disconnect).
    """

    def __init__(self, root: bytes, dropped: dict[str, str], *, transient: bool) -> None:
        why = "; ".join(f"{peer}: {reason}" for peer, reason in dropped.items())
        super().__init__(f"no usable peer left for 0x{root.hex()} ({why})")
        self.dropped = dict(dropped)
        self.retryable = transient


@dataclass(frozen=True)
class PeerAddr:
    """Where to find a peer: ``HOST:PORT`` and optionally its pinned ``0x`` address."""

    host: str
    port: int
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> PeerAddr:
        """``HOST:PORT[/0xADDRESS]`` (IPv6 hosts in brackets: ``[::1]:7420``)."""
        hostport, _, address = text.partition("/")
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InvalidArgument(f"bad peer {text!r}: expected HOST:PORT[/0xADDRESS]")
        host = host.strip("[]")
        if address and not (address.startswith("0x") and len(address) == 42):
            raise InvalidArgument(f"bad peer address in {text!r}: expected 0x + 40 hex digits")
        return cls(host, int(port), address or None)

    def __str__(self) -> str:
        base = f"{self.host}:{self.port}"
        return f"{base}/{self.address}" if self.address else base


@dataclass
class ProviderReport:
    """What one provider did for this fetch."""

    address: str
    endpoint: str
    chunks: int = 0
    bytes: int = 0
    corrupt_chunks: int = 0
    receipt: SignedReceipt | None = None  #: the last receipt sent to this provider
    receipt_acked: bool = False  #: every receipt sent was acknowledged (and there was one)
    error: str | None = None
    price_per_gib: int | None = None  #: what it stated (wei per GiB)
    receipts: list[SignedReceipt] = field(default_factory=list)  #: every receipt sent, in order
    receipts_acked: int = 0
    receipts_refused: list[str] = field(default_factory=list)  #: BAD_RECEIPT reasons

    @property
    def billed_bytes(self) -> int:
        """Bytes covered by the receipts sent (the rest of ``bytes`` is unpaid)."""
        return sum(s.receipt.bytes_served for s in self.receipts)

    @property
    def paid(self) -> int:
        """Wei promised in the receipts sent."""
        return sum(s.receipt.payment for s in self.receipts)


@dataclass
class FetchResult:
    root: bytes
    manifest: Manifest
    fetched_chunks: int  #: chunks received and verified in this run
    fetched_bytes: int
    resumed_chunks: int  #: chunks already present when this run started
    duplicate_chunks: int
    elapsed: float
    providers: dict[str, ProviderReport] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  #: peers dropped or not used, and why
    ranking: list[str] = field(default_factory=list)  #: providers, best ledger score first
    #: chunk payload bytes received on the wire for this root (after compression; duplicates
    #: and dropped pieces included, headers and framing not)
    wire_bytes: int = 0
    local_chunks: int = 0  #: chunks taken from content already held here (delta)
    local_bytes: int = 0  #: their bytes (they did not cross the wire)

    @property
    def throughput(self) -> float:
        return self.fetched_bytes / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
Dial = Callable[[PeerAddr, LocalPeer], Awaitable[PeerConnection]]


ChunkBuffer = bytearray | mmap.mmap
"""A chunk being received: page-aligned ``mmap`` for full-size chunks, else a bytearray."""


@dataclass
class _Assembly:
    """A chunk being filled piece by piece, in a buffer of its final size."""

    buf: ChunkBuffer
    filled: int = 0
    compressed: bool = False  #: ``buf`` holds a zstd frame (ChunkDataZ pieces)


@dataclass
class _Peer:
    addr: PeerAddr
    conn: PeerConnection
    control: trio.MemorySendChannel[Message]
    replies: trio.MemoryReceiveChannel[Message]
    requests: dict[int, tuple[int, ...]] = field(default_factory=dict)
    req_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    assembling: dict[int, _Assembly] = field(default_factory=dict)
    report: ProviderReport | None = None
    have: Bitmap | None = None  #: ``None``: has everything (HaveAll)
    price: int | None = None  #: stated wei per GiB
    paid: bool = False  #: gets receipts: it has RECEIPTS and stated our receipt domain
    gone: bool = False  #: the connection failed: nothing more can be sent on it
    dropped: bool = False  #: this side dropped the peer (it lied, stalled or corrupted)
    manifest: Manifest | None = None  #: what it offered
    putting: int = 0  #: its chunks being verified/written now
    ended: trio.Event = field(default_factory=trio.Event)  #: its reader task has returned
    put_done: trio.Event = field(default_factory=trio.Event)  #: set (and replaced) per put end
    billed_bytes: int = 0  #: verified bytes/chunks already covered by a receipt sent
    billed_chunks: int = 0
    unanswered: deque[SignedReceipt] = field(default_factory=deque)  #: sent, no Ack/Error yet
    answered: trio.Event = field(default_factory=trio.Event)  #: set (and replaced) per answer
    closed: bool = False  #: ``connection_closed`` was reported to the observer
    withheld: set[int] = field(default_factory=set)  #: Cancels held back while it is a suspect
    have_ready: bool = False  #: its Want answer is read: a Have from it now is an update
    bulk: ChunkBuffer | None = None  #: the buffer its last bulk ChunkData was decrypted into
    roots_asked: bool = False  #: the first chunk-root page was asked with the Want (unread)
    early: int | None = None  #: request id of the early Request (``_send_early``)
    early_indices: tuple[int, ...] = ()  #: what it asked
    early_done: dict[int, _Assembly] = field(default_factory=dict)  #: came whole before the plan


class _Fetch:
    def __init__(
        self,
        store: Store,
        me: LocalPeer,
        account: Any,
        root: bytes,
        *,
        receipt_domain: ReceiptDomain | None,
        next_nonce: Callable[[], int] | None,
        progress: ProgressCallback | None,
        limit_rate: int | None,
        initial_window: int,
        lane: Lane | None = None,
        stall_timeout: float,
        put_workers: int,
        request_batch: int = 1,
        output: Path | None = None,
        link: bool = False,
        max_price_per_gib: int = DEFAULT_PRICE_PER_GIB,
        receipt_every_chunks: int = RECEIPT_EVERY_CHUNKS,
        receipt_every_bytes: int = RECEIPT_EVERY_BYTES,
        control_timeout: float = CONTROL_TIMEOUT,
        offer_grace: float = OFFER_GRACE,
        ledger: PeerLedger | None = None,
        observer: TransferObserver = NULL_OBSERVER,
        swarm: SwarmOptions | None = None,
        delta: bool = True,
        delta_verify: bool = True,
        dial: Dial | None = None,
        wait_receipts: bool = True,
        early: bool = True,
    ) -> None:
        self.dial: Dial = dial or _dial
        self.early = early
        self._early_sent = False  #: one early Request per fetch, to one peer
        self.wait_receipts = wait_receipts
        self.delta = delta
        self.delta_verify = delta_verify
        self.wire_bytes = 0
        self.local_chunks = 0
        self.local_bytes = 0
        self.control_timeout = control_timeout
        self.offer_grace = offer_grace
        self._pending: set[str] = set()  #: peers whose offer (Want answer) is still awaited
        self._roots_first: str | None = None  #: asked for chunk roots with its Want (_manifest)
        self._unjudged: set[str] = set()  #: peers whose offer is in (or failed)
        self._judged: set[str] = set()  #: peers whose offer was weighed for the manifest
        self._offered = trio.Event()  #: set (and replaced) each time an offer completes
        self._sched_ready = trio.Event()  #: the scheduler exists and has the first peers
        self.agreed: Manifest | None = None  #: the manifest every peer must agree with
        self.liars: set[str] = set()  #: peers dropped for a lie (manifest, chunk-root list)
        self.ledger = ledger
        self.observer = observer
        self.not_found: set[str] = set()
        self.price_refusals: list[TransferError] = []
        self._stalls: dict[Any, tuple[int, int]] = {}  #: (stalls, slow) recorded, per peer
        self.transient_drops = False
        self.ranking: list[str] = []
        self.max_price = max_price_per_gib
        self.receipt_every_chunks = receipt_every_chunks
        self.receipt_every_bytes = receipt_every_bytes
        self.refused: dict[str, str] = {}
        self.request_batch = request_batch
        self.output_path = output
        self.link = link
        self.output: OutputFile | None = None
        self.store = store
        self.me = me
        self.account = account
        self.root = root
        self.receipt_domain = receipt_domain
        self.next_nonce = next_nonce or (lambda: random.getrandbits(63))
        self.progress_cb = progress
        self.bucket = (
            TokenBucket(limit_rate, burst=max(limit_rate / 4, 256 * 1024)) if limit_rate else None
        )
        self.lane = lane  #: the node's shaper lane (fair share under node caps), if any
        self.initial_window = initial_window
        self.stall_timeout = stall_timeout
        self.put_workers = put_workers
        self.put_slots = trio.Semaphore(put_workers)
        self.peers: dict[str, _Peer] = {}
        self.sched: Scheduler | None = None
        self.tracker: ProgressTracker | None = None
        self.done = trio.Event()
        self.writer: PartialWriter | None = None
        self.chunk_size = 0
        self.buffers = POOL  #: where full-size chunk buffers come from and go back to
        self.fetched_chunks = 0
        self.fetched_bytes = 0
        self.swarm = FetchSwarm(self, swarm) if swarm is not None else None
        self._permanent: set[str] = set()  #: peers that failed in a way a re-run cannot fix

    # -- connections and control replies ------------------------------------------------------

    async def _connect(self, addr: PeerAddr, errors: dict[str, str]) -> None:
        """Connect to ``addr`` (a socket the peer closes before the handshake finished, as
        admission control does during a burst, is tried again after ``HANDSHAKE_RETRY``)."""
        for wait in (*HANDSHAKE_RETRY, None):
            try:
                conn = await self.dial(addr, self.me)
                break
            except ClosedInHandshake as exc:
                if wait is None:
                    errors[str(addr)] = f"{type(exc).__name__}: {exc}"
                    log.info("cannot connect", peer=str(addr), error=str(exc))
                    return
                log.info("closed in the handshake: trying again", peer=str(addr), after=wait)
                await trio.sleep(wait * random.uniform(0.5, 1.5))
            except TransportError as exc:
                # reported once: in the transfer's result (refused), or in the error below
                errors[str(addr)] = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, (PeerUnresolvable, PeerIdentityMismatch)):
                    self._permanent.add(str(addr))
                log.info("cannot connect", peer=str(addr), error=str(exc))
                return
        send, recv = trio.open_memory_channel[Message](64)
        self.peers[conn.address] = _Peer(addr, conn, send, recv)
        self.observer.connection_opened(conn.address, False)

    async def _close(self, peer: _Peer) -> None:
        """Close ``peer``'s connection (idempotent) and tell the observer, once. A pooled one
        (``_pool.Lease``) goes back to its pool, with its receipt answers still due."""
        hand_over = getattr(peer.conn, "hand_over", None)
        if hand_over is not None and peer.unanswered and not peer.gone:
            hand_over(partial(self._on_receipt_answer, peer), lambda: len(peer.unanswered))
        await peer.conn.aclose()
        if not peer.closed:
            peer.closed = True
            self.observer.connection_closed(peer.conn.address, False)

    def _outstanding(self, address: str) -> None:
        """Tell the observer ``address``'s chunks in flight and window (in chunks)."""
        st = self.sched.peers.get(address) if self.sched is not None else None
        if st is not None:
            count = len(st.outstanding) if st.usable else 0
            self.observer.requests_outstanding(address, count, st.window.size // self.chunk_size)

    async def _reply(self, peer: _Peer, *kinds: type) -> Message:
        with trio.fail_after(self.control_timeout):
            while True:
                msg = await peer.replies.receive()
                if isinstance(msg, (*kinds, NotFound, ErrorMsg)):
                    return msg

    async def _reader(self, peer: _Peer) -> None:
        """Route everything one peer sends; on failure tell the scheduler it is gone."""
        conn = peer.conn
        conn.set_bulk_buffer(partial(self._bulk_buffer, peer))
        try:
            while True:
                try:
                    msg = await conn.receive()
                except RemoteProtocolError as exc:
                    if exc.code != ErrorCode.UNKNOWN_KIND:
                        raise ProtocolViolation(f"peer {conn.address}: {exc}") from None
                    # a newer peer's message kind: skipped whole, say so and read on
                    await conn.send(
                        ErrorMsg(
                            exc.code,
                            ref_kind=exc.kind,
                            message=clip_text(str(exc), MAX_ERROR_TEXT),
                        )
                    )
                    continue
                except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                    raise PeerFailed(f"peer {conn.address}: connection closed: {exc}") from None
                if isinstance(msg, ChunkData):
                    await self._on_piece(peer, msg)
                elif (
                    isinstance(msg, ErrorMsg)
                    and msg.request_id in peer.requests
                    and not peer.dropped
                ):
                    if self.sched is None:  # the early Request refused: the plan asks again
                        self._forget_early(peer, peer.early_indices)
                    else:
                        await self._on_request_error(peer, msg)
                elif isinstance(msg, ReceiptAck) or (
                    isinstance(msg, ErrorMsg)
                    and (msg.code == ErrorCode.BAD_RECEIPT or msg.ref_kind == Kind.RECEIPT)
                ):
                    self._on_receipt_answer(peer, msg)
                elif self.swarm is not None and await self.swarm.on_message(peer, msg):
                    continue  # Peers, Have updates
                elif peer.dropped:
                    continue  # draining after our Goodbye: nobody reads its control replies
                else:
                    await peer.control.send(msg)
        except (TransportError, TransferError) as exc:
            await self._peer_gone(peer, exc)
        finally:
            conn.set_bulk_buffer(None)
            peer.ended.set()

    async def _peer_gone(self, peer: _Peer, exc: Exception) -> None:
        peer.gone = True
        peer.answered.set()  # nobody waits for receipt answers from a dead connection
        if self.done.is_set():
            peer.control.close()
            return
        if not peer.dropped:
            log.warning("peer lost", peer=peer.conn.address, error=str(exc))
        if peer.report is not None and peer.report.error is None:
            peer.report.error = f"{type(exc).__name__}: {exc}"
        if self.sched is None and not peer.dropped:  # before the transfer: note why
            self.refused.setdefault(peer.conn.address, f"{type(exc).__name__}: {exc}")
            self.transient_drops = True
        if self.sched is not None and peer.conn.address in self.sched.peers:
            fault = exc if isinstance(exc, TransferError) else PeerFailed(str(exc))
            self.sched.remove_peer(peer.conn.address, fault)
            self._outstanding(peer.conn.address)
            await self._pump()
        peer.control.close()

    # -- chunks -------------------------------------------------------------------------------

    def _bulk_buffer(self, peer: _Peer, root: bytes, index: int, total: int) -> ChunkBuffer | None:
        """Where ``peer``'s bulk ChunkData for chunk ``index`` is decrypted: a chunk buffer of
        ours when we want it whole from there (then :meth:`_on_piece` copies nothing). Not
        while a rate cap paces what we read (``_pace``): then it comes as pieces, paced one
        by one as before."""
        if (
            self._paced
            or root != self.root
            or peer.dropped
            or index in peer.assembling
            or total != self._chunk_len(peer, index)
        ):
            peer.bulk = None
            return None
        peer.bulk = self._buffer(total)
        return peer.bulk

    def _chunk_len(self, peer: _Peer, index: int) -> int | None:
        """The length chunk ``index`` must have, ``None`` if it is not taken from ``peer``
        now: beyond the content, from a peer the scheduler does not have (not used: price,
        domain; what it sends is neither stored nor paid), or, before the plan, not asked in
        its early Request (whose lengths come from its own manifest: the one agreed, if it is
        used at all)."""
        sched = self.sched
        if sched is not None:
            if index >= sched.chunk_count or peer.conn.address not in sched.peers:
                return None
            return sched.chunk_len(index)
        m = peer.manifest
        if m is None or index not in peer.early_indices or index in peer.early_done:
            return None
        return m.chunk_length(index)

    @property
    def _paced(self) -> bool:
        """A rate cap is in force on what we read (``limit_rate``'s bucket, or the lane's
        cap): pieces wait in ``_pace``. Looked up per piece, so a cap set at run time holds."""
        return self.bucket is not None or (self.lane is not None and not self.lane.unlimited)

    async def _on_piece(self, peer: _Peer, msg: ChunkData) -> None:
        index = msg.index
        sched = self.sched
        if bytes(msg.root) != self.root:
            return
        length = self._chunk_len(peer, index)  # before the plan: the early Request's only
        if length is None:
            return
        self.wire_bytes += len(msg.data)
        if peer.dropped:
            return  # neither stored nor billed
        if sched is not None and sched.on_bytes(peer.conn.address, trio.current_time()):
            await self._answered(peer)
        if self.done.is_set():
            return  # over (finished or failed): neither stored nor billed
        total = msg.total_len
        data = msg.data
        inplace = False
        asm = peer.assembling.get(index)
        if asm is None:
            if msg.offset != 0:
                return  # tail of a chunk we cancelled
            if msg.compressed:  # a zstd frame of the chunk: never longer than the chunk
                if total > length:
                    raise ProtocolViolation(f"chunk {index} sent as a frame longer than itself")
                asm = _Assembly(bytearray(total), compressed=True)
            elif total != length:
                raise ProtocolViolation(f"chunk {index} announced with the wrong length")
            else:
                bulk, peer.bulk = peer.bulk, None
                if bulk is not None and isinstance(data, memoryview) and data.obj is bulk:
                    asm = _Assembly(bulk)  # decrypted into it (``_bulk_buffer``): no copy
                    inplace = True
                else:
                    asm = _Assembly(self._buffer(total))
            peer.assembling[index] = asm
        end = asm.filled + len(data)
        if (
            msg.offset != asm.filled
            or total != len(asm.buf)
            or end > total
            or msg.compressed != asm.compressed
        ):
            del peer.assembling[index]
            raise ProtocolViolation(f"chunk {index} pieces out of order or of the wrong length")
        if not inplace:
            asm.buf[asm.filled : end] = data  # one copy, into a buffer of the final size
        asm.filled = end
        if self._paced and sched is not None:  # (the early chunks, asked unpaced, are not)
            await self._pace(peer, len(data))
        if end < total:
            return
        if peer.assembling.pop(index, None) is not asm:
            return  # cancelled (e.g. got elsewhere) while this piece waited for the rate limit
        if sched is None:
            peer.early_done[index] = asm  # handed to the scheduler with the plan (_take_early)
            return
        await self._deliver(peer, index, asm)

    async def _deliver(self, peer: _Peer, index: int, asm: _Assembly) -> None:
        """A whole chunk from ``peer``: verified and written by a ``_put`` task."""
        assert self.sched is not None
        buf = asm.buf
        if index not in self.sched.need:
            self._recycle(buf)
            return  # an endgame copy that lost the race
        await self.put_slots.acquire()
        peer.putting += 1
        self.nursery.start_soon(self._put, peer, index, buf, asm.compressed)

    # -- the early Request (module docstring, item 2) ----------------------------------------

    async def _send_early(self, peer: _Peer, manifest: Manifest, page: bytes) -> None:
        """Ask ``peer`` for the first chunks now, from the first chunk-root page of a content
        nothing of which is held, before the list is checked and stored and the plan made:
        what a get waits for first (the first chunk) is then on its way during that set-up.
        The peer has answered Want (Manifest, Price, Have), so this is an ordinary Request
        (docs/protocol.md 5.13). It names chunks the peer has and none whose chunk root the
        store holds (delta takes those: asking would move them for nothing): from a single
        peer the first ones, up to ``EARLY_BYTES`` (at least one chunk, at most the initial
        window and the peer's ``max_outstanding``); with several peers only the first chunk,
        so the scheduler still spreads a small content over them; in a swarm one chunk from a
        random start, as the swarm scheduler picks, so that receivers of one root do not all
        ask the origin for the same chunks (it spares the origin what others can serve)."""
        if self._early_sent or not self.early or self._paced:
            return
        self._early_sent = True
        limit = max(1, EARLY_BYTES // manifest.chunk_size)
        hello = peer.conn.peer_hello
        if hello is not None:
            limit = min(limit, hello.capabilities.max_outstanding)
        count = min(manifest.chunk_count, len(page) // 32)
        limit = min(limit, self.initial_window, count)
        start = 0
        if self.swarm is not None:
            limit, start = 1, random.randrange(count)
        elif len(self.peers) > 1:
            limit = 1

        def wanted(i: int) -> bool:
            if peer.have is not None and i not in peer.have:
                return False
            cr = page[32 * i : 32 * i + 32]
            return not (self.delta and self.store.holds_chunk(cr, manifest.chunk_length(i)))

        looked = itertools.islice(itertools.chain(range(start, count), range(start)), 16 * limit)
        indices = tuple(itertools.islice((i for i in looked if wanted(i)), limit))
        if not indices:
            return
        self.chunk_size = manifest.chunk_size  # its buffers come from the pool (``_buffer``)
        req_id = next(peer.req_ids)
        peer.requests[req_id] = indices
        peer.early, peer.early_indices = req_id, indices
        try:
            await peer.conn.send(Request(self.root, req_id, indices))
        except TransportError:
            self._forget_early(peer, indices)  # its reader will see the connection fail

    def _forget_early(self, peer: _Peer, indices: Sequence[int]) -> None:
        """``indices`` of ``peer``'s early Request are not taken from it: they leave the
        request (an answer to it is no longer ours to count) and what came of them is
        dropped (a piece still coming is ignored, as after a Cancel)."""
        if peer.early is None:
            return
        for index in indices:
            for asm in (peer.early_done.pop(index, None), peer.assembling.pop(index, None)):
                if asm is not None:  # ours alone (a bulk chunk still arriving is in neither)
                    self._recycle(asm.buf)
        left = tuple(i for i in peer.early_indices if i not in indices)
        if left:
            peer.requests[peer.early] = peer.early_indices = left
        else:
            peer.requests.pop(peer.early, None)
            peer.early, peer.early_indices = None, ()

    def _take_early(
        self, peer: _Peer, now: float
    ) -> tuple[list[tuple[int, _Assembly]], tuple[int, ...]]:
        """The plan exists (scheduler, peers): the chunks of ``peer``'s early Request become
        its outstanding requests (``Scheduler.requested``), as if the scheduler had asked
        them, except those it does not take (not needed: delta; the peer not used after all:
        price, domain, a lie, gone), which are forgotten (``_forget_early``).

        Returns (the chunks that came whole already: the caller delivers them; the indices
        to Cancel: forgotten with their data still to come). Synchronous: the reader cannot
        slip a piece in between."""
        sched = self.sched
        assert sched is not None
        indices = peer.early_indices
        address = peer.conn.address
        if peer.dropped or peer.gone or address not in sched.peers:
            ignored = indices
        else:
            ignored = sched.requested(address, indices, now)
        cancel = () if peer.gone else tuple(i for i in ignored if i not in peer.early_done)
        self._forget_early(peer, ignored)
        whole = sorted(peer.early_done.items())
        peer.early, peer.early_indices, peer.early_done = None, (), {}
        return whole, cancel

    async def _answered(self, peer: _Peer) -> None:
        """A suspect (overtaken, nothing from it since its oldest request) sent bytes: it is
        slow, not stalled (``Scheduler``); the Cancels held back from it go out now."""
        log.info("peer slow, not stalled: it answers", peer=peer.conn.address)
        if peer.withheld and not peer.gone:
            indices, peer.withheld = tuple(sorted(peer.withheld)), set()
            for index in indices:
                peer.assembling.pop(index, None)
            with contextlib.suppress(TransportError):  # its reader will see a failure
                await peer.conn.send(Cancel(self.root, indices))

    async def _pace(self, peer: _Peer, nbytes: int) -> None:
        """Wait for the rate limit (``limit_rate``'s bucket or the shaper's lane) to let
        ``nbytes`` through. The peer is held meanwhile: the wait is ours, so its stall clock
        stops and per-chunk times (ledger) leave it out (a bulk transfer beside a critical one
        under a low cap may wait far longer than ``stall_timeout`` for its share)."""
        sched, address = self.sched, peer.conn.address
        assert sched is not None
        sched.hold(address, trio.current_time())
        try:
            if self.bucket is not None:
                delay = self.bucket.consume(nbytes, trio.current_time())
                if delay > 0:
                    await trio.sleep(delay)
            if self.lane is not None:
                await self.lane.acquire(nbytes)
        finally:
            sched.release(address, trio.current_time())

    async def _put(
        self, peer: _Peer, index: int, data: ChunkBuffer, compressed: bool = False
    ) -> None:
        assert self.sched is not None and self.tracker is not None
        try:
            try:
                await trio.to_thread.run_sync(self._store_chunk, index, data, compressed)
                ok = True
            except (ChunkMismatch, CompressedChunkError) as exc:
                log.warning("corrupt chunk", peer=peer.conn.address, index=index, error=str(exc))
                ok = False
        finally:
            self.put_slots.release()
            peer.putting -= 1
            peer.put_done.set()
            peer.put_done = trio.Event()
        n = self.sched.chunk_len(index)  # content bytes, also for a frame (receipts bill these)
        received = len(data)  # what came (a frame's length when compressed)
        self._recycle(data)  # the worker is done with it (written, or refused): the pool's now
        del data
        address = peer.conn.address
        if not ok and address in self.sched.peers:
            # Caught corrupting: take no new chunk from it, but let the chunks of it already
            # being verified finish first, while it is still a scheduler peer, so each one that
            # verifies is counted and paid (present bytes == billed bytes).
            peer.dropped = True
            while peer.putting:
                await peer.put_done.wait()
        if address not in self.sched.peers:
            return
        now = trio.current_time()
        was_needed = index in self.sched.need
        asked = self.sched.peers[address].outstanding.get(index)
        own = self.sched.request_age(address, index, now)  # less our rate limit's waits
        actions = self.sched.on_chunk(address, index, ok, now)
        self._outstanding(address)
        if ok and was_needed:
            seconds = now - asked if asked is not None else 0.0
            self.observer.chunk_received(address, n, seconds, received)
            if self.ledger is not None:
                self.ledger.record_chunk(address, n, own or 0.0, time.time())
        elif not ok:
            self.observer.chunk_rejected(address, "corrupt")
            if self.ledger is not None:
                self.ledger.record_bad_chunk(address, time.time())
        report = peer.report
        if ok and was_needed:
            self.fetched_chunks += 1
            self.fetched_bytes += n
            if report is not None:
                report.chunks += 1
                report.bytes += n
            prog = self.tracker.advance(n, now)
            if self.progress_cb is not None:
                self.progress_cb(prog)
            if self._receipt_due(peer):
                await self._send_receipt(peer)
        elif not ok:
            if report is not None:
                report.corrupt_chunks += 1
                report.error = f"chunk {index} failed verification"
            peer.dropped = True  # no new chunk of it is taken from here on
            await self._send_receipt(peer)  # for its verified bytes only, without Complete
            mine = [a for a in actions if a.peer == address]
            actions = [a for a in actions if a.peer != address]
            await self._disconnect(
                peer,
                ErrorCode.BAD_CHUNK,
                f"chunk {index} failed verification",
                tell=True,
                first=[Cancel(self.root, a.indices) for a in mine if isinstance(a, CancelChunks)],
            )
        await self._send_actions(actions)
        await self._pump()

    async def _disconnect(
        self,
        peer: _Peer,
        code: ErrorCode,
        reason: str,
        *,
        tell: bool = False,
        first: Sequence[Message] = (),
    ) -> None:
        """Drop ``peer`` for good: no more requests, no ``Complete``, no receipt.

        Sends ``first``, then (with ``tell``) ``Error(code, message=reason)``, then
        ``Goodbye(code, reason)``; its reader reads on (discarding) until the peer closes or
        ``GOODBYE_DRAIN`` passes, then the connection is closed. Closing at once, with its
        chunks still arriving, would reset the TCP connection and lose our Goodbye.
        """
        peer.dropped = True
        peer.gone = True  # before any checkpoint: no receipt can be sent to it from here on
        peer.answered.set()
        log.warning("peer dropped", peer=peer.conn.address, code=code.name, reason=reason)
        msgs: list[Message] = list(first)
        if tell:
            msgs.append(ErrorMsg(code, message=clip_text(reason, MAX_ERROR_TEXT)))
        msgs.append(Goodbye(code, clip_text(reason, MAX_GOODBYE_TEXT)))
        # Shielded (bounded): a fetch that fails because of this very peer (its only source
        # sent a bad chunk) is being cancelled now, and the peer must still get the Error
        # (BAD_CHUNK makes it re-verify and quarantine its copy) and the Goodbye.
        with trio.CancelScope(shield=True), trio.move_on_after(GOODBYE_DRAIN):
            try:
                await peer.conn.send(*msgs)
            except TransportError as exc:
                log.debug("goodbye not delivered", peer=peer.conn.address, error=str(exc))
        self.nursery.start_soon(self._close_after_drain, peer)

    async def _close_after_drain(self, peer: _Peer) -> None:
        with trio.move_on_after(GOODBYE_DRAIN):
            await peer.ended.wait()
        await self._close(peer)

    async def _drain_puts(self) -> None:
        """Wait (bounded) until no chunk is being verified/written (``done`` is set first, so
        no new one starts): holding every put slot means each ``_put`` has released its own,
        and it counts its chunk before its next checkpoint."""
        held = 0
        with trio.move_on_after(RECEIPT_TIMEOUT):
            while held < self.put_workers:
                await self.put_slots.acquire()
                held += 1
        for _ in range(held):
            self.put_slots.release()

    def _buffer(self, size: int) -> ChunkBuffer:
        """A chunk buffer: full-size chunks get page-aligned ones from the process's
        :data:`~node.transfer._buffers.POOL` (reused between chunks and between fetches: no
        page faults on a warm one), which the store and the output file write with
        ``O_DIRECT`` straight from the buffer, with no copy into an aligned bounce buffer."""
        if size == self.chunk_size:
            return self.buffers.take(size)
        return bytearray(size)

    def _recycle(self, buf: ChunkBuffer) -> None:
        if isinstance(buf, mmap.mmap):
            self.buffers.give(buf)  # bounded by the pool (its byte cap), not per fetch

    def _store_chunk(self, index: int, data: ChunkBuffer, compressed: bool = False) -> None:
        """Worker thread: (decompress,) verify + write (group commit) into the store and the
        output file. A frame must decode to exactly the chunk's length
        (``CompressedChunkError`` otherwise); the chunk root is checked over the result.

        The store's writer writes the output too (as its link target with ``link``, else as
        its copy target), and only for a chunk it takes now: one it already had (an earlier
        run's, or a duplicate from a second peer: verified, a corrupt one raises
        ``ChunkMismatch``, but not written) is written from the store at the end."""
        assert self.writer is not None and self.sched is not None
        chunk = (
            decompress(memoryview(data), self.sched.chunk_len(index))
            if compressed
            else memoryview(data)  # (an mmap: written with O_DIRECT without a copy)
        )
        self.writer.put(index, chunk)

    async def _on_request_error(self, peer: _Peer, msg: ErrorMsg) -> None:
        assert self.sched is not None
        indices = peer.requests.pop(msg.request_id)
        now = trio.current_time()
        if msg.code in (ErrorCode.BUSY, ErrorCode.RATE_LIMITED):
            retry = msg.retry_after_ms / 1000 if msg.retry_after_ms else None
            self.sched.on_refused(peer.conn.address, indices, now, retry)
        else:
            log.warning("request failed", peer=peer.conn.address, code=str(msg.code))
            self.sched.on_refused(peer.conn.address, indices, now)
            self.sched.on_failure(peer.conn.address, now, PeerFailed(f"peer error: {msg.message}"))
        await self._pump()

    async def _send_actions(self, actions: Sequence[RequestChunks | CancelChunks]) -> None:
        for action in actions:
            peer = self.peers.get(str(action.peer))
            if peer is None:
                continue
            try:
                if isinstance(action, RequestChunks):
                    for i in range(0, len(action.indices), MAX_REQUEST_INDICES):
                        part = action.indices[i : i + MAX_REQUEST_INDICES]
                        req_id = next(peer.req_ids)
                        peer.requests[req_id] = part
                        await peer.conn.send(Request(self.root, req_id, part))
                elif self._suspect(str(action.peer)):
                    # Held back: an honest but slow peer may still answer these (that is
                    # how it shows it is not stalled); sent once it does (``_answered``).
                    peer.withheld.update(action.indices)
                else:
                    indices = action.indices
                    if peer.withheld:  # a suspect judged stalled: what was held back too
                        indices = tuple(sorted(peer.withheld.union(indices)))
                        peer.withheld = set()
                    for index in indices:
                        peer.assembling.pop(index, None)
                    await peer.conn.send(Cancel(self.root, indices))
                self._outstanding(str(action.peer))
            except TransportError as exc:
                await self._peer_gone(peer, exc)

    async def _pump(self) -> None:
        sched = self.sched
        if sched is None or self.done.is_set():
            return
        await self._send_actions(sched.poll(trio.current_time()))
        self._record_stalls()
        if sched.finished or sched.failure is not None:
            self.done.set()

    def _suspect(self, address: str) -> bool:
        st = self.sched.peers.get(address) if self.sched is not None else None
        return st is not None and st.suspect_since is not None

    def _record_stalls(self) -> None:
        """The scheduler's verdicts into the observer and the ledger: each stall (by the stall
        timer, or a peer overtaken that sent no byte for ``stalled_after``) is a timeout; each
        peer overtaken that does answer is *slow* (a small mark, ``record_slow``)."""
        assert self.sched is not None
        for address, st in self.sched.peers.items():
            seen, seen_slow = self._stalls.get(address, (0, 0))
            if st.timeouts == seen and st.slow == seen_slow:
                continue
            self._stalls[address] = (st.timeouts, st.slow)
            if st.overtaken and st.timeouts > seen:
                log.warning("peer stalled: it answered none of its requests", peer=address)
            for _ in range(st.timeouts - seen):
                self.observer.chunk_rejected(str(address), "timeout")
                if self.ledger is not None:
                    self.ledger.record_timeout(str(address), time.time())
            for _ in range(st.slow - seen_slow):
                if self.ledger is not None:
                    self.ledger.record_slow(str(address), time.time())

    async def _await_verdicts(self) -> None:
        """The transfer is done; peers overtaken without a byte (suspects) get until their
        verdict falls due, at most ``VERDICT_WAIT``, to show they answer (slow) or not
        (stalled); still open then: slow (``Scheduler.resolve_open``)."""
        sched = self.sched
        if sched is None or not sched.suspects():
            return
        give_up = trio.current_time() + VERDICT_WAIT
        while True:
            now = trio.current_time()
            sched.poll(now)  # finished: judges the verdicts only, hands out nothing
            due = sched.verdicts_due()
            if due is None or now >= give_up:
                break
            await trio.sleep(max(0.0, min(0.05, due - now, give_up - now)))
        sched.resolve_open()
        self._record_stalls()

    async def _timer(self) -> None:
        assert self.sched is not None and self.tracker is not None
        while not self.done.is_set():
            now = trio.current_time()
            deadline = self.sched.next_deadline(now)
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - now))
            await trio.sleep(wait)
            if self.writer is not None:  # bounds what a crash loses in a slow transfer
                await trio.to_thread.run_sync(self.writer.flush_if_due)
            await self._pump()
            if self.progress_cb is not None:
                self.progress_cb(self.tracker.sample(trio.current_time()))

    # -- the phases ---------------------------------------------------------------------------

    async def _drop(
        self,
        peer: _Peer,
        reason: str,
        *,
        code: ErrorCode = ErrorCode.OK,
        lied: bool = False,
        timeout: bool = False,
    ) -> None:
        """Drop ``peer`` before the transfer (items 1-2 of the module docstring) and say why
        in its Goodbye. A lie (bad manifest or chunk-root list) counts as a bad chunk in the
        ledger, a timeout as a timeout."""
        if peer.dropped:
            return  # already dropped (e.g. done without it, then its control timer ran out)
        address = peer.conn.address
        self.refused[address] = reason
        peer.report = None
        if lied:
            self.liars.add(address)
        if self.ledger is not None:
            if lied:
                self.ledger.record_bad_chunk(address, time.time())
            elif timeout:
                self.ledger.record_timeout(address, time.time())
        if timeout:
            self.transient_drops = True
        if not peer.gone:
            await self._disconnect(peer, code, reason)

    async def _offer(self, address: str, peer: _Peer, *, retry: bool = True) -> None:
        """Ask one peer ``Want``; keep its manifest, price and Have, or drop it. A peer that
        refused the connection with ``Error(BUSY, retry_after_ms)`` (admission control) is
        overloaded, not lying: it is asked once more on a new connection after that delay."""
        flags = _flags(peer.conn)
        if not flags & CapFlag.PROVIDER:
            log.info("peer is not a provider", peer=address, flags=hex(flags))
            self.refused[address] = f"not a provider (its Hello flags are {flags:#x})"
            return
        try:
            if address == self._roots_first and not peer.roots_asked:
                peer.roots_asked = True  # answered after the Want's answers (_roots_page)
                await peer.conn.send(
                    Want(self.root), GetChunkRoots(self.root, 0, MAX_ROOTS_PER_PAGE)
                )
            else:
                await peer.conn.send(Want(self.root))
            msg = await self._reply(peer, ManifestMsg)
            if isinstance(msg, ErrorMsg) and msg.code in (ErrorCode.BUSY, ErrorCode.RATE_LIMITED):
                if retry:
                    await self._retry_busy(address, peer, msg)
                else:
                    self.transient_drops = True
                    self.refused[address] = f"busy: {msg.message or 'refused, try later'}"
                return
            if isinstance(msg, NotFound):
                log.info("peer does not have it", peer=address)
                self.not_found.add(address)
                self.refused[address] = "NotFound: it does not have the content"
                return
            if not isinstance(msg, ManifestMsg):
                raise ProtocolViolation(f"answered Want with {type(msg).__name__}")
            try:
                m = Manifest.from_bytes(bytes(msg.manifest))
            except Exception as exc:
                raise ManifestMismatch(f"sent a malformed manifest: {exc}") from None
            if m.root != self.root:
                raise ManifestMismatch("sent a manifest for another root")
            try:
                peer.price, peer.paid = await self._price(peer)
            except (PriceTooHigh, PriceMissing, ReceiptDomainMismatch) as exc:
                # Only this peer is out: the others may still serve the root.
                log.warning("provider not used", peer=address, error=str(exc))
                self.refused[address] = f"{type(exc).__name__}: {exc}"
                self.price_refusals.append(exc)
                return
            peer.have = await self._have(peer, m.chunk_count)
            peer.manifest = m
            if self.swarm is not None:
                await self.swarm.on_offer(peer)
        except trio.TooSlowError:
            await self._drop(
                peer,
                f"no answer within {self.control_timeout:g}s",
                timeout=True,
            )
        except (ManifestMismatch, ProtocolViolation) as exc:
            log.warning("provider not used", peer=address, error=str(exc))
            await self._drop(
                peer, f"{type(exc).__name__}: {exc}", code=ErrorCode.MALFORMED, lied=True
            )
        except (TransportError, trio.EndOfChannel, trio.ClosedResourceError) as exc:
            self.transient_drops = True
            self.refused.setdefault(address, f"disconnected: {exc or type(exc).__name__}")

    async def _retry_busy(self, address: str, peer: _Peer, msg: ErrorMsg) -> None:
        """Wait the refused peer's ``retry_after_ms`` (at most ``BUSY_RETRY_MAX``), reconnect
        and offer again, once. The old connection is dropped quietly; the new ``_Peer`` takes
        its place in ``self.peers``."""
        delay = min(msg.retry_after_ms / 1000 if msg.retry_after_ms else 1.0, BUSY_RETRY_MAX)
        log.info("peer busy: asking again", peer=address, after=delay)
        peer.dropped = True  # its reader ending is expected, not a refusal to note
        await self._close(peer)
        await trio.sleep(delay)
        try:
            conn = await self.dial(peer.addr, self.me)
        except TransportError as exc:
            self.transient_drops = True
            self.refused[address] = f"busy, then {type(exc).__name__}: {exc}"
            return
        send, recv = trio.open_memory_channel[Message](64)
        fresh = _Peer(peer.addr, conn, send, recv)
        self.peers[address] = fresh
        self.observer.connection_opened(conn.address, False)
        self.nursery.start_soon(self._reader, fresh)
        self.nursery.start_soon(conn.keepalive)
        await self._offer(address, fresh, retry=False)
        if fresh.manifest is not None:
            self.refused.pop(address, None)

    async def _manifest(self) -> Manifest:
        """Collect every peer's offer (all at once), then agree on one manifest (docstring)."""
        peers = list(self.peers.items())
        if self.ledger is not None:
            ledger = self.ledger
            peers.sort(key=lambda item: -ledger.score(item[0]))  # stable: ties keep the order
        self.ranking = [address for address, _ in peers]
        held = self.store.has_content(self.root, partial=True)
        # Not held yet: the best-ranked peer is asked for the first chunk-root page with the
        # Want, one round trip less for a list of one page (a small content)
        self._roots_first = None if held or not peers else peers[0][0]
        for address, peer in peers:
            self._pending.add(address)
            self.nursery.start_soon(self._offer_task, address, peer)
        stored = None
        if held:
            stored = await trio.to_thread.run_sync(self.store.get_manifest, self.root)
        # Wait for every offer, or for the first good one plus the grace (module docstring,
        # item 1): a silent peer does not hold everyone up for the control timeout.
        while self._pending and not any(p.manifest for p in self.peers.values()):
            await self._offered.wait()
        with trio.move_on_after(self.offer_grace):
            while self._pending:
                await self._offered.wait()
        while True:
            manifest = await self._agree_offers(stored)
            if manifest is not None or not self._pending:
                break
            await self._offered.wait()  # none agreed yet: the late offers may still make one
        if manifest is not None:
            self.agreed = manifest
            for address in sorted(self._unjudged - self._judged, key=self.ranking.index):
                self.nursery.start_soon(self._join, address)
            return manifest
        if self.not_found and len(self.not_found) == len(self.peers):
            raise ContentNotFound(f"no peer has 0x{self.root.hex()}")
        if self.price_refusals and len(self.price_refusals) + len(self.not_found) == len(
            self.peers
        ):
            raise self.price_refusals[0]
        raise NoUsablePeer(self.root, self.refused, transient=self.transient_drops)

    async def _give_up_offers(self, elapsed: float) -> None:
        """The transfer is done: peers that never answered Want are dropped as timed out
        (so the ledger asks them last next time) instead of being forgotten."""
        for address in sorted(self._pending, key=self.ranking.index):
            peer = self.peers[address]
            if not peer.gone:
                await self._drop(
                    peer, f"no answer to Want in {elapsed:.1f}s (done without it)", timeout=True
                )

    async def _offer_task(self, address: str, peer: _Peer) -> None:
        """One peer's offer (``_offer``); an offer that completes after the manifest was
        agreed joins the transfer (``_join``)."""
        try:
            await self._offer(address, peer)
        finally:
            self._pending.discard(address)
            self._unjudged.add(address)
            self._offered.set()
            self._offered = trio.Event()
        if self.agreed is not None:
            await self._join(address)

    async def _join(self, address: str) -> str:
        """The one way a peer enters the running transfer: a given peer whose offer came in
        after the manifest was agreed, and a peer learned through the swarm (``_swarm``).

        Its offer must be complete (manifest, price, Have) and its manifest must agree with
        the agreed one (``size``, ``chunk_size``; the agreed manifest was verified against the
        root through a chunk-root list, and every chunk the joiner sends is verified against
        that list, so its own list is not fetched); one that disagrees is dropped as a liar.
        Its Have (or HaveAll) is its bitmap; it is ranked from the ledger among the peers
        (``_rank``) and the scheduler gives it its window (a spare one for a given peer in a
        swarm). Returns ``"joined"``, ``"lied"`` (dropped for a lie, now or in its offer) or
        ``"absent"`` (no offer: NotFound, busy, timed out, gone; or the transfer is over)."""
        peer, agreed = self.peers.get(address), self.agreed
        if address in self.liars:
            return "lied"
        if address in self._judged:
            return "absent"  # weighed already (with the agreed group, or dropped)
        if peer is None or agreed is None or peer.manifest is None or peer.gone:
            return "absent"
        self._judged.add(address)
        if _shape(peer.manifest) != _shape(agreed):
            await self._drop(
                peer,
                "ManifestMismatch: its manifest (size, chunk size) disagrees with the one "
                "verified against the root",
                code=ErrorCode.MALFORMED,
                lied=True,
            )
            return "lied"
        peer.report = ProviderReport(
            address, f"{peer.addr.host}:{peer.addr.port}", price_per_gib=peer.price
        )
        await self._sched_ready.wait()
        sched = self.sched
        if sched is None or self.done.is_set() or peer.gone or address in sched.peers:
            return "absent"
        rank = self._rank(address)
        sched.add_peer(address, trio.current_time(), peer.have, rank=rank)
        log.info(
            "peer joins the transfer",
            peer=address,
            rank=rank,
            chunks="all" if peer.have is None else len(peer.have),
        )
        self._outstanding(address)
        await self._pump()
        return "joined"

    def _rank(self, address: str) -> float:
        """A joining peer's place in the ranking (lower is served first): a given peer keeps
        the place the ledger gave it at the start; a new one (learned) is placed by its ledger
        score among the ranked peers, after those with the same score."""
        if address not in self.ranking:
            ledger = self.ledger
            score = ledger.score(address) if ledger is not None else 0.0
            pos = len(self.ranking)
            if ledger is not None:
                pos = next((i for i, a in enumerate(self.ranking) if ledger.score(a) < score), pos)
            self.ranking.insert(pos, address)
        return float(self.ranking.index(address))

    async def _agree_offers(self, stored: Manifest | None) -> Manifest | None:
        """Group the offers in so far and agree on a manifest from the root (docstring item
        2); ``None`` when no group verifies (yet)."""
        peers = [(a, self.peers[a]) for a in self.ranking]  # a BUSY peer may have reconnected
        offers = [
            (a, p)
            for a, p in peers
            if p.manifest is not None and not p.gone and a not in self._judged
        ]
        self._judged.update(a for a, _ in offers)
        groups: dict[tuple[int, int], list[_Peer]] = {}
        for _, peer in offers:
            assert peer.manifest is not None
            groups.setdefault(_shape(peer.manifest), []).append(peer)
        # Best first: the stored manifest's shape, then most peers; sort is stable, so ties
        # keep the ranking order of their first peer.
        order = sorted(
            groups.items(),
            key=lambda kv: (stored is None or kv[0] != _shape(stored), -len(kv[1])),
        )
        for shape, members in order:
            if stored is not None and shape != _shape(stored):
                break
            manifest = await self._agree(members, stored)
            if manifest is None:
                continue
            for other_shape, others in groups.items():
                if other_shape != shape:
                    for peer in others:
                        await self._drop(
                            peer,
                            "ManifestMismatch: its manifest (size, chunk size) disagrees with "
                            "the one verified against the root",
                            code=ErrorCode.MALFORMED,
                            lied=True,
                        )
            for peer in members:
                if peer.manifest is not None and not peer.gone:
                    peer.report = ProviderReport(
                        peer.conn.address,
                        f"{peer.addr.host}:{peer.addr.port}",
                        price_per_gib=peer.price,
                    )
            return manifest
        if stored is not None:
            for _, others in order:
                for peer in others:
                    await self._drop(
                        peer,
                        "ManifestMismatch: its manifest disagrees with the stored one",
                        code=ErrorCode.MALFORMED,
                        lied=True,
                    )
        return None

    async def _agree(self, members: list[_Peer], stored: Manifest | None) -> Manifest | None:
        """The manifest of ``members`` once a chunk-root list verifies against the root
        (from the first member that sends a good one; the others that fail are dropped)."""
        if stored is not None:
            return stored
        for peer in members:
            if peer.gone or peer.manifest is None:
                continue
            if await self._begin(peer, peer.manifest):
                return peer.manifest
        return None

    async def _price(self, peer: _Peer) -> tuple[int, bool]:
        """The provider's Price, which must come between its Manifest and its Have pages, and
        whether it gets receipts: we have a receipt domain, it advertises RECEIPTS and it stated
        the same domain (another one: :class:`ReceiptDomainMismatch`, it is not used)."""
        msg = await self._reply(peer, Price, Have, HaveAll)
        if not isinstance(msg, Price) or bytes(msg.root) != self.root:
            raise PriceMissing(f"peer {peer.conn.address} stated no price before its Have")
        if msg.price_per_gib > self.max_price:
            raise PriceTooHigh(peer.conn.address, msg.price_per_gib, self.max_price)
        ours, theirs = self.receipt_domain, msg.domain
        if ours is None or theirs is None or not _flags(peer.conn) & CapFlag.RECEIPTS:
            return msg.price_per_gib, False
        if theirs != ours:
            raise ReceiptDomainMismatch(
                f"peer {peer.conn.address} takes receipts on chain {theirs.chain_id} at "
                f"{theirs.verifying_contract}; this receiver pays on chain {ours.chain_id} at "
                f"{ours.verifying_contract}"
            )
        return msg.price_per_gib, True

    def _roots_from(
        self,
        peer: _Peer,
        manifest: Manifest,
        token: trio.lowlevel.TrioToken,
        first: bytes | None = None,
    ) -> Iterator[bytes]:
        """Generator run in a worker thread: pulls pages from the trio side as it goes
        (``first``: the first page, already read)."""
        total = manifest.chunk_count
        verifier = RootListVerifier(total)
        start = 0
        while start < total:
            count = min(MAX_ROOTS_PER_PAGE, total - start)
            if start == 0 and first is not None:
                page = first
            else:
                page = trio.from_thread.run(self._roots_page, peer, start, count, trio_token=token)
            roots = [page[i : i + 32] for i in range(0, len(page), 32)]
            verifier.update(roots)
            yield from roots
            start += len(roots)
        if not verifier.matches(self.root):
            raise ChunkRootsMismatch(
                f"chunk roots from {peer.conn.address} do not hash to the content root"
            )

    async def _roots_page(self, peer: _Peer, start: int, count: int) -> bytes:
        if start == 0 and peer.roots_asked:
            peer.roots_asked = False  # asked with the Want (_offer): its answer is next
        else:
            await peer.conn.send(GetChunkRoots(self.root, start, count))
        msg = await self._reply(peer, ChunkRoots)
        if not isinstance(msg, ChunkRoots) or msg.start != start:
            raise ContentNotFound(f"peer {peer.conn.address} did not send chunk roots")
        assert peer.manifest is not None
        if msg.total != peer.manifest.chunk_count:
            raise ChunkRootsMismatch(
                f"peer {peer.conn.address} has {msg.total} chunk roots but its manifest "
                f"says {peer.manifest.chunk_count}"
            )
        data = bytes(msg.roots)
        if not data or len(data) % 32 or len(data) > count * 32:
            raise ChunkRootsMismatch(f"peer {peer.conn.address} sent a bad chunk-root page")
        return data

    async def _begin(self, peer: _Peer, manifest: Manifest) -> bool:
        """Stream ``peer``'s chunk-root list into the store (checked against the root); on
        failure drop the peer and return False."""
        token = trio.lowlevel.current_trio_token()
        try:
            first = None
            if 0 < manifest.chunk_count <= MAX_ROOTS_PER_PAGE:  # one page: read it here
                first = await self._roots_page(peer, 0, manifest.chunk_count)
                await self._send_early(peer, manifest, first)
            await trio.to_thread.run_sync(
                self.store.begin_partial, manifest, self._roots_from(peer, manifest, token, first)
            )
            return True
        except (InvalidChunkRoots, ChunkRootsMismatch) as exc:
            log.warning("bad chunk-root list", peer=peer.conn.address, error=str(exc))
            await self._drop(
                peer, f"ChunkRootsMismatch: {exc}", code=ErrorCode.MALFORMED, lied=True
            )
        except ContentNotFound as exc:
            await self._drop(peer, f"ContentNotFound: {exc}", code=ErrorCode.NOT_FOUND)
        except trio.TooSlowError:
            await self._drop(
                peer,
                f"no chunk roots within {self.control_timeout:g}s",
                timeout=True,
            )
        except (TransportError, trio.EndOfChannel, trio.ClosedResourceError) as exc:
            self.transient_drops = True
            self.refused.setdefault(peer.conn.address, f"disconnected: {exc}")
        return False

    # -- receipts -----------------------------------------------------------------------------

    def _receipt_due(self, peer: _Peer) -> bool:
        """A periodic receipt is due: enough verified since the last one (module docstring)."""
        rep = peer.report
        if self.receipt_domain is None or rep is None:
            return False
        return (
            rep.chunks - peer.billed_chunks >= self.receipt_every_chunks
            or rep.bytes - peer.billed_bytes >= self.receipt_every_bytes
        )

    async def _send_receipt(self, peer: _Peer, *, complete: bool = False) -> None:
        """Sign and send a receipt for what ``peer`` delivered since its last receipt.

        Signing and booking happen with no checkpoint in between, so two chunk tasks of the
        same peer can never bill the same bytes twice.
        """
        rep = peer.report
        if self.receipt_domain is None or rep is None or peer.price is None or peer.gone:
            return
        if not peer.paid:  # it takes no receipts (section 2 of docs/protocol.md): nor Complete
            return
        nbytes, chunks = rep.bytes - peer.billed_bytes, rep.chunks - peer.billed_chunks
        if nbytes <= 0:
            if complete and rep.chunks:  # all of it billed already: still say we are done
                try:
                    await peer.conn.send(Complete(self.root))
                except TransportError:
                    peer.gone = True
            return
        receipt = Receipt(
            content_root=self.root,
            provider=peer.conn.address,
            receiver=self.me.address,
            bytes_served=nbytes,
            chunks=chunks,
            payment=payment_for(nbytes, peer.price),
            nonce=self.next_nonce(),
            issued_at=int(time.time()),
        )
        signed = sign_receipt(self.account, receipt, self.receipt_domain)
        peer.billed_bytes += nbytes
        peer.billed_chunks += chunks
        rep.receipts.append(signed)
        rep.receipt = signed
        rep.receipt_acked = False
        peer.unanswered.append(signed)
        msgs: list[Message] = [Complete(self.root)] if complete else []
        try:
            await peer.conn.send(*msgs, ReceiptMsg(signed))
        except TransportError as exc:
            log.warning("receipt not delivered", peer=peer.conn.address, error=str(exc))
            peer.unanswered.remove(signed)
            peer.gone = True

    def _on_receipt_answer(self, peer: _Peer, msg: ReceiptAck | ErrorMsg) -> None:
        """The provider answers receipts in order: this answers the oldest unanswered one."""
        rep = peer.report
        if not peer.unanswered or rep is None:
            log.debug("unexpected receipt answer", peer=peer.conn.address)
            return
        if isinstance(msg, ReceiptAck):
            if msg.nonce != peer.unanswered[0].receipt.nonce:
                raise ProtocolViolation(f"peer {peer.conn.address} acked an unknown receipt")
            peer.unanswered.popleft()
            rep.receipts_acked += 1
        else:
            peer.unanswered.popleft()
            refused = ReceiptRefused.from_message(msg.message)
            rep.receipts_refused.append(refused.reason)
            log.warning("receipt refused", peer=peer.conn.address, reason=refused.reason)
        rep.receipt_acked = rep.receipts_acked == len(rep.receipts) > 0
        peer.answered.set()
        peer.answered = trio.Event()

    async def _settle(self, *, complete: bool, wait: bool) -> None:
        """Last receipts: every provider still connected gets one for its unbilled bytes
        (with ``Complete`` first when the content is complete); then, if ``wait``, wait up to
        ``RECEIPT_TIMEOUT`` for every receipt to be answered (with ``wait_receipts=False``, not
        for those on pooled connections: their pool takes the answers, ``_close``)."""
        if self.receipt_domain is None:
            return
        peers = [p for p in self.peers.values() if p.report is not None]
        for peer in peers:
            await self._send_receipt(peer, complete=complete)
        if not wait:
            return
        with trio.move_on_after(RECEIPT_TIMEOUT):
            for peer in peers:
                if not self.wait_receipts and hasattr(peer.conn, "hand_over"):
                    continue
                while peer.unanswered and not peer.gone:
                    await peer.answered.wait()

    async def run(self, addrs: Sequence[PeerAddr]) -> FetchResult:
        start = trio.current_time()
        errors: dict[str, str] = {}
        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(self._connect, addr, errors)
        if not self.peers:
            message = "could not connect to any peer: " + "; ".join(errors.values())
            if errors and set(errors) <= self._permanent:
                raise PeersUnreachable(message)
            raise PeerFailed(message)
        try:
            async with collapse_groups(), trio.open_nursery() as nursery:
                self.nursery = nursery
                for peer in self.peers.values():
                    nursery.start_soon(self._reader, peer)
                    nursery.start_soon(peer.conn.keepalive)
                manifest = await self._manifest()
                if self.output_path is not None:
                    self.output = OutputFile(
                        self.output_path,
                        manifest,
                        durable=self.store.durable,
                        store=self.store,
                        link=self.link,
                    )
                try:
                    result = await self._transfer(manifest, start)
                except BaseException as exc:
                    # Partial transfers earn too: pay every provider still connected for the
                    # verified bytes it delivered, then let the error through. Cancelled (or
                    # Ctrl-C): the readers are going away, so send without waiting for acks.
                    cancelled = isinstance(exc, (trio.Cancelled, KeyboardInterrupt))
                    with (
                        trio.CancelScope(shield=True),
                        trio.move_on_after(
                            CANCELLED_RECEIPT_TIMEOUT if cancelled else RECEIPT_TIMEOUT + 5
                        ),
                    ):
                        await self._settle(complete=False, wait=not cancelled)
                    raise
                await self._give_up_offers(trio.current_time() - start)
                result.refused = dict(self.refused)
                if self.output is not None:
                    await trio.to_thread.run_sync(self.output.finish, self.store)
                async with trio.open_nursery() as ending:
                    ending.start_soon(self._await_verdicts)
                    await self._settle(complete=True, wait=True)
                nursery.cancel_scope.cancel()
        finally:
            if self.output is not None:
                self.output.close()
            with trio.CancelScope(shield=True):
                for peer in self.peers.values():
                    await self._close(peer)
        return result

    async def _transfer(self, manifest: Manifest, start: float) -> FetchResult:
        n = manifest.chunk_count
        self.chunk_size = manifest.chunk_size
        cap = max(2, PUT_BUFFER_BYTES // manifest.chunk_size)
        if self.put_workers > cap:  # no put has started yet: the slots can be replaced
            self.put_workers = cap
            self.put_slots = trio.Semaphore(cap)

        def held_then_missing() -> tuple[Any, list[int]]:  # one worker-thread hop for both
            adopted = None
            if self.delta:  # chunks held under any content: present by reference, not fetched
                adopted = self.store.adopt_held(self.root, verify=self.delta_verify)
            return adopted, list(self.store.missing_chunks(self.root))

        adopted, missing = await trio.to_thread.run_sync(held_then_missing)
        if adopted is not None:
            self.local_chunks, self.local_bytes = adopted.chunks, adopted.bytes
        need = Bitmap.from_indices(n, missing)
        resumed = n - len(need) - self.local_chunks
        make = Scheduler if self.swarm is None else partial(self.swarm.scheduler, manifest)
        self.sched = make(
            chunk_count=n,
            chunk_size=manifest.chunk_size,
            total_size=manifest.size,
            need=need,
            initial_window=self.initial_window,
            stall_timeout=self.stall_timeout,
            request_batch=self.request_batch,
        )
        now = trio.current_time()
        done_bytes = sum(manifest.chunk_length(i) for i in range(n) if i not in need) if n else 0
        self.tracker = ProgressTracker(manifest.size, n, now, done_bytes, resumed)
        for rank, address in enumerate(self.ranking):
            peer = self.peers[address]
            if peer.report is not None and not peer.gone:
                self.sched.add_peer(address, now, peer.have, rank=rank)
        early = [(p, *self._take_early(p, now)) for p in self.peers.values() if p.early is not None]
        self._sched_ready.set()
        log.info("fetching", root="0x" + self.root.hex(), chunks=n, missing=len(need))
        out = self.output
        links = out is not None and out.links
        self.writer = self.store.partial_writer(
            self.root,
            link=out if links else None,
            copy=out if not links else None,  # written while the chunk is hashed (docs/store.md)
        )
        try:
            for peer, whole, cancel in early:
                for index, asm in whole:
                    await self._deliver(peer, index, asm)
                if cancel:
                    with contextlib.suppress(TransportError):  # its reader will see it fail
                        await peer.conn.send(Cancel(self.root, cancel))
            if not self.sched.finished:
                self.nursery.start_soon(self._timer)
                if self.swarm is not None:
                    self.nursery.start_soon(self.swarm.run)
                await self._pump()
                await self.done.wait()
            self.done.set()
        finally:
            # Commit what verified so far (also on failure or Ctrl-C: a resume skips it). The
            # chunks already being verified are waited for first, so that what is committed,
            # what the reports count and what the receipts bill are the same chunks.
            self.done.set()
            with trio.CancelScope(shield=True):
                await self._drain_puts()
                await trio.to_thread.run_sync(self.writer.flush)
            self._record_stalls()
            for pid, st in self.sched.peers.items():  # nothing is in flight any more
                self.observer.requests_outstanding(str(pid), 0, st.window.size // self.chunk_size)
        failure = self.sched.failure
        if failure is not None:
            raise failure
        if self.progress_cb is not None:
            self.progress_cb(self.tracker.sample(trio.current_time()))
        return FetchResult(
            root=self.root,
            manifest=manifest,
            fetched_chunks=self.fetched_chunks,
            fetched_bytes=self.fetched_bytes,
            resumed_chunks=resumed,
            duplicate_chunks=self.sched.duplicates_received,
            elapsed=trio.current_time() - start,
            providers={a: p.report for a, p in self.peers.items() if p.report is not None},
            refused=dict(self.refused),
            ranking=[a for a in self.ranking if self.peers[a].report is not None],
            wire_bytes=self.wire_bytes,
            local_chunks=self.local_chunks,
            local_bytes=self.local_bytes,
        )

    async def _have(self, peer: _Peer, n: int) -> Bitmap | None:
        """Read the HaveAll, or the Have pages covering all ``n`` chunks, after a manifest."""
        have = Bitmap(n)
        covered = 0
        while covered < n or n == 0:
            msg = await self._reply(peer, Have, HaveAll)
            if isinstance(msg, HaveAll):
                return None
            if not isinstance(msg, Have):
                raise ProtocolViolation(f"peer {peer.conn.address} sent no Have after its manifest")
            bits = bytes(msg.bitfield)
            for j, byte in enumerate(bits):
                if not byte:
                    continue
                for b in range(8):
                    i = msg.start + j * 8 + b
                    if byte & (0x80 >> b) and i < n:
                        have.set(i)
            covered = max(covered, msg.start + len(bits) * 8)
            if n == 0:
                break
        return have


async def fetch(
    store: Store,
    identity: Any,
    root: bytes,
    peers: Sequence[PeerAddr | str | tuple[str, int, str | None]],
    *,
    receipt_domain: ReceiptDomain | None = None,
    next_nonce: Callable[[], int] | None = None,
    progress: ProgressCallback | None = None,
    limit_rate: int | None = None,
    lane: Lane | None = None,
    initial_window: int = 16,
    stall_timeout: float = 20.0,
    put_workers: int = DEFAULT_PUT_WORKERS,
    request_batch: int = 4,
    local_peer: LocalPeer | None = None,
    output: Path | None = None,
    link: bool = False,
    max_price_per_gib: int = DEFAULT_PRICE_PER_GIB,
    receipt_every_chunks: int = RECEIPT_EVERY_CHUNKS,
    receipt_every_bytes: int = RECEIPT_EVERY_BYTES,
    control_timeout: float = CONTROL_TIMEOUT,
    offer_grace: float = OFFER_GRACE,
    ledger: PeerLedger | None = None,
    observer: TransferObserver = NULL_OBSERVER,
    swarm: SwarmOptions | None = None,
    compress: bool = True,
    delta: bool = True,
    delta_verify: bool = True,
    dial: Dial | None = None,
    wait_receipts: bool = True,
    early: bool = True,
) -> FetchResult:
    """Fetch ``root`` from ``peers`` into ``store``; resumes whatever an earlier run left.

    ``identity`` is a ``node.identity.Identity`` (its account signs the receipts). Raises a
    :class:`TransferError`: :class:`ContentNotFound`, :class:`CorruptChunk` (single source
    sent bad data), :class:`PeerFailed` (resumable), :class:`ChunkRootsMismatch`...
    With ``output``, the content is also written to that file (atomically, at the end);
    with ``link`` too, it is written only there and the store links to it (``_output``).
    ``request_batch``: a busy peer is sent a new Request once it has room for this many
    chunks (one Request per few chunks instead of one per chunk; see ``Scheduler``).
    ``max_price_per_gib``: providers stating a higher Price are not used (:class:`PriceTooHigh`
    if none is left). With ``receipt_domain``, every provider is paid at its stated price in
    receipts sent every ``receipt_every_chunks`` chunks / ``receipt_every_bytes`` bytes and at
    the end, also when the fetch fails or is cancelled (module docstring).
    ``control_timeout`` bounds each control answer; a peer that misses it is dropped.
    ``offer_grace``: once one provider has offered the content, the others have this long to
    answer Want before the transfer starts without them (they join when they answer).
    ``ledger`` (e.g. ``node.ledger.LocalLedger``): peers are ranked by it and their conduct
    recorded in it (module docstring, item 6). Raises :class:`NoUsablePeer` when every peer
    was dropped before the transfer, naming each and why.
    ``observer`` (:class:`TransferObserver`) is told of connections, verified and rejected
    chunks and each peer's requests in flight (module docstring, item 7).
    ``lane`` (``Shaper.lane("download", priority, rate)``): received bytes are paced by the
    node's shaper (caps and priority shares, docs/bandwidth.md) instead of by ``limit_rate``'s
    own bucket; give the per-transfer cap to the lane (both at once: :class:`InvalidArgument`).
    Time a piece waits on either is not a stall of its peer (``_pace``).
    ``swarm`` (:class:`SwarmOptions`): take part in a swarm (``_swarm``): announce our listen
    port, exchange peers, take Have updates, add learned peers mid-transfer (at most
    ``max_peers`` connections in all) and ask the given peers only for what no learned peer has.
    ``compress``: advertise COMPRESS, so providers may send chunks as zstd frames (verified
    over the decompressed bytes). ``delta``: first take every chunk the store already holds
    under another content (``Store.adopt_held``; ``delta_verify`` re-hashes those files).
    ``dial(addr, local_peer)`` opens each given peer's connection (default
    ``open_peer_connection``); ``ConnectionPool.dial`` lends kept ones (``_pool``). With
    ``wait_receipts=False`` the last receipts' answers on pooled connections are not waited
    for: the pool takes them into the provider reports later (``receipt_acked`` stays False
    until then). ``early``: when nothing of the root is held, the first chunks are asked as
    soon as the first chunk-root page is in (module docstring, item 2), not after the plan.
    """
    if receipt_every_chunks < 1 or receipt_every_bytes < 1:
        raise InvalidArgument("receipt_every_chunks and receipt_every_bytes must be >= 1")
    if len(root) != 32:
        raise InvalidArgument("root must be 32 bytes")
    if lane is not None and limit_rate:
        raise InvalidArgument("limit_rate with a lane: give the cap to the lane (rate=)")
    addrs = [
        p if isinstance(p, PeerAddr) else PeerAddr.parse(p) if isinstance(p, str) else PeerAddr(*p)
        for p in peers
    ]
    if not addrs:
        raise InvalidArgument("at least one peer is needed")
    flags = int(CapFlag.BULK) | (int(CapFlag.RECEIPTS) if receipt_domain is not None else 0)
    if swarm is not None:
        flags |= int(CapFlag.SWARM)
    if compress:
        flags |= int(CapFlag.COMPRESS)
    me = local_peer or LocalPeer.from_identity(identity, Capabilities(flags=flags))
    run = _Fetch(
        store,
        me,
        identity.account,
        root,
        receipt_domain=receipt_domain,
        next_nonce=next_nonce,
        progress=progress,
        limit_rate=limit_rate,
        lane=lane,
        initial_window=initial_window,
        stall_timeout=stall_timeout,
        put_workers=put_workers,
        request_batch=request_batch,
        output=output,
        link=link,
        max_price_per_gib=max_price_per_gib,
        receipt_every_chunks=receipt_every_chunks,
        receipt_every_bytes=receipt_every_bytes,
        control_timeout=control_timeout,
        offer_grace=offer_grace,
        ledger=ledger,
        observer=observer,
        swarm=swarm,
        delta=delta,
        delta_verify=delta_verify,
        dial=dial,
        wait_receipts=wait_receipts,
        early=early,
    )
    try:
        return await run.run(addrs)
    except StoreNotFound as exc:
        raise ContentNotFound(str(exc)) from None
    except TransportError as exc:
        raise PeerFailed(f"{type(exc).__name__}: {exc}") from exc


async def _dial(addr: PeerAddr, me: LocalPeer) -> PeerConnection:
    return await open_peer_connection(addr.host, addr.port, me, addr.address)


def _flags(conn: PeerConnection) -> int:
    """The capability flags of the peer's Hello (authoritative for the session)."""
    hello = conn.peer_hello
    return hello.capabilities.flags if hello is not None else 0


def _shape(m: Manifest) -> tuple[int, int]:
    """What of a manifest decides the chunking (and so must agree between providers)."""
    return (m.size, m.chunk_size)


__all__ = ["FetchResult", "NoUsablePeer", "PeerAddr", "PeerLedger", "ProviderReport", "fetch"]
