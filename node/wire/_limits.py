"""Protocol constants: version, message kinds, and the caps every length is checked against.

All sizes are in bytes. A message on the decrypted stream is ``u32 length | u8 kind | body``
where ``length`` counts the kind byte plus the body; ``MAX_BODY[kind]`` caps the body per kind
and is enforced from the 5-byte header alone, before any buffer is grown for the body.
"""

from __future__ import annotations

import enum
from typing import Final

from node import receipt

PROTOCOL_VERSION: Final = 1
"""The one protocol version this code speaks (u16 on the wire)."""
SUPPORTED_VERSIONS: Final = frozenset({1})

PROLOGUE: Final = b"bcai/1"
"""Noise prologue; both sides must use it or the handshake fails."""

NOISE_MAX_MESSAGE: Final = 65535
"""Largest Noise message (handshake or transport), as fixed by the Noise spec."""
NOISE_TAG_LEN: Final = 16
NOISE_MAX_PLAINTEXT: Final = NOISE_MAX_MESSAGE - NOISE_TAG_LEN
"""Largest plaintext one Noise transport message can carry (65519)."""
FRAME_HEADER_LEN: Final = 2
"""Each Noise message on TCP is preceded by a u16 big-endian length."""

MESSAGE_HEADER_LEN: Final = 5
"""u32 length + u8 kind."""

ROOT_LEN: Final = 32
ADDRESS_LEN: Final = 20
SIGNATURE_LEN: Final = 65

MAX_CHUNK_SIZE: Final = 4 * 1024 * 1024
"""Largest chunk the design allows (4 MiB); caps ``ChunkData.total_len``."""
CHUNK_DATA_HEADER_LEN: Final = ROOT_LEN + 4 + 4 + 4
"""Fixed part of a ChunkData body: root, index, offset, total_len (44 bytes)."""
MAX_CHUNK_PIECE: Final = NOISE_MAX_PLAINTEXT - MESSAGE_HEADER_LEN - CHUNK_DATA_HEADER_LEN
"""Largest ``ChunkData.data`` (65470): one whole ChunkData message fits one Noise message."""

BULK_HEADER_LEN: Final = MESSAGE_HEADER_LEN + CHUNK_DATA_HEADER_LEN
"""A bulk ChunkData's 49 header bytes, alone in their Noise message (``CapFlag.BULK``,
docs/protocol.md 5.14b); its data follows in whole Noise messages."""

MAX_ROOTS_PER_PAGE: Final = 2048
"""Largest ``count`` in GetChunkRoots / number of roots in one ChunkRoots page."""
MAX_REQUEST_INDICES: Final = 1024
"""Most chunk indices in one Request or Cancel."""
MAX_HAVE_BITFIELD: Final = 32 * 1024
"""Largest Have bitfield (262144 chunks per message; larger contents send several pages)."""
MAX_MANIFEST_LEN: Final = 32 * 1024
MAX_AGENT_LEN: Final = 128
MAX_ERROR_TEXT: Final = 512
MAX_GOODBYE_TEXT: Final = 256
RECEIPT_LEN: Final = receipt.WIRE_SIZE
"""Signed receipt in ``node.receipt``'s compact form (182 bytes, format version 2 first)."""
PRICE_LEN: Final = 16
"""``Price.price_per_gib``: u128, wei per GiB (2**30 bytes)."""
DOMAIN_LEN: Final = 32 + ADDRESS_LEN
"""``Price.domain``, when present: EIP-712 ``chainId`` u256 + ``verifyingContract`` (52)."""

PEER_ENTRY_LEN: Final = 16 + 2 + ADDRESS_LEN
"""One ``Peers`` entry: IPv6 address (IPv4 as ``::ffff:a.b.c.d``), port u16, Ethereum address."""
MAX_PEERS_PER_MESSAGE: Final = 50
"""Most entries in one ``Peers`` message (the swarm extension, docs/protocol.md 5.20)."""

DEFAULT_MAX_OUTSTANDING: Final = 256
"""Default number of chunk indices a node lets a peer have requested and not yet served."""


class Kind(enum.IntEnum):
    """Message kind byte. Numbers are part of the wire format and never reused."""

    HELLO = 0x01
    GOODBYE = 0x02
    PING = 0x03
    PONG = 0x04
    ERROR = 0x05
    WANT = 0x10
    MANIFEST = 0x11
    NOT_FOUND = 0x12
    GET_CHUNK_ROOTS = 0x13
    CHUNK_ROOTS = 0x14
    HAVE = 0x15
    HAVE_ALL = 0x16
    PRICE = 0x17
    REQUEST = 0x20
    CHUNK_DATA = 0x21
    CHUNK_DATA_Z = 0x25
    CANCEL = 0x22
    PROGRESS = 0x23
    COMPLETE = 0x24
    RECEIPT = 0x30
    RECEIPT_ACK = 0x31
    ANNOUNCE = 0x40
    GET_PEERS = 0x41
    PEERS = 0x42


CAPS_LEN: Final = 4 + 4 + 2
"""Capabilities: flags u32, max_message_size u32, max_outstanding u16."""

# (min body, max body) per kind; the body excludes the kind byte.
BODY_BOUNDS: Final[dict[Kind, tuple[int, int]]] = {
    Kind.HELLO: (2 + CAPS_LEN, 2 + CAPS_LEN + MAX_AGENT_LEN),
    Kind.GOODBYE: (2, 2 + MAX_GOODBYE_TEXT),
    Kind.PING: (8, 8),
    Kind.PONG: (8, 8),
    Kind.ERROR: (2 + 4 + 4 + 1, 2 + 4 + 4 + 1 + MAX_ERROR_TEXT),
    Kind.WANT: (ROOT_LEN, ROOT_LEN),
    Kind.MANIFEST: (ROOT_LEN + 2, ROOT_LEN + MAX_MANIFEST_LEN),
    Kind.NOT_FOUND: (ROOT_LEN, ROOT_LEN),
    Kind.GET_CHUNK_ROOTS: (ROOT_LEN + 8, ROOT_LEN + 8),
    Kind.CHUNK_ROOTS: (ROOT_LEN + 8, ROOT_LEN + 8 + ROOT_LEN * MAX_ROOTS_PER_PAGE),
    Kind.HAVE: (ROOT_LEN + 4 + 1, ROOT_LEN + 4 + MAX_HAVE_BITFIELD),
    Kind.HAVE_ALL: (ROOT_LEN, ROOT_LEN),
    Kind.PRICE: (ROOT_LEN + PRICE_LEN, ROOT_LEN + PRICE_LEN + DOMAIN_LEN),
    Kind.REQUEST: (ROOT_LEN + 4 + 4, ROOT_LEN + 4 + 4 * MAX_REQUEST_INDICES),
    Kind.CHUNK_DATA: (CHUNK_DATA_HEADER_LEN + 1, CHUNK_DATA_HEADER_LEN + MAX_CHUNK_PIECE),
    Kind.CHUNK_DATA_Z: (CHUNK_DATA_HEADER_LEN + 1, CHUNK_DATA_HEADER_LEN + MAX_CHUNK_PIECE),
    Kind.CANCEL: (ROOT_LEN + 4, ROOT_LEN + 4 * MAX_REQUEST_INDICES),
    Kind.PROGRESS: (ROOT_LEN + 4 + 8, ROOT_LEN + 4 + 8),
    Kind.COMPLETE: (ROOT_LEN, ROOT_LEN),
    Kind.RECEIPT: (RECEIPT_LEN, RECEIPT_LEN),
    Kind.RECEIPT_ACK: (ROOT_LEN + 8, ROOT_LEN + 8),
    Kind.ANNOUNCE: (ROOT_LEN + 2, ROOT_LEN + 2),
    Kind.GET_PEERS: (ROOT_LEN, ROOT_LEN),
    Kind.PEERS: (ROOT_LEN, ROOT_LEN + PEER_ENTRY_LEN * MAX_PEERS_PER_MESSAGE),
}

MAX_MESSAGE_LEN: Final = 1 + max(hi for _lo, hi in BODY_BOUNDS.values())
"""Largest ``length`` field any v1 message can have (ChunkRoots: 65577). A node advertises
``max_message_size >= MAX_MESSAGE_LEN``; unknown kinds longer than the advertised size are
``TOO_LARGE``, shorter ones are skipped as ``UNKNOWN_KIND``."""
