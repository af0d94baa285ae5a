"""Provider side: answer Want, GetChunkRoots and Request from the local store.

One :class:`Provider` serves every connection of a node (pass :meth:`Provider.handle` to
``node.transport.serve_peers``). Per connection a reader task answers control messages at once
and queues chunk requests; a sender task, started at the connection's first Request (an idle
connection holds no sender, nor a swarm task until its first Announce/GetPeers), serves them in
order, reading the next chunk while the current one is encrypted and sent (read-ahead of one).

Memory: every chunk is held from before its read until its send returned under the node-wide
:class:`~node.transfer._budget.ChunkBudget` (``budget``, ``[network] upload_buffers``, default
64 MiB): a read waits, FIFO with every other connection's, while the budget is spent, so chunk
memory is bounded whatever the peer count (each budgeted chunk also has its plaintext pieces
and sealed copy alive during its send: the chunk bytes in flight peak at ~3x the budget).
Manifests are kept parsed by root (content-addressed, so never stale; bounded).

Reads run inline on the trio thread when the chunk's bytes are in memory (the memory tier or
the page cache: a 1 MiB read from the page cache costs less than a worker-thread hand-off;
measured 210 -> 290 MB/s on loopback), and in a worker thread when they are not
(``Store.read_chunk(nowait=True)`` raises ``WouldBlock``): a read that waits for the disk
would stop every connection of the node meanwhile, and the one-chunk read-ahead of each
connection only overlaps a send when the read is in a thread. A 256 MiB get from a provider
whose chunks were not cached took 0.83-0.90 s with disk reads inline against 0.64-0.71 s
cached (issue #11). ``inline_reads=False`` moves every read to worker threads.

Capacity: chunk indices queued across all connections are counted; a Request that would push
the count past ``max_queued`` (``[network] upload_queue``), or this connection's past
``max_queued_per_peer`` (``upload_queue_per_peer``: one peer cannot take the whole queue), is
refused with ``Error(BUSY, retry_after_ms)`` and the receiver backs off (full jitter) and
retries. Chunk reads in threads run under a global limiter of ``workers``.

Chunks are read with ``verify=False``: the receiver verifies every chunk against its chunk root
anyway, and re-hashing here would halve the provider's throughput. A chunk file damaged on disk
is therefore caught by the receiver, which drops this provider and reports it. With the store's
memory tier a miss is verified before it is cached, so a damaged chunk file is found here first:
it is quarantined at once (as below) and answered ``Error(NOT_FOUND)``, so the receiver takes
that chunk from another peer and this provider never sends the damaged bytes.

Price: every Manifest answer is followed by ``Price(root, price_per_gib, domain)`` (wei per GiB,
default the protocol floor), before the Have/HaveAll pages, so a receiver knows it before any
chunk. ``domain`` is our EIP-712 receipt domain when we take receipts (a receipt box and a
domain), so a receiver can sign receipts we accept; else none. ``capabilities`` is what
``serve_node`` advertises: PROVIDER | PARTIAL, plus RECEIPTS exactly when a domain is stated.

Bad requests: a Request naming an index at or beyond the chunk count, or a GetChunkRoots
starting beyond it, is answered ``Error(OUT_OF_RANGE, request_id, ref_kind)`` and the
connection stays open (docs/protocol.md section 7); a chunk that cannot be read is answered
``Error(NOT_FOUND or INTERNAL, request_id, ref_kind=Request)``. Fatal protocol errors are
answered (Error, then Goodbye with the same code) by ``node.transport.PeerConnection``.

Bad-chunk reports: a receiver that got a chunk which did not verify says
``Error(BAD_CHUNK, message="chunk N failed verification")``. The chunk is re-read with
verification (for every root this connection was sent pieces of); if our copy is damaged it is
quarantined: this provider stops serving it (``Error(NOT_FOUND)`` for it) and records it in
the store (``Store.quarantine``, a LevelDB key), so it is not served after a restart either;
``bcai verify`` names it and ``bcai get`` of the root re-fetches it (``Store.repair``). An intact
chunk means the damage happened in transit or the report is false; either way it is logged.

Receipts: a ReceiptMsg is accepted only for what this provider served on THIS connection
(``_acceptance.ConnectionCredit``): signed by the receiver under our EIP-712 domain, provider is
us, receiver is the Noise-authenticated peer, a root we sent chunks of here, at most the bytes
and chunks sent of it and not yet covered by an earlier receipt, paying at least our price,
``issuedAt`` within ``max_receipt_skew`` of our clock, and a nonce this receiver never used
with us. It is then stored in the ReceiptBox (synced) and acknowledged; otherwise the peer gets
``Error(BAD_RECEIPT, ref_kind=Receipt)`` whose message starts with the reason.
A chunk counts as served when we start sending it (before the receiver could possibly sign
for it), so the count can never lag behind a receipt that arrives while the send completes.

Compression (docs/protocol.md 5.14a, docs/transfer.md): to a peer whose Hello has COMPRESS, each
chunk goes through the provider's :class:`ChunkCompressor` in a worker thread during the
read-ahead (so it overlaps the send of the previous chunk): sent as a zstd frame (ChunkDataZ)
when that saves at least 5% and the root's auto-off policy and the connection's tuner (an
A/B rate probe, told when each send returned) say it pays; raw otherwise. Frames are cached by
chunk root, so a chunk served to many peers is compressed once. Receipts, the credit and the
observer count chunk bytes (content), never frame bytes; ``stats.wire_bytes`` counts what
went out. ``compress=False`` never compresses.

Observer: ``connection_opened``/``connection_closed`` (``inbound=True``) around each
connection, and ``chunk_served`` after each chunk is handed to the transport, with the seconds
since its Request was read (queueing included).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from node.content import Manifest
from node.log import get_logger
from node.receipt import DEFAULT_PRICE_PER_GIB, ReceiptDomain
from node.store import CorruptStoredChunk, Store, StoreError, WouldBlock
from node.store import NotFound as StoreNotFound
from node.transport import PeerConnection
from node.wire import (
    MAX_ROOTS_PER_PAGE,
    Announce,
    Cancel,
    Capabilities,
    CapFlag,
    ChunkRoots,
    Complete,
    ErrorCode,
    ErrorMsg,
    GetChunkRoots,
    GetPeers,
    Have,
    HaveAll,
    Kind,
    LevelTuner,
    ManifestMsg,
    NotFound,
    Price,
    Progress,
    ReceiptAck,
    ReceiptMsg,
    RemoteProtocolError,
    Request,
    Want,
)

from ._acceptance import DEFAULT_MAX_SKEW, ConnectionCredit, ReceiptPolicy, ReceiptRefused
from ._budget import DEFAULT_UPLOAD_BUFFERS, ChunkBudget
from ._compress import ChunkCompressor
from ._groups import collapse_groups
from ._observer import NULL_OBSERVER, TransferObserver
from ._receipts import ReceiptBox
from ._shaper import Lane, Shaper
from ._swarm import SwarmProvider

log = get_logger(__name__)

HAVE_PAGE_BYTES = 32 * 1024
MANIFEST_CACHE = 256  #: manifests the provider keeps parsed (by root)
PREFETCH = 4  #: queued chunks a disk read asks the kernel to start reading too
_BAD_CHUNK_INDEX = re.compile(r"\bchunk (\d+)\b")


@dataclass
class ProviderStats:
    chunks_served: int = 0
    bytes_served: int = 0
    busy_refusals: int = 0
    receipts_accepted: int = 0
    receipts_rejected: int = 0
    connections: int = 0
    bad_chunk_reports: int = 0  #: BAD_CHUNK errors received from receivers
    quarantined: int = 0  #: chunks found damaged on re-verification and no longer served
    wire_bytes: int = 0  #: chunk payload bytes sent (frames for compressed chunks)
    compressed_chunks: int = 0  #: chunks sent as zstd frames
    disk_reads: int = 0  #: chunk reads moved to a worker thread (not in memory: WouldBlock)
    refusals: dict[str, int] = field(default_factory=dict)  #: BAD_RECEIPT count per reason


@dataclass
class _Queue:
    #: (root, req id, index, when the Request was read)
    items: deque[tuple[bytes, int, int, float]] = field(default_factory=deque)
    cancelled: set[tuple[bytes, int]] = field(default_factory=set)
    wakeup: trio.Event = field(default_factory=trio.Event)
    credit: ConnectionCredit = field(default_factory=ConnectionCredit)
    roots: set[bytes] = field(default_factory=set)  #: roots this connection was sent chunks of
    nursery: trio.Nursery | None = None  #: the connection's, for tasks started on first use
    swarm: bool = False  #: the swarm's Have-update task is running (started at first use)
    lane: Lane | None = None  #: its share of the node's upload cap (``Provider(upload=)``)
    compress: bool = False  #: the peer's Hello has COMPRESS (and we compress)
    tuner: LevelTuner = field(default_factory=LevelTuner)  #: zstd level for this link
    held: int = 0  #: bytes of the node's chunk budget this connection holds now
    sender: bool = False  #: its sender task is running (started at the first Request)


class Provider:
    """Serves a store's content to peers. See the module docstring."""

    def __init__(
        self,
        store: Store,
        address: str,
        *,
        receipt_box: ReceiptBox | None = None,
        receipt_domain: ReceiptDomain | None = None,
        workers: int = 4,
        max_queued: int = 1024,
        max_queued_per_peer: int = 256,
        busy_retry_after: float = 1.0,
        inline_reads: bool = True,
        price_per_gib: int = DEFAULT_PRICE_PER_GIB,
        max_receipt_skew: float = DEFAULT_MAX_SKEW,
        clock: Callable[[], float] = time.time,
        observer: TransferObserver = NULL_OBSERVER,
        swarm: bool | SwarmProvider = True,
        upload: Shaper | None = None,
        compress: bool | ChunkCompressor = True,
        budget: ChunkBudget | int | None = None,
    ) -> None:
        self.store = store
        #: node-wide bound on chunk bytes held from read to sent (module docstring)
        self.budget = (
            budget
            if isinstance(budget, ChunkBudget)
            else ChunkBudget(budget or DEFAULT_UPLOAD_BUFFERS)
        )
        #: manifests by root (content-addressed, so never stale; bounded)
        self._manifests: dict[bytes, Manifest] = {}
        self._manifest_bytes: dict[bytes, bytes] = {}  #: encoded manifests by root, bounded
        #: compresses chunks for peers with COMPRESS (``None``: never)
        self.compressor = (
            compress
            if isinstance(compress, ChunkCompressor)
            else ChunkCompressor()
            if compress
            else None
        )
        #: node-wide upload cap: one ``normal`` lane per connection (docs/bandwidth.md)
        self.upload = upload
        #: Announce, GetPeers and Have updates (``_swarm``); ``False``: not spoken
        self.swarm = (
            swarm if isinstance(swarm, SwarmProvider) else SwarmProvider(store) if swarm else None
        )
        self.observer = observer
        self.address = address
        self.receipt_box = receipt_box
        self.receipt_domain = receipt_domain
        self.limiter = trio.CapacityLimiter(workers)
        self.max_queued = max_queued
        self.max_queued_per_peer = max_queued_per_peer
        self.busy_retry_after = busy_retry_after
        self.queued = 0
        self.stats = ProviderStats()
        self.inline_reads = inline_reads
        self.policy = ReceiptPolicy(price_per_gib, max_receipt_skew)
        self.clock = clock
        self.quarantine: set[tuple[bytes, int]] = set()  #: (root, index) found damaged here

    @property
    def stated_domain(self) -> ReceiptDomain | None:
        """The receipt domain stated in every Price: ours when we take receipts, else None."""
        return self.receipt_domain if self.receipt_box is not None else None

    @property
    def capabilities(self) -> Capabilities:
        """What to advertise: PROVIDER | PARTIAL, plus RECEIPTS when we take receipts."""
        flags = CapFlag.PROVIDER | CapFlag.PARTIAL
        if self.stated_domain is not None:
            flags |= CapFlag.RECEIPTS
        if self.swarm is not None:
            flags |= CapFlag.SWARM
        return Capabilities(flags=int(flags))

    async def handle(self, conn: PeerConnection) -> None:
        """Serve one peer until it leaves (raises the transport error that ended it)."""
        self.stats.connections += 1
        queue = _Queue(lane=self.upload.lane("upload") if self.upload is not None else None)
        hello = conn.peer_hello
        queue.compress = (
            self.compressor is not None
            and hello is not None
            and hello.capabilities.has(CapFlag.COMPRESS)
        )
        self.observer.connection_opened(conn.address, True)
        try:
            async with collapse_groups(), trio.open_nursery() as nursery:
                queue.nursery = nursery
                nursery.start_soon(conn.keepalive)  # returns at once when the server sweeps
                await self._reader(conn, queue)
                nursery.cancel_scope.cancel()
        finally:
            self.queued -= len(queue.items)
            if queue.held:  # chunks read or being sent when the connection ended
                self.budget.release(queue.held)
                queue.held = 0
            if queue.lane is not None:
                queue.lane.close()
            self.observer.connection_closed(conn.address, True)

    # -- control messages -------------------------------------------------------------------

    async def _reader(self, conn: PeerConnection, queue: _Queue) -> None:
        while True:
            try:
                msg = await conn.receive()
            except RemoteProtocolError as exc:  # recoverable: answer and read on
                await conn.send(
                    ErrorMsg(
                        exc.code,
                        request_id=exc.request_id,
                        ref_kind=exc.kind,
                        message=str(exc)[:500],
                    )
                )
                continue
            if isinstance(msg, Want):
                await self._on_want(conn, msg)
            elif isinstance(msg, GetChunkRoots):
                await self._on_get_roots(conn, msg)
            elif isinstance(msg, Request):
                await self._on_request(conn, queue, msg)
            elif isinstance(msg, Cancel):
                for index in msg.indices:
                    queue.cancelled.add((bytes(msg.root), index))
            elif isinstance(msg, ReceiptMsg):
                await self._on_receipt(conn, queue.credit, msg)
            elif isinstance(msg, ErrorMsg) and msg.code == ErrorCode.BAD_CHUNK:
                await self._on_bad_chunk(conn, queue, msg)
            elif isinstance(msg, (Announce, GetPeers)) and self.swarm is not None:
                if not queue.swarm and queue.nursery is not None:
                    queue.swarm = True  # an idle connection holds no task for the swarm
                    queue.nursery.start_soon(self.swarm.run, conn)
                await self.swarm.handle(conn, msg)
            elif isinstance(msg, (Progress, Complete)):
                log.debug("peer progress", peer=conn.address, msg=type(msg).__name__)
            else:
                log.debug("ignored message", peer=conn.address, kind=type(msg).__name__)

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        # answers go out with the next write or before the reader waits (send_soon): a batch
        # of Wants read at once is answered in one write
        root = bytes(msg.root)
        try:
            info = self.store.info(root)
        except StoreNotFound:
            await conn.send_soon(NotFound(root))
            return
        encoded = self._manifest_bytes.get(root)
        if encoded is None:  # content-addressed: the same bytes for ever (bounded cache)
            if len(self._manifest_bytes) >= MANIFEST_CACHE:
                del self._manifest_bytes[next(iter(self._manifest_bytes))]
            encoded = self._manifest_bytes[root] = info.manifest.to_bytes()
        reply: list = [
            ManifestMsg(root, encoded),
            Price(root, self.policy.price_per_gib, self.stated_domain),
        ]
        if info.complete:
            reply.append(HaveAll(root))
        else:
            reply.extend(await trio.to_thread.run_sync(self._have_pages, root, info))
        await conn.send_soon(*reply)

    def _have_pages(self, root: bytes, info: object) -> list[Have]:
        n = self.store.get_manifest(root).chunk_count
        bits = bytearray(b"\xff" * ((n + 7) // 8))
        for i in self.store.missing_chunks(root):
            bits[i >> 3] &= ~(0x80 >> (i & 7)) & 0xFF
        if n % 8:
            bits[-1] &= (0xFF << (8 - n % 8)) & 0xFF
        pages = []
        for off in range(0, len(bits), HAVE_PAGE_BYTES):
            pages.append(Have(root, off * 8, bytes(bits[off : off + HAVE_PAGE_BYTES])))
        return pages or [Have(root, 0, b"")]

    async def _on_get_roots(self, conn: PeerConnection, msg: GetChunkRoots) -> None:
        root = bytes(msg.root)
        try:
            total = self.store.get_manifest(root).chunk_count
            if msg.start > total:
                await conn.send(
                    ErrorMsg(
                        ErrorCode.OUT_OF_RANGE,
                        ref_kind=int(Kind.GET_CHUNK_ROOTS),
                        message=f"chunk-root page starts at {msg.start}, beyond {total} chunks",
                    )
                )
                return
            count = min(msg.count, MAX_ROOTS_PER_PAGE)

            def read() -> bytes:
                return b"".join(self.store.chunk_roots(root, msg.start, msg.start + count))

            # a small content's page is a few index reads: inline, no thread hop
            roots = read() if total - msg.start <= 64 else await trio.to_thread.run_sync(read)
        except StoreNotFound:
            await conn.send(NotFound(root))
            return
        await conn.send(ChunkRoots(root, msg.start, total, roots))

    def manifest(self, root: bytes) -> Manifest:
        """The manifest of ``root``, cached (a manifest is content-addressed: never stale; a
        root found gone on a read is dropped, so its next Request is answered NotFound)."""
        m = self._manifests.get(root)
        if m is None:
            m = self.store.get_manifest(root)  # StoreNotFound
            if len(self._manifests) >= MANIFEST_CACHE:
                del self._manifests[next(iter(self._manifests))]  # oldest first
            self._manifests[root] = m
        return m

    async def _on_request(self, conn: PeerConnection, queue: _Queue, msg: Request) -> None:
        root = bytes(msg.root)
        try:
            total = self.manifest(root).chunk_count
        except StoreNotFound:
            await conn.send_soon(NotFound(root))
            return
        beyond = [i for i in msg.indices if i >= total]
        if beyond:
            await conn.send_soon(
                ErrorMsg(
                    ErrorCode.OUT_OF_RANGE,
                    request_id=msg.request_id,
                    ref_kind=int(Request.KIND),
                    message=f"chunk index {beyond[0]} beyond {total} chunks",
                )
            )
            return
        asked = len(msg.indices)
        if (
            self.queued + asked > self.max_queued
            or len(queue.items) + asked > self.max_queued_per_peer
        ):
            self.stats.busy_refusals += 1
            await conn.send_soon(
                ErrorMsg(
                    ErrorCode.BUSY,
                    retry_after_ms=math.ceil(self.busy_retry_after * 1000),
                    request_id=msg.request_id,
                    ref_kind=int(Request.KIND),
                    message="provider busy",
                )
            )
            return
        now = trio.current_time()
        for index in msg.indices:
            queue.cancelled.discard((root, index))
            queue.items.append((root, msg.request_id, index, now))
        self.queued += len(msg.indices)
        if not queue.sender and queue.nursery is not None:
            queue.sender = True  # an idle connection holds no sender task
            queue.nursery.start_soon(self._sender, conn, queue)
        queue.wakeup.set()

    async def _on_receipt(
        self, conn: PeerConnection, credit: ConnectionCredit, msg: ReceiptMsg
    ) -> None:
        """Judge one receipt (module docstring); messages of a connection are handled in order,
        so the credit check and its booking cannot interleave with another receipt's."""
        signed = msg.receipt
        r = signed.receipt
        box, domain = self.receipt_box, self.receipt_domain
        try:
            if box is None or domain is None:
                raise ReceiptRefused("not-accepted", "this node takes no receipts")
            credit.check(
                signed,
                provider=self.address,
                peer=conn.address,
                domain=domain,
                policy=self.policy,
                now=self.clock(),
            )
            if box.has(r.receiver, r.nonce):
                raise ReceiptRefused("nonce-used", f"nonce {r.nonce} already used")
            if not await trio.to_thread.run_sync(box.add, signed):  # raced another connection
                raise ReceiptRefused("nonce-used", f"nonce {r.nonce} already used")
        except ReceiptRefused as exc:
            self.stats.receipts_rejected += 1
            self.stats.refusals[exc.reason] = self.stats.refusals.get(exc.reason, 0) + 1
            log.warning("receipt refused", peer=conn.address, reason=exc.reason, error=str(exc))
            await conn.send(
                ErrorMsg(ErrorCode.BAD_RECEIPT, ref_kind=int(Kind.RECEIPT), message=str(exc)[:500])
            )
            return
        credit.settle(signed)
        self.stats.receipts_accepted += 1
        log.info(
            "receipt accepted",
            peer=conn.address,
            root="0x" + r.content_root.hex(),
            bytes=r.bytes_served,
            payment=r.payment,
            nonce=r.nonce,
        )
        await conn.send(ReceiptAck(r.content_root, r.nonce))

    async def _on_bad_chunk(self, conn: PeerConnection, queue: _Queue, msg: ErrorMsg) -> None:
        """A receiver says a chunk we sent did not verify: re-verify it (module docstring)."""
        self.stats.bad_chunk_reports += 1
        found = _BAD_CHUNK_INDEX.search(msg.message)
        log.warning("peer reports a bad chunk", peer=conn.address, message=msg.message)
        if found is None:
            return
        index = int(found.group(1))
        for root in list(queue.roots):
            if (root, index) in self.quarantine:
                continue
            try:
                await trio.to_thread.run_sync(self._verify_chunk, root, index, limiter=self.limiter)
            except CorruptStoredChunk as exc:
                await self._quarantine_damaged(root, index, exc)
            except (StoreError, IndexError):
                continue
            else:
                log.warning("reported chunk verifies here", root="0x" + root.hex(), index=index)

    def _verify_chunk(self, root: bytes, index: int) -> None:
        self.store.read_chunk(root, index, verify=True)

    async def _quarantine_damaged(
        self, root: bytes, index: int, exc: CorruptStoredChunk
    ) -> StoreNotFound:
        """Stop serving a chunk found damaged here, durably; the NotFound to answer with."""
        if (root, index) not in self.quarantine:
            self.quarantine.add((root, index))
            self.stats.quarantined += 1
            try:  # persistent: survives a restart (the in-memory set is the fast path)
                await trio.to_thread.run_sync(self.store.quarantine, root, index)
            except (StoreError, IndexError) as qexc:
                log.error("cannot record the quarantine", error=str(qexc))
            log.error(
                "stored chunk damaged: quarantined",
                root="0x" + root.hex(),
                index=index,
                error=str(exc),
            )
        return StoreNotFound(f"chunk {index} of 0x{root.hex()} is quarantined (damaged)")

    # -- chunk sending ----------------------------------------------------------------------

    def _next(self, queue: _Queue) -> tuple[bytes, int, int, float] | None:
        while queue.items:
            item = queue.items.popleft()
            self.queued -= 1
            if (item[0], item[2]) in queue.cancelled:
                queue.cancelled.discard((item[0], item[2]))
                continue
            return item
        return None

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        """Chunk ``index`` of ``root`` (module docstring: inline when in memory, else in a
        thread). ``after``: the indices of ``root`` this connection serves next; when this read
        goes to the disk, the kernel is asked to start reading those too (``Store.prefetch``),
        so the next reads find them in the page cache."""
        if (root, index) in self.quarantine:
            await trio.lowlevel.checkpoint()
            return StoreNotFound(f"chunk {index} of 0x{root.hex()} is quarantined (damaged)")
        prefetch: Sequence[int] = ()
        try:
            if self.inline_reads:
                await trio.lowlevel.checkpoint()
                try:
                    return self.store.read_chunk(root, index, verify=False, nowait=True)
                except WouldBlock:
                    self.stats.disk_reads += 1  # not in memory: the disk wait goes to a thread
                    prefetch = after

            def read() -> bytes:
                if prefetch:
                    self.store.prefetch(root, prefetch)
                return self.store.read_chunk(root, index, verify=False)

            return await trio.to_thread.run_sync(read, limiter=self.limiter)
        except CorruptStoredChunk as exc:  # damaged here (a memory-tier miss is verified)
            return await self._quarantine_damaged(root, index, exc)
        except StoreError as exc:
            if isinstance(exc, StoreNotFound):
                self._manifests.pop(root, None)  # removed: the next Request says NotFound
            return exc

    async def _prepare(
        self, queue: _Queue, root: bytes, index: int, data: bytes | Exception
    ) -> tuple[bytes | Exception, bool]:
        """The payload to send for a chunk read, and whether it is a zstd frame."""
        comp = self.compressor
        if isinstance(data, Exception) or not queue.compress or comp is None:
            return data, False
        if comp.policy(root).off or queue.tuner.skips_next():
            # raw, no compression work: cheaper here than a thread hop (and no cache)
            payload, compressed = comp.encode(root, None, data, queue.tuner)
            return bytes(payload), compressed

        def encode() -> tuple[bytes, bool]:
            try:
                cr: bytes | None = self.store.chunk_root_at(root, index)
            except (StoreError, IndexError):
                cr = None  # not cached; the send goes ahead (raw or not, as decided)
            payload, compressed = comp.encode(root, cr, data, queue.tuner)
            return bytes(payload), compressed

        return await trio.to_thread.run_sync(encode, limiter=self.limiter)

    async def _sender(self, conn: PeerConnection, queue: _Queue) -> None:
        """Serve queued indices in order, reading one chunk ahead of the one being sent.

        Each chunk holds its length of the node's :class:`ChunkBudget` from before its read
        until its send returned (so a connection holds at most two: the one being sent and
        the one read ahead); a read waits, in FIFO order with every other connection's, while
        the budget is spent."""
        # (payload, compressed, chunk length, budget bytes held)
        Box = list[tuple[bytes | Exception, bool, int, int]]
        ahead: tuple[tuple[bytes, int, int, float], trio.Event, Box] | None = None
        budget = self.budget

        def release(got: int) -> None:
            budget.release(got)
            queue.held -= got

        async with trio.open_nursery() as nursery:

            def start_read(item: tuple[bytes, int, int, float]) -> tuple:
                done = trio.Event()
                box: Box = []

                async def run() -> None:
                    try:
                        length = self.manifest(item[0]).chunk_length(item[2])
                    except (StoreError, IndexError, ValueError):
                        length = 0  # the read says what is wrong
                    got = await budget.acquire(length)
                    queue.held += got
                    after = [
                        i for r, _, i, _ in itertools.islice(queue.items, PREFETCH) if r == item[0]
                    ]
                    data = await self._read(item[0], item[2], after)
                    n = 0 if isinstance(data, Exception) else len(data)
                    box.append((*(await self._prepare(queue, item[0], item[2], data)), n, got))
                    done.set()

                nursery.start_soon(run)
                return item, done, box

            while True:
                if ahead is None:
                    item = self._next(queue)
                    if item is None:
                        queue.wakeup = trio.Event()
                        await queue.wakeup.wait()
                        continue
                    ahead = start_read(item)
                (root, req, index, asked), done, box = ahead
                await done.wait()
                nxt = self._next(queue)
                ahead = start_read(nxt) if nxt is not None else None
                data, compressed, n, got = box[0]
                if (root, index) in queue.cancelled:
                    queue.cancelled.discard((root, index))
                    release(got)
                    continue
                if isinstance(data, Exception):
                    release(got)
                    code = (
                        ErrorCode.NOT_FOUND
                        if isinstance(data, StoreNotFound)
                        else (ErrorCode.INTERNAL)
                    )
                    log.warning("cannot serve chunk", index=index, error=str(data))
                    await conn.send(
                        ErrorMsg(
                            code,
                            request_id=req,
                            ref_kind=int(Request.KIND),
                            message=str(data)[:500],
                        )
                    )
                    continue
                if queue.lane is not None:  # the node's upload cap (wire bytes), shared fairly
                    await queue.lane.acquire(len(data))
                queue.credit.record(root, n)  # chunk bytes, before sending: module docstring
                queue.roots.add(root)
                wire = len(data)
                await conn.send_chunk(root, index, data, compressed=compressed)
                del data, box  # the grant covered these bytes until now
                release(got)
                now = trio.current_time()
                if queue.compress:
                    queue.tuner.sent(n, wire, now)
                self.stats.chunks_served += 1
                self.stats.bytes_served += n
                self.stats.wire_bytes += wire
                self.stats.compressed_chunks += compressed
                self.observer.chunk_served(conn.address, n, now - asked, wire)
