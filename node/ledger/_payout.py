"""The payout part of the reputation ledger, and the reward allocation computed from it.

Derived only from on-chain events, so every validator that replays the same chain computes the
same allocation, byte for byte. Stored in LevelDB (plyvel); each event is applied in one atomic
write batch together with its "seen" marker, so a crash between events loses nothing that was
applied and never double-counts.

Keys (all under the ``p/`` prefix of the database given):

    p/seen/<event key>                      -> b""
    p/served/<epoch:8 BE>/<provider 20 B>   -> bytes served (8 BE)
    p/receipts/<epoch:8 BE>/<provider 20 B> -> receipts credited (8 BE)
    p/pass/<epoch:8 BE>/<host 20 B>         -> challenges passed (8 BE)
    p/fail/<epoch:8 BE>/<host 20 B>         -> challenges failed (8 BE)

Allocation rule (integer arithmetic, documented in docs/contracts.md, "Hosting rewards"):

    reliability(h) = (pass + 1) / (pass + 2 * fail + 1)          (Laplace-smoothed; a failure
                                                                  costs twice a success)
    weight(h)      = served(h) * reliability(h)                   (as a fraction, exactly)
    amount(h)      = floor(budget * weight(h) / sum(weights))

Hosts with no served bytes get nothing; the rounding dust stays in the contract (total <= budget).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import plyvel

from ._events import LedgerEvent, ProofFailed, ProofPassed, ReceiptCredited

_U64 = struct.Struct(">Q")


class LedgerError(Exception):
    """Root of the ledger's errors."""


def _addr(address: str) -> bytes:
    a = address.lower().removeprefix("0x")
    if len(a) != 40:
        raise LedgerError(f"not an address: {address!r}")
    return bytes.fromhex(a)


@dataclass(frozen=True)
class HostEpochStats:
    host: str
    served: int
    receipts: int
    passed: int
    failed: int


@dataclass(frozen=True)
class Allocation:
    epoch: int
    budget: int
    amounts: tuple[tuple[str, int], ...]  #: (host address, amount), sorted by address

    @property
    def total(self) -> int:
        return sum(a for _, a in self.amounts)


class PayoutLedger:
    """Epoch totals per host, applied idempotently from chain events."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db.prefixed_db(b"p/")

    def apply(self, event: LedgerEvent) -> bool:
        """Apply one event; return False if it was already applied."""
        seen = b"seen/" + event.key.encode()
        if self._db.get(seen) is not None:
            return False
        epoch = _U64.pack(event.epoch)
        updates: list[tuple[bytes, int]] = []
        if isinstance(event, ReceiptCredited):
            who = _addr(event.provider)
            updates = [
                (b"served/" + epoch + b"/" + who, event.bytes_served),
                (b"receipts/" + epoch + b"/" + who, 1),
            ]
        elif isinstance(event, ProofPassed):
            updates = [(b"pass/" + epoch + b"/" + _addr(event.host), 1)]
        elif isinstance(event, ProofFailed):
            updates = [(b"fail/" + epoch + b"/" + _addr(event.host), 1)]
        else:  # pragma: no cover - the union is closed
            raise LedgerError(f"unknown ledger event {event!r}")
        with self._db.write_batch(transaction=True, sync=True) as wb:
            for key, inc in updates:
                wb.put(key, _U64.pack(self._get(key) + inc))
            wb.put(seen, b"")
        return True

    def _get(self, key: bytes) -> int:
        raw = self._db.get(key)
        return 0 if raw is None else _U64.unpack(raw)[0]

    def _scan(self, kind: bytes, epoch: int) -> dict[str, int]:
        prefix = kind + b"/" + _U64.pack(epoch) + b"/"
        return {
            "0x" + k[len(prefix) :].hex(): _U64.unpack(v)[0]
            for k, v in self._db.iterator(prefix=prefix)
        }

    def epoch_stats(self, epoch: int) -> list[HostEpochStats]:
        served = self._scan(b"served", epoch)
        receipts = self._scan(b"receipts", epoch)
        passed = self._scan(b"pass", epoch)
        failed = self._scan(b"fail", epoch)
        hosts = sorted(set(served) | set(passed) | set(failed))
        return [
            HostEpochStats(
                h, served.get(h, 0), receipts.get(h, 0), passed.get(h, 0), failed.get(h, 0)
            )
            for h in hosts
        ]

    def allocate(self, epoch: int, budget: int) -> Allocation:
        """The epoch's reward allocation of ``budget`` (wei or token units)."""
        if budget < 0:
            raise LedgerError("budget must be non-negative")
        weights = {
            s.host: Fraction(s.served * (s.passed + 1), s.passed + 2 * s.failed + 1)
            for s in self.epoch_stats(epoch)
            if s.served > 0
        }
        total = sum(weights.values(), Fraction(0))
        if total == 0:
            return Allocation(epoch, budget, ())
        amounts = tuple(
            (h, int(budget * w / total)) for h, w in sorted(weights.items()) if budget * w >= total
        )
        return Allocation(epoch, budget, amounts)
