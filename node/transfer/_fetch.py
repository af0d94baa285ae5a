"""Receiver side: fetch one content root from one or more peers into the store (trio driver).

The decisions are made by the sans-IO :class:`Scheduler`; this module does the I/O around it:

1. Connect to every peer (pinning its address when given) and ask each ``Want``; the first
   manifest that describes the root is used, peers answering ``NotFound`` are dropped.
2. Unless the store already has the root (complete, or partial from an earlier run), fetch the
   chunk-root list in pages of 2048 and stream it into ``Store.begin_partial`` from a worker
   thread, which checks it hashes to the content root as it goes (O(log n) memory; each page
   is also checked against a :class:`RootListVerifier` so a bad list is blamed on its peer).
3. Take the missing chunks from the store's presence bitmap (this is what makes an interrupted
   fetch resumable: only chunks that were in flight are fetched again) and run the scheduler:
   per-peer reader tasks assemble ChunkData pieces; each whole chunk goes to a
   ``Store.partial_writer`` in a worker thread, which verifies it against its chunk root before
   writing (at most ``put_workers`` chunks in that pipeline: backpressure reaches the sender
   through TCP) and commits the index in groups (16 MiB or 0.5 s; a crash loses at most the
   uncommitted group, which a resume fetches again). The verdict goes back to the scheduler,
   whose actions (Request / Cancel) are sent at once. A timer task polls the scheduler for
   stalls and backoffs.
4. At the end, each provider that delivered verified bytes gets ``Complete`` and a signed
   EIP-712 receipt, and we wait (briefly) for its ``ReceiptAck``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.content import Manifest
from node.log import get_logger
from node.receipt import Receipt, ReceiptDomain, SignedReceipt, sign_receipt
from node.store import ChunkMismatch, InvalidChunkRoots, PartialWriter, Store
from node.store import NotFound as StoreNotFound
from node.transport import LocalPeer, PeerConnection, TransportError, open_peer_connection
from node.wire import (
    MAX_REQUEST_INDICES,
    MAX_ROOTS_PER_PAGE,
    Cancel,
    ChunkData,
    ChunkRoots,
    Complete,
    ErrorCode,
    ErrorMsg,
    GetChunkRoots,
    Have,
    HaveAll,
    ManifestMsg,
    Message,
    NotFound,
    ReceiptAck,
    ReceiptMsg,
    RemoteProtocolError,
    Request,
    Want,
)

from ._bitmap import Bitmap
from ._bucket import TokenBucket
from ._errors import (
    ChunkRootsMismatch,
    ContentNotFound,
    InvalidArgument,
    ManifestMismatch,
    PeerFailed,
    ProtocolViolation,
    TransferError,
)
from ._groups import collapse_groups
from ._output import OutputFile
from ._progress import Progress, ProgressTracker
from ._rootlist import RootListVerifier
from ._scheduler import CancelChunks, RequestChunks, Scheduler

log = get_logger(__name__)

CONTROL_TIMEOUT = 20.0
RECEIPT_TIMEOUT = 10.0


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
    receipt: SignedReceipt | None = None
    receipt_acked: bool = False
    error: str | None = None


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

    @property
    def throughput(self) -> float:
        return self.fetched_bytes / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Assembly:
    """A chunk being filled piece by piece, in a buffer of its final size."""

    buf: bytearray
    filled: int = 0


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
        stall_timeout: float,
        put_workers: int,
        request_batch: int = 1,
        output: Path | None = None,
    ) -> None:
        self.request_batch = request_batch
        self.output_path = output
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
        self.initial_window = initial_window
        self.stall_timeout = stall_timeout
        self.put_slots = trio.Semaphore(put_workers)
        self.peers: dict[str, _Peer] = {}
        self.sched: Scheduler | None = None
        self.tracker: ProgressTracker | None = None
        self.done = trio.Event()
        self.writer: PartialWriter | None = None
        self.chunk_size = 0
        self._free: list[bytearray] = []
        self._free_max = put_workers + 4
        self.fetched_chunks = 0
        self.fetched_bytes = 0

    # -- connections and control replies ------------------------------------------------------

    async def _connect(self, addr: PeerAddr, errors: dict[str, str]) -> None:
        try:
            conn = await open_peer_connection(addr.host, addr.port, self.me, addr.address)
        except TransportError as exc:
            errors[str(addr)] = f"{type(exc).__name__}: {exc}"
            log.warning("cannot connect", peer=str(addr), error=str(exc))
            return
        send, recv = trio.open_memory_channel[Message](64)
        self.peers[conn.address] = _Peer(addr, conn, send, recv)

    async def _reply(self, peer: _Peer, *kinds: type) -> Message:
        with trio.fail_after(CONTROL_TIMEOUT):
            while True:
                msg = await peer.replies.receive()
                if isinstance(msg, (*kinds, NotFound, ErrorMsg)):
                    return msg

    async def _reader(self, peer: _Peer) -> None:
        """Route everything one peer sends; on failure tell the scheduler it is gone."""
        conn = peer.conn
        try:
            while True:
                try:
                    msg = await conn.receive()
                except RemoteProtocolError as exc:
                    raise ProtocolViolation(f"peer {conn.address}: {exc}") from None
                if isinstance(msg, ChunkData):
                    await self._on_piece(peer, msg)
                elif isinstance(msg, ErrorMsg) and msg.request_id in peer.requests:
                    await self._on_request_error(peer, msg)
                else:
                    await peer.control.send(msg)
        except (TransportError, TransferError) as exc:
            await self._peer_gone(peer, exc)

    async def _peer_gone(self, peer: _Peer, exc: Exception) -> None:
        if self.done.is_set():
            return
        log.warning("peer lost", peer=peer.conn.address, error=str(exc))
        if peer.report is not None and peer.report.error is None:
            peer.report.error = f"{type(exc).__name__}: {exc}"
        if self.sched is not None and peer.conn.address in self.sched.peers:
            fault = exc if isinstance(exc, TransferError) else PeerFailed(str(exc))
            self.sched.remove_peer(peer.conn.address, fault)
            await self._pump()
        peer.control.close()

    # -- chunks -------------------------------------------------------------------------------

    async def _on_piece(self, peer: _Peer, msg: ChunkData) -> None:
        index = msg.index
        if bytes(msg.root) != self.root or self.sched is None or index >= self.sched.chunk_count:
            return
        total = msg.total_len
        asm = peer.assembling.get(index)
        if asm is None:
            if msg.offset != 0:
                return  # tail of a chunk we cancelled
            if total != self.sched.chunk_len(index):
                raise ProtocolViolation(f"chunk {index} announced with the wrong length")
            asm = peer.assembling[index] = _Assembly(self._buffer(total))
        data = msg.data
        end = asm.filled + len(data)
        if msg.offset != asm.filled or total != len(asm.buf) or end > total:
            del peer.assembling[index]
            raise ProtocolViolation(f"chunk {index} pieces out of order or of the wrong length")
        asm.buf[asm.filled : end] = data  # one copy, into a buffer of the final size
        asm.filled = end
        if self.bucket is not None:
            delay = self.bucket.consume(len(data), trio.current_time())
            if delay > 0:
                await trio.sleep(delay)
        if end < total:
            return
        del peer.assembling[index]
        buf = asm.buf
        if index not in self.sched.need:
            self._recycle(buf)
            return  # an endgame copy that lost the race
        await self.put_slots.acquire()
        self.nursery.start_soon(self._put, peer, index, buf)

    async def _put(self, peer: _Peer, index: int, data: bytearray) -> None:
        assert self.sched is not None and self.tracker is not None
        try:
            try:
                await trio.to_thread.run_sync(self._store_chunk, index, data)
                ok = True
            except ChunkMismatch as exc:
                log.warning("corrupt chunk", peer=peer.conn.address, index=index, error=str(exc))
                ok = False
        finally:
            self.put_slots.release()
        n = len(data)
        self._recycle(data)  # the worker is done with it (written, or refused)
        address = peer.conn.address
        if address not in self.sched.peers:
            return
        now = trio.current_time()
        was_needed = index in self.sched.need
        actions = self.sched.on_chunk(address, index, ok, now)
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
        elif not ok and report is not None:
            report.corrupt_chunks += 1
            report.error = f"chunk {index} failed verification"
        await self._send_actions(actions)
        await self._pump()

    def _buffer(self, size: int) -> bytearray:
        """A chunk buffer: reused when it has the usual size (no 1 MiB allocation per chunk)."""
        if self._free and size == self.chunk_size:
            return self._free.pop()
        return bytearray(size)

    def _recycle(self, buf: bytearray) -> None:
        if len(buf) == self.chunk_size and len(self._free) < self._free_max:
            self._free.append(buf)

    def _store_chunk(self, index: int, data: bytearray) -> None:
        """Worker thread: verify + write (group commit), then copy into the output file."""
        assert self.writer is not None
        self.writer.put(index, data)
        if self.output is not None:
            self.output.write_chunk(index, data)

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
                else:
                    for index in action.indices:
                        peer.assembling.pop(index, None)
                    await peer.conn.send(Cancel(self.root, action.indices))
            except TransportError as exc:
                await self._peer_gone(peer, exc)

    async def _pump(self) -> None:
        sched = self.sched
        if sched is None or self.done.is_set():
            return
        await self._send_actions(sched.poll(trio.current_time()))
        if sched.finished or sched.failure is not None:
            self.done.set()

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

    async def _manifest(self) -> Manifest:
        manifest: Manifest | None = None
        for address, peer in list(self.peers.items()):
            await peer.conn.send(Want(self.root))
            msg = await self._reply(peer, ManifestMsg)
            if not isinstance(msg, ManifestMsg):
                log.info("peer does not have it", peer=address)
                continue
            try:
                m = Manifest.from_bytes(bytes(msg.manifest))
            except Exception as exc:
                raise ManifestMismatch(f"peer {address} sent a malformed manifest: {exc}") from None
            if m.root != self.root:
                raise ManifestMismatch(f"peer {address} sent a manifest for another root")
            peer.report = ProviderReport(address, f"{peer.addr.host}:{peer.addr.port}")
            peer.have = await self._have(peer, m.chunk_count)
            manifest = manifest or m
        if manifest is None:
            raise ContentNotFound(f"no peer has 0x{self.root.hex()}")
        return manifest

    def _roots_from(
        self, peer: _Peer, manifest: Manifest, token: trio.lowlevel.TrioToken
    ) -> Iterator[bytes]:
        """Generator run in a worker thread: pulls pages from the trio side as it goes."""
        total = manifest.chunk_count
        verifier = RootListVerifier(total)
        start = 0
        while start < total:
            count = min(MAX_ROOTS_PER_PAGE, total - start)
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
        await peer.conn.send(GetChunkRoots(self.root, start, count))
        msg = await self._reply(peer, ChunkRoots)
        if not isinstance(msg, ChunkRoots) or msg.start != start:
            raise ContentNotFound(f"peer {peer.conn.address} did not send chunk roots")
        data = bytes(msg.roots)
        if not data or len(data) % 32 or len(data) > count * 32:
            raise ChunkRootsMismatch(f"peer {peer.conn.address} sent a bad chunk-root page")
        return data

    async def _begin(self, manifest: Manifest) -> None:
        if self.store.has_content(self.root, partial=True):
            return
        providers = [p for p in self.peers.values() if p.report is not None]
        token = trio.lowlevel.current_trio_token()
        last: Exception | None = None
        for peer in providers:
            try:
                await trio.to_thread.run_sync(
                    self.store.begin_partial, manifest, self._roots_from(peer, manifest, token)
                )
                return
            except (InvalidChunkRoots, ChunkRootsMismatch) as exc:
                last = ChunkRootsMismatch(f"peer {peer.conn.address}: {exc}")
                log.warning("bad chunk-root list", peer=peer.conn.address, error=str(exc))
            except (TransportError, ContentNotFound, trio.TooSlowError) as exc:
                last = PeerFailed(f"peer {peer.conn.address}: {exc}")
        raise last or ContentNotFound("no peer sent the chunk-root list")

    async def _receipts(self) -> None:
        if self.receipt_domain is None:
            return
        async with trio.open_nursery() as nursery:
            for peer in self.peers.values():
                rep = peer.report
                if rep is None or rep.chunks == 0 or peer.conn.closed:
                    continue
                nursery.start_soon(self._one_receipt, peer, rep)

    async def _one_receipt(self, peer: _Peer, rep: ProviderReport) -> None:
        assert self.receipt_domain is not None
        receipt = Receipt(
            content_root=self.root,
            provider=peer.conn.address,
            receiver=self.me.address,
            bytes_served=rep.bytes,
            chunks=rep.chunks,
            nonce=self.next_nonce(),
            issued_at=int(time.time()),
        )
        signed = sign_receipt(self.account, receipt, self.receipt_domain)
        rep.receipt = signed
        try:
            await peer.conn.send(Complete(self.root), ReceiptMsg(signed))
            with trio.move_on_after(RECEIPT_TIMEOUT):
                while True:
                    msg = await peer.replies.receive()
                    if isinstance(msg, ReceiptAck) and msg.nonce == receipt.nonce:
                        rep.receipt_acked = True
                        return
                    if isinstance(msg, ErrorMsg):
                        log.warning("receipt refused", peer=peer.conn.address, error=msg.message)
                        return
        except (TransportError, trio.EndOfChannel) as exc:
            log.warning("receipt not delivered", peer=peer.conn.address, error=str(exc))

    async def run(self, addrs: Sequence[PeerAddr]) -> FetchResult:
        start = trio.current_time()
        errors: dict[str, str] = {}
        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(self._connect, addr, errors)
        if not self.peers:
            raise PeerFailed("could not connect to any peer: " + "; ".join(errors.values()))
        try:
            async with collapse_groups(), trio.open_nursery() as nursery:
                self.nursery = nursery
                for peer in self.peers.values():
                    nursery.start_soon(self._reader, peer)
                    nursery.start_soon(peer.conn.keepalive)
                manifest = await self._manifest()
                await self._begin(manifest)
                if self.output_path is not None:
                    self.output = OutputFile(self.output_path, manifest, durable=self.store.durable)
                result = await self._transfer(manifest, start)
                if self.output is not None:
                    await trio.to_thread.run_sync(self.output.finish, self.store)
                await self._receipts()
                nursery.cancel_scope.cancel()
        finally:
            if self.output is not None:
                self.output.close()
            with trio.CancelScope(shield=True):
                for peer in self.peers.values():
                    await peer.conn.aclose()
        return result

    async def _transfer(self, manifest: Manifest, start: float) -> FetchResult:
        n = manifest.chunk_count
        self.chunk_size = manifest.chunk_size
        missing = await trio.to_thread.run_sync(lambda: list(self.store.missing_chunks(self.root)))
        need = Bitmap.from_indices(n, missing)
        resumed = n - len(need)
        self.sched = Scheduler(
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
        for address, peer in self.peers.items():
            if peer.report is not None:
                self.sched.add_peer(address, now, peer.have)
        log.info("fetching", root="0x" + self.root.hex(), chunks=n, missing=len(need))
        self.writer = self.store.partial_writer(self.root)
        try:
            if not self.sched.finished:
                self.nursery.start_soon(self._timer)
                await self._pump()
                await self.done.wait()
            self.done.set()
        finally:
            # Commit what verified so far (also on failure or Ctrl-C: a resume skips it).
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.writer.flush)
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
    initial_window: int = 16,
    stall_timeout: float = 20.0,
    put_workers: int = 3,
    request_batch: int = 4,
    local_peer: LocalPeer | None = None,
    output: Path | None = None,
) -> FetchResult:
    """Fetch ``root`` from ``peers`` into ``store``; resumes whatever an earlier run left.

    ``identity`` is a ``node.identity.Identity`` (its account signs the receipts). Raises a
    :class:`TransferError`: :class:`ContentNotFound`, :class:`CorruptChunk` (single source
    sent bad data), :class:`PeerFailed` (resumable), :class:`ChunkRootsMismatch`...
    With ``output``, the content is also written to that file (atomically, at the end).
    ``request_batch``: a busy peer is sent a new Request once it has room for this many
    chunks (one Request per few chunks instead of one per chunk; see ``Scheduler``).
    """
    if len(root) != 32:
        raise InvalidArgument("root must be 32 bytes")
    addrs = [
        p if isinstance(p, PeerAddr) else PeerAddr.parse(p) if isinstance(p, str) else PeerAddr(*p)
        for p in peers
    ]
    if not addrs:
        raise InvalidArgument("at least one peer is needed")
    me = local_peer or LocalPeer.from_identity(identity)
    run = _Fetch(
        store,
        me,
        identity.account,
        root,
        receipt_domain=receipt_domain,
        next_nonce=next_nonce,
        progress=progress,
        limit_rate=limit_rate,
        initial_window=initial_window,
        stall_timeout=stall_timeout,
        put_workers=put_workers,
        request_batch=request_batch,
        output=output,
    )
    try:
        return await run.run(addrs)
    except StoreNotFound as exc:
        raise ContentNotFound(str(exc)) from None
    except TransportError as exc:
        raise PeerFailed(f"{type(exc).__name__}: {exc}") from exc


__all__ = ["FetchResult", "PeerAddr", "ProviderReport", "fetch"]
