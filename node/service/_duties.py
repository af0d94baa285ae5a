"""Chain duties of a running node: submit collected receipts, answer challenges, validate.

Runs inside ``bcai serve`` (and the demo), unattended. Each duty is a synchronous step
(``submit_receipts_once``, ``answer_challenges_once``, ``withdraw_owed_once`` and, on a
validator, :meth:`ValidatorDuty.run_once`) that does one round of work against the narrow
``ChainPort`` interface and returns what happened; :meth:`ChainDuties.run` calls them on a
schedule from trio, in a worker thread (web3 calls block), and backs off with full jitter while
the chain is down. Durable state lives in LevelDB (the receipt box, the answer queue, the
validator's challenge book), so a chain outage or a restart delays the work and loses none of it.

Receipt submission is crash-safe and cannot be blocked:

- a batch is marked *in flight* in the receipt box before it is sent; on start-up (and after any
  round that left receipts in flight) each in-flight receipt is reconciled with the chain
  (``receipt_on_chain``: a ``ReceiptAccepted`` with its digest exists): on chain -> submitted,
  not -> pending again. A crash between a mined batch and the marks therefore never turns a
  credited receipt into "rejected: NonceUsed"; and a ``NonceUsed`` verdict is itself checked
  against the chain before a receipt is called rejected.
- a receipt the chain cannot take *yet* (``IssuedInFuture``, ``InsufficientEscrow``) is
  deferred with a retry time; the box's ``pending`` skips it until then, so the next batch is
  made of other receipts and no receipt (nor a hundred from one peer) holds up the queue.

Challenge answers: a host that cannot build a correct answer (slot data missing or damaged)
does **not** send one. A wrong answer is deletion evidence (``proofSlashBps`` and termination);
an unanswered challenge is a fault (``faultSlashBps``, the host is kept until ``maxFaults``
consecutive faults), so letting it expire is the cheaper, honest outcome; the failure is
recorded in the answer queue and logged for the operator (``bcai status``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from chain import ChainError, ChainRevert, ChainUnavailable
from chain.port import ChainPort
from node.content import root_hex
from node.log import get_logger
from node.receipt import SignedReceipt
from node.store import StoreError
from node.transfer._backoff import Backoff

from ._answers import AnswerQueue, AnswerRecord

log = get_logger("node.service")

#: Chain verdicts that are not final: the receipt is deferred and tried again later.
DEFER_REASONS = frozenset({"IssuedInFuture", "InsufficientEscrow"})

CHAIN_BACKOFF = Backoff(base=0.5, cap=30.0)  #: retry policy while the chain is down


class ReceiptOutbox(Protocol):
    """What the duties need from the provider's durable receipt box (``ReceiptBox``)."""

    def pending(self, limit: int) -> list[SignedReceipt]: ...

    def mark_submitted(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> object: ...

    def mark_rejected(self, receipts: Iterable[SignedReceipt], reason: str) -> object: ...

    def defer(self, receipts: Iterable[SignedReceipt], until: float, reason: str) -> object: ...

    def mark_inflight(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> object: ...

    def inflight(self) -> list[tuple[SignedReceipt, str]]: ...

    def requeue(self, receipts: Iterable[SignedReceipt]) -> object: ...

    def counts(self) -> dict[str, int]: ...


class SlotProver(Protocol):
    """What the host duty needs from ``node.store.SlotStore``."""

    def prove(
        self, root: bytes, slot: int, indices: Sequence[int]
    ) -> list[tuple[bytes, list[bytes]]]: ...


@dataclass(frozen=True)
class DeferPolicy:
    """When a deferred receipt is tried again (seconds)."""

    min_delay: float = 2.0  #: never sooner (the chain's clock moves in blocks)
    future_cap: float = 3600.0  #: a receipt "issued" further ahead waits at most this per try
    escrow_retry: float = 300.0  #: the receiver may top up its escrow
    other_retry: float = 60.0

    def until(self, signed: SignedReceipt, reason: str, now: float) -> float:
        if reason == "IssuedInFuture":
            ahead = float(signed.receipt.issued_at) - now + self.min_delay
            return now + min(self.future_cap, max(self.min_delay, ahead))
        if reason == "InsufficientEscrow":
            return now + self.escrow_retry
        return now + self.other_retry


@dataclass
class DutyStatus:
    chain_up: bool = True
    last_error: str = ""
    receipts_submitted: int = 0
    receipts_rejected: int = 0
    receipts_deferred: int = 0
    receipts_reconciled: int = 0
    receipt_txs: list[dict[str, Any]] = field(default_factory=list)
    answers_sent: int = 0
    answers_failed: int = 0
    answer_txs: list[dict[str, Any]] = field(default_factory=list)
    blocks_mined: int = 0
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0


class ChainDuties:
    """One node's chain work. ``host`` is the node's Ethereum address.

    ``slots`` (the node's ``SlotStore``) enables the host duty; ``validator`` adds the
    validator's round (see :class:`node.service.ValidatorDuty`).
    """

    def __init__(
        self,
        port: ChainPort,
        outbox: ReceiptOutbox,
        answers: AnswerQueue,
        host: str,
        *,
        slots: SlotProver | None = None,
        validator: Any = None,
        batch_size: int = 100,
        interval: float = 5.0,
        backoff: Backoff = CHAIN_BACKOFF,
        defer_policy: DeferPolicy = DeferPolicy(),
        mine_after: float = 3.0,
        withdraw_every: float = 3600.0,
        rng: random.Random | None = None,
        chain_lock: AbstractContextManager[Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.port = port
        self.outbox = outbox
        self.answers = answers
        self.host = host
        self.slots = slots
        self.validator = validator
        self.batch_size = batch_size
        self.interval = interval
        self.backoff = backoff
        self.defer_policy = defer_policy
        self.mine_after = mine_after
        self.withdraw_every = withdraw_every
        self.rng = rng or random.Random()
        self.lock: AbstractContextManager[Any] = chain_lock or threading.Lock()
        self.clock = clock
        self.status = DutyStatus()
        self._reconciled = False  #: in-flight receipts checked against the chain since start
        self._undrawn: dict[int, float] = {}  #: challenge id -> when we last saw it undrawn
        self._last_withdraw = float("-inf")

    # -- receipts ------------------------------------------------------------------------------

    def reconcile_inflight(self) -> dict[str, int]:
        """Make every in-flight receipt's state true to the chain (start-up, after a crash).

        On chain (a ``ReceiptAccepted`` with its digest) -> submitted; not -> pending again
        (due at once). Raises ``ChainUnavailable`` when the chain cannot tell: then nothing is
        changed and the receipts stay in flight until it can.
        """
        on, off = 0, 0
        for signed, tx_hash in self.outbox.inflight():
            if self.port.receipt_on_chain(signed):
                self.outbox.mark_submitted([signed], tx_hash or "reconciled")
                on += 1
            else:
                self.outbox.requeue([signed])
                off += 1
        self._reconciled = True
        if on or off:
            self.status.receipts_reconciled += on + off
            log.info("in-flight receipts reconciled", on_chain=on, back_to_pending=off)
        return {"on_chain": on, "pending": off}

    def submit_receipts_once(self) -> dict[str, Any]:
        """Submit up to ``batch_size`` due receipts; returns a summary of this round."""
        if not self._reconciled or self.outbox.inflight():
            self.reconcile_inflight()
        batch = self.outbox.pending(self.batch_size)
        if not batch:
            return {"submitted": 0}
        if not self.port.is_up():  # a known outage: keep them plainly pending
            raise ChainUnavailable("chain is down; receipts stay queued")
        self.outbox.mark_inflight(batch, "")  # before sending: a crash now is reconciled later
        report = self.port.submit_receipts(batch)
        tx_hash = report.tx_hash or ""
        accepted = list(report.accepted)
        rejected: list[tuple[SignedReceipt, str]] = []
        for signed, reason in report.rejected:
            if reason in DEFER_REASONS:  # the port pre-checks; the chain has the last word
                self._defer(signed, reason)
            elif reason == "NonceUsed" and self.port.receipt_on_chain(signed):
                accepted.append(signed)  # ours, credited by an earlier (interrupted) send
            else:
                rejected.append((signed, reason))
        for signed, reason in report.deferred:
            self._defer(signed, reason)
        if accepted:
            self.outbox.mark_submitted(accepted, tx_hash)
        for signed, reason in rejected:
            self.outbox.mark_rejected([signed], reason)
        # Anything the port said nothing about is still in flight: reconciled next round.
        self.status.receipts_submitted += len(accepted)
        self.status.receipts_rejected += len(rejected)
        gas = report.gas_used
        if tx_hash:
            self.status.receipt_txs.append({"tx": tx_hash, "gas_used": gas})
        deferred = len(batch) - len(accepted) - len(rejected)
        log.info(
            "receipts submitted",
            accepted=len(accepted),
            rejected=[r for _, r in rejected],
            deferred=deferred,
            gas_used=gas,
            tx=tx_hash,
        )
        return {
            "submitted": len(accepted),
            "rejected": len(rejected),
            "deferred": deferred,
            "gas": gas,
        }

    def _defer(self, signed: SignedReceipt, reason: str) -> None:
        until = self.defer_policy.until(signed, reason, self.clock())
        self.outbox.defer([signed], until, reason)
        self.status.receipts_deferred += 1

    # -- challenges ----------------------------------------------------------------------------

    def answer_challenges_once(self) -> dict[str, Any]:
        """Queue answers to open challenges whose indices are drawn, then send queued answers.

        A challenge whose seed block is still unmined after ``mine_after`` seconds makes the
        node ask a dev chain to mine (``mine_if_dev``): a chain that mines only on transactions
        would otherwise never draw the indices, and the honest host would be slashed.
        """
        if self.slots is None:
            return {"answered": 0}
        now = self.clock()
        mine = False
        seen: set[int] = set()
        for ch in self.port.open_challenges(self.host):
            seen.add(ch.id)
            if self.answers.get(ch.id) is not None:
                continue
            if ch.indices is None:
                first = self._undrawn.setdefault(ch.id, now)
                if now - first >= self.mine_after:
                    mine = True
                    self._undrawn[ch.id] = now
                continue
            self._undrawn.pop(ch.id, None)
            self.answers.put(self._build_answer(ch))
        for cid in list(self._undrawn):
            if cid not in seen:
                del self._undrawn[cid]
        if mine:
            self.port.mine_if_dev(2)  # the seed block and one after it (calls see the latest)
            self.status.blocks_mined += 2
            log.info("seed block not mined: asked the dev chain to mine")
        sent = 0
        for rec in self.answers.queued():
            if self._send_answer(rec, now):
                sent += 1
        return {"answered": sent}

    def _build_answer(self, ch: Any) -> AnswerRecord:
        assert self.slots is not None
        indices = [int(i) for i in ch.indices]
        rec = AnswerRecord(ch.id, root_hex(ch.root), int(ch.slot), indices, int(ch.deadline))
        try:
            pairs = self.slots.prove(ch.root, int(ch.slot), indices)
        except (StoreError, ValueError, LookupError, OSError) as exc:
            # No correct answer possible: do not send a wrong one (see the module docstring).
            rec.state, rec.error = "failed", f"cannot prove: {type(exc).__name__}: {exc}"
            self.status.answers_failed += 1
            log.warning(
                "challenge cannot be answered; it will expire (a fault, not deletion evidence)",
                challenge=ch.id,
                root=rec.root,
                slot=rec.slot,
                error=rec.error,
            )
            return rec
        rec.segments = [bytes(seg).hex() for seg, _ in pairs]
        rec.proofs = [[bytes(p).hex() for p in path] for _, path in pairs]
        return rec

    def _send_answer(self, rec: AnswerRecord, now: float) -> bool:
        if rec.deadline and now > rec.deadline + 3600:
            rec.state, rec.error = "failed", "deadline passed while queued"
            self.answers.put(rec)
            return False
        rec.attempts += 1
        try:
            res = self.port.respond(
                rec.challenge_id,
                [bytes.fromhex(s) for s in rec.segments],
                [[bytes.fromhex(p) for p in path] for path in rec.proofs],
            )
        except ChainRevert as exc:
            rec.state, rec.error = "failed", str(exc)
            self.answers.put(rec)
            self.status.answers_failed += 1
            log.warning("challenge answer refused", challenge=rec.challenge_id, error=str(exc))
            return False
        rec.state, rec.tx_hash, rec.gas_used = "sent", res.tx_hash, res.gas_used
        self.answers.put(rec)
        self.status.answers_sent += 1
        self.status.answer_txs.append(
            {"challenge": rec.challenge_id, "tx": res.tx_hash, "gas_used": res.gas_used}
        )
        log.info(
            "challenge answered",
            challenge=rec.challenge_id,
            root=rec.root,
            slot=rec.slot,
            samples=len(rec.indices),
            gas_used=res.gas_used,
        )
        return True

    # -- payouts -------------------------------------------------------------------------------

    def withdraw_owed_once(self, *, force: bool = False) -> dict[str, Any]:
        """Pull what ``DataAvailability`` owes us (storage payments, bonds, slash shares),
        at most every ``withdraw_every`` seconds unless ``force``."""
        now = self.clock()
        if not force and now - self._last_withdraw < self.withdraw_every:
            return {}
        self._last_withdraw = now
        res = self.port.withdraw_owed()
        if res is None:
            return {"withdrawn": 0}
        amount = 0
        try:
            amount = int(res.event("OwedWithdrawn").args["amount"])
        except Exception:  # the port may not decode events (a fake, an older chain)
            amount = 0
        self.status.withdrawals.append({"tx": res.tx_hash, "gas_used": res.gas_used, "wei": amount})
        log.info("owed payments withdrawn", wei=amount, tx=res.tx_hash)
        return {"withdrawn": amount}

    # -- scheduling ----------------------------------------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """One round of every duty (blocking; holds the chain lock)."""
        with self.lock:
            out = {**self.submit_receipts_once(), **self.answer_challenges_once()}
            if self.validator is not None:
                out["validator"] = self.validator.run_once()
            out.update(self.withdraw_owed_once())
        self.status.rounds += 1
        return out

    async def run(
        self,
        *,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run duties until cancelled; back off with full jitter while the chain is down.

        ``on_round(snapshot)`` is called after every round, failed or not (the status file).
        """
        task_status.started()
        failures = 0
        while True:
            try:
                await trio.to_thread.run_sync(self.run_once)
            except ChainUnavailable as exc:
                self.status.chain_up, self.status.last_error = False, str(exc)
                delay = self.backoff.delay(failures, self.rng)
                failures += 1
                log.warning("chain unavailable; work stays queued", retry_in=round(delay, 2))
                if on_round is not None:
                    on_round(self.snapshot())
                await trio.sleep(delay)
                continue
            except ChainError as exc:
                self.status.last_error = str(exc)
                log.error("chain duty failed", error=str(exc))
            else:
                if not self.status.chain_up:
                    log.info("chain is back")
                self.status.chain_up, self.status.last_error, failures = True, "", 0
            if on_round is not None:
                on_round(self.snapshot())
            await trio.sleep(self.interval)

    def snapshot(self) -> dict[str, Any]:
        """Status for ``bcai status --json``."""
        out: dict[str, Any] = {
            "chain_up": self.status.chain_up,
            "last_error": self.status.last_error,
            "receipts": {
                **self.outbox.counts(),
                "submitted_this_run": self.status.receipts_submitted,
                "deferred_this_run": self.status.receipts_deferred,
                "reconciled_this_run": self.status.receipts_reconciled,
                "txs": self.status.receipt_txs[-10:],
            },
            "answers": {**self.answers.counts(), "txs": self.status.answer_txs[-10:]},
            "withdrawals": self.status.withdrawals[-10:],
            "rounds": self.status.rounds,
        }
        if self.validator is not None:
            out["validator"] = self.validator.snapshot()
        return out
