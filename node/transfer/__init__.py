"""The transfer engine: fetch content from peers into the store, serve it to peers.

Layout:

- sans-IO core (no sockets, no clocks; ``now`` is an argument):
  ``_scheduler`` (which chunk from which peer: windows, stalls, endgame, failures),
  ``_window`` (per-peer AIMD window on outstanding bytes), ``_backoff`` (full jitter),
  ``_breaker`` (per-peer circuit breaker), ``_bucket`` (token bucket for ``--limit-rate``),
  ``_shaper`` (node caps and priority shares: ``FairQueue``, with the trio ``Shaper``/``Lane``),
  ``_progress`` (speed/ETA), ``_rootlist`` (O(log n) chunk-root list check), ``_bitmap``
- trio drivers: ``_fetch`` (receiver), ``_provider`` (serving side), ``_node`` (serve_node)
- ``_receipts``: the provider's durable ReceiptBox outbox (LevelDB)
- ``_acceptance``: which receipts a provider accepts (per-connection credit, sans-IO)
- ``_errors``: TransferError > LocalTransferError / RemoteTransferError
- ``_buffers``: page-aligned chunk buffers kept between fetches (``CHUNK_BUFFERS``)
- ``_observer``: ``TransferObserver`` hooks (metrics) called by ``_fetch`` and ``_provider``
- ``_swarm``: peer exchange, Have updates and the origin-sparing scheduler (sans-IO parts and
  the glue the fetch and the provider call)

See docs/transfer.md.
"""

from ._acceptance import DEFAULT_MAX_SKEW as DEFAULT_MAX_SKEW
from ._acceptance import REFUSAL_REASONS as REFUSAL_REASONS
from ._acceptance import ConnectionCredit as ConnectionCredit
from ._acceptance import ReceiptPolicy as ReceiptPolicy
from ._acceptance import ReceiptRefused as ReceiptRefused
from ._backoff import Backoff as Backoff
from ._bitmap import Bitmap as Bitmap
from ._breaker import CircuitBreaker as CircuitBreaker
from ._bucket import TokenBucket as TokenBucket
from ._bucket import parse_rate as parse_rate
from ._buffers import POOL as CHUNK_BUFFERS
from ._buffers import BufferPool as BufferPool
from ._errors import ChunkRootsMismatch as ChunkRootsMismatch
from ._errors import ContentNotFound as ContentNotFound
from ._errors import CorruptChunk as CorruptChunk
from ._errors import InvalidArgument as InvalidArgument
from ._errors import LocalTransferError as LocalTransferError
from ._errors import ManifestMismatch as ManifestMismatch
from ._errors import PeerFailed as PeerFailed
from ._errors import PeersUnreachable as PeersUnreachable
from ._errors import PriceMissing as PriceMissing
from ._errors import PriceTooHigh as PriceTooHigh
from ._errors import ProtocolViolation as ProtocolViolation
from ._errors import ReceiptDomainMismatch as ReceiptDomainMismatch
from ._errors import RemoteTransferError as RemoteTransferError
from ._errors import TransferError as TransferError
from ._fetch import DEFAULT_PUT_WORKERS as DEFAULT_PUT_WORKERS
from ._fetch import FetchResult as FetchResult
from ._fetch import NoUsablePeer as NoUsablePeer
from ._fetch import PeerAddr as PeerAddr
from ._fetch import PeerLedger as PeerLedger
from ._fetch import ProviderReport as ProviderReport
from ._fetch import fetch as fetch
from ._node import default_receipt_domain as default_receipt_domain
from ._node import serve_node as serve_node
from ._observer import NULL_OBSERVER as NULL_OBSERVER
from ._observer import TransferObserver as TransferObserver
from ._pool import ConnectionPool as ConnectionPool
from ._progress import Progress as Progress
from ._progress import ProgressTracker as ProgressTracker
from ._provider import Provider as Provider
from ._provider import ProviderStats as ProviderStats
from ._receipts import ReceiptBox as ReceiptBox
from ._receipts import ReceiptBoxError as ReceiptBoxError
from ._receipts import StoredReceipt as StoredReceipt
from ._rootlist import RootListVerifier as RootListVerifier
from ._scheduler import CancelChunks as CancelChunks
from ._scheduler import RequestChunks as RequestChunks
from ._scheduler import Scheduler as Scheduler
from ._shaper import PRIORITY_WEIGHTS as PRIORITY_WEIGHTS
from ._shaper import FairQueue as FairQueue
from ._shaper import Lane as Lane
from ._shaper import LaneClosed as LaneClosed
from ._shaper import Shaper as Shaper
from ._swarm import PeerBook as PeerBook
from ._swarm import SwarmOptions as SwarmOptions
from ._swarm import SwarmProvider as SwarmProvider
from ._swarm import SwarmScheduler as SwarmScheduler
from ._window import FlowWindow as FlowWindow

__all__ = [
    "CHUNK_BUFFERS",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_PUT_WORKERS",
    "NULL_OBSERVER",
    "PRIORITY_WEIGHTS",
    "REFUSAL_REASONS",
    "Backoff",
    "Bitmap",
    "BufferPool",
    "CancelChunks",
    "ChunkRootsMismatch",
    "CircuitBreaker",
    "ConnectionCredit",
    "ConnectionPool",
    "ContentNotFound",
    "CorruptChunk",
    "FairQueue",
    "FetchResult",
    "FlowWindow",
    "InvalidArgument",
    "Lane",
    "LaneClosed",
    "LocalTransferError",
    "ManifestMismatch",
    "NoUsablePeer",
    "PeerAddr",
    "PeerBook",
    "PeerFailed",
    "PeerLedger",
    "PeersUnreachable",
    "PriceMissing",
    "PriceTooHigh",
    "Progress",
    "ProgressTracker",
    "ProtocolViolation",
    "Provider",
    "ProviderReport",
    "ProviderStats",
    "ReceiptBox",
    "ReceiptBoxError",
    "ReceiptDomainMismatch",
    "ReceiptPolicy",
    "ReceiptRefused",
    "RemoteTransferError",
    "RequestChunks",
    "Scheduler",
    "Shaper",
    "StoredReceipt",
    "SwarmOptions",
    "SwarmProvider",
    "SwarmScheduler",
    "TokenBucket",
    "TransferError",
    "TransferObserver",
    "default_receipt_domain",
    "fetch",
    "parse_rate",
    "serve_node",
]
