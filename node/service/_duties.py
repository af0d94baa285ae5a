"""Chain duties of a running node: submit collected receipts, answer challenges.

Runs inside ``bcai serve`` (and the demo), unattended. Each duty is a synchronous step
(``submit_receipts_once``, ``answer_challenges_once``) that does one round of work against the
narrow ``ChainPort`` interface and returns what happened; :meth:`ChainDuties.run` calls them on
a schedule from trio, in a worker thread (web3 calls block), and backs off with full jitter while
the chain is down. Durable state lives in LevelDB (the receipt box and the answer queue), so a
chain outage or a restart delays the work and loses none of it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from chain import ChainError, ChainRevert, ChainUnavailable
from chain.port import ChainPort
from node.content import root_hex
from node.log import get_logger
from node.receipt import SignedReceipt
from node.store import Store, StoreError
from node.transfer._backoff import Backoff

from ._answers import AnswerQueue, AnswerRecord
from ._availability import prove_segment

log = get_logger("node.service")

#: Pre-check verdicts that are not final: the receipt is kept and tried again next round.
DEFER_REASONS = frozenset({"IssuedInFuture"})

CHAIN_BACKOFF = Backoff(base=0.5, cap=30.0)  #: retry policy while the chain is down


class ReceiptOutbox(Protocol):
    """What the duties need from the provider's durable receipt box."""

    def pending(self, limit: int) -> list[SignedReceipt]: ...

    def mark_submitted(self, receipts: Iterable[SignedReceipt], tx_hash: str) -> object: ...

    def mark_rejected(self, receipts: Iterable[SignedReceipt], reason: str) -> object: ...

    def counts(self) -> dict[str, int]: ...


@dataclass
class DutyStatus:
    chain_up: bool = True
    last_error: str = ""
    receipts_submitted: int = 0
    receipts_rejected: int = 0
    receipt_txs: list[dict[str, Any]] = field(default_factory=list)
    answers_sent: int = 0
    answers_failed: int = 0
    answer_txs: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0


class ChainDuties:
    """One node's chain work. ``host`` is the node's Ethereum address."""

    def __init__(
        self,
        port: ChainPort,
        store: Store,
        outbox: ReceiptOutbox,
        answers: AnswerQueue,
        host: str,
        *,
        batch_size: int = 100,
        interval: float = 5.0,
        backoff: Backoff = CHAIN_BACKOFF,
        rng: random.Random | None = None,
        chain_lock: AbstractContextManager[Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.port = port
        self.store = store
        self.outbox = outbox
        self.answers = answers
        self.host = host
        self.batch_size = batch_size
        self.interval = interval
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.lock: AbstractContextManager[Any] = chain_lock or threading.Lock()
        self.clock = clock
        self.status = DutyStatus()

    # -- receipts ------------------------------------------------------------------------------

    def submit_receipts_once(self) -> dict[str, Any]:
        """Submit up to ``batch_size`` pending receipts; returns a summary of this round."""
        batch = self.outbox.pending(self.batch_size)
        if not batch:
            return {"submitted": 0}
        report = self.port.submit_receipts(batch)
        tx_hash = report.txs[-1].tx_hash if report.txs else ""
        if report.accepted:
            self.outbox.mark_submitted(report.accepted, tx_hash)
        deferred = 0
        for rej in report.rejected:
            if rej.reason in DEFER_REASONS:
                deferred += 1  # stays pending: submitted once chain time catches up
                continue
            self.outbox.mark_rejected([rej.receipt], rej.reason)
            self.status.receipts_rejected += 1
        self.status.receipts_submitted += len(report.accepted)
        for tx in report.txs:
            self.status.receipt_txs.append({"tx": tx.tx_hash, "gas_used": tx.gas_used})
        log.info(
            "receipts submitted",
            accepted=len(report.accepted),
            rejected=[r.reason for r in report.rejected],
            gas_used=report.gas_used,
            tx=tx_hash,
        )
        return {
            "submitted": len(report.accepted),
            "rejected": len(report.rejected) - deferred,
            "deferred": deferred,
            "gas": report.gas_used,
        }

    # -- challenges ----------------------------------------------------------------------------

    def answer_challenges_once(self) -> dict[str, Any]:
        """Queue answers to newly seen challenges, then send every queued answer."""
        for ch in self.port.open_challenges(self.host):
            if not ch.ready:
                continue  # seed block not mined yet: the segment is drawn by a later round
            if self.answers.get(ch.id) is not None:
                continue
            rec = AnswerRecord(ch.id, root_hex(ch.root), ch.segment_index, ch.deadline)
            try:
                segment, proof = prove_segment(self.store, ch.root, ch.segment_index)
                rec.segment = segment.hex()
                rec.proof = [p.hex() for p in proof]
            except (StoreError, ValueError) as exc:
                # Cannot prove: sending a wrong answer would be slashed all the same, so record
                # the failure and let the challenge expire (operators see it in status).
                rec.state, rec.error = "failed", f"cannot prove: {exc}"
                self.status.answers_failed += 1
                log.warning("challenge cannot be answered", challenge=ch.id, error=str(exc))
            self.answers.put(rec)
        sent = 0
        now = self.clock()
        for rec in self.answers.queued():
            if rec.deadline and now > rec.deadline + 3600:
                rec.state, rec.error = "failed", "deadline passed while queued"
                self.answers.put(rec)
                continue
            rec.attempts += 1
            try:
                res = self.port.respond(
                    rec.challenge_id,
                    bytes.fromhex(rec.segment),
                    [bytes.fromhex(p) for p in rec.proof],
                )
            except ChainRevert as exc:
                rec.state, rec.error = "failed", str(exc)
                self.answers.put(rec)
                self.status.answers_failed += 1
                log.warning("challenge answer refused", challenge=rec.challenge_id, error=str(exc))
                continue
            rec.state, rec.tx_hash, rec.gas_used = "sent", res.tx_hash, res.gas_used
            self.answers.put(rec)
            sent += 1
            self.status.answers_sent += 1
            self.status.answer_txs.append(
                {"challenge": rec.challenge_id, "tx": res.tx_hash, "gas_used": res.gas_used}
            )
            log.info(
                "challenge answered",
                challenge=rec.challenge_id,
                root=rec.root,
                segment=rec.segment_index,
                gas_used=res.gas_used,
            )
        return {"answered": sent}

    # -- scheduling ----------------------------------------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """One round of every duty (blocking; holds the chain lock)."""
        with self.lock:
            out = {**self.submit_receipts_once(), **self.answer_challenges_once()}
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
                self.status.chain_up, failures = True, 0
            if on_round is not None:
                on_round(self.snapshot())
            await trio.sleep(self.interval)

    def snapshot(self) -> dict[str, Any]:
        """Status for ``bcai status --json``."""
        return {
            "chain_up": self.status.chain_up,
            "last_error": self.status.last_error,
            "receipts": {
                **self.outbox.counts(),
                "submitted_this_run": self.status.receipts_submitted,
                "txs": self.status.receipt_txs[-10:],
            },
            "answers": {**self.answers.counts(), "txs": self.status.answer_txs[-10:]},
            "rounds": self.status.rounds,
        }
