"""What the payout ledger is built from: facts taken from on-chain events, nothing else.

The chain indexer (layer 6) turns contract logs into these; the ledger (layer 5) never sees
web3. Every event carries a ``key`` unique per log (``"<tx hash>:<log index>"``), so applying
the same event twice is a no-op and a replay after a crash or a reorg converges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReceiptCredited:
    """A receipt the receipts contract accepted: ``provider`` served ``bytes_served``."""

    key: str
    epoch: int
    provider: str
    receiver: str
    content_root: bytes
    bytes_served: int
    chunks: int


@dataclass(frozen=True)
class ProofPassed:
    """A host answered a data-availability challenge correctly."""

    key: str
    epoch: int
    host: str
    content_root: bytes


@dataclass(frozen=True)
class ProofFailed:
    """A host missed or failed a challenge (it was slashed)."""

    key: str
    epoch: int
    host: str
    content_root: bytes


LedgerEvent = ReceiptCredited | ProofPassed | ProofFailed
