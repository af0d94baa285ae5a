"""``node.wire``: the bcai-transfer wire protocol, sans-IO. Spec: docs/protocol.md.

Layout (private modules, re-exported here):

- ``_limits``     version, message kinds, per-kind length caps
- ``_codes``      ``ErrorCode`` (stable wire numbers)
- ``_errors``     exceptions: ``WireError`` > ``LocalProtocolError`` / ``RemoteProtocolError``
- ``_caps``       ``Capabilities`` advertised in the handshake and in Hello
- ``_identity``   the Noise handshake payload binding an Ethereum address to the static key
- ``_messages``   one frozen dataclass per message kind
- ``_codec``      message <-> bytes (``encode``, ``encode_parts``, ``decode_body``)
- ``_buffer``     receive buffer with commit/rollback and zero-copy reads
- ``_frames``     ``u16 length | Noise message`` framing on TCP (``FrameDecoder``)
- ``_decoder``    ``MessageDecoder``: decrypted stream -> messages, caps checked first
- ``_state``      which message is legal when, as data (``ProtocolState``)
- ``_connection`` ``WireConnection``: decoder + encoder + state for one peer
- ``_compress``   per-chunk zstd: the guarded codec, the auto-off policy, the level tuner

Receipts (EIP-712 struct, signing, 182-byte form v2) live in ``node.receipt``; ``ReceiptMsg``
carries them. Nothing here touches sockets, clocks or threads; ``node.transport`` drives it
over TCP.
"""

from ._buffer import ReceiveBuffer as ReceiveBuffer
from ._caps import DEFAULT_FLAGS as DEFAULT_FLAGS
from ._caps import Capabilities as Capabilities
from ._caps import CapFlag as CapFlag
from ._codec import chunk_data_header as chunk_data_header
from ._codec import decode_body as decode_body
from ._codec import decode_chunk_piece as decode_chunk_piece
from ._codec import encode as encode
from ._codec import encode_parts as encode_parts
from ._codes import ErrorCode as ErrorCode
from ._codes import decode_code as decode_code
from ._compress import ChunkCodec as ChunkCodec
from ._compress import CompressedChunkError as CompressedChunkError
from ._compress import CompressedSizeMismatch as CompressedSizeMismatch
from ._compress import CompressionPolicy as CompressionPolicy
from ._compress import CompressPlan as CompressPlan
from ._compress import CorruptCompressedChunk as CorruptCompressedChunk
from ._compress import LevelTuner as LevelTuner
from ._connection import WireConnection as WireConnection
from ._decoder import MessageDecoder as MessageDecoder
from ._errors import BadSignature as BadSignature
from ._errors import IdentityError as IdentityError
from ._errors import IdentityMismatch as IdentityMismatch
from ._errors import IdentityVersionError as IdentityVersionError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MalformedIdentity as MalformedIdentity
from ._errors import MalformedMessage as MalformedMessage
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import UnknownKind as UnknownKind
from ._errors import UnsupportedVersion as UnsupportedVersion
from ._errors import WireError as WireError
from ._frames import FrameDecoder as FrameDecoder
from ._frames import MalformedFrame as MalformedFrame
from ._frames import encode_frame as encode_frame
from ._frames import frame_header as frame_header
from ._identity import IDENTITY_DOMAIN as IDENTITY_DOMAIN
from ._identity import IDENTITY_PAYLOAD_LEN as IDENTITY_PAYLOAD_LEN
from ._identity import PeerIdentity as PeerIdentity
from ._identity import make_identity_payload as make_identity_payload
from ._identity import verify_identity_payload as verify_identity_payload
from ._limits import BODY_BOUNDS as BODY_BOUNDS
from ._limits import BULK_HEADER_LEN as BULK_HEADER_LEN
from ._limits import MAX_CHUNK_PIECE as MAX_CHUNK_PIECE
from ._limits import MAX_MESSAGE_LEN as MAX_MESSAGE_LEN
from ._limits import MAX_PEERS_PER_MESSAGE as MAX_PEERS_PER_MESSAGE
from ._limits import MAX_REQUEST_INDICES as MAX_REQUEST_INDICES
from ._limits import MAX_ROOTS_PER_PAGE as MAX_ROOTS_PER_PAGE
from ._limits import NOISE_MAX_MESSAGE as NOISE_MAX_MESSAGE
from ._limits import NOISE_MAX_PLAINTEXT as NOISE_MAX_PLAINTEXT
from ._limits import PROLOGUE as PROLOGUE
from ._limits import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._limits import SUPPORTED_VERSIONS as SUPPORTED_VERSIONS
from ._limits import Kind as Kind
from ._messages import MESSAGE_TYPES as MESSAGE_TYPES
from ._messages import Announce as Announce
from ._messages import Cancel as Cancel
from ._messages import ChunkData as ChunkData
from ._messages import ChunkDataZ as ChunkDataZ
from ._messages import ChunkRoots as ChunkRoots
from ._messages import Complete as Complete
from ._messages import ErrorMsg as ErrorMsg
from ._messages import GetChunkRoots as GetChunkRoots
from ._messages import GetPeers as GetPeers
from ._messages import Goodbye as Goodbye
from ._messages import Have as Have
from ._messages import HaveAll as HaveAll
from ._messages import Hello as Hello
from ._messages import ManifestMsg as ManifestMsg
from ._messages import Message as Message
from ._messages import NotFound as NotFound
from ._messages import PeerEntry as PeerEntry
from ._messages import Peers as Peers
from ._messages import Ping as Ping
from ._messages import Pong as Pong
from ._messages import Price as Price
from ._messages import Progress as Progress
from ._messages import ReceiptAck as ReceiptAck
from ._messages import ReceiptMsg as ReceiptMsg
from ._messages import Request as Request
from ._messages import Want as Want
from ._sentinels import NEED_DATA as NEED_DATA
from ._sentinels import PEER_CLOSED as PEER_CLOSED
from ._sentinels import Sentinel as Sentinel
from ._state import ALLOWED as ALLOWED
from ._state import Phase as Phase
from ._state import ProtocolState as ProtocolState
from ._state import Side as Side
