"""Reputation ledger (layer 5). LevelDB via plyvel.

Two parts:

- The **payout** part (:class:`PayoutLedger`): derived only from on-chain events
  (:class:`ReceiptPaid`, :class:`StoragePaid`, :class:`ProofPassed`, :class:`ProofFailed`,
  from ``chain.indexer``), in chain order, with exact integer arithmetic, so every validator
  computes the same per-epoch tallies, the same reputations (a beta reputation with memory,
  vetting and permanent disqualification) and the same reward :class:`Allocation`, bit for bit.
  The rule is docs/incentives.md §4; the pure functions :func:`update_reputation` and
  :func:`allocate_amounts` are that rule, shared with the simulations.
- The **local** part (:class:`LocalLedger`): per-peer latency, throughput and failures as seen
  by this node; it steers peer selection and is never paid out.

Both may share one database (:func:`open_ledger_db`): the payout part keeps under ``p/``, the
local part under ``l/``.
"""

import plyvel

from ._events import FailReason as FailReason
from ._events import LedgerEvent as LedgerEvent
from ._events import ProofFailed as ProofFailed
from ._events import ProofPassed as ProofPassed
from ._events import ReceiptCredited as ReceiptCredited  # deprecated alias of ReceiptPaid
from ._events import ReceiptPaid as ReceiptPaid
from ._events import StoragePaid as StoragePaid
from ._local import LocalLedger as LocalLedger
from ._local import PeerRecord as PeerRecord
from ._payout import TALLY_FIELDS as TALLY_FIELDS
from ._payout import Allocation as Allocation
from ._payout import HostEpoch as HostEpoch
from ._payout import LedgerError as LedgerError
from ._payout import PayoutLedger as PayoutLedger
from ._reputation import ONE as ONE
from ._reputation import Outcome as Outcome
from ._reputation import Reputation as Reputation
from ._reputation import ReputationParams as ReputationParams
from ._reputation import RewardParams as RewardParams
from ._reputation import allocate_amounts as allocate_amounts
from ._reputation import update_reputation as update_reputation


def open_ledger_db(path: str) -> plyvel.DB:
    """Open (creating) the ledger's LevelDB at ``path``."""
    return plyvel.DB(str(path), create_if_missing=True)
