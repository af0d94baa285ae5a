"""``ChainPort``: the narrow interface the node's services (``bcai serve``) use.

The service code depends on this Protocol, not on web3; ``ClientPort`` adapts a ``ChainClient``
to it, and tests or simulations can supply their own implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from node.content import Manifest
from node.receipt import SignedReceipt

from .client import ChainClient, Challenge, SubmitReport
from .errors import revert_class
from .tx import TxResult

__all__ = ["ChainPort", "ClientPort"]


@runtime_checkable
class ChainPort(Protocol):
    """What a node needs from the chain."""

    def is_up(self) -> bool:
        """Whether the chain answers right now."""
        ...

    def publish(self, manifest: Manifest, metadata_uri: str = "") -> TxResult | None:
        """Register the content (``None`` if it is already registered)."""
        ...

    def submit_receipts(self, receipts: Sequence[SignedReceipt]) -> SubmitReport:
        """Pre-check and submit receipts where we are the provider."""
        ...

    def open_challenges(self, host: str) -> list[Challenge]:
        """Open data-availability challenges against ``host``."""
        ...

    def respond(self, challenge_id: int, segment: bytes, proof: Sequence[bytes]) -> TxResult:
        """Answer a challenge with the segment and its RFC 6962 audit path."""
        ...


class ClientPort:
    """``ChainPort`` over a ``ChainClient``."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    def is_up(self) -> bool:
        return self.client.backend.is_up()

    def publish(self, manifest: Manifest, metadata_uri: str = "") -> TxResult | None:
        try:
            return self.client.register_content(
                manifest.root,
                manifest.size,
                manifest.chunk_size,
                manifest.segment_size,
                metadata_uri,
            )
        except revert_class("AlreadyRegistered"):
            return None

    def submit_receipts(self, receipts: Sequence[SignedReceipt]) -> SubmitReport:
        return self.client.submit_receipts(receipts)

    def open_challenges(self, host: str) -> list[Challenge]:
        return self.client.open_challenges_for(host)

    def respond(self, challenge_id: int, segment: bytes, proof: Sequence[bytes]) -> TxResult:
        return self.client.respond(challenge_id, segment, proof)
