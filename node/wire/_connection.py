"""One connection's protocol engine: decoder + encoder + state, no I/O (h11's ``Connection``).

The transport feeds it decrypted plaintext and asks it for bytes to encrypt::

    conn = WireConnection(Capabilities(...), agent="bcai/0.1")
    out = conn.send(conn.hello())            # plaintext to encrypt and frame
    conn.receive_data(plaintext)
    while (ev := conn.next_event()) is not NEED_DATA: ...
"""

from __future__ import annotations

from ._caps import Capabilities, CapFlag
from ._codec import (
    decode_bulk_header,
    decode_chunk_piece,
    encode,
    encode_chunk_bulk,
    encode_chunk_pieces,
    encode_parts,
)
from ._decoder import MessageDecoder
from ._errors import RemoteProtocolError
from ._limits import MAX_CHUNK_PIECE, PROTOCOL_VERSION
from ._messages import Buffer, ChunkData, ChunkDataZ, Hello, Message
from ._sentinels import Sentinel
from ._state import Phase, ProtocolState, Side


class WireConnection:
    """Sans-IO wire protocol for one peer connection (after the Noise handshake)."""

    def __init__(self, capabilities: Capabilities | None = None, agent: str = "") -> None:
        self.capabilities = capabilities if capabilities is not None else Capabilities()
        self.agent = agent
        self.state = ProtocolState()
        self._decoder = MessageDecoder(self.capabilities.max_message_size)

    # -- receiving
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._decoder.receive_data(data)

    def receive_eof(self) -> None:
        self._decoder.receive_eof()

    def next_event(self) -> Message | Sentinel:
        """Next message from the peer (state-checked), ``NEED_DATA`` or ``PEER_CLOSED``."""
        ev = self._decoder.next_event()
        if not isinstance(ev, Sentinel):
            self.state.process(Side.THEM, ev)
        return ev

    def receive_chunk_piece(self, plaintext: Buffer) -> ChunkData | None:
        """Fast path: ``plaintext`` decoded and state-checked as one whole ChunkData, or None.

        Applies only when the decoder holds nothing (so message order is kept) and
        ``plaintext`` is exactly one well-formed ChunkData that the state machine accepts.
        On ``None`` nothing changed: feed ``plaintext`` to :meth:`receive_data` instead, and
        the general decoder delivers it (or raises its error) in order. Same caps and checks
        as the general path (the body bounds and ``max_message_size`` are implied by a Noise
        plaintext of <= 65519 bytes).
        """
        if not self._decoder.idle:
            return None
        msg = decode_chunk_piece(plaintext)
        if msg is None:
            return None
        try:
            self.state.process(Side.THEM, msg)
        except RemoteProtocolError:
            return None
        return msg

    def receive_bulk_header(self, plaintext: Buffer) -> tuple[bytes, int, int] | None:
        """``(root, index, total)`` of a bulk ChunkData (docs/protocol.md 5.14b), when this
        side advertised ``CapFlag.BULK``, the decoder holds nothing and ``plaintext`` is
        exactly such a header the state machine accepts; the message is then checked and
        applied as its last byte would be (as ``send_chunk`` applies a chunk's last piece).
        The caller MUST take the next ``total`` plaintext bytes as its data before anything
        else. ``None``: not that case, nothing changed (feed ``plaintext`` to
        :meth:`receive_data`, which refuses the length)."""
        if not self.capabilities.flags & CapFlag.BULK or not self._decoder.idle:
            return None
        fields = decode_bulk_header(plaintext)
        if fields is None:
            return None
        root, index, total = fields
        try:
            self.state.process(Side.THEM, ChunkData(root, index, total - 1, total, b"\0"))
        except RemoteProtocolError:
            return None
        return fields

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    # -- sending
    def hello(self) -> Hello:
        """This side's Hello."""
        return Hello(PROTOCOL_VERSION, self.capabilities, self.agent)

    def send(self, msg: Message) -> bytes:
        """Check ``msg`` against the state, apply it, and return its bytes."""
        data = encode(msg)
        self.state.process(Side.US, msg)
        return data

    def send_parts(self, msg: Message) -> list[Buffer]:
        """As ``send``, but ChunkData's payload comes back uncopied as a separate buffer."""
        parts = encode_parts(msg)
        self.state.process(Side.US, msg)
        return parts

    def send_chunk(
        self, root: bytes, index: int, data: Buffer, *, compressed: bool = False
    ) -> list[Buffer]:
        """A whole chunk as Noise plaintexts, checked against the state and applied: one
        bulk ChunkData (``encode_chunk_bulk``) when the peer's Hello has ``CapFlag.BULK`` and
        the chunk is raw and longer than one piece, else ChunkData pieces
        (``encode_chunk_pieces``: one Noise plaintext each; the pieces before the last change
        nothing, so the state sees the last one)."""
        view = memoryview(data).cast("B")
        theirs = self.peer_capabilities
        if (
            not compressed
            and len(view) > MAX_CHUNK_PIECE
            and theirs is not None
            and theirs.flags & CapFlag.BULK
        ):
            out = encode_chunk_bulk(root, index, view)
            self.state.process(Side.US, ChunkData(bytes(root), index, 0, len(view), view))
            return out
        pieces: list[Buffer] = list(encode_chunk_pieces(root, index, data, compressed=compressed))
        if pieces:
            total = len(view)
            last = (len(pieces) - 1) * MAX_CHUNK_PIECE
            make = ChunkDataZ if compressed else ChunkData
            self.state.process(Side.US, make(bytes(root), index, last, total, view[last:]))
        return pieces

    # -- introspection
    @property
    def peer_capabilities(self) -> Capabilities | None:
        return self.state.capabilities[Side.THEM]

    @property
    def closed(self) -> bool:
        """Both sides said Goodbye."""
        return all(p is Phase.CLOSED for p in self.state.phase.values())
