"""Messages on the decrypted stream: small frozen dataclasses, one per kind.

Each says who sends it and when. Byte layouts live in ``_codec.py`` and docs/protocol.md.
Fields are validated when encoded (``LocalProtocolError``) and when decoded
(``RemoteProtocolError``), not on construction, so decoding the data path stays cheap.
``root`` is always a 32-byte content root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from node.receipt import ReceiptDomain, SignedReceipt

from ._caps import Capabilities
from ._codes import ErrorCode
from ._limits import PROTOCOL_VERSION, ROOT_LEN, Kind

Buffer = bytes | memoryview


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of each side after the handshake: version, limits, software name.

    Both sides send it at once; nothing but Error/Goodbye may precede it. ``capabilities``
    here are authoritative for the session (they repeat the handshake payload's).
    """

    KIND: ClassVar[Kind] = Kind.HELLO
    version: int = PROTOCOL_VERSION
    capabilities: Capabilities = field(default_factory=Capabilities)
    agent: str = ""


@dataclass(frozen=True, slots=True)
class Goodbye:
    """Last message a side sends before closing; ``code`` is OK or why (e.g. SHUTTING_DOWN)."""

    KIND: ClassVar[Kind] = Kind.GOODBYE
    code: ErrorCode | int = ErrorCode.OK
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness / RTT probe; the peer answers ``Pong`` with the same nonce."""

    KIND: ClassVar[Kind] = Kind.PING
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to ``Ping``, echoing its nonce."""

    KIND: ClassVar[Kind] = Kind.PONG
    nonce: int


@dataclass(frozen=True, slots=True)
class ErrorMsg:
    """A typed error. ``request_id`` (0 = none) and ``ref_kind`` (0 = none) say what it answers.

    Sent in answer to a request that cannot be served (``BUSY`` with ``retry_after_ms``,
    ``RATE_LIMITED``...) or to a bad message (``MALFORMED``, ``UNKNOWN_KIND``...). An Error
    with a ``request_id`` ends that whole request.
    """

    KIND: ClassVar[Kind] = Kind.ERROR
    code: ErrorCode | int
    retry_after_ms: int = 0
    request_id: int = 0
    ref_kind: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Want:
    """Receiver asks whether the peer holds ``root``; answered by ManifestMsg or NotFound."""

    KIND: ClassVar[Kind] = Kind.WANT
    root: bytes


@dataclass(frozen=True, slots=True)
class ManifestMsg:
    """Answer to ``Want``: the canonical JSON bytes of ``node.content.Manifest`` for ``root``."""

    KIND: ClassVar[Kind] = Kind.MANIFEST
    root: bytes
    manifest: bytes


@dataclass(frozen=True, slots=True)
class NotFound:
    """The content is not held here; answers Want, GetChunkRoots or Request and ends them."""

    KIND: ClassVar[Kind] = Kind.NOT_FOUND
    root: bytes


@dataclass(frozen=True, slots=True)
class GetChunkRoots:
    """Receiver asks for chunk roots ``[start, start + count)``; ``count`` <= 2048."""

    KIND: ClassVar[Kind] = Kind.GET_CHUNK_ROOTS
    root: bytes
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class ChunkRoots:
    """One page of the chunk-root list: ``roots`` is 32 bytes per chunk from ``start``.

    ``total`` is the content's chunk count. A page may be shorter than asked at the end.
    """

    KIND: ClassVar[Kind] = Kind.CHUNK_ROOTS
    root: bytes
    start: int
    total: int
    roots: Buffer

    def root_list(self) -> list[bytes]:
        r = bytes(self.roots)
        return [r[i : i + ROOT_LEN] for i in range(0, len(r), ROOT_LEN)]


@dataclass(frozen=True, slots=True)
class Have:
    """Provider announces which chunks of ``root`` it holds, from chunk ``start`` (a multiple
    of 8). Bit ``7 - (i % 8)`` of byte ``i // 8`` is chunk ``start + i`` (MSB first)."""

    KIND: ClassVar[Kind] = Kind.HAVE
    root: bytes
    start: int
    bitfield: bytes


@dataclass(frozen=True, slots=True)
class HaveAll:
    """Provider holds every chunk of ``root``."""

    KIND: ClassVar[Kind] = Kind.HAVE_ALL
    root: bytes


@dataclass(frozen=True, slots=True)
class Price:
    """Provider states what it charges for ``root``, in wei per GiB (u128), before any chunk.

    Sent right after ``ManifestMsg`` and before Have/HaveAll. The receiver pays at least
    ``node.receipt.payment_for(bytes, price_per_gib)`` in each receipt to this provider, and
    drops a provider whose price is above its own maximum.

    ``domain``: the EIP-712 domain (``chainId``, ``verifyingContract``; name and version are
    the protocol's) under which this provider accepts receipts, or ``None`` when it takes no
    receipts (then a receiver sends it none). On the wire: absent (48-byte body) or present
    (100 bytes); any other length, or ``chainId`` 0, is ``MALFORMED``.
    """

    KIND: ClassVar[Kind] = Kind.PRICE
    root: bytes
    price_per_gib: int
    domain: ReceiptDomain | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """Receiver asks for whole chunks ``indices`` of ``root`` (1..1024 of them).

    ``request_id`` (non-zero, unique among this side's open requests) correlates errors.
    Answered by ChunkData pieces per chunk, or by NotFound / an Error carrying the id.
    """

    KIND: ClassVar[Kind] = Kind.REQUEST
    root: bytes
    request_id: int
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChunkData:
    """One piece of a requested chunk: bytes ``[offset, offset + len(data))`` of chunk
    ``index``, whose full length is ``total_len``. The piece with ``offset + len(data) ==
    total_len`` is the last; pieces of one chunk are sent in order. ``data`` is a memoryview
    into the decoder's input when decoded (valid as long as the caller keeps it).
    ``compressed`` is False here and True for :class:`ChunkDataZ`."""

    KIND: ClassVar[Kind] = Kind.CHUNK_DATA
    compressed: ClassVar[bool] = False
    root: bytes
    index: int
    offset: int
    total_len: int
    data: Buffer

    @property
    def is_last(self) -> bool:
        return self.offset + len(self.data) == self.total_len


@dataclass(frozen=True, slots=True)
class ChunkDataZ(ChunkData):
    """A piece of a chunk sent compressed (only to a peer whose Hello has ``COMPRESS``): the
    pieces carry ONE zstd frame of the whole chunk instead of its bytes, so ``offset`` and
    ``total_len`` count frame bytes (``total_len`` is the frame's length, at most the chunk's).
    The frame declares the chunk's length as its content size; the receiver decompresses and
    then verifies the chunk root as for ChunkData (docs/protocol.md 5.14a). A ``ChunkData``
    for everything else (outstanding indices, ``is_last``)."""

    KIND: ClassVar[Kind] = Kind.CHUNK_DATA_Z
    compressed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Cancel:
    """Receiver no longer wants these chunks (got them elsewhere, or stopping). Pieces already
    in flight may still arrive and are dropped."""

    KIND: ClassVar[Kind] = Kind.CANCEL
    root: bytes
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """Receiver reports how much of ``root`` it has verified from this peer so far."""

    KIND: ClassVar[Kind] = Kind.PROGRESS
    root: bytes
    chunks_verified: int
    bytes_verified: int


@dataclass(frozen=True, slots=True)
class Complete:
    """Receiver has all of ``root`` verified; a ``ReceiptMsg`` follows if both sign receipts."""

    KIND: ClassVar[Kind] = Kind.COMPLETE
    root: bytes


@dataclass(frozen=True, slots=True)
class ReceiptMsg:
    """Receiver hands the provider a signed EIP-712 receipt (``node.receipt``) for bytes it
    received and verified; answered by ReceiptAck, or Error BAD_RECEIPT."""

    KIND: ClassVar[Kind] = Kind.RECEIPT
    receipt: SignedReceipt


@dataclass(frozen=True, slots=True)
class ReceiptAck:
    """Provider accepted the receipt (root, nonce); a bad one gets Error BAD_RECEIPT instead."""

    KIND: ClassVar[Kind] = Kind.RECEIPT_ACK
    root: bytes
    nonce: int


# -- the swarm extension (docs/protocol.md 5.20-5.22; peers with CapFlag.SWARM) -------------


@dataclass(frozen=True, slots=True)
class Announce:
    """Receiver -> provider, once per root, after it has read the provider's answer to Want:
    it fetches ``root`` and accepts connections on ``port`` (0: it does not) at the IP address
    the provider sees it connect from. It subscribes this connection to Have updates for
    ``root`` (the provider sends Have pages for chunks it gains, then HaveAll)."""

    KIND: ClassVar[Kind] = Kind.ANNOUNCE
    root: bytes
    port: int


@dataclass(frozen=True, slots=True)
class GetPeers:
    """Receiver asks for other peers that fetch or hold ``root``; answered by ``Peers`` (or
    ``Error(RATE_LIMITED, retry_after_ms)`` when asked again too soon)."""

    KIND: ClassVar[Kind] = Kind.GET_PEERS
    root: bytes


@dataclass(frozen=True, slots=True)
class PeerEntry:
    """One peer in ``Peers``: where it listens (``host`` an IPv4 or IPv6 address in text form,
    ``port`` 1..65535) and the Ethereum ``address`` (checksummed) the dialler pins."""

    host: str
    port: int
    address: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.address}"


@dataclass(frozen=True, slots=True)
class Peers:
    """Answer to ``GetPeers``: up to 50 peers recently seen fetching or holding ``root``
    (hostile data: the receiver verifies each by dialling it, pinning its address)."""

    KIND: ClassVar[Kind] = Kind.PEERS
    root: bytes
    peers: tuple[PeerEntry, ...] = ()


Message = (
    Hello
    | Goodbye
    | Ping
    | Pong
    | ErrorMsg
    | Want
    | ManifestMsg
    | NotFound
    | GetChunkRoots
    | ChunkRoots
    | Have
    | HaveAll
    | Price
    | Request
    | ChunkData
    | ChunkDataZ
    | Cancel
    | Progress
    | Complete
    | ReceiptMsg
    | ReceiptAck
    | Announce
    | GetPeers
    | Peers
)

MESSAGE_TYPES: tuple[type[Message], ...] = (
    Hello,
    Goodbye,
    Ping,
    Pong,
    ErrorMsg,
    Want,
    ManifestMsg,
    NotFound,
    GetChunkRoots,
    ChunkRoots,
    Have,
    HaveAll,
    Price,
    Request,
    ChunkData,
    ChunkDataZ,
    Cancel,
    Progress,
    Complete,
    ReceiptMsg,
    ReceiptAck,
    Announce,
    GetPeers,
    Peers,
)
