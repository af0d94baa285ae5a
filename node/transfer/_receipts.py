"""ReceiptBox: the provider's durable outbox of signed transfer receipts (LevelDB).

The provider stores every receipt a receiver handed it (after the checks in ``_acceptance``)
until the chain duties have it judged on chain. Each receipt has one state:

    pending   -> waiting for a batch (queued at the time it was added)
    deferred  -> the chain said "not yet" (IssuedInFuture, InsufficientEscrow): queued again
                 at ``retry_at``; until then it is skipped, never in the way of others
    inflight  -> written *before* a batch transaction is sent (``mark_inflight``), so a crash
                 between a mined batch and ``mark_submitted`` is reconciled on restart from
                 ``inflight()`` and the chain (``receipt_on_chain``) instead of guessed
    submitted -> accepted on chain (final; a later ``mark_rejected`` does not undo it)
    rejected  -> refused on chain or by the pre-checks (final)

Keys (one LevelDB, or a prefixed sub-database of one shared with other components)::

    r/<seq u64>                      -> JSON record {receipt, state, added, retry_ms, tx, reason}
    k/<receiver 20><nonce u64>       -> <seq u64>   one record per (receiver, nonce)
    q/<retry_ms u64><seq u64>        -> b""         pending and deferred, by retry time then seq
    i/<seq u64>                      -> b""         inflight
    m/seq, m/nonce, m/count/<state>, m/schema       counters, layout version (2)
    m/open/bytes, m/open/payment                    totals of pending+deferred+inflight (decimal)

``pending(limit)`` walks ``q/`` in key order and stops at the first retry time still in the
future, so 100 far-future deferred receipts cost one key read and never hide a valid receipt
behind them (no head-of-line blocking). Every change is one synced write batch (record, index
keys and counters together), so what was acknowledged or marked survives a crash whole.
``next_nonce`` gives this node, as a receiver, unique nonces for receipts it signs.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import plyvel

from node.log import get_logger
from node.receipt import SignedReceipt

from ._errors import LocalTransferError

log = get_logger(__name__)

_U64 = struct.Struct(">Q")
_QKEY = struct.Struct(">QQ")
STATES = ("pending", "deferred", "inflight", "submitted", "rejected")
_OPEN = frozenset({"pending", "deferred", "inflight"})
SCHEMA = 2
NONCE_BLOCK = 1024
"""Receipt nonces reserved per synced write (:meth:`ReceiptBox.next_nonce`)."""


class ReceiptBoxError(LocalTransferError):
    """The receipt box on disk cannot be used (e.g. written by an older, incompatible layout)."""


@dataclass(frozen=True)
class StoredReceipt:
    seq: int
    receipt: SignedReceipt
    state: str
    added: float
    tx: str | None = None
    reason: str | None = None
    retry_at: float = 0.0  #: when a pending/deferred receipt is next handed out (unix s)


def _ms(t: float) -> int:
    return max(0, int(t * 1000))


class ReceiptBox:
    """Durable receipt outbox. Open with :meth:`open` (a path) or pass a plyvel DB/prefixed DB.

    ``clock`` (unix seconds) decides which deferred receipts are due; tests pass their own.
    """

    def __init__(
        self, db: Any, *, owns_db: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._owns = owns_db
        self._lock = threading.Lock()
        self._nonce_next = self._nonce_end = 0  # the reserved block not yet handed out
        self.clock = clock
        self._check_schema()

    @classmethod
    def open(cls, path: str | Path, *, clock: Callable[[], float] = time.time) -> ReceiptBox:
        Path(path).mkdir(parents=True, exist_ok=True)
        return cls(plyvel.DB(str(path), create_if_missing=True), owns_db=True, clock=clock)

    def close(self) -> None:
        if self._owns and not self._db.closed:
            self._db.close()

    def __enter__(self) -> ReceiptBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        raw = self._db.get(b"m/schema")
        if raw is None:
            if self._db.get(b"m/seq") is not None:
                # v1 boxes hold receipts without payment under domain "1": the v2 contract
                # cannot cash them, and silently dropping them would hide that from the operator.
                raise ReceiptBoxError(
                    "receipt box holds v1 receipts (no payment, EIP-712 domain 1) that the v2 "
                    "contract cannot cash; move the receipts directory aside and restart"
                )
            self._db.put(b"m/schema", _U64.pack(SCHEMA), sync=True)
        elif _U64.unpack(raw)[0] != SCHEMA:
            raise ReceiptBoxError(f"receipt box layout {_U64.unpack(raw)[0]}, expected {SCHEMA}")

    # -- helpers ----------------------------------------------------------------------------

    def _get_int(self, key: bytes) -> int:
        v = self._db.get(key)
        return _U64.unpack(v)[0] if v else 0

    def _get_big(self, key: bytes) -> int:
        v = self._db.get(key)
        return int(v) if v else 0

    def _add_open(self, wb: Any, nbytes: int, payment: int) -> None:
        """Adjust the open totals (unbounded integers, stored as decimal text)."""
        wb.put(b"m/open/bytes", str(self._get_big(b"m/open/bytes") + nbytes).encode())
        wb.put(b"m/open/payment", str(self._get_big(b"m/open/payment") + payment).encode())

    @staticmethod
    def _nonce_key(receiver: str, nonce: int) -> bytes:
        return b"k/" + bytes.fromhex(receiver[2:]) + _U64.pack(nonce)

    @classmethod
    def _key_of(cls, signed: SignedReceipt) -> bytes:
        return cls._nonce_key(signed.receipt.receiver, signed.receipt.nonce)

    @staticmethod
    def _qkey(rec: StoredReceipt) -> bytes:
        return b"q/" + _QKEY.pack(_ms(rec.retry_at), rec.seq)

    def _load(self, seq: int) -> StoredReceipt:
        raw = self._db.get(b"r/" + _U64.pack(seq))
        if raw is None:
            raise KeyError(seq)
        obj = json.loads(raw)
        return StoredReceipt(
            seq=seq,
            receipt=SignedReceipt.from_json_obj(obj["receipt"]),
            state=obj["state"],
            added=obj["added"],
            tx=obj.get("tx"),
            reason=obj.get("reason"),
            retry_at=obj.get("retry_ms", 0) / 1000,
        )

    @staticmethod
    def _dump(rec: StoredReceipt) -> bytes:
        obj = {
            "receipt": rec.receipt.to_json_obj(),
            "state": rec.state,
            "added": rec.added,
            "retry_ms": _ms(rec.retry_at),
            "tx": rec.tx,
            "reason": rec.reason,
        }
        return json.dumps(obj, sort_keys=True).encode()

    def _put(self, wb: Any, old: StoredReceipt | None, new: StoredReceipt) -> None:
        """Write ``new`` and move its index keys from where ``old`` had them."""
        if old is not None:
            if old.state in ("pending", "deferred"):
                wb.delete(self._qkey(old))
            elif old.state == "inflight":
                wb.delete(b"i/" + _U64.pack(old.seq))
        if new.state in ("pending", "deferred"):
            wb.put(self._qkey(new), b"")
        elif new.state == "inflight":
            wb.put(b"i/" + _U64.pack(new.seq), b"")
        wb.put(b"r/" + _U64.pack(new.seq), self._dump(new))

    # -- API --------------------------------------------------------------------------------

    def add(self, signed: SignedReceipt) -> bool:
        """Queue a receipt; ``False`` if one with the same (receiver, nonce) is already here."""
        with self._lock:
            key = self._key_of(signed)
            if self._db.get(key) is not None:
                return False
            seq = self._get_int(b"m/seq") + 1
            now = self.clock()
            rec = StoredReceipt(seq, signed, "pending", now, retry_at=now)
            with self._db.write_batch(sync=True) as wb:
                wb.put(b"m/seq", _U64.pack(seq))
                wb.put(key, _U64.pack(seq))
                self._put(wb, None, rec)
                wb.put(b"m/count/pending", _U64.pack(self._get_int(b"m/count/pending") + 1))
                r = signed.receipt
                self._add_open(wb, r.bytes_served, r.payment)
            return True

    def has(self, receiver: str, nonce: int) -> bool:
        """A receipt from ``receiver`` with ``nonce`` is already stored (any state)."""
        return self._db.get(self._nonce_key(receiver, nonce)) is not None

    def get(self, signed: SignedReceipt) -> StoredReceipt | None:
        """The stored record with ``signed``'s (receiver, nonce), or ``None``."""
        seq = self._db.get(self._key_of(signed))
        return None if seq is None else self._load(_U64.unpack(seq)[0])

    def pending(self, limit: int | None = None, *, now: float | None = None) -> list[SignedReceipt]:
        """Receipts due for submission (pending, and deferred ones whose time has come), by
        retry time then arrival; at most ``limit``. Deferred receipts not yet due are skipped."""
        return [r.receipt for r in self.pending_records(limit, now=now)]

    def pending_records(
        self, limit: int | None = None, *, now: float | None = None
    ) -> list[StoredReceipt]:
        cutoff = _ms(self.clock() if now is None else now)
        out: list[StoredReceipt] = []
        with self._lock:
            for key, _ in self._db.iterator(prefix=b"q/"):
                retry_ms, seq = _QKEY.unpack(key[2:])
                if retry_ms > cutoff:
                    break  # everything after this is later still
                out.append(self._load(seq))
                if limit is not None and len(out) >= limit:
                    break
        return out

    pop_batch = pending  #: alias: the next batch to submit (not removed until marked)

    def inflight(self) -> list[tuple[SignedReceipt, str]]:
        """Receipts sent in a transaction whose outcome was not recorded yet, with its hash.

        After a restart, each is either on chain (``mark_submitted``), refused, or to be sent
        again (``requeue``)."""
        with self._lock:
            recs = [self._load(_U64.unpack(k[2:])[0]) for k, _ in self._db.iterator(prefix=b"i/")]
        return [(r.receipt, r.tx or "") for r in recs]

    def list(self, state: str | None = None) -> Iterator[StoredReceipt]:
        for key, _ in self._db.iterator(prefix=b"r/"):
            rec = self._load(_U64.unpack(key[2:])[0])
            if state is None or rec.state == state:
                yield rec

    def _transition(
        self,
        receipts: Iterable[SignedReceipt],
        state: str,
        allowed: frozenset[str],
        **fields: Any,
    ) -> int:
        """Move every receipt in ``allowed`` states to ``state`` in ONE synced batch."""
        changed = 0
        closed_bytes = closed_payment = 0
        with self._lock, self._db.write_batch(sync=True) as wb:
            counts = {s: self._get_int(b"m/count/" + s.encode()) for s in STATES}
            seen: dict[int, StoredReceipt] = {}  # this batch's own writes (duplicates in input)
            for signed in receipts:
                seq_raw = self._db.get(self._key_of(signed))
                if seq_raw is None:
                    continue
                seq = _U64.unpack(seq_raw)[0]
                rec = seen.get(seq) or self._load(seq)
                if rec.state not in allowed:
                    if rec.state != state:
                        log.info(
                            "receipt state kept",
                            nonce=rec.receipt.receipt.nonce,
                            state=rec.state,
                            refused=state,
                        )
                    continue
                new = replace(rec, state=state, **fields)
                if new == rec:
                    continue
                self._put(wb, rec, new)
                seen[seq] = new
                counts[rec.state] -= 1
                counts[state] += 1
                changed += 1
                if rec.state in _OPEN and state not in _OPEN:
                    closed_bytes += rec.receipt.receipt.bytes_served
                    closed_payment += rec.receipt.receipt.payment
            for s, n in counts.items():
                wb.put(b"m/count/" + s.encode(), _U64.pack(max(0, n)))
            if closed_bytes or closed_payment:
                self._add_open(wb, -closed_bytes, -closed_payment)
        return changed

    def mark_inflight(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> int:
        """About to send these in ``tx_hash``: out of the queue until the outcome is marked.

        Call BEFORE broadcasting the transaction; ``inflight()`` lists them after a crash."""
        return self._transition(receipts, "inflight", _OPEN, tx=tx_hash, reason=None)

    def mark_submitted(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> int:
        """Accepted on chain in ``tx_hash`` (final, from any state)."""
        return self._transition(
            receipts, "submitted", frozenset(STATES) - {"submitted"}, tx=tx_hash, reason=None
        )

    def mark_rejected(self, receipts: Iterable[SignedReceipt], reason: str) -> int:
        """Refused for good. A receipt already marked submitted stays submitted."""
        return self._transition(receipts, "rejected", _OPEN, reason=reason)

    def defer(self, receipts: Iterable[SignedReceipt], until: float, reason: str) -> int:
        """Not yet (``IssuedInFuture``, ``InsufficientEscrow``): hand out again at ``until``."""
        return self._transition(receipts, "deferred", _OPEN, retry_at=until, reason=reason)

    def requeue(self, receipts: Iterable[SignedReceipt]) -> int:
        """Back to pending now (e.g. an inflight receipt the chain never saw)."""
        now = self.clock()
        return self._transition(receipts, "pending", _OPEN, retry_at=now, tx=None, reason=None)

    def counts(self) -> dict[str, int]:
        """Receipts per state, and the bytes and wei still open (pending/deferred/inflight)."""
        with self._lock:
            out = {s: self._get_int(b"m/count/" + s.encode()) for s in STATES}
            out["bytes_pending"] = self._get_big(b"m/open/bytes")
            out["payment_pending"] = self._get_big(b"m/open/payment")
        return out

    def next_nonce(self) -> int:
        """A fresh nonce for a receipt this node signs as receiver (persisted counter).

        Nonces are reserved ``NONCE_BLOCK`` at a time: ``m/nonce`` holds the highest nonce
        that may have been handed out (synced once per block, not once per receipt: a synced
        LevelDB write cost ~2 ms of every small get); a restart skips the rest of the block."""
        with self._lock:
            if self._nonce_next >= self._nonce_end:
                # Start from the clock so a wiped data dir does not reuse old nonces; then
                # count up (the contract's nonce bitmap makes neighbouring nonces cheap).
                last = self._get_int(b"m/nonce")
                start = last + 1 if last else int(time.time()) << 16
                self._nonce_next, self._nonce_end = start, start + NONCE_BLOCK
                self._db.put(b"m/nonce", _U64.pack(self._nonce_end - 1), sync=True)
            n = self._nonce_next
            self._nonce_next += 1
            return n
