"""Reputation ledger (layer 5): a payout part derived only from on-chain events, and a local
part (per-peer latency, throughput, failures) that steers peer selection. LevelDB via plyvel.
"""

import plyvel

from ._events import LedgerEvent as LedgerEvent
from ._events import ProofFailed as ProofFailed
from ._events import ProofPassed as ProofPassed
from ._events import ReceiptCredited as ReceiptCredited
from ._local import LocalLedger as LocalLedger
from ._local import PeerRecord as PeerRecord
from ._payout import Allocation as Allocation
from ._payout import HostEpochStats as HostEpochStats
from ._payout import LedgerError as LedgerError
from ._payout import PayoutLedger as PayoutLedger


def open_ledger_db(path: str) -> plyvel.DB:
    """Open (creating) the ledger's LevelDB at ``path``."""
    return plyvel.DB(str(path), create_if_missing=True)
