"""``ChainPort``: the narrow interface the node's services (``bcai serve``) use.

The service code depends on this Protocol, not on web3; ``ClientPort`` adapts a ``ChainClient``
to it, and tests or simulations can supply their own implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from node.content import Manifest, SizeProof, SlotLayout
from node.receipt import SignedReceipt

from .backend import ANVIL_CHAIN_ID
from .client import ChainClient, Challenge, SubmitReport
from .errors import RegistrationMismatch, revert_class
from .tx import TxResult

__all__ = ["ChainPort", "ClientPort"]


@runtime_checkable
class ChainPort(Protocol):
    """What a node needs from the chain."""

    def is_up(self) -> bool:
        """Whether the chain answers right now."""
        ...

    def publish(
        self,
        manifest: Manifest,
        layout: SlotLayout,
        slot_roots: Sequence[bytes],
        size_proof: SizeProof,
        metadata_uri: str = "",
    ) -> TxResult | None:
        """Register the content with its slot geometry and size proof. ``None`` if it is
        already registered with the same size and layout; ``RegistrationMismatch`` if it is
        registered differently (a host holding the real content cannot be proven against it)."""
        ...

    def submit_receipts(self, receipts: Sequence[SignedReceipt]) -> SubmitReport:
        """Pre-check and submit receipts where we are the provider; per-receipt outcomes."""
        ...

    def receipt_on_chain(self, receipt: SignedReceipt) -> bool:
        """Whether a ``ReceiptAccepted`` with this receipt's digest exists."""
        ...

    def open_challenges(self, host: str) -> list[Challenge]:
        """Open challenges against ``host`` (``indices`` is ``None`` until drawn)."""
        ...

    def respond(
        self, challenge_id: int, segments: Sequence[bytes], proofs: Sequence[Sequence[bytes]]
    ) -> TxResult:
        """Answer a challenge with the sampled segments and their audit paths."""
        ...

    def due_commitments(self) -> list[tuple[bytes, int, str]]:
        """``(root, slot, host)`` due this period and not yet challenged in it."""
        ...

    def challenge(self, root: bytes, slot: int) -> tuple[TxResult, Challenge]:
        """Challenge a slot's host (pays ``challengeBond``)."""
        ...

    def expired_challenges(self) -> list[int]:
        """Open challenges past their deadline."""
        ...

    def slash_expired(self, challenge_id: int) -> TxResult:
        """Settle an expired challenge (a fault for its host)."""
        ...

    def withdraw_owed(self) -> TxResult | None:
        """Pull what the DataAvailability contract owes us (``None`` if nothing)."""
        ...

    def mine_if_dev(self, blocks: int = 1) -> None:
        """On a development chain (py-evm, anvil) mine ``blocks`` blocks; elsewhere nothing."""
        ...

    def announce_endpoint(self, endpoint: str) -> TxResult:
        """Publish our endpoint record (``HOST:PORT``; ``""`` withdraws it)."""
        ...

    def endpoint_of(self, address: str) -> str | None:
        """The endpoint record of ``address`` (unparsed, hostile), ``None`` if none."""
        ...

    def providers(self, root: bytes) -> list[tuple[str, str | None]]:
        """``(address, endpoint or None)`` of the hosts holding ``root`` now (at most 64; the
        endpoints unparsed, hostile)."""
        ...


class ClientPort:
    """``ChainPort`` over a ``ChainClient``."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    def is_up(self) -> bool:
        return self.client.backend.is_up()

    def publish(
        self,
        manifest: Manifest,
        layout: SlotLayout,
        slot_roots: Sequence[bytes],
        size_proof: SizeProof,
        metadata_uri: str = "",
    ) -> TxResult | None:
        from node.content import slots_root_of

        slots_root = slots_root_of(list(slot_roots)) if slot_roots else bytes(32)
        try:
            return self.client.register(
                manifest.root,
                manifest.size,
                data_shards=layout.data_shards,
                slot_count=layout.slot_count if manifest.size else 0,
                slots_root=slots_root,
                size_proof=size_proof,
                chunk_size=manifest.chunk_size,
                segment_size=manifest.segment_size,
                metadata_uri=metadata_uri,
            )
        except revert_class("AlreadyRegistered"):
            on_chain = self.client.layout_of(manifest.root)
            mine = (manifest.size, layout.data_shards, layout.slot_count, slots_root)
            theirs = (
                on_chain.size,
                on_chain.data_shards,
                on_chain.slot_count,
                on_chain.slots_root,
            )
            if manifest.size == 0 and on_chain.size == 0:
                return None
            if mine != theirs:
                raise RegistrationMismatch(manifest.root, mine, theirs) from None
            return None

    def submit_receipts(self, receipts: Sequence[SignedReceipt]) -> SubmitReport:
        return self.client.submit_receipts(receipts)

    def receipt_on_chain(self, receipt: SignedReceipt) -> bool:
        return self.client.receipt_on_chain(receipt)

    def open_challenges(self, host: str) -> list[Challenge]:
        return self.client.open_challenges_for(host, include_pending=True)

    def respond(
        self, challenge_id: int, segments: Sequence[bytes], proofs: Sequence[Sequence[bytes]]
    ) -> TxResult:
        return self.client.respond(challenge_id, segments, proofs)

    def due_commitments(self) -> list[tuple[bytes, int, str]]:
        return self.client.due_commitments()

    def challenge(self, root: bytes, slot: int) -> tuple[TxResult, Challenge]:
        return self.client.challenge(root, slot)

    def expired_challenges(self) -> list[int]:
        return self.client.expired_challenges()

    def slash_expired(self, challenge_id: int) -> TxResult:
        return self.client.slash_expired(challenge_id)

    def withdraw_owed(self) -> TxResult | None:
        if self.client.owed_to() == 0:
            return None
        return self.client.withdraw_owed()

    def mine_if_dev(self, blocks: int = 1) -> None:
        backend = self.client.backend
        if backend.kind == "embedded" or backend.chain_id == ANVIL_CHAIN_ID:
            backend.mine(blocks)

    def announce_endpoint(self, endpoint: str) -> TxResult:
        return self.client.announce_endpoint(endpoint)

    def endpoint_of(self, address: str) -> str | None:
        return self.client.endpoint_of(address)

    def providers(self, root: bytes) -> list[tuple[str, str | None]]:
        return self.client.providers(root)
