"""An in-memory chain behind the ``ChainPort`` interface, for the service duties' tests.

It models exactly what the duties depend on, the way the contracts do it: receipts judged one by
one (nonce per receiver, ``IssuedInFuture`` against the chain's clock, an unregistered root
rejected), challenges whose indices are drawn only once the seed block and one more are mined,
answers checked against the slot root (RFC 6962 audit paths), one challenge per commitment per
period, expiry and slashing. It can crash on purpose after a batch is "mined" (``crash_after``)
so tests can show what a restart reconciles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from chain import ChainUnavailable, TxResult, revert_class
from chain.client import Challenge, ChallengeStatus, RejectedReceipt, SubmitReport
from node.content import InvalidProof, leaf_hash, verify_inclusion
from node.receipt import SignedReceipt


class SimulatedCrash(BaseException):
    """The process "dies" here (not an Exception: nothing in the duties may catch it)."""


@dataclass(frozen=True)
class FakeChallenge:
    id: int
    host: str
    root: bytes
    slot: int
    seed_block: int
    deadline: float
    scheduled: bool
    status: str = "open"

    def view(self, indices: list[int] | None) -> Challenge:
        """What the chain client reports."""
        return Challenge(
            id=self.id,
            host=self.host,
            root=self.root,
            slot=self.slot,
            seed_block=self.seed_block,
            deadline=int(self.deadline),
            scheduled=self.scheduled,
            indices=None if indices is None else tuple(indices),
            status=ChallengeStatus.OPEN if self.status == "open" else ChallengeStatus.FAILED,
        )


@dataclass
class Commitment:
    root: bytes
    slot: int
    host: str
    slot_root: bytes
    rows: int
    due: bool = True
    challenged_in: int = -1  #: period of the last challenge
    slashed: int = 0


def receipt_key(signed: SignedReceipt) -> tuple[Any, ...]:
    r = signed.receipt
    return (r.receiver, r.nonce, r.content_root, r.provider, r.bytes_served, signed.signature)


class FakeChain:
    """Shared chain state (several ports, one per account, may point at it)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.block = 100
        self.period_blocks = 50
        self.samples = 4
        self.response_window = 600.0
        self.registered: set[bytes] = set()
        self.used_nonces: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.receipt_txs = 0
        self.commitments: dict[tuple[bytes, int], Commitment] = {}
        self.challenges: dict[int, FakeChallenge] = {}
        self.owed: dict[str, int] = {}
        self.up = True
        self._tx = 0

    def tx(self) -> TxResult:
        self._tx += 1
        self.block += 1
        return TxResult(f"0x{self._tx:064x}", 50_000, self.block)

    @property
    def period(self) -> int:
        return self.block // self.period_blocks

    def draw(self, ch: FakeChallenge) -> list[int]:
        rows = self.commitments[(ch.root, ch.slot)].rows
        out = []
        for k in range(self.samples):
            h = hashlib.sha256(f"{ch.seed_block}/{ch.id}/{k}".encode()).digest()
            out.append(int.from_bytes(h, "big") % rows)
        return out


class FakePort:
    """``ChainPort`` for ``account`` over a :class:`FakeChain`; records every call."""

    def __init__(self, chain: FakeChain, account: str, *, dev: bool = True) -> None:
        self.chain = chain
        self.account = account
        self.dev = dev
        self.calls: list[str] = []
        self.crash_after: str | None = None  #: method name: crash once its effect is on chain
        self.crash_before: str | None = None  #: method name: crash before it does anything
        self.mined = 0

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if not self.chain.up:
            raise ChainUnavailable("fake chain is down")
        if self.crash_before == name:
            self.crash_before = None
            raise SimulatedCrash(name)

    def _leave(self, name: str) -> None:
        if self.crash_after == name:
            self.crash_after = None
            raise SimulatedCrash(name)

    def is_up(self) -> bool:
        return self.chain.up

    # -- receipts --------------------------------------------------------------------------

    def publish(self, *args: Any, **kwargs: Any) -> TxResult | None:
        raise NotImplementedError

    def submit_receipts(self, receipts: Sequence[SignedReceipt]) -> SubmitReport:
        self._enter("submit_receipts")
        report = SubmitReport()
        c = self.chain
        for signed in receipts:
            r = signed.receipt
            if r.provider.lower() != self.account.lower():
                report.rejected.append(RejectedReceipt(signed, "NotProvider"))
            elif (r.receiver, r.nonce) in c.used_nonces:
                report.rejected.append(RejectedReceipt(signed, "NonceUsed"))
            elif r.issued_at > c.now:
                report.deferred.append(RejectedReceipt(signed, "IssuedInFuture"))
            elif r.content_root not in c.registered:
                report.rejected.append(RejectedReceipt(signed, "RootNotRegistered"))
            else:
                c.used_nonces[(r.receiver, r.nonce)] = receipt_key(signed)
                report.accepted.append(signed)
        if report.accepted:
            report.txs.append(c.tx())
            c.receipt_txs += 1
        self._leave("submit_receipts")
        return report

    def receipt_on_chain(self, receipt: SignedReceipt) -> bool:
        self._enter("receipt_on_chain")
        r = receipt.receipt
        return self.chain.used_nonces.get((r.receiver, r.nonce)) == receipt_key(receipt)

    # -- hosting ---------------------------------------------------------------------------

    def open_challenges(self, host: str) -> list[Challenge]:
        self._enter("open_challenges")
        out = []
        for ch in self.chain.challenges.values():
            if ch.host.lower() != host.lower() or ch.status != "open":
                continue
            # Drawn once a block follows the seed block (calls run in the latest block).
            drawn = self.chain.block > ch.seed_block
            out.append(ch.view(self.chain.draw(ch) if drawn else None))
        return out

    def respond(
        self, challenge_id: int, segments: Sequence[bytes], proofs: Sequence[Sequence[bytes]]
    ) -> TxResult:
        self._enter("respond")
        c = self.chain
        ch = c.challenges[challenge_id]
        if ch.status != "open" or c.now > ch.deadline:
            raise revert_class("ChallengeNotOpen")("ChallengeNotOpen")
        if c.block <= ch.seed_block:
            raise revert_class("SeedNotReady")("SeedNotReady")
        com = c.commitments[(ch.root, ch.slot)]
        indices = c.draw(ch)
        ok = len(segments) == len(indices) == len(proofs)
        for seg, path, idx in zip(segments, proofs, indices, strict=False):
            try:
                if len(seg) != 4096:
                    raise InvalidProof("length")
                verify_inclusion(leaf_hash(seg), idx, com.rows, list(path), com.slot_root)
            except InvalidProof:
                ok = False
        c.challenges[challenge_id] = replace(ch, status="passed" if ok else "failed")
        return c.tx()

    def mine_if_dev(self, blocks: int = 1) -> None:
        self._enter("mine_if_dev")
        if self.dev:
            self.chain.block += blocks
            self.mined += blocks

    def withdraw_owed(self) -> TxResult | None:
        self._enter("withdraw_owed")
        if not self.chain.owed.pop(self.account, 0):
            return None
        return self.chain.tx()

    # -- validator -------------------------------------------------------------------------

    def due_commitments(self) -> list[tuple[bytes, int, str]]:
        self._enter("due_commitments")
        c = self.chain
        return [
            (k.root, k.slot, k.host)
            for k in c.commitments.values()
            if k.due and k.challenged_in != c.period
        ]

    def challenge(self, root: bytes, slot: int) -> tuple[TxResult, Challenge]:
        self._enter("challenge")
        c = self.chain
        com = c.commitments[(root, slot)]
        if com.challenged_in == c.period:
            raise revert_class("AlreadyChallenged")("AlreadyChallenged")
        com.challenged_in = c.period
        tx = c.tx()
        cid = len(c.challenges) + 1
        ch = FakeChallenge(
            cid, com.host, root, slot, tx.block + 1, c.now + c.response_window, com.due
        )
        c.challenges[cid] = ch
        self._leave("challenge")
        return tx, ch.view(None)

    def expired_challenges(self) -> list[int]:
        self._enter("expired_challenges")
        c = self.chain
        return [i for i, ch in c.challenges.items() if ch.status == "open" and c.now > ch.deadline]

    def slash_expired(self, challenge_id: int) -> TxResult:
        self._enter("slash_expired")
        c = self.chain
        ch = c.challenges[challenge_id]
        if ch.status != "open" or c.now <= ch.deadline:
            raise revert_class("NotExpired")("NotExpired")
        c.challenges[challenge_id] = replace(ch, status="expired")
        c.commitments[(ch.root, ch.slot)].slashed += 1
        return c.tx()
