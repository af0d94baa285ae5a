"""What the payout ledger is built from: facts taken from on-chain events, nothing else.

The chain indexer (layer 6) turns contract logs into these, in chain order; the ledger (layer 5)
never sees web3. Every event carries a ``key`` unique per log (``"<tx hash>:<log index>"``), so
applying the same event twice is a no-op and a replay after a crash or a reorg converges.

Field conventions (docs/incentives.md §4): addresses are ``0x``-prefixed hex strings (any case;
the ledger stores them lower-cased), ``content_root`` is the 32-byte root, integers are Python
ints of any size. ``epoch`` is the receipt's own epoch for :class:`ReceiptPaid` and
``receipts.epochOf(block timestamp)`` for the others. The classes do not validate on
construction (the indexer builds millions of them); :meth:`PayoutLedger.apply
<node.ledger.PayoutLedger.apply>` checks every field and skips what the chain could not have
emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FailReason = Literal["expired", "invalid"]
"""``"expired"``: no answer before the deadline (a fault, like downtime). ``"invalid"``: a wrong
length or a proof that does not verify (evidence the data is gone)."""

FAIL_REASONS: frozenset[str] = frozenset({"expired", "invalid"})


@dataclass(frozen=True)
class ReceiptPaid:
    """A paid receipt the receipts contract accepted (``ReceiptAccepted``).

    ``receiver`` paid ``payment`` from its escrow to ``provider`` for ``bytes_served`` bytes of
    ``content_root``; ``fee`` of it was burnt. Only the fee counts towards a reward.
    """

    key: str
    epoch: int
    provider: str
    receiver: str
    content_root: bytes
    bytes_served: int
    payment: int
    fee: int


@dataclass(frozen=True)
class StoragePaid:
    """The storage pool paid ``host`` ``amount`` for a proven ``slot`` (``fee`` of it burnt)."""

    key: str
    epoch: int
    host: str
    content_root: bytes
    slot: int
    amount: int
    fee: int


@dataclass(frozen=True)
class ProofPassed:
    """``host`` answered a data-availability challenge on ``slot`` of ``content_root``.

    ``scheduled``: the challenge was one the chain's randomness scheduled (not an ad-hoc one).
    """

    key: str
    epoch: int
    host: str
    content_root: bytes
    slot: int
    scheduled: bool


@dataclass(frozen=True)
class ProofFailed:
    """``host`` failed a challenge: ``reason`` is ``"expired"`` (a fault) or ``"invalid"``.

    ``slashed`` wei were taken from its stake; ``terminated``: its commitment was ended.
    """

    key: str
    epoch: int
    host: str
    content_root: bytes
    slot: int
    reason: FailReason
    terminated: bool
    slashed: int


LedgerEvent = ReceiptPaid | StoragePaid | ProofPassed | ProofFailed

ReceiptCredited = ReceiptPaid
"""Deprecated alias kept only so ``chain.indexer``'s import keeps working while it switches to
:class:`ReceiptPaid`; remove it once nothing imports it."""
