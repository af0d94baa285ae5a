"""PeerConnection: node.wire messages over a NoiseStream, with Hello, keep-alive and Goodbye.

The sans-IO :class:`node.wire.WireConnection` checks every message against the protocol state
in both directions; this class only moves its bytes. Sending coalesces small messages into as
few Noise messages as possible and gives each ChunkData piece a Noise message of its own (the
wire layout makes a full piece fill one exactly), so the receiver slices pieces out of the
decrypted plaintexts without copying.

Receiving answers ``Ping`` with ``Pong`` by itself, turns ``Goodbye`` and EOF into
:class:`PeerDisconnected`, and raises :class:`IdleTimeout` when nothing arrived for
``idle_timeout`` seconds. :meth:`keepalive` (run it in a nursery) sends a Ping whenever this
side has been silent for ``keepalive_interval`` seconds, so a healthy but quiet peer never
trips the other side's idle timeout.

:meth:`send_soon` encodes messages now and writes them with the next write, or when the
receiving side is about to wait for bytes: the Pongs and Want answers to a batch of requests
read at once leave in one Noise message and one write (measured on the node: a Ping answered
for ~20 us of CPU instead of ~90 us, a Want for ~90 us instead of ~210 us).

``swept`` connections (``serve_peers`` makes every inbound one so) keep no timer of their own:
no cancel-scope deadline per receive and no keep-alive task; one node-wide sweeper reads
``last_received``/``last_sent`` of a connection when something may be due for it, pings the
quiet ones (:meth:`ping_nowait`: sealed and written from the sweeper's task, no task or lock
of its own) and closes the silent ones and those whose write has not completed for as long
(docs/protocol.md, "Admission control"). A node with 10,000 peers then holds no 10,000
timers, and a receive on the hot path arms none. Answers left by :meth:`send_soon` are
written the same way, at once, when the receiver is about to wait and nothing else is being
written.

A fatal protocol error by the peer (docs/protocol.md sections 4 and 6: a frame of length 0,
an oversize message, a second Hello, anything but Hello first, any PROTOCOL_VIOLATION) is
answered here, once: ``Error(code, request_id, ref_kind = the offending kind)`` then
``Goodbye(code, reason)``, and the connection is closed before
:class:`TransportProtocolError` (carrying the same code and kind) is raised to the caller.
Before the peer's Hello every protocol error is fatal: the session cannot start without it.
"""

from __future__ import annotations

import itertools
import mmap
import socket
from collections import deque
from collections.abc import Callable, Sequence

import trio

from node.log import get_logger
from node.noise import NoiseError
from node.wire import (
    BULK_HEADER_LEN,
    NOISE_MAX_PLAINTEXT,
    Capabilities,
    CapFlag,
    ChunkData,
    ErrorCode,
    ErrorMsg,
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    RemoteProtocolError,
    WireConnection,
    WireError,
)
from node.wire._identity import PeerIdentity
from node.wire._limits import NOISE_TAG_LEN
from node.wire._sentinels import NEED_DATA, PEER_CLOSED, Sentinel

from ._errors import (
    ConnectionClosed,
    IdleTimeout,
    PeerDisconnected,
    TransportError,
    TransportProtocolError,
)
from ._noise_stream import Buffer, NoiseStream

log = get_logger(__name__)
#: where a bulk ChunkData's data goes: ``(root, index, total) -> writable buffer or None``
BulkBuffer = Callable[[bytes, int, int], bytearray | mmap.mmap | None]


def _no_buffer(root: bytes, index: int, total: int) -> None:
    return None


AGENT = "bcai-transfer/0.1"
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_KEEPALIVE = 30.0  #: half the idle timeout: one Ping exchange per 30 s
GOODBYE_TIMEOUT = 2.0
MAX_ERROR_TEXT = 500  #: bytes of UTF-8 in an Error message we send (the cap is 512)
MAX_GOODBYE_TEXT = 250  #: bytes of UTF-8 in a Goodbye reason we send (the cap is 256)


#: send_soon writes at once past this many bytes left unwritten
SOON_FLUSH_BYTES = 4 * NOISE_MAX_PLAINTEXT


def _split(data: bytes) -> list[memoryview]:
    """``data`` as plaintexts of at most one Noise message each."""
    step = NOISE_MAX_PLAINTEXT
    view = memoryview(data)
    return [view[i : i + step] for i in range(0, len(view), step)]


def _send_nowait(sock: socket.socket, data: Buffer) -> int:
    """One non-blocking ``send`` (a module function so a test can make it write short)."""
    return sock.send(data)


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


class PeerConnection:
    """One authenticated peer. Create with :func:`open_peer_connection` or :func:`serve_peers`."""

    def __init__(
        self,
        stream: NoiseStream,
        *,
        capabilities: Capabilities | None = None,
        agent: str = AGENT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        keepalive_interval: float = DEFAULT_KEEPALIVE,
    ) -> None:
        self.stream = stream
        self.wire = WireConnection(capabilities, agent)
        self.idle_timeout = idle_timeout
        self.keepalive_interval = keepalive_interval
        self._send_lock = trio.Lock()
        self._events: deque[Message] = deque()
        self._closed = False
        self._ping_nonce = itertools.count(1)
        self.peer_hello: Hello | None = None
        self.last_sent = trio.current_time()
        self.last_received = self.last_sent
        self.goodbye: Goodbye | None = None
        self._soon: list[bytes] = []  #: encoded by send_soon, not written yet
        self._soon_bytes = 0
        #: liveness is a sweeper's job (module docstring): no receive timer, no keep-alive task
        self.swept = False
        self.pinging = False  #: a sweeper's Ping is being sent
        #: when the write now in progress started (``None``: none), for a sweeper's stall check
        self.send_started: float | None = None
        #: sealed bytes written at once (:meth:`_write_nowait`) that the socket took only in
        #: part; the next write sends them first
        self._unsent = b""
        self._fatal: RemoteProtocolError | None = None  #: the peer's fatal error, not answered
        #: where a bulk ChunkData's data goes (:meth:`set_bulk_buffer`)
        self.bulk_buffer: BulkBuffer = _no_buffer
        #: a bulk ChunkData handed out as pieces: root, index, total, next offset
        self._bulk_rest: tuple[bytes, int, int, int] | None = None
        if self.wire.capabilities.flags & CapFlag.BULK:
            # a bulk header ends a decryption batch: its data is decrypted in place
            stream.pause_after = BULK_HEADER_LEN + NOISE_TAG_LEN

    # -- identity ---------------------------------------------------------------------------

    @property
    def peer(self) -> PeerIdentity:
        return self.stream.peer

    @property
    def address(self) -> str:
        """The peer's Ethereum address (authenticated by the handshake)."""
        return self.stream.peer.address

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<PeerConnection {self._who()}>"

    # -- opening ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Handshake, then exchange Hello (ours first; the peer's must be its first message)."""
        await self.stream.do_handshake()
        await self.send(self.wire.hello())
        try:
            with trio.fail_after(self.stream.handshake_timeout):
                msg = await self._next_message()
        except RemoteProtocolError as exc:  # recoverable later, fatal before the Hello
            raise await self._refuse(exc) from exc
        except TransportProtocolError as exc:
            await self._answer_fatal(exc)
            raise
        if not isinstance(msg, Hello):
            raise TransportProtocolError(f"expected Hello, got {type(msg).__name__}")
        self.peer_hello = msg

    def set_bulk_buffer(self, buffer_for: BulkBuffer | None) -> None:
        """Have each bulk ChunkData's data decrypted into ``buffer_for(root, index, total)``,
        a writable buffer of ``total`` bytes, and :meth:`receive` return it as ONE ChunkData
        of the whole chunk whose ``data`` is a view of that buffer (a receiver that fills
        chunk buffers takes them without a copy). Where it returns ``None`` (or with no
        callable: the default), the chunk comes as pieces of one Noise message each, as from
        a peer without ``BULK`` (a receiver that paces what it reads keeps its granularity)."""
        self.bulk_buffer = buffer_for if buffer_for is not None else _no_buffer

    # -- sending ----------------------------------------------------------------------------

    async def send(self, *messages: Message) -> None:
        """Send messages in order, coalesced into as few Noise messages as fit."""
        if self._closed:
            raise ConnectionClosed("connection closed by this side")
        try:
            data = b"".join(self.wire.send(m) for m in messages)
        except WireError as exc:
            raise TransportProtocolError(f"cannot send: {exc}") from exc
        await self._send_plaintexts(_split(data))

    async def send_soon(self, *messages: Message) -> None:
        """Send messages in order, but not necessarily now: they are encoded now (so the
        protocol state and the byte order are those of this call) and written with the next
        send, or when the receiving side is about to wait for bytes, whichever comes first.
        Answers to a batch of requests (Pongs, Want answers) then share one Noise message
        and one write instead of one each."""
        if self._closed:
            raise ConnectionClosed("connection closed by this side")
        try:
            for m in messages:
                self._soon.append(self.wire.send(m))
                self._soon_bytes += len(self._soon[-1])
        except WireError as exc:
            raise TransportProtocolError(f"cannot send: {exc}") from exc
        if self._soon_bytes >= SOON_FLUSH_BYTES:
            await self.flush()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def flush(self) -> None:
        """Write what :meth:`send_soon` left (nothing to do if nothing is left)."""
        if (self._soon or self._unsent) and not self._closed:
            await self._send_plaintexts(())

    async def send_chunk(
        self, root: bytes, index: int, data: bytes | memoryview, *, compressed: bool = False
    ) -> None:
        """Send a whole chunk in one write: as one bulk ChunkData to a peer whose Hello has
        BULK (its data encrypted straight from ``data``; docs/protocol.md 5.14b), else as
        ChunkData pieces, one Noise message each (one copy per piece: header + payload).

        ``compressed``: ``data`` is the chunk's zstd frame, sent as ChunkDataZ pieces (only to
        a peer whose Hello has COMPRESS; docs/protocol.md 5.14a)."""
        if self._closed:
            raise ConnectionClosed("connection closed by this side")
        plaintexts = self.wire.send_chunk(root, index, data, compressed=compressed)
        await self._send_plaintexts(plaintexts)

    async def _send_plaintexts(self, plaintexts: Sequence[bytes | memoryview]) -> None:
        async with self._send_lock:
            if self._soon:  # encoded before these: they go first, in the same write
                soon = b"".join(self._soon)
                self._soon.clear()
                self._soon_bytes = 0
                plaintexts = [*_split(soon), *plaintexts]
            if not plaintexts and not self._unsent:
                return
            self.send_started = trio.current_time()
            try:
                if self._unsent:  # the tail of a write made at once: those bytes go first
                    unsent, self._unsent = self._unsent, b""
                    await self.stream._raw_send(unsent)
                if plaintexts:
                    await self.stream.send_plaintexts(plaintexts)
            finally:
                self.send_started = None
            self.last_sent = trio.current_time()

    async def ping(self) -> None:
        if self._unsent and not self._closed:  # ping_nowait's Ping, not written whole
            await self._send_plaintexts(())
            return
        await self.send(Ping(next(self._ping_nonce)))

    def ping_nowait(self) -> bool:
        """Write a keep-alive Ping now, from the calling task: no task, no lock, no wait.

        A sweeper pinging thousands of idle connections would otherwise start a task per Ping
        and take each connection's send lock (most of what a Ping cost the node). See
        :meth:`_write_nowait`. Returns ``False`` when the Ping is not written whole (the
        caller then uses :meth:`ping`, which finishes a tail instead of sending another).
        """
        if self._soon:
            return False
        sock = self._nowait_socket()
        if sock is None:
            return False
        try:
            data = self.wire.send(Ping(next(self._ping_nonce)))
        except WireError:
            return False
        return self._write_nowait(sock, data)

    def _nowait_socket(self) -> socket.socket | None:
        """The socket to write to at once, or ``None`` when a write is in progress or
        pending (the send lock is held, a tail is left), or the stream cannot be written."""
        if self._closed or self._unsent or self._send_lock.locked():
            return None
        stream = self.stream
        sock = getattr(getattr(stream.transport_stream, "socket", None), "_sock", None)
        if sock is None or not stream.handshake_complete:
            return None
        try:
            stream._check()
        except TransportError:
            return None
        return sock

    def _write_nowait(self, sock: socket.socket, data: bytes) -> bool:
        """Seal ``data`` and write it with one non-blocking ``send`` (``sock`` from
        :meth:`_nowait_socket`, nothing awaited since). Nothing else is being written or left
        to write, so its Noise nonces are the next ones on the wire. ``True``: written whole.
        ``False``: the socket took it only in part (its buffer full: the peer is not reading)
        or not at all; the rest, already sealed, is written first by the next write
        (:meth:`flush`, :meth:`ping` or any send). A failed send breaks the stream (the reader
        sees it) and counts as written."""
        stream = self.stream
        try:
            frame = stream._seal(_split(data))[0]
        except NoiseError as exc:
            stream._break(TransportProtocolError(f"encryption failed: {exc}"))
            return True
        try:
            sent = _send_nowait(sock, frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            stream._break(PeerDisconnected(f"send failed: {exc}"))
            return True
        stream.bytes_sent += sent
        if sent < len(frame):
            self._unsent = bytes(frame[sent:])  # sealed: it must be written, and first
            return False
        self.last_sent = trio.current_time()
        return True

    def _flush_nowait(self) -> bool:
        """What :meth:`send_soon` left, written at once if it can be (``True``: nothing is
        left for :meth:`flush` to do)."""
        sock = self._nowait_socket()
        if sock is None:
            return False
        data = b"".join(self._soon)
        self._soon.clear()
        self._soon_bytes = 0
        return self._write_nowait(sock, data)

    # -- receiving --------------------------------------------------------------------------

    def _buffered_message(self) -> Message | None:
        """The next message already decoded from received bytes, or ``None`` (need data)."""
        try:
            ev = self.wire.next_event()
        except RemoteProtocolError as exc:
            if exc.recoverable:
                raise
            self._fatal = exc
            raise TransportProtocolError(
                f"peer broke the protocol: {exc}", code=int(exc.code), kind=exc.kind
            ) from exc
        if ev is NEED_DATA:
            return None
        if ev is PEER_CLOSED:
            raise PeerDisconnected("peer closed the connection without Goodbye")
        assert not isinstance(ev, Sentinel)
        return ev

    async def _bulk_piece(self) -> ChunkData:
        """The next piece of a bulk ChunkData whose data nobody took whole: one Noise
        message's worth, decrypted into a buffer of its own."""
        assert self._bulk_rest is not None
        root, index, total, offset = self._bulk_rest
        piece = memoryview(bytearray(min(NOISE_MAX_PLAINTEXT, total - offset)))
        await self.stream.receive_into(piece)
        end = offset + len(piece)
        self._bulk_rest = (root, index, total, end) if end < total else None
        return ChunkData(root, index, offset, total, piece)

    async def _next_message(self) -> Message:
        events = self._events
        while True:
            if events:
                return events.popleft()
            if self._bulk_rest is not None:
                return await self._bulk_piece()
            msg = self._buffered_message()
            if msg is not None:
                return msg
            plaintexts = await self.stream.receive_plaintexts()
            self.last_received = trio.current_time()
            if not plaintexts:
                self.wire.receive_eof()
            # Fast path: a plaintext that is one whole ChunkData (the sender's usual layout)
            # is decoded and state-checked straight from its header, skipping the general
            # decoder's buffering. It only applies while that decoder is empty, so anything
            # else, and everything after it in this batch, keeps its order through it.
            piece = self.wire.receive_chunk_piece
            feed = self.wire.receive_data
            for p in plaintexts:
                m = piece(p)
                if m is None and len(p) == BULK_HEADER_LEN and p is plaintexts[-1]:
                    # a bulk ChunkData (docs/protocol.md 5.14b): the stream paused after its
                    # header, so its data is still sealed and is decrypted into the buffer.
                    # Whole messages fed before it are taken first (the header needs an
                    # idle decoder), in order.
                    while (ev := self._buffered_message()) is not None:
                        events.append(ev)
                    head = self.wire.receive_bulk_header(p)
                    if head is not None:
                        root, index, total = head
                        buf = self.bulk_buffer(root, index, total)
                        if buf is not None and len(buf) == total:
                            view = memoryview(buf)
                            await self.stream.receive_into(view)
                            events.append(ChunkData(root, index, 0, total, view))
                        else:  # handed out as pieces, one Noise message each
                            self._bulk_rest = (root, index, total, 0)
                        continue
                if m is None:
                    feed(p)
                else:
                    events.append(m)

    async def receive(self) -> Message:
        """The next application message. Pings are answered here and not returned.

        Raises :class:`PeerDisconnected` on Goodbye or EOF, :class:`IdleTimeout` after
        ``idle_timeout`` seconds of silence, :class:`TransportProtocolError` on garbage, and
        a recoverable ``node.wire.RemoteProtocolError`` for a bad message the caller may
        answer with an Error and then read on.
        """
        while True:
            if self._events:
                return self._events.popleft()
            # A message already decoded is returned without a timer (one cancel scope per
            # 64 KiB piece cost ~7% of the receiver's time); only waiting for bytes is timed.
            # No checkpoint then either: what is buffered is bounded by one socket read.
            try:
                msg = self._buffered_message()
                if msg is None and self._soon and not self._flush_nowait():
                    await self.flush()  # answers to what was read go out before we wait
                if msg is None and self.swept:
                    msg = await self._next_message()
                elif msg is None:
                    try:
                        with trio.fail_after(self.idle_timeout):
                            msg = await self._next_message()
                    except trio.TooSlowError:
                        raise IdleTimeout(f"peer silent for {self.idle_timeout:g}s") from None
            except TransportProtocolError as exc:
                await self._answer_fatal(exc)
                raise
            if isinstance(msg, Ping):
                await self.send_soon(Pong(msg.nonce))  # written before we wait for bytes
                continue
            if isinstance(msg, Pong):
                continue
            if isinstance(msg, Goodbye):
                self.goodbye = msg
                raise PeerDisconnected(
                    f"peer said goodbye ({msg.code!s}: {msg.reason})", code=int(msg.code)
                )
            return msg

    # -- keep-alive and closing ---------------------------------------------------------------

    async def keepalive(self) -> None:
        """Ping whenever we have been silent for ``keepalive_interval``; returns when closed
        (at once when ``swept``: the sweeper pings)."""
        while not self._closed and not self.swept:
            due = self.last_sent + self.keepalive_interval
            now = trio.current_time()
            if now < due:
                await trio.sleep(due - now)
                continue
            try:
                await self.ping()
            except (TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async def _answer_fatal(self, exc: TransportProtocolError) -> None:
        """Answer the peer's fatal protocol error (module docstring), once, and close."""
        fatal, self._fatal = self._fatal, None
        if fatal is not None:
            await self._refuse(fatal)

    async def _refuse(self, exc: RemoteProtocolError) -> TransportProtocolError:
        """Error + Goodbye carrying ``exc``'s code, then close; returns the error to raise."""
        code = exc.code
        text = str(exc)
        log.info("peer broke the protocol", peer=self._who(), code=str(code), error=text)
        error = ErrorMsg(
            code,
            request_id=exc.request_id,
            ref_kind=exc.kind,
            message=clip_text(text, MAX_ERROR_TEXT),
        )
        await self.aclose(code, clip_text(text, MAX_GOODBYE_TEXT), error=error)
        return TransportProtocolError(
            f"peer broke the protocol: {exc}", code=int(exc.code), kind=exc.kind
        )

    def _who(self) -> str:
        return self.stream.peer.address if self.stream.handshake_complete else "?"

    async def aclose(
        self,
        code: ErrorCode | int = ErrorCode.OK,
        reason: str = "",
        *,
        error: ErrorMsg | None = None,
    ) -> None:
        """Say Goodbye (best effort, bounded in time) and close. Idempotent.

        ``error``, when given, is sent just before the Goodbye (the answer to a fatal error).
        """
        if self._closed:
            return
        try:
            with trio.move_on_after(GOODBYE_TIMEOUT) as scope:
                scope.shield = True
                first: tuple[Message, ...] = (error,) if error is not None else ()
                await self.send(*first, Goodbye(code, clip_text(reason, MAX_GOODBYE_TEXT)))
        except (TransportError, WireError, trio.BrokenResourceError, trio.BusyResourceError):
            pass
        self._closed = True
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)
