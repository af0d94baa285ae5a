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

from collections.abc import Sequence
from dataclasses import dataclass, field

import plyvel
from eth_account.signers.local import LocalAccount

from chain import ChainBackend, ChainClient, Deployment
from chain.eip712 import ZERO_ADDRESS
from chain.indexer import Indexer
from chain.merkle import AllocationTree
from chain.tx import TxResult
from node.ledger import Allocation as LedgerAllocation
from node.ledger import PayoutLedger, RewardParams
from node.log import get_logger

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
