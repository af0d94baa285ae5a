"""Errors of the transfer engine, rooted at :class:`TransferError`.

Split by whose fault it is, as h11 does: :class:`LocalTransferError` for misuse or local
conditions (bad arguments, store problems, cancelled by the user), :class:`RemoteTransferError`
for what a peer did (bad data, refusals, disappearing). Every error carries ``retryable`` so the
CLI can tell "run it again" from "this will not work".
"""

from __future__ import annotations


class TransferError(Exception):
    """Root of every error raised by :mod:`node.transfer`."""

    retryable: bool = False


class LocalTransferError(TransferError):
    """Something on this side went wrong (arguments, store, configuration)."""


class RemoteTransferError(TransferError):
    """A peer misbehaved, refused or went away."""


class InvalidArgument(LocalTransferError, ValueError):
    """A caller passed something the engine cannot use."""


class ContentNotFound(RemoteTransferError):
    """No reachable peer has the requested content."""


class ChunkRootsMismatch(RemoteTransferError):
    """The chunk-root list a peer sent does not hash to the requested content root."""


class ManifestMismatch(RemoteTransferError):
    """A peer's manifest does not describe the requested root (or is malformed)."""


class CorruptChunk(RemoteTransferError):
    """A chunk failed verification against its (verified) chunk root.

    Nothing of it was written. Raised to the caller only when no other source is left.
    """

    def __init__(self, index: int, peer: object) -> None:
        super().__init__(f"chunk {index} from peer {peer} failed verification")
        self.index = index
        self.peer = peer


class PeerFailed(RemoteTransferError):
    """Every source failed (disconnects, timeouts, refusals); the transfer can be resumed."""

    retryable = True


class PeersUnreachable(PeerFailed):
    """No given peer can be reached as given: every one failed in a way a re-run cannot fix
    (its host name does not resolve, or it proved another address than the one pinned)."""

    retryable = False


class ProtocolViolation(RemoteTransferError):
    """A peer sent something the protocol does not allow at this point."""


class PriceTooHigh(RemoteTransferError):
    """A provider asks more per GiB than this receiver pays; that provider is not used.

    Raised to the caller only when no other provider is left.
    """

    def __init__(self, peer: object, price_per_gib: int, max_price_per_gib: int) -> None:
        super().__init__(
            f"peer {peer} asks {price_per_gib} wei/GiB, more than the {max_price_per_gib} "
            "this receiver pays"
        )
        self.peer = peer
        self.price_per_gib = price_per_gib
        self.max_price_per_gib = max_price_per_gib


class ReceiptDomainMismatch(RemoteTransferError):
    """A provider takes receipts under another EIP-712 domain (chain, contract) than the one
    this receiver pays on; that provider is not used. Raised only when no other is left."""


class PriceMissing(ProtocolViolation):
    """A provider sent its Have/HaveAll without stating a Price first; it is not used."""
