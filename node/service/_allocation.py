"""A validator's epoch allocation: index the chain, apply the ledger, sign, post.

Every validator runs the same pipeline over the same events in chain order (``chain.indexer``
-> ``node.ledger.PayoutLedger``) and so computes the same allocation bit for bit; each signs
the EIP-712 ``Allocation(epoch, token, merkleRoot, total)`` and whoever gathers the quorum's
signatures posts it. With a quorum of one (the demo, a single-validator deployment) the
validator posts its own. ``HostingRewards.claim`` caps each host at ``rebateBps`` of the fees
its payments burnt that epoch, so the ledger's amounts (already capped the same way) are
claimable in full.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import plyvel

from chain import ChainBackend, ChainClient, Deployment
from chain.eip712 import ZERO_ADDRESS
from chain.indexer import Indexer
from chain.merkle import AllocationTree
from chain.reverts import map_errors
from chain.tx import TxResult
from node.ledger import Allocation as LedgerAllocation
from node.ledger import PayoutLedger, RewardParams
from node.log import get_logger

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = get_logger("node.validator")


@dataclass
class PostedAllocation:
    epoch: int
    allocation: LedgerAllocation
    tree: AllocationTree | None  #: ``None`` when nobody earned anything (nothing to post)
    signatures: list[bytes] = field(default_factory=list)
    tx: TxResult | None = None
    events_applied: int = 0

    @property
    def amounts(self) -> dict[str, int]:
        return dict(self.allocation.amounts)


def compute_allocation(
    db: plyvel.DB,
    backend: ChainBackend,
    deployment: Deployment,
    epoch: int,
    budget: int,
    *,
    rebate_bps: int,
    confirmations: int = 0,
) -> tuple[LedgerAllocation, PayoutLedger, int]:
    """Sync the index in ``db``, apply its ledger events, allocate ``budget`` for ``epoch``.

    Returns the allocation, the ledger (for reputations) and how many events were new.
    """
    indexer = Indexer(db, backend, deployment, confirmations=confirmations)
    indexer.sync()
    ledger = PayoutLedger(db, reward=RewardParams(rebate_bps=rebate_bps))
    applied = sum(ledger.apply(ev) for ev in indexer.ledger_events())
    return ledger.allocate(epoch, budget), ledger, applied


def sign_and_post(
    client: ChainClient,
    allocation: LedgerAllocation,
    signers: Sequence[LocalAccount],
    *,
    post: bool = True,
) -> PostedAllocation:
    """Build the claim tree, sign it with ``signers`` (validators), post it (``client``)."""
    if not allocation.amounts:
        log.info("nothing to allocate", epoch=allocation.epoch)
        return PostedAllocation(allocation.epoch, allocation, None)
    tree = AllocationTree(dict(allocation.amounts))
    sigs = [
        client.sign_allocation(allocation.epoch, ZERO_ADDRESS, tree.root, tree.total, v)
        for v in signers
    ]
    out = PostedAllocation(allocation.epoch, allocation, tree, sigs)
    if post:
        out.tx = client.post_allocation(allocation.epoch, ZERO_ADDRESS, tree.root, tree.total, sigs)
        log.info(
            "allocation posted",
            epoch=allocation.epoch,
            total=tree.total,
            hosts=len(allocation.amounts),
            tx=out.tx.tx_hash,
        )
    return out


class EpochAllocator:
    """The validator's per-epoch step in ``bcai serve --validator``.

    An epoch ``e`` is final once every receipt of it is cashed or stale, i.e. from epoch
    ``e + 2`` on. For each final epoch among the last ``lookback`` that is funded and has no
    allocation yet, it allocates the whole funding from the ledger (``compute_allocation``) and,
    when the contract's quorum is one, signs and posts it. With a larger quorum it records its
    signature (``signatures``) for whoever gathers them; posting then is ``bcai rewards post``.
    Durable: ``e/<epoch>`` in ``db`` says what was done for an epoch, and the contract's
    ``allocationOf(...).posted`` is checked before any work, so a restart never posts twice.
    """

    def __init__(
        self,
        client: Callable[[], ChainClient],
        db: plyvel.DB,
        *,
        lookback: int = 4,
    ) -> None:
        self._client = client
        self.db = db
        self.lookback = lookback
        self.signatures: dict[int, str] = {}
        self.posted: list[dict[str, Any]] = []

    def _done(self, epoch: int) -> dict[str, Any] | None:
        raw = self.db.get(b"e/" + epoch.to_bytes(8, "big"))
        return None if raw is None else dict(json.loads(raw))

    def _record(self, epoch: int, what: dict[str, Any]) -> None:
        self.db.put(b"e/" + epoch.to_bytes(8, "big"), json.dumps(what).encode(), sync=True)

    def run_once(self) -> list[int]:
        """Allocate (and post, with quorum 1) every final, funded, unposted epoch."""
        client = self._client()
        current = client.current_epoch()
        done: list[int] = []
        for epoch in range(max(0, current - 1 - self.lookback), max(0, current - 1)):
            if self._done(epoch) is not None:
                continue
            budget = client.funded(epoch)
            if budget == 0:
                continue  # nobody funded it (yet): look again next round
            with map_errors():
                posted = bool(client.rewards.functions.allocationOf(epoch, ZERO_ADDRESS).call()[3])
                rebate_bps = int(client.rewards.functions.rebateBps().call())
            if posted:
                self._record(epoch, {"state": "posted elsewhere"})
                continue
            allocation, _, _ = compute_allocation(
                self.db, client.backend, client.deployment, epoch, budget, rebate_bps=rebate_bps
            )
            quorum = client.quorum()
            out = sign_and_post(client, allocation, [client.account], post=quorum <= 1)
            if out.tree is None:
                self._record(epoch, {"state": "nothing to allocate"})
                continue
            if out.tx is None:
                self.signatures[epoch] = "0x" + out.signatures[0].hex()
                self._record(epoch, {"state": "signed", "signature": self.signatures[epoch]})
                log.info("allocation signed; the quorum must post it", epoch=epoch, quorum=quorum)
            else:
                row = {"state": "posted", "tx": out.tx.tx_hash, "total": out.tree.total}
                self._record(epoch, row)
                self.posted.append({"epoch": epoch, **row})
            done.append(epoch)
        return done
