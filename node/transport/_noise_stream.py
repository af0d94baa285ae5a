"""NoiseStream: a trio Stream encrypted with Noise XX, in the manner of ``trio.SSLStream``.

Theory of operation
-------------------

A :class:`NoiseStream` wraps a transport stream (TCP in production, memory streams in tests)
and a sans-IO :class:`node.noise.NoiseConnection`. On the wire every Noise message, handshake
or transport, is a 2-byte big-endian length followed by the message (at most 65535 bytes);
``node.wire.FrameDecoder`` splits the incoming byte stream.

Handshake. It runs once, lazily, on the first ``send_all``/``receive_some`` (or explicitly with
:meth:`do_handshake`), under a lock so a sender and a receiver that arrive together do not both
drive it. XX runs ``-> e``, ``<- e, ee, s, es`` (responder's identity payload),
``-> s, se`` (initiator's identity payload). Each identity payload carries an Ethereum address
and its signature over the sender's Noise static key (``node.wire.verify_identity_payload``),
so the peer is known by its address. If an ``expected_address`` is pinned and the peer proves
another one, the stream is closed before any application byte is sent or accepted: the
initiator checks message 2 before it writes message 3, the responder checks message 3 before
it returns from the handshake. A handshake that does not finish within ``handshake_timeout``
raises :class:`HandshakeTimeout`.

Sending. ``send_all`` cuts the data into plaintexts of at most 65519 bytes, encrypts each into
one Noise message, frames them and hands the whole batch to one ``transport.send_all``, so a
1 MiB chunk costs one system-call loop, not seventeen. :meth:`send_plaintexts` does the same for
plaintexts the caller has already cut on message boundaries (the wire layer lays out ChunkData
pieces to fill a Noise message exactly). Encryption runs inline on the trio thread by default
(OpenSSL ChaChaPoly, ~2.3 GB/s; a thread hand-off per batch measured slower); callers may set
``offload_bytes`` to push big batches to a worker thread. The nonce order is kept because only
one send runs at a time.

Receiving. ``receive_some`` returns decrypted plaintext. Each refill reads up to
``receive_size`` bytes from the transport, splits every complete frame out of it in one pass
(``FrameDecoder.frame_views``), decrypts them with one call into the cipher
(``decrypt_many_into``; in a worker thread when there are many bytes) into a pooled buffer
no earlier plaintext refers to any more, and queues the plaintexts.
:meth:`receive_plaintexts` hands out those plaintexts whole, one per Noise message, which lets
the wire decoder slice ChunkData out of them without copying.

Concurrency. Two tasks calling ``send_all`` (or ``receive_some``) at once is a bug and raises
``trio.BusyResourceError``; a send and a receive may run concurrently.

Failure. A bad frame or a failed decryption means the byte stream was tampered with or lost
sync: the stream is broken, every later call raises :class:`TransportProtocolError`. A send
cancelled half-way leaves a partial frame on the wire, so the stream is broken too. Transport
failures surface as :class:`PeerDisconnected`; use after :meth:`aclose` raises
:class:`ConnectionClosed`. EOF at a frame boundary is a clean end (``receive_some`` returns
``b""``); EOF inside a frame is a protocol error.
"""

from __future__ import annotations

import enum
import operator
import struct
import threading
from collections import deque
from collections.abc import Sequence

import trio

from node.noise import KeyPair, NoiseConnection, NoiseError
from node.wire._errors import IdentityMismatch, WireError
from node.wire._frames import FrameDecoder
from node.wire._identity import PeerIdentity, identity_verified, verify_identity_payload
from node.wire._limits import NOISE_MAX_PLAINTEXT, NOISE_TAG_LEN, PROLOGUE
from node.wire._sentinels import NEED_DATA, PEER_CLOSED

from ._conflict import ConflictDetector
from ._errors import (
    ConnectionClosed,
    HandshakeFailed,
    HandshakeTimeout,
    PeerDisconnected,
    PeerIdentityMismatch,
    TransportProtocolError,
)

Buffer = bytes | bytearray | memoryview
_U16 = struct.Struct(">H")
_VERIFY_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("verify")


def _verify_limiter() -> trio.CapacityLimiter:
    """One identity verification at a time per trio run (see ``NoiseStream._verify``)."""
    try:
        return _VERIFY_LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(1)
        _VERIFY_LIMITER.set(limiter)
        return limiter


class _BufferPool:
    """A few bytearrays of at least ``minimum`` bytes, shared by every stream of the process,
    reused instead of a fresh zero-filled one (a memset of every byte sent or received).

    A buffer may be given back while views of it are still alive; :meth:`take` hands out
    only one no view refers to (:func:`_reusable`). At most ``keep`` are kept (the oldest
    is dropped), so many connections cannot pin a buffer each."""

    def __init__(self, minimum: int = 1 << 16, keep: int = 8) -> None:
        self.minimum = minimum
        self.keep = keep
        self.buffers: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, need: int) -> bytearray:
        """A buffer of at least ``need`` bytes: a kept one no view refers to, or a new one
        (rounded up to ``minimum``)."""
        with self._lock:
            buffers = self.buffers
            for i in range(len(buffers) - 1, -1, -1):  # the most recently given back first
                buf = buffers[i]
                if len(buf) >= need and _reusable(buf):
                    del buffers[i]
                    return buf
        return bytearray(-(-need // self.minimum) * self.minimum)

    def give(self, buf: bytearray) -> None:
        """Offer ``buf`` for reuse (views of it may still be alive: :meth:`take` checks)."""
        with self._lock:
            if len(self.buffers) >= self.keep:
                del self.buffers[0]
            self.buffers.append(buf)


POOL_MIN = 1 << 16
"""Batches of at least this many bytes use a pooled buffer; smaller ones (control messages,
keep-alives) a fresh one of their size, so an idle connection holds none."""

_seal_pool = _BufferPool(POOL_MIN)
"""Sealing: a 1 MiB chunk is sealed into one ~1 MiB buffer (zero-filling a fresh one was ~3 %
of a serving node's CPU); given back after its send completed."""

_recv_pool = _BufferPool(POOL_MIN)
"""Receiving: a refill's plaintexts are decrypted into one buffer, given back at once and
taken again only once no plaintext view of it is alive. Shared and bounded: per-connection
spares made a load client with 1,000 bulk connections hold one each (its CPU per chunk rose
~25 %), and 10,000 idle connections must hold none."""


DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_RECEIVE_SIZE = 1 << 20
DEFAULT_OFFLOAD_BYTES = 1 << 62
"""Crypto batches at least this big go to a worker thread: by default none do. Measured on
loopback (2 cores, 256 MiB): sealing 1 MiB batches in a worker ran at ~300 MB/s, inline at
~550-700 MB/s; the thread hand-off and GIL ping-pong cost more than the overlap gained, and
the receiver's hashing threads already use the second core."""


class _State(enum.Enum):
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


class NoiseStream(trio.abc.Stream):
    """An encrypted, authenticated stream over ``transport_stream``. See the module docstring."""

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        *,
        initiator: bool,
        static: KeyPair,
        identity_payload: bytes,
        expected_address: str | None = None,
        prologue: bytes = PROLOGUE,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
        offload_bytes: int | None = None,
    ) -> None:
        self.transport_stream = transport_stream
        self.initiator = initiator
        self.expected_address = expected_address
        self.handshake_timeout = handshake_timeout
        self.receive_size = receive_size
        self.offload_bytes = DEFAULT_OFFLOAD_BYTES if offload_bytes is None else offload_bytes
        self._payload = identity_payload
        self._noise = (
            NoiseConnection.initiator(static, prologue=prologue)
            if initiator
            else NoiseConnection.responder(static, prologue=prologue)
        )
        self._frames = FrameDecoder()
        self._plain: deque[bytes | memoryview] = deque()
        self._sealed: deque[memoryview] = deque()  # read, not yet decrypted
        #: a received Noise message of exactly this length (ciphertext) ends a decryption
        #: batch: what follows it stays sealed, so :meth:`receive_into` can decrypt it straight
        #: into the caller's buffer (``PeerConnection`` sets it for bulk ChunkData headers)
        self.pause_after: int | None = None
        self._state = _State.OK
        self._broken_by: Exception | None = None
        self._handshake_lock = trio.Lock()
        self._peer: PeerIdentity | None = None
        self._send_conflict = ConflictDetector("another task is already sending on this stream")
        self._recv_conflict = ConflictDetector("another task is already receiving on this stream")
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def peer(self) -> PeerIdentity:
        """The authenticated peer (after the handshake)."""
        if self._peer is None:
            raise HandshakeFailed("handshake not complete")
        return self._peer

    @property
    def handshake_complete(self) -> bool:
        return self._peer is not None

    def _check(self) -> None:
        if self._state is _State.CLOSED:
            raise ConnectionClosed("stream was closed by this side")
        if self._state is _State.BROKEN:
            if isinstance(self._broken_by, PeerDisconnected):
                raise PeerDisconnected(str(self._broken_by))
            raise TransportProtocolError(f"stream is broken: {self._broken_by}")

    def _break(self, exc: Exception) -> None:
        if self._state is _State.OK:
            self._state = _State.BROKEN
            self._broken_by = exc

    # -- raw transport, errors translated --------------------------------------------------

    async def _raw_send(self, data: Buffer) -> None:
        try:
            await self.transport_stream.send_all(data)
        except trio.ClosedResourceError:
            self._check()
            raise ConnectionClosed("transport was closed") from None
        except (trio.BrokenResourceError, OSError) as exc:
            err = PeerDisconnected(f"send failed: {exc}")
            self._break(err)
            raise err from None
        except BaseException as exc:
            # Cancelled half-way: a partial frame may be on the wire.
            self._break(TransportProtocolError(f"send interrupted: {type(exc).__name__}"))
            raise
        self.bytes_sent += len(data)

    async def _raw_receive(self) -> bytes:
        try:
            data = await self.transport_stream.receive_some(self.receive_size)
        except trio.ClosedResourceError:
            self._check()
            raise ConnectionClosed("transport was closed") from None
        except (trio.BrokenResourceError, OSError) as exc:
            err = PeerDisconnected(f"receive failed: {exc}")
            self._break(err)
            raise err from None
        self.bytes_received += len(data)
        return bytes(data)

    async def _read_frames(self, limit: int | None = None) -> list[memoryview]:
        """At least one whole Noise message (at most ``limit``), or ``[]`` at a clean EOF.

        Frames beyond ``limit`` stay in the decoder: during the handshake the peer's first
        transport message may arrive in the same read as its last handshake message. The
        frames are read-only views of the received bytes (no copy per frame).
        """
        if limit is None:
            return await self._read_all_frames()
        frames: list[memoryview] = []
        next_frame = self._frames.next_frame_view
        while len(frames) < limit:
            try:
                frame = next_frame()
            except WireError as exc:
                err = TransportProtocolError(f"bad frame: {exc}")
                self._break(err)
                raise err from None
            if frame is NEED_DATA:
                if frames:
                    return frames
                data = await self._raw_receive()
                if data:
                    self._frames.receive_data(data)
                else:
                    self._frames.receive_eof()
            elif frame is PEER_CLOSED:
                return frames
            else:
                assert isinstance(frame, memoryview)
                frames.append(frame)
        return frames

    async def _read_all_frames(self) -> list[memoryview]:
        """:meth:`_read_frames` without a limit: every whole message buffered, split from
        each read in one pass (``FrameDecoder.frame_views``)."""
        decoder = self._frames
        while True:
            try:
                frames = decoder.frame_views()
                if frames:
                    return frames
                end = decoder.next_frame_view()  # NEED_DATA or PEER_CLOSED
            except WireError as exc:
                err = TransportProtocolError(f"bad frame: {exc}")
                self._break(err)
                raise err from None
            if isinstance(end, memoryview):  # (frame_views took every whole one: not seen)
                return [end]
            if end is PEER_CLOSED:
                return []
            data = await self._raw_receive()
            if data:
                decoder.receive_data(data)
            else:
                decoder.receive_eof()

    async def _read_one_frame(self) -> bytes:
        frames = await self._read_frames(limit=1)
        if not frames:
            raise PeerDisconnected("peer closed during the handshake")
        return bytes(frames[0])

    # -- handshake --------------------------------------------------------------------------

    async def do_handshake(self) -> PeerIdentity:
        """Run the XX handshake (once) and return the authenticated peer."""
        if self._peer is not None and self._state is _State.OK:
            return self._peer
        # Checkpoint before failing, as trio streams do (and so that a conflicting second
        # caller's BusyResourceError can cancel us first).
        await trio.lowlevel.checkpoint()
        async with self._handshake_lock:
            self._check()
            if self._peer is not None:
                return self._peer
            try:
                with trio.fail_after(self.handshake_timeout):
                    self._peer = await self._handshake()
            except trio.TooSlowError:
                self._break(HandshakeTimeout("handshake timed out"))
                await trio.aclose_forcefully(self.transport_stream)
                raise HandshakeTimeout(
                    f"handshake did not finish in {self.handshake_timeout:g}s"
                ) from None
            except (HandshakeFailed, TransportProtocolError, PeerDisconnected) as exc:
                self._break(exc)
                await trio.aclose_forcefully(self.transport_stream)
                raise
            return self._peer

    async def _verify(self, payload: bytes) -> PeerIdentity:
        """Check the peer's identity payload. A pair not verified before costs a secp256k1
        signature recovery (~17 ms in pure Python): that runs in a worker thread, one at a
        time per process (``_verify_limiter``), so a flood of handshakes cannot stall the
        event loop and with it every established connection; a pair seen before (a client
        reconnecting, or many connections from one key) is answered from the cache."""
        remote = self._noise.remote_static
        if remote is None:
            raise HandshakeFailed("peer static key missing")
        payload = bytes(payload)
        try:
            if identity_verified(payload, remote):
                return verify_identity_payload(payload, remote, self.expected_address)
            return await trio.to_thread.run_sync(
                verify_identity_payload,
                payload,
                remote,
                self.expected_address,
                limiter=_verify_limiter(),
            )
        except IdentityMismatch:
            actual = verify_identity_payload(payload, remote).address
            raise PeerIdentityMismatch(str(self.expected_address), actual) from None
        except WireError as exc:
            raise HandshakeFailed(f"bad identity payload: {exc}") from None

    async def _handshake(self) -> PeerIdentity:
        noise = self._noise
        try:
            if self.initiator:
                await self._raw_send(_frame(noise.write_handshake(b"")))
                peer = await self._verify(noise.read_handshake(await self._read_one_frame()))
                await self._raw_send(_frame(noise.write_handshake(self._payload)))
            else:
                noise.read_handshake(await self._read_one_frame())
                await self._raw_send(_frame(noise.write_handshake(self._payload)))
                peer = await self._verify(noise.read_handshake(await self._read_one_frame()))
        except NoiseError as exc:
            raise HandshakeFailed(f"noise handshake failed: {exc}") from None
        if not noise.handshake_complete:
            raise HandshakeFailed("handshake ended early")
        return peer

    # -- sending ----------------------------------------------------------------------------

    def _seal(self, plaintexts: Sequence[Buffer], out: bytearray | None = None) -> list[Buffer]:
        """Encrypt and frame into ONE buffer: ``len, ciphertext, len, ciphertext, ...``.

        ``encrypt_into`` writes each ciphertext straight after its length prefix, so a whole
        1 MiB chunk is sealed with no per-message allocation and sent with one ``send``.
        ``out`` (from the seal pool) holds at least the plaintexts + 18 bytes each;
        without it a buffer of that size is allocated.
        """
        if out is None:
            out = bytearray(sum(len(p) for p in plaintexts) + 18 * len(plaintexts))
        end = self._noise.encrypt_many_into(plaintexts, out, 2)  # one call for the batch
        pack_into = _U16.pack_into
        off = 0
        for plaintext in plaintexts:
            n = len(plaintext) + 16
            pack_into(out, off, n)
            off += 2 + n
        return [memoryview(out)[:end]]

    async def _raw_send_parts(self, parts: list[Buffer]) -> None:
        """Send buffers in order; one ``sendmsg`` (scatter/gather) per write on a TCP socket.

        Joining 1 MiB of ciphertext into one bytes object costs a full memory copy, which
        on the machines measured is as expensive as the encryption itself.
        """
        if len(parts) == 1:
            await self._raw_send(parts[0])
            return
        sock = getattr(self.transport_stream, "socket", None)
        if sock is None or not hasattr(sock, "sendmsg") or len(parts) <= 2:
            await self._raw_send(b"".join(parts))
            return
        views = [memoryview(p) for p in parts]
        total = sum(len(v) for v in views)
        sent_total = 0
        try:
            while views:
                await trio.lowlevel.checkpoint_if_cancelled()
                try:
                    sent = sock._sock.sendmsg(views[:1024])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock._sock)
                    continue
                sent_total += sent
                while sent and views:
                    if sent >= len(views[0]):
                        sent -= len(views[0])
                        views.pop(0)
                    else:
                        views[0] = views[0][sent:]
                        sent = 0
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            err = PeerDisconnected(f"send failed: {exc}")
            self._break(err)
            raise err from None
        except BaseException as exc:
            if sent_total < total:
                self._break(TransportProtocolError(f"send interrupted: {type(exc).__name__}"))
            raise
        await trio.lowlevel.cancel_shielded_checkpoint()
        self.bytes_sent += total

    async def send_plaintexts(self, plaintexts: Sequence[Buffer]) -> None:
        """Send each plaintext (<= 65519 bytes) as one Noise message, all in one write."""
        with self._send_conflict:
            await self.do_handshake()
            await self._send_sealed(plaintexts)

    async def _send_sealed(self, plaintexts: Sequence[Buffer]) -> None:
        self._check()
        if not plaintexts:
            await trio.lowlevel.checkpoint()
            return
        total = 0
        for p in plaintexts:
            if len(p) > NOISE_MAX_PLAINTEXT:
                raise ValueError(f"plaintext longer than {NOISE_MAX_PLAINTEXT} bytes")
            total += len(p)
        need = total + 18 * len(plaintexts)
        out = _seal_pool.take(need) if need >= POOL_MIN else bytearray(need)
        try:
            if total >= self.offload_bytes:
                parts = await trio.to_thread.run_sync(self._seal, plaintexts, out)
            else:
                parts = self._seal(plaintexts, out)
        except NoiseError as exc:
            err = TransportProtocolError(f"encryption failed: {exc}")
            self._break(err)
            raise err from None
        except BaseException:
            self._break(TransportProtocolError("send interrupted during encryption"))
            raise
        await self._raw_send_parts(parts)
        del parts
        if need >= POOL_MIN:
            _seal_pool.give(out)  # sent whole (a failed send raised and drops it)

    async def send_all(self, data: Buffer) -> None:
        with self._send_conflict:
            await self.do_handshake()
            view = memoryview(data).cast("B")
            step = NOISE_MAX_PLAINTEXT
            await self._send_sealed([view[i : i + step] for i in range(0, len(view), step)])

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            # A send cannot start before the handshake, so waiting for it is waiting for
            # the handshake first (this also keeps a responder from deadlocking here).
            await self.do_handshake()
            self._check()
            await self.transport_stream.wait_send_all_might_not_block()

    # -- receiving --------------------------------------------------------------------------

    def _open_all(self, frames: list[memoryview]) -> list[memoryview]:
        """Decrypt every frame into one buffer (one call into the cipher for the batch);
        read-only views of it, one per frame.

        The views are handed to the wire decoder, which slices ChunkData out of them without
        copying (it keeps read-only views as they are). A bulk refill's buffer comes from the
        receive pool (:data:`POOL_MIN`).
        """
        need = sum(map(len, frames)) - NOISE_TAG_LEN * len(frames)
        bulk = need >= POOL_MIN
        out = _recv_pool.take(need) if bulk else bytearray(need)
        self._noise.decrypt_many_into(frames, out)
        ro = memoryview(out).toreadonly()
        plain: list[memoryview] = []
        off = 0
        for f in frames:
            n = len(f) - NOISE_TAG_LEN
            plain.append(ro[off : off + n])
            off += n
        del ro
        if bulk:
            _recv_pool.give(out)  # taken again only once every view above is gone
        return plain

    def _take_sealed(self) -> list[memoryview]:
        """The sealed frames to decrypt now: all of them, or up to and including the first
        of length :attr:`pause_after`."""
        sealed = self._sealed
        pause = self.pause_after
        if pause is not None:
            for i, f in enumerate(sealed):
                if len(f) == pause:
                    frames = [sealed.popleft() for _ in range(i + 1)]
                    return frames
        frames = list(sealed)
        sealed.clear()
        return frames

    async def _fill(self) -> bool:
        """Queue at least one plaintext; False at a clean EOF. Always a checkpoint."""
        if self._plain or self._sealed:
            await trio.lowlevel.checkpoint()
        while not self._plain:
            if not self._sealed:
                got = await self._read_frames()
                if not got:
                    return False
                self._sealed.extend(got)
            frames = self._take_sealed()
            try:
                if sum(map(len, frames)) >= self.offload_bytes:
                    plain = await trio.to_thread.run_sync(self._open_all, frames)
                else:
                    plain = self._open_all(frames)
            except NoiseError as exc:
                err = TransportProtocolError(f"decryption failed: {exc}")
                self._break(err)
                raise err from None
            self._plain.extend(p for p in plain if p)
        return True

    async def receive_plaintexts(self) -> list[bytes | memoryview]:
        """Every decrypted plaintext ready now (waiting for at least one); ``[]`` at EOF."""
        with self._recv_conflict:
            await self.do_handshake()
            self._check()
            if not await self._fill():
                return []
            out = list(self._plain)
            self._plain.clear()
            return out

    async def receive_into(self, dest: memoryview) -> None:
        """Decrypt the next ``len(dest)`` plaintext bytes straight into ``dest`` (writable):
        they must come as whole Noise messages, each of :data:`NOISE_MAX_PLAINTEXT` bytes but
        the last (a bulk ChunkData's data, docs/protocol.md 5.14b). Call it only when every
        plaintext already decrypted has been taken (:attr:`pause_after`). Anything else (a
        message of another length, EOF before the end) breaks the stream:
        :class:`TransportProtocolError`. So does a cancellation part-way: what follows on the
        stream would be the rest of this data, which nobody could tell from messages."""
        with self._recv_conflict:
            self._check()
            if self._plain:
                raise TransportProtocolError("receive_into with plaintexts still queued")
            try:
                await self._receive_into(dest)
            except BaseException as exc:
                if self._state is _State.OK:
                    cut = f"bulk read cut short: {type(exc).__name__}"
                    self._break(TransportProtocolError(cut))
                raise

    async def _receive_into(self, dest: memoryview) -> None:
        """:meth:`receive_into`'s loop: whole Noise messages, in batches as they arrive."""
        sealed = self._sealed
        off, n = 0, len(dest)
        full = NOISE_MAX_PLAINTEXT + NOISE_TAG_LEN
        while off < n:
            if not sealed:
                got = await self._read_frames()
                if not got:
                    err = TransportProtocolError("stream ended inside a bulk message")
                    self._break(err)
                    raise err
                sealed.extend(got)
            batch: list[memoryview] = []
            end = off
            while sealed and end < n:
                want = min(full, n - end + NOISE_TAG_LEN)
                if len(sealed[0]) != want:
                    err = TransportProtocolError(
                        f"bulk data in a Noise message of {len(sealed[0])} bytes, not {want}"
                    )
                    self._break(err)
                    raise err
                batch.append(sealed.popleft())
                end += want - NOISE_TAG_LEN
            try:
                if end - off >= self.offload_bytes:
                    await trio.to_thread.run_sync(
                        self._noise.decrypt_many_into, batch, dest[off:end]
                    )
                else:
                    self._noise.decrypt_many_into(batch, dest[off:end])
            except NoiseError as exc:
                err = TransportProtocolError(f"decryption failed: {exc}")
                self._break(err)
                raise err from None
            off = end

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        with self._recv_conflict:
            await self.do_handshake()
            self._check()
            if not await self._fill():
                return b""
            head = self._plain.popleft()
            if max_bytes is not None and len(head) > max_bytes:
                self._plain.appendleft(head[max_bytes:])
                head = head[:max_bytes]
            return bytes(head)

    # -- closing ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        self._state = _State.CLOSED
        await self.transport_stream.aclose()


def _reusable(buf: bytearray) -> bool:
    """No view of ``buf`` is alive: a bytearray with exported buffers cannot be resized, so a
    one-byte grow and shrink succeeds exactly when nothing else holds its memory."""
    try:
        buf.append(0)
    except BufferError:
        return False
    del buf[-1]
    return True


def _frame(message: bytes) -> bytes:
    return _U16.pack(len(message)) + message
