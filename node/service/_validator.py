"""The validator's round (``bcai serve --validator``): scheduled challenges and slashes.

Each round, bounded so a round is a few transactions at most:

1. ``due_commitments()``: commitments the chain's randomness makes due this period and nobody
   challenged yet; challenge each (``challenge(root, slot)`` pays ``challengeBond``, returned
   with ``challengeReward`` when the host passes). The chain refuses a second challenge of a
   commitment in a period; the validator also keeps a durable record (LevelDB) of every
   challenge it sends, written *before* the transaction (an intent) and completed after it, so
   a restart, or an RPC node whose view lags a block, does not make it pay for a challenge it
   already sent.
2. ``expired_challenges()``: challenges whose response window passed unanswered; settle each
   with ``slash_expired`` (anyone may; the challenger of record gets half the slash).
3. with an ``allocator`` (``node.service.EpochAllocator``): allocate each final, funded epoch
   from the reputation ledger and post it (quorum one) or record its signature.

Validators are hosts too: their own commitments are skipped (a self-challenge proves nothing).

Keys under the prefix given::

    c/<challenge id u64>        -> JSON record of a challenge we issued
    i/<root 32><slot u8>        -> JSON intent {"at": unix seconds} while a challenge is sent
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import plyvel

from chain import ChainRevert
from chain.port import ChainPort
from node.content import root_hex
from node.log import get_logger

log = get_logger("node.validator")

_U64 = struct.Struct(">Q")


@dataclass
class IssuedChallenge:
    id: int
    root: str  #: 0x hex
    slot: int
    host: str
    seed_block: int
    deadline: int
    scheduled: bool
    tx_hash: str
    gas_used: int
    at: float
    block: int = 0  #: the block that included the challenge (its seed block is the next)
    state: str = "issued"  #: issued | slashed (expired, settled by us)


class ChallengeBook:
    """Durable record of the challenges this validator issued (LevelDB)."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    @staticmethod
    def _intent_key(root: bytes, slot: int) -> bytes:
        return b"i/" + bytes(root) + bytes([slot & 0xFF])

    def intent_at(self, root: bytes, slot: int) -> float | None:
        raw = self._db.get(self._intent_key(root, slot))
        return None if raw is None else float(json.loads(raw)["at"])

    def put_intent(self, root: bytes, slot: int, at: float) -> None:
        self._db.put(self._intent_key(root, slot), json.dumps({"at": at}).encode(), sync=True)

    def clear_intent(self, root: bytes, slot: int) -> None:
        self._db.delete(self._intent_key(root, slot), sync=True)

    def record(self, root: bytes, slot: int, rec: IssuedChallenge) -> None:
        """Store the issued challenge and drop the intent, in one synced batch."""
        with self._db.write_batch(sync=True) as wb:
            wb.put(b"c/" + _U64.pack(rec.id), json.dumps(asdict(rec)).encode())
            wb.delete(self._intent_key(root, slot))

    def get(self, challenge_id: int) -> IssuedChallenge | None:
        raw = self._db.get(b"c/" + _U64.pack(challenge_id))
        return None if raw is None else IssuedChallenge(**json.loads(raw))

    def update(self, rec: IssuedChallenge) -> None:
        self._db.put(b"c/" + _U64.pack(rec.id), json.dumps(asdict(rec)).encode(), sync=True)

    def all(self) -> Iterator[IssuedChallenge]:
        for _, raw in self._db.iterator(prefix=b"c/"):
            yield IssuedChallenge(**json.loads(raw))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"issued": 0, "slashed": 0}
        for rec in self.all():
            out[rec.state] = out.get(rec.state, 0) + 1
        return out


@dataclass
class ValidatorStatus:
    challenges: int = 0
    slashes: int = 0
    refused: int = 0
    txs: list[dict[str, Any]] = field(default_factory=list)


class ValidatorDuty:
    """One validator's round against a ``ChainPort`` (see the module docstring)."""

    def __init__(
        self,
        port: ChainPort,
        db: plyvel.DB,
        address: str,
        *,
        max_challenges: int = 16,
        max_slashes: int = 16,
        intent_ttl: float = 600.0,
        allocator: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.port = port
        self.allocator = allocator  #: an ``EpochAllocator`` (posting each final epoch), or None
        self.book = ChallengeBook(db)
        self.address = address
        self.max_challenges = max_challenges
        self.max_slashes = max_slashes
        self.intent_ttl = intent_ttl
        self.clock = clock
        self.status = ValidatorStatus()
        self._slash_refused: set[int] = set()  #: ids the chain refused to settle (this run)

    def challenge_due_once(self) -> list[IssuedChallenge]:
        """Challenge up to ``max_challenges`` due commitments; returns what was issued."""
        issued: list[IssuedChallenge] = []
        for root, slot, host in self.port.due_commitments():
            if len(issued) >= self.max_challenges:
                break
            if str(host).lower() == self.address.lower():
                continue
            now = self.clock()
            intent = self.book.intent_at(root, slot)
            if intent is not None and now - intent < self.intent_ttl:
                continue  # sent moments ago (or a crash mid-send): the chain may not show it yet
            self.book.put_intent(root, slot, now)
            try:
                res, ch = self.port.challenge(root, slot)
            except ChainRevert as exc:
                # Challenged by another validator in the meantime, not due after all, ...
                self.book.clear_intent(root, slot)
                self.status.refused += 1
                log.info("challenge refused", root=root_hex(root), slot=slot, error=str(exc))
                continue
            rec = IssuedChallenge(
                id=int(ch.id),
                root=root_hex(root),
                slot=int(slot),
                host=str(host),
                seed_block=int(ch.seed_block),
                deadline=int(ch.deadline),
                scheduled=bool(getattr(ch, "scheduled", True)),
                tx_hash=res.tx_hash,
                gas_used=res.gas_used,
                at=now,
                block=res.block,
            )
            self.book.record(root, slot, rec)
            issued.append(rec)
            self.status.challenges += 1
            self.status.txs.append(
                {"step": "challenge", "id": rec.id, "tx": res.tx_hash, "gas_used": res.gas_used}
            )
            log.info(
                "challenged",
                id=rec.id,
                root=rec.root,
                slot=rec.slot,
                host=rec.host,
                scheduled=rec.scheduled,
                gas_used=res.gas_used,
            )
        return issued

    def slash_expired_once(self) -> list[int]:
        """Settle up to ``max_slashes`` expired challenges; returns the ids settled."""
        settled: list[int] = []
        for cid in self.port.expired_challenges():
            if len(settled) >= self.max_slashes:
                break
            if cid in self._slash_refused:
                continue
            try:
                res = self.port.slash_expired(cid)
            except ChainRevert as exc:
                self._slash_refused.add(cid)
                log.info("slash refused", challenge=cid, error=str(exc))
                continue
            settled.append(cid)
            self.status.slashes += 1
            self.status.txs.append(
                {"step": "slashExpired", "id": cid, "tx": res.tx_hash, "gas_used": res.gas_used}
            )
            rec = self.book.get(cid)
            if rec is not None:
                rec.state = "slashed"
                self.book.update(rec)
            log.info("expired challenge slashed", challenge=cid, gas_used=res.gas_used)
        return settled

    def run_once(self) -> dict[str, Any]:
        issued = self.challenge_due_once()
        slashed = self.slash_expired_once()
        out: dict[str, Any] = {"challenged": [c.id for c in issued], "slashed": slashed}
        if self.allocator is not None:
            out["allocated"] = self.allocator.run_once()
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "issued_this_run": self.status.challenges,
            "slashed_this_run": self.status.slashes,
            "refused_this_run": self.status.refused,
            "book": self.book.counts(),
            "txs": self.status.txs[-10:],
            **(
                {"allocations": self.allocator.posted[-10:], "signed": self.allocator.signatures}
                if self.allocator is not None
                else {}
            ),
        }
