"""Message bodies to bytes and back. Stream framing (length + kind) is added here too.

Stream layout of one message: ``length u32 BE | kind u8 | body``; ``length = 1 + len(body)``.
Every integer is big-endian and unsigned. A variable-length tail is always the rest of the
body, so no field carries its own length. ``encode_parts`` returns the ChunkData payload as a
separate buffer so the data path never copies it; ``decode_body`` hands it out as a memoryview.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence

from node.identity import to_checksum_address
from node.receipt import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    ReceiptDomain,
    ReceiptError,
    decode_receipt,
    encode_receipt,
)

from ._caps import Capabilities
from ._codes import decode_code
from ._errors import LocalProtocolError, MalformedMessage, UnsupportedVersion
from ._limits import (
    BODY_BOUNDS,
    BULK_HEADER_LEN,
    CAPS_LEN,
    CHUNK_DATA_HEADER_LEN,
    DOMAIN_LEN,
    MAX_AGENT_LEN,
    MAX_CHUNK_PIECE,
    MAX_CHUNK_SIZE,
    MAX_ERROR_TEXT,
    MAX_GOODBYE_TEXT,
    MAX_HAVE_BITFIELD,
    MAX_MANIFEST_LEN,
    MAX_PEERS_PER_MESSAGE,
    MAX_REQUEST_INDICES,
    MAX_ROOTS_PER_PAGE,
    NOISE_MAX_PLAINTEXT,
    PEER_ENTRY_LEN,
    PRICE_LEN,
    ROOT_LEN,
    SUPPORTED_VERSIONS,
    Kind,
)
from ._messages import (
    Announce,
    Buffer,
    Cancel,
    ChunkData,
    ChunkDataZ,
    ChunkRoots,
    Complete,
    ErrorMsg,
    GetChunkRoots,
    GetPeers,
    Goodbye,
    Have,
    HaveAll,
    Hello,
    ManifestMsg,
    Message,
    NotFound,
    PeerEntry,
    Peers,
    Ping,
    Pong,
    Price,
    Progress,
    ReceiptAck,
    ReceiptMsg,
    Request,
    Want,
)

_HEADER = struct.Struct(">IB")
_CHUNK_HEADER = struct.Struct(f">IB{ROOT_LEN}sIII")  # length, kind, root, index, offset, total
_CHUNK_FIELDS = struct.Struct(">III")
_ROOT_3U32 = struct.Struct(f">{ROOT_LEN}sIII")
_ROOT_2U32 = struct.Struct(f">{ROOT_LEN}sII")
_ROOT_U32 = struct.Struct(f">{ROOT_LEN}sI")
_ROOT_U64 = struct.Struct(f">{ROOT_LEN}sQ")
_PROGRESS = struct.Struct(f">{ROOT_LEN}sIQ")
_ERROR = struct.Struct(">HIIB")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")

# ---------------------------------------------------------------- local validation (encode)


def _root(root: bytes) -> bytes:
    if not isinstance(root, bytes | bytearray | memoryview) or len(root) != ROOT_LEN:
        raise LocalProtocolError("root must be 32 bytes")
    return bytes(root)


def _uint(value: int, bits: int, name: str) -> int:
    if not 0 <= value < 1 << bits:
        raise LocalProtocolError(f"{name}={value} does not fit u{bits}")
    return value


def _text(text: str, cap: int, name: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > cap:
        raise LocalProtocolError(f"{name} is {len(raw)} bytes, cap {cap}")
    return raw


def _indices(indices: Sequence[int], name: str) -> bytes:
    if not 1 <= len(indices) <= MAX_REQUEST_INDICES:
        raise LocalProtocolError(f"{name} needs 1..{MAX_REQUEST_INDICES} indices")
    if len(set(indices)) != len(indices):
        raise LocalProtocolError(f"{name} indices must be distinct")
    try:
        return struct.pack(f">{len(indices)}I", *indices)
    except struct.error:
        raise LocalProtocolError(f"{name} index does not fit u32") from None


# ---------------------------------------------------------------- encoders (body only)


def _enc_hello(m: Hello) -> bytes:
    if m.version not in SUPPORTED_VERSIONS:
        raise LocalProtocolError(f"cannot speak version {m.version}")
    return _U16.pack(m.version) + m.capabilities.to_bytes() + _text(m.agent, MAX_AGENT_LEN, "agent")


def _enc_goodbye(m: Goodbye) -> bytes:
    return _U16.pack(_uint(m.code, 16, "code")) + _text(m.reason, MAX_GOODBYE_TEXT, "reason")


def _enc_ping(m: Ping | Pong) -> bytes:
    return _U64.pack(_uint(m.nonce, 64, "nonce"))


def _enc_error(m: ErrorMsg) -> bytes:
    return _ERROR.pack(
        _uint(m.code, 16, "code"),
        _uint(m.retry_after_ms, 32, "retry_after_ms"),
        _uint(m.request_id, 32, "request_id"),
        _uint(m.ref_kind, 8, "ref_kind"),
    ) + _text(m.message, MAX_ERROR_TEXT, "message")


def _enc_root_only(m: Want | NotFound | HaveAll | Complete) -> bytes:
    return _root(m.root)


def _enc_manifest(m: ManifestMsg) -> bytes:
    if not 2 <= len(m.manifest) <= MAX_MANIFEST_LEN:
        raise LocalProtocolError(f"manifest must be 2..{MAX_MANIFEST_LEN} bytes")
    return _root(m.root) + bytes(m.manifest)


def _enc_get_roots(m: GetChunkRoots) -> bytes:
    if not 1 <= m.count <= MAX_ROOTS_PER_PAGE:
        raise LocalProtocolError(f"count must be 1..{MAX_ROOTS_PER_PAGE}")
    return _ROOT_2U32.pack(_root(m.root), _uint(m.start, 32, "start"), m.count)


def _enc_roots(m: ChunkRoots) -> bytes:
    n, rem = divmod(len(m.roots), ROOT_LEN)
    if rem or n > MAX_ROOTS_PER_PAGE:
        raise LocalProtocolError("roots must be a multiple of 32 bytes, at most 2048 roots")
    if m.start + n > m.total:
        raise LocalProtocolError("page runs past total")
    return _ROOT_2U32.pack(
        _root(m.root), _uint(m.start, 32, "start"), _uint(m.total, 32, "total")
    ) + bytes(m.roots)


def _enc_have(m: Have) -> bytes:
    if m.start % 8 or not 1 <= len(m.bitfield) <= MAX_HAVE_BITFIELD:
        raise LocalProtocolError("Have start must be a multiple of 8, bitfield 1..32768 bytes")
    return _ROOT_U32.pack(_root(m.root), _uint(m.start, 32, "start")) + bytes(m.bitfield)


def _enc_price(m: Price) -> bytes:
    body = _root(m.root) + _uint(m.price_per_gib, 128, "price_per_gib").to_bytes(16, "big")
    d = m.domain
    if d is None:
        return body
    if not isinstance(d, ReceiptDomain) or (d.name, d.version) != (DOMAIN_NAME, DOMAIN_VERSION):
        raise LocalProtocolError("Price domain must be a ReceiptDomain of this protocol")
    if not 1 <= d.chain_id < 1 << 256:
        raise LocalProtocolError("Price domain chain_id must be in 1..2**256-1")
    return body + d.chain_id.to_bytes(32, "big") + bytes.fromhex(d.verifying_contract[2:])


def _enc_request(m: Request) -> bytes:
    if not 1 <= m.request_id < 1 << 32:
        raise LocalProtocolError("request_id must be in 1..2**32-1")
    return _ROOT_U32.pack(_root(m.root), m.request_id) + _indices(m.indices, "Request")


def _enc_cancel(m: Cancel) -> bytes:
    return _root(m.root) + _indices(m.indices, "Cancel")


def _enc_progress(m: Progress) -> bytes:
    return _PROGRESS.pack(
        _root(m.root),
        _uint(m.chunks_verified, 32, "chunks_verified"),
        _uint(m.bytes_verified, 64, "bytes_verified"),
    )


def _enc_receipt(m: ReceiptMsg) -> bytes:
    try:
        return encode_receipt(m.receipt)
    except ReceiptError as exc:
        raise LocalProtocolError(f"bad receipt: {exc}") from None


def _enc_receipt_ack(m: ReceiptAck) -> bytes:
    return _ROOT_U64.pack(_root(m.root), _uint(m.nonce, 64, "nonce"))


def _enc_announce(m: Announce) -> bytes:
    return _root(m.root) + _U16.pack(_uint(m.port, 16, "port"))


def _enc_get_peers(m: GetPeers) -> bytes:
    return _root(m.root)


def _enc_peer_entry(e: PeerEntry) -> bytes:
    try:
        ip = ipaddress.ip_address(e.host)
    except ValueError:
        raise LocalProtocolError(f"peer host {e.host!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    address = str(e.address)
    if len(address) != 42 or not address.startswith("0x"):
        raise LocalProtocolError(f"peer address {address!r} is not 0x + 40 hex digits")
    try:
        raw = bytes.fromhex(address[2:])
    except ValueError:
        raise LocalProtocolError(f"peer address {address!r} is not 0x + 40 hex digits") from None
    if not 1 <= e.port <= 0xFFFF:
        raise LocalProtocolError(f"peer port {e.port} not in 1..65535")
    return ip.packed + _U16.pack(e.port) + raw


def _enc_peers(m: Peers) -> bytes:
    if len(m.peers) > MAX_PEERS_PER_MESSAGE:
        raise LocalProtocolError(f"Peers carries at most {MAX_PEERS_PER_MESSAGE} entries")
    if len({e.address.lower() for e in m.peers}) != len(m.peers):
        raise LocalProtocolError("Peers entries must have distinct addresses")
    return _root(m.root) + b"".join(_enc_peer_entry(e) for e in m.peers)


_ENCODERS: dict[type, Callable[..., bytes]] = {
    Hello: _enc_hello,
    Goodbye: _enc_goodbye,
    Ping: _enc_ping,
    Pong: _enc_ping,
    ErrorMsg: _enc_error,
    Want: _enc_root_only,
    ManifestMsg: _enc_manifest,
    NotFound: _enc_root_only,
    GetChunkRoots: _enc_get_roots,
    ChunkRoots: _enc_roots,
    Have: _enc_have,
    HaveAll: _enc_root_only,
    Price: _enc_price,
    Request: _enc_request,
    Cancel: _enc_cancel,
    Progress: _enc_progress,
    Complete: _enc_root_only,
    ReceiptMsg: _enc_receipt,
    ReceiptAck: _enc_receipt_ack,
    Announce: _enc_announce,
    GetPeers: _enc_get_peers,
    Peers: _enc_peers,
}


def chunk_data_header(
    root: bytes,
    index: int,
    offset: int,
    total_len: int,
    data_len: int,
    *,
    compressed: bool = False,
) -> bytes:
    """The 49 bytes that precede a ChunkData (or, ``compressed``, ChunkDataZ) payload on the
    stream (length, kind, fields)."""
    if not 1 <= data_len <= MAX_CHUNK_PIECE:
        raise LocalProtocolError(f"ChunkData piece must be 1..{MAX_CHUNK_PIECE} bytes")
    if offset < 0 or not offset + data_len <= total_len <= MAX_CHUNK_SIZE:
        raise LocalProtocolError("ChunkData piece must lie inside a chunk of <= 4 MiB")
    return _CHUNK_HEADER.pack(
        1 + CHUNK_DATA_HEADER_LEN + data_len,
        Kind.CHUNK_DATA_Z if compressed else Kind.CHUNK_DATA,
        _root(root),
        _uint(index, 32, "index"),
        offset,
        total_len,
    )


def encode_chunk_pieces(
    root: bytes, index: int, data: Buffer, *, compressed: bool = False
) -> list[bytes]:
    """A whole chunk (or, ``compressed``, its zstd frame) as ChunkData (ChunkDataZ) messages
    of at most :data:`MAX_CHUNK_PIECE` payload bytes, each laid out to be ONE Noise plaintext:
    the same bytes as :func:`encode` of each piece, with the fields checked once per chunk and
    no message object per piece. ``[]`` for empty ``data``."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    if total > MAX_CHUNK_SIZE:
        raise LocalProtocolError("ChunkData piece must lie inside a chunk of <= 4 MiB")
    head = (Kind.CHUNK_DATA_Z if compressed else Kind.CHUNK_DATA, _root(root))
    index = _uint(index, 32, "index")
    pack = _CHUNK_HEADER.pack
    join = b"".join
    out = []
    for offset in range(0, total, MAX_CHUNK_PIECE):
        piece = view[offset : offset + MAX_CHUNK_PIECE]
        length = 1 + CHUNK_DATA_HEADER_LEN + len(piece)
        out.append(join((pack(length, *head, index, offset, total), piece)))
    return out


def encode_chunk_bulk(root: bytes, index: int, data: Buffer) -> list[Buffer]:
    """A whole raw chunk as ONE ChunkData message laid out for a ``CapFlag.BULK`` peer
    (docs/protocol.md 5.14b): the 49-byte header as the first Noise plaintext, then the data,
    uncopied, cut into plaintexts of :data:`NOISE_MAX_PLAINTEXT` bytes (the last may be
    shorter). Only for chunks longer than one piece (:data:`MAX_CHUNK_PIECE`)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    if not MAX_CHUNK_PIECE < total <= MAX_CHUNK_SIZE:
        raise LocalProtocolError(f"a bulk chunk is {MAX_CHUNK_PIECE + 1}..{MAX_CHUNK_SIZE} bytes")
    length = 1 + CHUNK_DATA_HEADER_LEN + total
    index = _uint(index, 32, "index")
    head = _CHUNK_HEADER.pack(length, Kind.CHUNK_DATA, _root(root), index, 0, total)
    step = NOISE_MAX_PLAINTEXT
    return [head, *(view[i : i + step] for i in range(0, total, step))]


def decode_bulk_header(plaintext: Buffer) -> tuple[bytes, int, int] | None:
    """``(root, index, total)`` if ``plaintext`` is exactly a bulk ChunkData's header (49
    bytes: kind ChunkData, offset 0, ``length`` = 45 + ``total``, a ``total`` longer than one
    piece and at most 4 MiB), else ``None``: the caller decodes it the general way."""
    if len(plaintext) != BULK_HEADER_LEN:
        return None
    length, kind, root, index, offset, total = _CHUNK_HEADER.unpack_from(plaintext)
    if (
        kind != Kind.CHUNK_DATA
        or offset != 0
        or not MAX_CHUNK_PIECE < total <= MAX_CHUNK_SIZE
        or length != 1 + CHUNK_DATA_HEADER_LEN + total
    ):
        return None
    return root, index, total


def encode_parts(msg: Message) -> list[Buffer]:
    """Encode ``msg`` as buffers to send in order; ChunkData's payload is passed through
    uncopied as the second buffer."""
    if isinstance(msg, ChunkData):
        hdr = chunk_data_header(
            msg.root, msg.index, msg.offset, msg.total_len, len(msg.data), compressed=msg.compressed
        )
        return [hdr, msg.data]
    try:
        enc = _ENCODERS[type(msg)]
    except KeyError:
        raise LocalProtocolError(f"not a wire message: {type(msg).__name__}") from None
    body = enc(msg)
    lo, hi = BODY_BOUNDS[msg.KIND]
    if not lo <= len(body) <= hi:  # every encoder checks its fields; this guards the table
        raise LocalProtocolError(f"{msg.KIND.name} body of {len(body)} bytes out of bounds")
    return [_HEADER.pack(1 + len(body), msg.KIND) + body]


def encode(msg: Message) -> bytes:
    """Encode ``msg`` as one bytes object (copies ChunkData payloads; see ``encode_parts``)."""
    parts = encode_parts(msg)
    return parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[return-value]


# ---------------------------------------------------------------- decoders (body only)


def _bad(why: str) -> MalformedMessage:
    return MalformedMessage(why, recoverable=True)


def _utf8(raw: Buffer, name: str) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise _bad(f"{name} is not UTF-8") from None


def _dec_indices(raw: Buffer, name: str) -> tuple[int, ...]:
    n, rem = divmod(len(raw), 4)
    if rem or not 1 <= n <= MAX_REQUEST_INDICES:
        raise _bad(f"{name} indices must be 1..{MAX_REQUEST_INDICES} u32 values")
    out = struct.unpack(f">{n}I", raw)
    if len(set(out)) != n:
        raise _bad(f"{name} indices must be distinct")
    return out


def _dec_hello(b: memoryview) -> Hello:
    version = _U16.unpack_from(b)[0]
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(f"peer speaks version {version}", kind=Kind.HELLO)
    caps = Capabilities.from_bytes(b[2 : 2 + CAPS_LEN])
    return Hello(version, caps, _utf8(b[2 + CAPS_LEN :], "agent"))


def _dec_goodbye(b: memoryview) -> Goodbye:
    return Goodbye(decode_code(_U16.unpack_from(b)[0]), _utf8(b[2:], "reason"))


def _dec_ping(b: memoryview) -> Ping:
    return Ping(_U64.unpack(b)[0])


def _dec_pong(b: memoryview) -> Pong:
    return Pong(_U64.unpack(b)[0])


def _dec_error(b: memoryview) -> ErrorMsg:
    code, retry, req, ref = _ERROR.unpack_from(b)
    return ErrorMsg(decode_code(code), retry, req, ref, _utf8(b[_ERROR.size :], "message"))


def _dec_want(b: memoryview) -> Want:
    return Want(bytes(b))


def _dec_manifest(b: memoryview) -> ManifestMsg:
    return ManifestMsg(bytes(b[:ROOT_LEN]), bytes(b[ROOT_LEN:]))


def _dec_not_found(b: memoryview) -> NotFound:
    return NotFound(bytes(b))


def _dec_get_roots(b: memoryview) -> GetChunkRoots:
    root, start, count = _ROOT_2U32.unpack(b)
    if not 1 <= count <= MAX_ROOTS_PER_PAGE:
        raise _bad(f"GetChunkRoots count must be 1..{MAX_ROOTS_PER_PAGE}")
    return GetChunkRoots(root, start, count)


def _dec_roots(b: memoryview) -> ChunkRoots:
    root, start, total = _ROOT_2U32.unpack_from(b)
    roots = b[_ROOT_2U32.size :]
    n, rem = divmod(len(roots), ROOT_LEN)
    if rem:
        raise _bad("ChunkRoots length is not a multiple of 32")
    if start + n > total:
        raise _bad("ChunkRoots page runs past total")
    return ChunkRoots(root, start, total, roots)


def _dec_have(b: memoryview) -> Have:
    root, start = _ROOT_U32.unpack_from(b)
    if start % 8:
        raise _bad("Have start must be a multiple of 8")
    return Have(root, start, bytes(b[_ROOT_U32.size :]))


def _dec_have_all(b: memoryview) -> HaveAll:
    return HaveAll(bytes(b))


_PRICE_END = ROOT_LEN + PRICE_LEN


def _dec_price(b: memoryview) -> Price:
    root, price = bytes(b[:ROOT_LEN]), int.from_bytes(b[ROOT_LEN:_PRICE_END], "big")
    if len(b) == _PRICE_END:
        return Price(root, price)
    if len(b) != _PRICE_END + DOMAIN_LEN:
        raise _bad(f"Price body must be {_PRICE_END} or {_PRICE_END + DOMAIN_LEN} bytes")
    chain_id = int.from_bytes(b[_PRICE_END : _PRICE_END + 32], "big")
    if chain_id == 0:
        raise _bad("Price domain chainId 0")
    contract = bytes(b[_PRICE_END + 32 :])
    return Price(root, price, ReceiptDomain(chain_id, "0x" + contract.hex()))


def _dec_request(b: memoryview) -> Request:
    root, req = _ROOT_U32.unpack_from(b)
    if req == 0:
        raise _bad("request_id 0 is reserved")
    return Request(root, req, _dec_indices(b[_ROOT_U32.size :], "Request"))


def _dec_chunk_data(b: memoryview) -> ChunkData:
    index, offset, total = _CHUNK_FIELDS.unpack_from(b, ROOT_LEN)
    data = b[CHUNK_DATA_HEADER_LEN:]
    if offset + len(data) > total or total > MAX_CHUNK_SIZE:
        raise _bad("ChunkData piece lies outside a chunk of <= 4 MiB")
    return ChunkData(bytes(b[:ROOT_LEN]), index, offset, total, data)


def _dec_chunk_data_z(b: memoryview) -> ChunkDataZ:
    piece = _dec_chunk_data(b)
    return ChunkDataZ(piece.root, piece.index, piece.offset, piece.total_len, piece.data)


def decode_chunk_piece(plaintext: Buffer) -> ChunkData | None:
    """``plaintext`` as ONE whole, well-formed ChunkData (or ChunkDataZ) message, or ``None``.

    The receiver's fast path for the common case (a sender puts each ChunkData in a Noise
    message of its own, section 3): the 49-byte header is parsed in one ``unpack_from`` and
    ``data`` is a view of ``plaintext``. ``None`` means "not that case" (another kind, several
    messages, a partial one, or a field out of range); the caller then feeds ``plaintext`` to
    the general decoder, which accepts it or raises the proper error.
    """
    view = memoryview(plaintext)
    if view.format != "B" or view.ndim != 1:
        return None
    n = len(view)
    data_len = n - _CHUNK_HEADER.size
    if not 1 <= data_len <= MAX_CHUNK_PIECE:
        return None
    length, kind, root, index, offset, total = _CHUNK_HEADER.unpack_from(view)
    if length != n - 4 or (kind != Kind.CHUNK_DATA and kind != Kind.CHUNK_DATA_Z):
        return None
    if offset + data_len > total or total > MAX_CHUNK_SIZE:
        return None
    if not view.readonly:  # the caller may reuse a mutable buffer; keep the general rule
        view = memoryview(bytes(view))
    make = ChunkData if kind == Kind.CHUNK_DATA else ChunkDataZ
    return make(root, index, offset, total, view[_CHUNK_HEADER.size :])


def _dec_cancel(b: memoryview) -> Cancel:
    return Cancel(bytes(b[:ROOT_LEN]), _dec_indices(b[ROOT_LEN:], "Cancel"))


def _dec_progress(b: memoryview) -> Progress:
    return Progress(*_PROGRESS.unpack(b))


def _dec_complete(b: memoryview) -> Complete:
    return Complete(bytes(b))


def _dec_receipt(b: memoryview) -> ReceiptMsg:
    try:
        return ReceiptMsg(decode_receipt(bytes(b)))
    except ReceiptError as exc:
        raise _bad(f"Receipt: {exc}") from None


def _dec_receipt_ack(b: memoryview) -> ReceiptAck:
    return ReceiptAck(*_ROOT_U64.unpack(b))


def _dec_announce(b: memoryview) -> Announce:
    return Announce(bytes(b[:ROOT_LEN]), _U16.unpack_from(b, ROOT_LEN)[0])


def _dec_get_peers(b: memoryview) -> GetPeers:
    return GetPeers(bytes(b))


def _dec_peer_entry(raw: bytes) -> PeerEntry:
    ip6 = ipaddress.IPv6Address(raw[:16])
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ip6.ipv4_mapped or ip6
    if ip.is_unspecified or ip.is_multicast or ip == _BROADCAST:
        raise _bad(f"Peers entry has an unusable IP address {ip}")
    port = _U16.unpack_from(raw, 16)[0]
    if port == 0:
        raise _bad("Peers entry has port 0")
    address = raw[18:]
    if not any(address):
        raise _bad("Peers entry has the zero address")
    return PeerEntry(str(ip), port, to_checksum_address(address))


def _dec_peers(b: memoryview) -> Peers:
    n, rem = divmod(len(b) - ROOT_LEN, PEER_ENTRY_LEN)
    if rem:
        raise _bad(f"Peers entries must be {PEER_ENTRY_LEN} bytes each")
    raw = bytes(b[ROOT_LEN:])
    entries = tuple(
        _dec_peer_entry(raw[i * PEER_ENTRY_LEN : (i + 1) * PEER_ENTRY_LEN]) for i in range(n)
    )
    if len({e.address for e in entries}) != n:
        raise _bad("Peers entries must have distinct addresses")
    return Peers(bytes(b[:ROOT_LEN]), entries)


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

_DECODERS: dict[Kind, Callable[[memoryview], Message]] = {
    Kind.HELLO: _dec_hello,
    Kind.GOODBYE: _dec_goodbye,
    Kind.PING: _dec_ping,
    Kind.PONG: _dec_pong,
    Kind.ERROR: _dec_error,
    Kind.WANT: _dec_want,
    Kind.MANIFEST: _dec_manifest,
    Kind.NOT_FOUND: _dec_not_found,
    Kind.GET_CHUNK_ROOTS: _dec_get_roots,
    Kind.CHUNK_ROOTS: _dec_roots,
    Kind.HAVE: _dec_have,
    Kind.HAVE_ALL: _dec_have_all,
    Kind.PRICE: _dec_price,
    Kind.REQUEST: _dec_request,
    Kind.CHUNK_DATA: _dec_chunk_data,
    Kind.CHUNK_DATA_Z: _dec_chunk_data_z,
    Kind.CANCEL: _dec_cancel,
    Kind.PROGRESS: _dec_progress,
    Kind.COMPLETE: _dec_complete,
    Kind.RECEIPT: _dec_receipt,
    Kind.RECEIPT_ACK: _dec_receipt_ack,
    Kind.ANNOUNCE: _dec_announce,
    Kind.GET_PEERS: _dec_get_peers,
    Kind.PEERS: _dec_peers,
}
assert set(_DECODERS) == set(BODY_BOUNDS) == set(Kind)


def decode_body(kind: Kind, body: memoryview) -> Message:
    """Decode a body whose length is already inside ``BODY_BOUNDS[kind]``.

    Raises ``MalformedMessage`` (recoverable: the frame was consumed) for bad field values and
    ``UnsupportedVersion`` for a Hello of an unknown version.
    """
    try:
        return _DECODERS[kind](body)
    except MalformedMessage as exc:
        exc.recoverable = True
        exc.kind = kind
        raise
    except struct.error as exc:  # lengths are pre-checked; this is a belt-and-braces net
        raise MalformedMessage(f"{kind.name}: {exc}", recoverable=True, kind=kind) from None
