"""ReceiptBox: signed transfer receipts a provider has accepted, kept durably in LevelDB.

The provider stores every receipt a receiver handed it (after checking the signature is the
Noise-authenticated peer's) until the chain client submits it in a batch. Keys (one LevelDB,
or a prefixed sub-database of one shared with other components of the same process)::

    r/<seq u64>                -> JSON record {receipt, state, added, tx, reason}
    k/<receiver 20><nonce u64> -> <seq u64>        idempotency: one record per (receiver, nonce)
    p/<seq u64>                -> b""              pending queue, oldest first
    m/seq, m/nonce, m/count/<state>                counters

Every change is one synced write batch, so a receipt acknowledged to the receiver survives a
crash. ``next_nonce`` gives this node, as a receiver, unique nonces for receipts it signs.

"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel

from node.receipt import SignedReceipt

_U64 = struct.Struct(">Q")
STATES = ("pending", "submitted", "rejected")


@dataclass(frozen=True)
class StoredReceipt:
    seq: int
    receipt: SignedReceipt
    state: str
    added: float
    tx: str | None = None
    reason: str | None = None


class ReceiptBox:
    """Durable receipt queue. Open with :meth:`open` (a path) or pass a plyvel DB/prefixed DB."""

    def __init__(self, db: Any, *, owns_db: bool = False) -> None:
        self._db = db
        self._owns = owns_db
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> ReceiptBox:
        Path(path).mkdir(parents=True, exist_ok=True)
        return cls(plyvel.DB(str(path), create_if_missing=True), owns_db=True)

    def close(self) -> None:
        if self._owns and not self._db.closed:
            self._db.close()

    def __enter__(self) -> ReceiptBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _get_int(self, key: bytes) -> int:
        v = self._db.get(key)
        return _U64.unpack(v)[0] if v else 0

    @staticmethod
    def _key_of(signed: SignedReceipt) -> bytes:
        r = signed.receipt
        return b"k/" + bytes.fromhex(r.receiver[2:]) + _U64.pack(r.nonce)

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
        )

    @staticmethod
    def _dump(rec: StoredReceipt) -> bytes:
        obj = {
            "receipt": rec.receipt.to_json_obj(),
            "state": rec.state,
            "added": rec.added,
            "tx": rec.tx,
            "reason": rec.reason,
        }
        return json.dumps(obj, sort_keys=True).encode()

    # -- API --------------------------------------------------------------------------------

    def add(self, signed: SignedReceipt) -> bool:
        """Queue a receipt; ``False`` if one with the same (receiver, nonce) is already here."""
        with self._lock:
            key = self._key_of(signed)
            if self._db.get(key) is not None:
                return False
            seq = self._get_int(b"m/seq") + 1
            rec = StoredReceipt(seq, signed, "pending", time.time())
            with self._db.write_batch(sync=True) as wb:
                wb.put(b"m/seq", _U64.pack(seq))
                wb.put(key, _U64.pack(seq))
                wb.put(b"r/" + _U64.pack(seq), self._dump(rec))
                wb.put(b"p/" + _U64.pack(seq), b"")
                wb.put(b"m/count/pending", _U64.pack(self._get_int(b"m/count/pending") + 1))
            return True

    def pending(self, limit: int | None = None) -> list[SignedReceipt]:
        """Receipts not yet submitted, oldest first (at most ``limit``)."""
        return [r.receipt for r in self.pending_records(limit)]

    def pending_records(self, limit: int | None = None) -> list[StoredReceipt]:
        out: list[StoredReceipt] = []
        for key, _ in self._db.iterator(prefix=b"p/"):
            out.append(self._load(_U64.unpack(key[2:])[0]))
            if limit is not None and len(out) >= limit:
                break
        return out

    pop_batch = pending  #: alias: the next batch to submit (not removed until marked)

    def list(self, state: str | None = None) -> Iterator[StoredReceipt]:
        for key, _ in self._db.iterator(prefix=b"r/"):
            rec = self._load(_U64.unpack(key[2:])[0])
            if state is None or rec.state == state:
                yield rec

    def _mark(self, receipts: Iterable[SignedReceipt], state: str, **fields: str) -> int:
        changed = 0
        with self._lock, self._db.write_batch(sync=True) as wb:
            counts = {s: self._get_int(b"m/count/" + s.encode()) for s in STATES}
            for signed in receipts:
                seq_raw = self._db.get(self._key_of(signed))
                if seq_raw is None:
                    continue
                seq = _U64.unpack(seq_raw)[0]
                rec = self._load(seq)
                if rec.state == state:
                    continue
                counts[rec.state] -= 1
                counts[state] += 1
                new = StoredReceipt(seq, rec.receipt, state, rec.added, **fields)
                wb.put(b"r/" + _U64.pack(seq), self._dump(new))
                wb.delete(b"p/" + _U64.pack(seq))
                changed += 1
            for s, n in counts.items():
                wb.put(b"m/count/" + s.encode(), _U64.pack(max(0, n)))
        return changed

    def mark_submitted(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> int:
        """Submitted on chain in ``tx_hash``: out of the pending queue (one atomic batch)."""
        return self._mark(receipts, "submitted", tx=tx_hash)

    def mark_rejected(self, receipts: Iterable[SignedReceipt], reason: str) -> int:
        return self._mark(receipts, "rejected", reason=reason)

    def counts(self) -> dict[str, int]:
        out = {s: self._get_int(b"m/count/" + s.encode()) for s in STATES}
        out["bytes_pending"] = sum(r.receipt.bytes_served for r in self.pending())
        return out

    def next_nonce(self) -> int:
        """A fresh nonce for a receipt this node signs as receiver (persisted counter)."""
        with self._lock:
            # Start from the clock so a wiped data dir does not reuse old nonces; then count
            # up (the contract's nonce bitmap makes neighbouring nonces cheap).
            last = self._get_int(b"m/nonce")
            n = last + 1 if last else int(time.time()) << 16
            self._db.put(b"m/nonce", _U64.pack(n), sync=True)
            return n
