"""Drive the product's own payout ledger (node.ledger.PayoutLedger on a real LevelDB).

The simulation never computes rewards itself: it turns each epoch's outcomes into the chain
events the indexer would produce (ReceiptCredited, ProofPassed, ProofFailed), applies them to
a PayoutLedger in a temporary directory and asks it for the allocation. The temporary
directory is on /dev/shm when that exists (LevelDB's synced batches are ~20x faster on tmpfs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from types import TracebackType

import numpy as np
import numpy.typing as npt

from node.ledger import (
    Allocation,
    PayoutLedger,
    ProofFailed,
    ProofPassed,
    ReceiptCredited,
    open_ledger_db,
)

_ROOT = b"\x00" * 32  # the ledger keys by host and epoch only; the root is informational
_FAKE_RECEIVER = "0x" + "fe" * 20
_CLIENT = "0x" + "c1" * 20
WEI_PER_ETH = 10**18


def usd_to_wei(usd: float, eth_usd: float) -> int:
    """Exact conversion of the decimal values written in a scenario (no float rounding)."""
    return int(Fraction(str(usd)) / Fraction(str(eth_usd)) * WEI_PER_ETH)


def host_address(i: int) -> str:
    """Deterministic address of host ``i``."""
    return f"0x{i + 1:040x}"


def host_index(address: str) -> int:
    return int(address, 16) - 1


def _tmp_parent() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class SimLedger:
    """A PayoutLedger in a private temporary LevelDB; use as a context manager."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="bcai-sim-ledger-", dir=_tmp_parent())
        self._db = open_ledger_db(os.path.join(self._dir, "ledger"))
        self.ledger = PayoutLedger(self._db)
        self._seq = 0

    def __enter__(self) -> SimLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _key(self) -> str:
        self._seq += 1
        return f"sim:{self._seq}"

    def record_epoch(
        self,
        epoch: int,
        real_bytes: npt.NDArray[np.int64],
        fake_bytes: npt.NDArray[np.int64],
        passed: npt.NDArray[np.int64],
        failed: npt.NDArray[np.int64],
    ) -> None:
        """Apply one epoch of events: one receipt event per host and kind of receiver (the
        ledger sums bytes, so this equals one event per receipt), one event per challenge."""
        led = self.ledger
        for h in np.flatnonzero(real_bytes > 0):
            led.apply(
                ReceiptCredited(
                    self._key(), epoch, host_address(int(h)), _CLIENT, _ROOT, int(real_bytes[h]), 1
                )
            )
        for h in np.flatnonzero(fake_bytes > 0):
            led.apply(
                ReceiptCredited(
                    self._key(),
                    epoch,
                    host_address(int(h)),
                    _FAKE_RECEIVER,
                    _ROOT,
                    int(fake_bytes[h]),
                    1,
                )
            )
        for h in np.flatnonzero(passed + failed):
            addr = host_address(int(h))
            for _ in range(int(passed[h])):
                led.apply(ProofPassed(self._key(), epoch, addr, _ROOT))
            for _ in range(int(failed[h])):
                led.apply(ProofFailed(self._key(), epoch, addr, _ROOT))

    def allocate(self, epoch: int, budget_wei: int, hosts: int) -> tuple[Allocation, list[int]]:
        """The ledger's allocation and the per-host amounts in wei (dense list)."""
        alloc = self.ledger.allocate(epoch, budget_wei)
        dense = [0] * hosts
        for addr, amount in alloc.amounts:
            dense[host_index(addr)] = amount
        return alloc, dense
