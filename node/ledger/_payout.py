"""The payout part of the reputation ledger, and the reward allocation computed from it.

Derived only from on-chain events (:mod:`node.ledger._events`), applied in chain order, so every
validator that replays the same chain computes the same tallies, the same reputations and the
same allocation, byte for byte (docs/incentives.md §4; the arithmetic is in
:mod:`node.ledger._reputation`).

What :meth:`PayoutLedger.apply` guarantees:

- **Atomic and crash-safe.** An event's tallies, its reputation snapshot and its "seen" marker
  are written in one LevelDB write batch (``sync=True`` by default): after a crash an event is
  either wholly applied or not at all.
- **Idempotent.** An event whose ``key`` was seen is not applied again (``apply`` returns
  False), so replaying the indexer after a crash or a reorg converges.
- **Never raises on input.** An event the chain could not have emitted (not one of the four
  event classes, a bad address, a root that is not 32 bytes, a value that is not an ``int`` in
  ``[0, 2**256)``, an epoch outside ``[0, 2**64)``, a fee larger than its payment, an unknown
  failure reason, a non-bool flag, an empty or oversized key) is skipped with one structlog
  warning (``ledger event skipped``) and ``apply`` returns False. So is a proof event whose
  epoch is older than the newest proof epoch already applied: proof epochs come from block
  timestamps, so in chain order they never go back, and accepting one would rewrite the
  reputation of an epoch that may already have been allocated. Storage errors (plyvel) do
  propagate: a validator must stop, not skip, when its disk fails.
- **Unbounded tallies.** Counters are stored as minimal big-endian integers of any length, so
  ``2**64 - 1`` (or ``2**255``) byte claims add up exactly and never touch another host's keys.
- **Snapshots.** The reputation is stored per host per epoch in which it changed; the score
  used for epoch ``e`` is the state after the last proof event with epoch ``<= e``, so
  ``allocate(e)`` gives the same answer however many later events were applied.

One process writes a ledger at a time (apply is read-modify-write). The storage layout is
documented in docs/incentives.md §4.1 and below.

Keys (all under the ``p/`` prefix of the database given; ``epoch`` is 8 bytes big-endian, a host
is its 20 address bytes, integers are minimal big-endian, i.e. ``b""`` is 0)::

    p/ev/<event key, UTF-8>                 -> b""                      event applied
    p/t/<epoch>/<host>/<field>              -> integer                  per-epoch tally
        field in receipt_bytes, receipts, payments, fees, storage_paid, storage_fees,
                 passes, faults, invalid
    p/r/<host>/<epoch>                      -> b"<alpha>,<beta>,<passes>,<0|1>" (ASCII decimal)
                                               reputation after the host's last proof event of
                                               that epoch
    p/last                                  -> 8-byte epoch of the newest proof event applied
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import plyvel

from node.log import get_logger

from ._events import FAIL_REASONS, LedgerEvent, ProofFailed, ProofPassed, ReceiptPaid, StoragePaid
from ._reputation import (
    DEFAULT_REPUTATION,
    DEFAULT_REWARD,
    Outcome,
    Reputation,
    ReputationParams,
    RewardParams,
    allocate_amounts,
    update_reputation,
)

log = get_logger(__name__)

_U64 = struct.Struct(">Q")
_MAX_EPOCH = 2**64 - 1
_MAX_VALUE = 2**256  #: exclusive: no event field on chain is wider than uint256
_MAX_KEY = 1024  #: bytes; a real key is "<tx hash>:<log index>", about 70
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")

TALLY_FIELDS = (
    "receipt_bytes",
    "receipts",
    "payments",
    "fees",
    "storage_paid",
    "storage_fees",
    "passes",
    "faults",
    "invalid",
)
_FIELD_KEYS = {f: f.encode() for f in TALLY_FIELDS}
_KNOWN_FIELDS = frozenset(_FIELD_KEYS.values())

_SEEN = b"ev/"
_TALLY = b"t/"
_REP = b"r/"
_LAST = b"last"


class LedgerError(Exception):
    """Root of the ledger's errors (bad query arguments; events are never raised about)."""


def _enc_int(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _dec_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _enc_rep(rep: Reputation) -> bytes:
    return b"%d,%d,%d,%d" % (rep.alpha, rep.beta, rep.passes, int(rep.disqualified))


def _dec_rep(raw: bytes) -> Reputation:
    alpha, beta, passes, dq = raw.split(b",")
    return Reputation(int(alpha), int(beta), int(passes), dq == b"1")


def _addr_bytes(address: str) -> bytes:
    """The 20 bytes of a ``0x``-hex address; LedgerError if it is not one."""
    if type(address) is not str or _ADDRESS.fullmatch(address) is None:
        raise LedgerError(f"not an address: {address!r:.60}")
    return bytes.fromhex(address[2:])


def _host(raw: bytes) -> str:
    return "0x" + raw.hex()


@dataclass(frozen=True)
class HostEpoch:
    """One host's tallies for one epoch (all unbounded ints)."""

    host: str  #: lower-case 0x address
    receipt_bytes: int = 0  #: bytes served on paid receipts
    receipts: int = 0  #: paid receipts accepted
    payments: int = 0  #: wei paid by receivers
    fees: int = 0  #: wei burnt from those payments
    storage_paid: int = 0  #: wei paid by storage pools for proven slots
    storage_fees: int = 0  #: wei burnt from those
    passes: int = 0  #: challenges passed
    faults: int = 0  #: challenges expired (downtime)
    invalid: int = 0  #: wrong answers (deletion evidence)

    @property
    def total_fees(self) -> int:
        """What the allocation weighs and caps by: receipt fees plus storage fees."""
        return self.fees + self.storage_fees


@dataclass(frozen=True)
class Allocation:
    """An epoch's reward allocation: ``amounts`` sorted by host, zero amounts left out."""

    epoch: int
    budget: int
    amounts: tuple[tuple[str, int], ...]  #: (lower-case host address, amount)
    total: int  #: sum of amounts, <= budget

    def encode(self) -> bytes:
        """Canonical bytes (hex integers, one host a line): equal iff the allocations are."""
        lines = [f"{self.epoch:x} {self.budget:x} {self.total:x}"]
        lines += [f"{h} {a:x}" for h, a in self.amounts]
        return ("\n".join(lines) + "\n").encode()


def _safe_key(event: Any) -> str:
    """The event's key for a log line, whatever the object is."""
    try:
        key = event.key
        return key[:100] if type(key) is str else repr(key)[:100]
    except Exception:
        return "?"


def _is_uint(v: Any) -> bool:
    return type(v) is int and 0 <= v < _MAX_VALUE


def _check(event: Any) -> str | None:
    """Why ``event`` could not have come from the chain, or None if it could."""
    kind = type(event)
    if kind not in (ReceiptPaid, StoragePaid, ProofPassed, ProofFailed):
        return f"not a ledger event: {kind.__name__}"
    key = event.key
    if type(key) is not str or not key:
        return "key is not a non-empty str"
    try:
        if len(key.encode()) > _MAX_KEY:
            return "key too long"
    except UnicodeError:
        return "key is not encodable"
    if type(event.epoch) is not int or not 0 <= event.epoch <= _MAX_EPOCH:
        return "epoch is not an int in [0, 2**64)"
    if not isinstance(event.content_root, bytes) or len(event.content_root) != 32:
        return "content_root is not 32 bytes"
    addresses: tuple[Any, ...]
    values: tuple[Any, ...]
    if kind is ReceiptPaid:
        addresses = (event.provider, event.receiver)
        values = (event.bytes_served, event.payment, event.fee)
    elif kind is StoragePaid:
        addresses = (event.host,)
        values = (event.slot, event.amount, event.fee)
    elif kind is ProofPassed:
        addresses = (event.host,)
        values = (event.slot,)
        if type(event.scheduled) is not bool:
            return "scheduled is not a bool"
    else:
        addresses = (event.host,)
        values = (event.slot, event.slashed)
        if type(event.reason) is not str or event.reason not in FAIL_REASONS:
            return "unknown failure reason"
        if type(event.terminated) is not bool:
            return "terminated is not a bool"
    for a in addresses:
        if type(a) is not str or _ADDRESS.fullmatch(a) is None:
            return "bad address"
    if not all(_is_uint(v) for v in values):
        return "a value is not an int in [0, 2**256)"
    if kind is ReceiptPaid and event.fee > event.payment:
        return "fee exceeds payment"
    if kind is StoragePaid and event.fee > event.amount:
        return "fee exceeds amount"
    return None


class PayoutLedger:
    """Per-epoch tallies and per-host reputation, applied idempotently from chain events."""

    def __init__(
        self,
        db: plyvel.DB,
        *,
        reputation: ReputationParams = DEFAULT_REPUTATION,
        reward: RewardParams = DEFAULT_REWARD,
        sync: bool = True,
    ) -> None:
        """``sync=False`` skips the fsync per event (tests, simulations); never in a node."""
        self._db = db.prefixed_db(b"p/")
        self.reputation_params = reputation
        self.reward_params = reward
        self._sync = sync

    # -- writing --------------------------------------------------------------------------

    def apply(self, event: LedgerEvent) -> bool:
        """Apply one event; False if it was applied before or skipped (malformed, logged)."""
        try:
            problem = _check(event)
        except Exception as exc:  # a hostile object whose attributes raise
            problem = f"unreadable event ({type(exc).__name__})"
        if problem is not None:
            log.warning(
                "ledger event skipped",
                event_key=_safe_key(event),
                kind=type(event).__name__,
                reason=problem,
            )
            return False
        seen = _SEEN + event.key.encode()
        if self._db.get(seen) is not None:
            return False
        epoch = _U64.pack(event.epoch)
        puts: list[tuple[bytes, bytes]] = []
        if isinstance(event, ReceiptPaid):
            self._tally(
                puts,
                epoch,
                _addr_bytes(event.provider),
                (
                    ("receipt_bytes", event.bytes_served),
                    ("receipts", 1),
                    ("payments", event.payment),
                    ("fees", event.fee),
                ),
            )
        elif isinstance(event, StoragePaid):
            self._tally(
                puts,
                epoch,
                _addr_bytes(event.host),
                (("storage_paid", event.amount), ("storage_fees", event.fee)),
            )
        else:
            last = self._db.get(_LAST)
            if last is not None and event.epoch < _U64.unpack(last)[0]:
                log.warning(
                    "ledger event skipped",
                    event_key=event.key[:100],
                    kind=type(event).__name__,
                    reason=f"proof epoch {event.epoch} is older than {_U64.unpack(last)[0]}",
                )
                return False
            host = _addr_bytes(event.host)
            outcome: Outcome
            if isinstance(event, ProofPassed):
                outcome, field = "pass", "passes"
            elif event.reason == "expired":
                outcome, field = "expired", "faults"
            else:
                outcome, field = "invalid", "invalid"
            self._tally(puts, epoch, host, ((field, 1),))
            rep = update_reputation(self._rep_at(host, _MAX_EPOCH), outcome, self.reputation_params)
            puts.append((_REP + host + b"/" + epoch, _enc_rep(rep)))
            puts.append((_LAST, epoch))
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            for k, v in puts:
                wb.put(k, v)
            wb.put(seen, b"")
        return True

    def _tally(
        self,
        puts: list[tuple[bytes, bytes]],
        epoch: bytes,
        host: bytes,
        incs: tuple[tuple[str, int], ...],
    ) -> None:
        base = _TALLY + epoch + b"/" + host + b"/"
        for field, inc in incs:
            if inc:
                key = base + _FIELD_KEYS[field]
                puts.append((key, _enc_int(_dec_int(self._db.get(key, b"")) + inc)))

    # -- reading --------------------------------------------------------------------------

    def _rep_at(self, host: bytes, epoch: int) -> Reputation:
        prefix = _REP + host + b"/"
        stop = prefix + _U64.pack(epoch) + b"\x00"
        for _, raw in self._db.iterator(start=prefix, stop=stop, reverse=True):
            return _dec_rep(raw)
        return Reputation.initial(self.reputation_params)

    def reputation(self, host: str, epoch: int | None = None) -> Reputation:
        """``host``'s reputation after every proof event so far, or as used for ``epoch``
        (the state after its last proof event with epoch ``<= epoch``). A host never
        challenged has :meth:`Reputation.initial`."""
        if epoch is None:
            epoch = _MAX_EPOCH
        elif type(epoch) is not int or epoch < 0:
            raise LedgerError("epoch must be a non-negative int")
        return self._rep_at(_addr_bytes(host), min(epoch, _MAX_EPOCH))

    def epoch_stats(self, epoch: int) -> list[HostEpoch]:
        """Every host with a tally in ``epoch``, sorted by address."""
        if type(epoch) is not int or not 0 <= epoch <= _MAX_EPOCH:
            return []
        prefix = _TALLY + _U64.pack(epoch) + b"/"
        start = len(prefix)
        hosts: dict[bytes, dict[str, int]] = {}
        for k, v in self._db.iterator(prefix=prefix):
            field = k[start + 21 :]
            if len(k) < start + 22 or field not in _KNOWN_FIELDS:  # pragma: no cover
                continue
            hosts.setdefault(k[start : start + 20], {})[field.decode()] = _dec_int(v)
        return [HostEpoch(_host(h), **fields) for h, fields in sorted(hosts.items())]

    def allocate(self, epoch: int, budget: int) -> Allocation:
        """The epoch's reward allocation of ``budget`` (wei or token units), docs §4."""
        if type(budget) is not int or budget < 0:
            raise LedgerError("budget must be a non-negative int")
        if type(epoch) is not int or not 0 <= epoch <= _MAX_EPOCH:
            raise LedgerError("epoch must be an int in [0, 2**64)")
        fees = {s.host: s.total_fees for s in self.epoch_stats(epoch) if s.total_fees > 0}
        reps = {h: self._rep_at(bytes.fromhex(h[2:]), epoch) for h in fees}
        amounts = allocate_amounts(fees, reps, budget, self.reward_params, self.reputation_params)
        ordered = tuple(sorted(amounts.items()))
        return Allocation(epoch, budget, ordered, sum(a for _, a in ordered))
