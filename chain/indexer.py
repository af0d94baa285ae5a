"""Replay the suite's events into LevelDB: idempotent, restart-safe, reorg-aware.

Model. ``sync()`` reads logs from the block after the cursor up to the chain head, in steps of
``step`` blocks. Events are stored under keys ordered by (block, log index), so writing the same
range twice writes the same keys (idempotent). The cursor is written in the same atomic
``write_batch`` as the events of its range, so a crash leaves either the old or the new state.

Confirmation depth. Events become *confirmed* once ``confirmations`` blocks sit on top of them;
``events(confirmed=True)`` (the default) and ``ledger_events()`` only return those, so the
payout ledger, which never un-applies, is fed only final facts.

Reorgs. The hashes of the last ``keep`` (>= ``confirmations``) indexed blocks are stored. Each
``sync()`` first compares the stored hash of the cursor block with the chain's; on a mismatch it
walks back to the newest block whose hash still matches (the fork point), deletes every event,
name-index entry and hash above it in one batch, moves the cursor there and replays. A fork
below the kept window raises ``ReorgTooDeep``. Logs whose ``blockHash`` disagrees with the
header read in the same pass (a reorg during the pass) end the pass early; the next pass fixes it.

Keys (inside ``db.prefixed_db(b"ix/")``; integers big-endian)::

    c                                   cursor: JSON {block, hash, head, confirmed, contracts}
    h <block:8>                         block hash (32 bytes), last ``keep`` indexed blocks
    e <block:8> <log_index:4>           event: JSON {name, contract, address, block_hash,
                                        tx_hash, timestamp, args}; bytes as 0x-hex
    n <name> 0x00 <block:8> <log:4>     empty; index of events by name
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import plyvel

from node.ledger import LedgerEvent, ProofFailed, ProofPassed, ReceiptPaid, StoragePaid
from node.log import get_logger

from .backend import ChainBackend
from .client import FailReason
from .deploy import Deployment
from .errors import ChainUsageError, ReorgTooDeep
from .events import ChainEvent, EventDecoder, args_from_json, args_to_json
from .reverts import map_errors

__all__ = ["INDEXED_EVENTS", "Indexer", "SyncResult"]

log = get_logger("chain.indexer")

#: The events the node cares about (every suite event is stored; these are the documented ones).
INDEXED_EVENTS = (
    "ContentRegistered",
    "ReceiptAccepted",
    "ReceiptRejected",
    "Committed",
    "ChallengeIssued",
    "ChallengePassed",
    "ChallengeFailed",
    "StoragePaid",
    "EpochFunded",
    "AllocationPosted",
    "Claimed",
)

_B = struct.Struct(">Q")
_BL = struct.Struct(">QI")
_CURSOR = b"c"


@dataclass(frozen=True)
class SyncResult:
    from_block: int
    to_block: int
    events: int
    rolled_back_to: int | None
    confirmed: int


def _ekey(block: int, log_index: int) -> bytes:
    return b"e" + _BL.pack(block, log_index)


def _nkey(name: str, block: int, log_index: int) -> bytes:
    return b"n" + name.encode() + b"\x00" + _BL.pack(block, log_index)


class Indexer:
    """Indexes one deployment into ``db`` (a plyvel DB or prefixed DB)."""

    def __init__(
        self,
        db: Any,
        backend: ChainBackend,
        deployment: Deployment,
        *,
        confirmations: int = 6,
        keep: int | None = None,
        step: int = 2000,
    ) -> None:
        self.db = db.prefixed_db(b"ix/")
        self.backend = backend
        self.deployment = deployment
        self.confirmations = confirmations
        self.keep = max(keep if keep is not None else 64, confirmations + 1)
        self.step = step
        self.decoder = EventDecoder(backend.w3, deployment.contracts())
        self._epochs: dict[int, int] = {}
        cursor = self.cursor()
        if cursor and cursor.get("contracts") != deployment.contracts():
            raise ChainUsageError("this index belongs to another deployment")

    @classmethod
    def open(cls, path: str, backend: ChainBackend, deployment: Deployment, **kw: Any) -> Indexer:
        return cls(plyvel.DB(str(path), create_if_missing=True), backend, deployment, **kw)

    # -- cursor --------------------------------------------------------------------------------

    def cursor(self) -> dict[str, Any] | None:
        raw = self.db.get(_CURSOR)
        return json.loads(raw) if raw else None

    @property
    def block(self) -> int:
        """Last indexed block (deployment block - 1 before the first sync)."""
        c = self.cursor()
        return int(c["block"]) if c else self.deployment.block - 1

    @property
    def confirmed(self) -> int:
        c = self.cursor()
        return int(c["confirmed"]) if c else self.deployment.block - 1

    # -- sync ----------------------------------------------------------------------------------

    def sync(self, to_block: int | None = None) -> SyncResult:
        """Index up to ``to_block`` (default: the head). Safe to call at any time, repeatedly."""
        w3: Any = self.backend.w3
        with map_errors():
            head = int(w3.eth.block_number)
        rolled = self._check_reorg()
        start = self.block + 1
        target = head if to_block is None else min(to_block, head)
        count = 0
        a = start
        while a <= target:
            b = min(a + self.step - 1, target)
            done, n = self._index_range(a, b, head)
            count += n
            if not done:
                break
            a = b + 1
        return SyncResult(start, self.block, count, rolled, self.confirmed)

    def _header_hash(self, number: int) -> bytes:
        w3: Any = self.backend.w3
        with map_errors():
            return bytes(w3.eth.get_block(number)["hash"])

    def _check_reorg(self) -> int | None:
        c = self.cursor()
        if not c or int(c["block"]) < self.deployment.block:
            return None
        block = int(c["block"])
        if self._header_hash(block).hex() == c["hash"]:
            return None
        # Walk back over the kept hashes to the newest one the chain still agrees with.
        for key, stored in self.db.iterator(prefix=b"h", reverse=True):
            (number,) = _B.unpack(key[1:])
            if self._header_hash(number) == stored:
                self._rollback(number, stored, c)
                return number
        if block - self.keep < self.deployment.block:
            # Every kept block is gone, but the window reaches back past deployment.
            self._rollback(self.deployment.block - 1, b"", c)
            return self.deployment.block - 1
        raise ReorgTooDeep(f"fork below block {block - self.keep + 1}: re-index from scratch")

    def _rollback(self, fork: int, fork_hash: bytes, cursor: dict[str, Any]) -> None:
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for key, value in self.db.iterator(start=_ekey(fork + 1, 0), stop=b"f"):
                block, log_index = _BL.unpack(key[1:])
                wb.delete(key)
                wb.delete(_nkey(json.loads(value)["name"], block, log_index))
            for key in self.db.iterator(
                start=b"h" + _B.pack(fork + 1), stop=b"i", include_value=False
            ):
                wb.delete(key)
            new = dict(cursor)
            new.update(
                block=fork, hash=fork_hash.hex(), confirmed=min(int(cursor["confirmed"]), fork)
            )
            wb.put(_CURSOR, json.dumps(new, sort_keys=True).encode())

    def _index_range(self, a: int, b: int, head: int) -> tuple[bool, int]:
        w3: Any = self.backend.w3
        with map_errors():
            logs = w3.eth.get_logs(
                {"fromBlock": a, "toBlock": b, "address": self.decoder.addresses}
            )
        window_start = max(a, head - self.keep + 1)
        hashes = {n: self._header_hash(n) for n in range(window_start, b + 1)}
        tip_hash = hashes.get(b) or self._header_hash(b)
        events = self.decoder.decode_all(logs)
        for e in events:
            if e.block_number in hashes and hashes[e.block_number] != e.block_hash:
                return False, 0  # the chain moved under us; the next pass sees the new branch
        timestamps: dict[int, int] = {}
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for e in events:
                if e.block_number not in timestamps:
                    with map_errors():
                        block = w3.eth.get_block(e.block_number)
                    timestamps[e.block_number] = int(block["timestamp"])
                record = {
                    "name": e.name,
                    "contract": e.contract,
                    "address": e.address,
                    "block_hash": e.block_hash.hex(),
                    "tx_hash": e.tx_hash.hex(),
                    "timestamp": timestamps[e.block_number],
                    "args": args_to_json(e.args),
                }
                wb.put(
                    _ekey(e.block_number, e.log_index), json.dumps(record, sort_keys=True).encode()
                )
                wb.put(_nkey(e.name, e.block_number, e.log_index), b"")
            for number, h in hashes.items():
                wb.put(b"h" + _B.pack(number), h)
            for key in self.db.iterator(
                start=b"h", stop=b"h" + _B.pack(max(0, b - self.keep + 1)), include_value=False
            ):
                wb.delete(key)
            cursor = {
                "block": b,
                "hash": tip_hash.hex(),
                "head": head,
                "confirmed": max(self.deployment.block - 1, min(b, head - self.confirmations)),
                "contracts": self.deployment.contracts(),
            }
            wb.put(_CURSOR, json.dumps(cursor, sort_keys=True).encode())
        return True, len(events)

    # -- queries -------------------------------------------------------------------------------

    def _load(self, key: bytes, value: bytes) -> ChainEvent:
        block, log_index = _BL.unpack(key[1:])
        r = json.loads(value)
        args = args_from_json(self.decoder.types.get(r["name"], {}), r["args"])
        args["_timestamp"] = r["timestamp"]
        return ChainEvent(
            name=r["name"],
            contract=r["contract"],
            address=r["address"],
            block_number=block,
            block_hash=bytes.fromhex(r["block_hash"]),
            tx_hash=bytes.fromhex(r["tx_hash"]),
            log_index=log_index,
            args=args,
        )

    def _load_or_skip(self, key: bytes, value: bytes) -> ChainEvent | None:
        try:
            return self._load(key, value)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("stored event unreadable, skipped", key=key.hex(), error=repr(exc))
            return None

    def events(
        self, name: str | None = None, *, confirmed: bool = True, from_block: int = 0
    ) -> Iterator[ChainEvent]:
        """Stored events in chain order (``args["_timestamp"]`` is the block time)."""
        limit = self.confirmed if confirmed else self.block
        if name is None:
            for key, value in self.db.iterator(start=_ekey(from_block, 0), stop=b"f"):
                if _BL.unpack(key[1:])[0] > limit:
                    return
                event = self._load_or_skip(key, value)
                if event is not None:
                    yield event
            return
        prefix = b"n" + name.encode() + b"\x00"
        for key in self.db.iterator(
            start=prefix + _BL.pack(from_block, 0), stop=prefix[:-1] + b"\x01", include_value=False
        ):
            block, log_index = _BL.unpack(key[len(prefix) :])
            if block > limit:
                return
            value = self.db.get(_ekey(block, log_index))
            if value is not None:
                event = self._load_or_skip(_ekey(block, log_index), value)
                if event is not None:
                    yield event

    def _epoch_of(self, timestamp: int) -> int:
        """``TransferReceipts.epochOf(timestamp)``, asked once per timestamp."""
        cached = self._epochs.get(timestamp)
        if cached is None:
            from .contracts import load_artifact

            w3: Any = self.backend.w3
            tr = w3.eth.contract(
                address=self.deployment.transfer_receipts, abi=load_artifact("TransferReceipts").abi
            )
            with map_errors():
                cached = int(tr.functions.epochOf(timestamp).call())
            self._epochs[timestamp] = cached
        return cached

    def _scheduled(self, challenge_id: int, issued: dict[int, bool]) -> bool:
        """Whether challenge ``challenge_id`` was scheduled, from its ``ChallengeIssued``."""
        if challenge_id not in issued:  # replay started after it: look it up once
            for e in self.events("ChallengeIssued", confirmed=False):
                issued[int(e.args["id"])] = bool(e.args["scheduled"])
            issued.setdefault(challenge_id, False)
        return issued[challenge_id]

    def ledger_events(self, *, from_block: int = 0) -> Iterator[LedgerEvent]:
        """Confirmed facts for ``node.ledger.PayoutLedger.apply`` (idempotent by ``key``), in
        chain order. An event that does not convert is skipped with a log line, never raised:
        one odd log must not stop every validator's allocation."""
        issued: dict[int, bool] = {}
        for e in self.events(confirmed=True, from_block=from_block):
            try:
                out = self._to_ledger(e, issued)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("event skipped", name=e.name, key=e.key, error=repr(exc))
                continue
            if out is not None:
                yield out

    def _to_ledger(self, e: ChainEvent, issued: dict[int, bool]) -> LedgerEvent | None:
        a = e.args
        if e.name == "ChallengeIssued":
            issued[int(a["id"])] = bool(a["scheduled"])
            return None
        if e.name == "ReceiptAccepted":
            return ReceiptPaid(
                key=e.key,
                epoch=int(a["epoch"]),
                provider=str(a["provider"]),
                receiver=str(a["receiver"]),
                content_root=bytes(a["contentRoot"]),
                bytes_served=int(a["bytesServed"]),
                payment=int(a["payment"]),
                fee=int(a["fee"]),
            )
        if e.name == "StoragePaid":
            return StoragePaid(
                key=e.key,
                epoch=int(a["epoch"]),
                host=str(a["host"]),
                content_root=bytes(a["root"]),
                slot=int(a["slot"]),
                amount=int(a["amount"]),
                fee=int(a["fee"]),
            )
        if e.name == "ChallengePassed":
            return ProofPassed(
                key=e.key,
                epoch=self._epoch_of(int(a["_timestamp"])),
                host=str(a["host"]),
                content_root=bytes(a["root"]),
                slot=int(a["slot"]),
                scheduled=self._scheduled(int(a["id"]), issued),
            )
        if e.name == "ChallengeFailed":
            reason = int(a["reason"])
            kind: Literal["expired", "invalid"]
            if reason == FailReason.EXPIRED:
                kind = "expired"
            elif reason in (FailReason.WRONG_LENGTH, FailReason.INVALID_PROOF):
                kind = "invalid"
            else:
                raise ValueError(f"fail reason {reason}")
            return ProofFailed(
                key=e.key,
                epoch=self._epoch_of(int(a["_timestamp"])),
                host=str(a["host"]),
                content_root=bytes(a["root"]),
                slot=int(a["slot"]),
                reason=kind,
                terminated=bool(a["terminated"]),
                slashed=int(a["slashed"]),
            )
        return None
