"""Which receipts a provider accepts: only for what it served on that connection (sans-IO).

A receipt is a claim the provider will cash on chain against the receiver's escrow, so the
provider must not acknowledge more than it served: otherwise a receiver could hand it receipts
"for" roots it never sent, for 10x the bytes, or on a connection that carried nothing, and the
provider would store and submit them as if they were earned. :class:`ConnectionCredit` keeps,
per connection and per root, what the provider has sent and what accepted receipts already
cover; :meth:`ConnectionCredit.check` raises :class:`ReceiptRefused` with a stable reason
(docs/protocol.md section 5.18) or returns, and :meth:`ConnectionCredit.settle` books an
accepted receipt. Receipts are for the bytes since the previous receipt, never cumulative, so a
receipt for less than served is fine and leaves the rest claimable by a later one.

Nothing here does I/O or reads a clock: ``now`` is an argument. The nonce check (a receiver's
nonce is used once, ever) needs the durable ReceiptBox and is made by the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.receipt import (
    DEFAULT_PRICE_PER_GIB,
    ReceiptDomain,
    ReceiptError,
    SignedReceipt,
    covers_price,
    payment_for,
    recover_signer,
)

from ._errors import RemoteTransferError

#: Reference bound on ``|issuedAt - now|`` a provider accepts (seconds).
DEFAULT_MAX_SKEW = 120.0

REFUSAL_REASONS = (
    "not-accepted",
    "signature",
    "not-provider",
    "wrong-receiver",
    "empty",
    "root-not-served",
    "exceeds-served",
    "underpaid",
    "clock-skew",
    "nonce-used",
)


class ReceiptRefused(RemoteTransferError):
    """A receipt the provider will not acknowledge; ``reason`` is one of ``REFUSAL_REASONS``.

    The provider answers it with ``Error(BAD_RECEIPT)`` whose message is ``str(self)``
    (``"<reason>: <detail>"``); the receiver parses it back with :meth:`from_message`.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @classmethod
    def from_message(cls, message: str) -> ReceiptRefused:
        reason, _, detail = message.partition(":")
        reason = reason.strip()
        if reason not in REFUSAL_REASONS:
            return cls("unknown", message)
        return cls(reason, detail.strip())


@dataclass(frozen=True)
class ReceiptPolicy:
    """What a provider charges and how much clock skew it tolerates on ``issuedAt``."""

    price_per_gib: int = DEFAULT_PRICE_PER_GIB
    max_skew: float = DEFAULT_MAX_SKEW

    def __post_init__(self) -> None:
        if not 0 <= self.price_per_gib < 1 << 128:
            raise ValueError("price_per_gib must fit u128")
        if self.max_skew < 0:
            raise ValueError("max_skew must be >= 0")


@dataclass
class _Tally:
    bytes: int = 0
    chunks: int = 0


@dataclass
class ConnectionCredit:
    """Per connection: bytes/chunks sent per root, and how much accepted receipts covered."""

    served: dict[bytes, _Tally] = field(default_factory=dict)
    receipted: dict[bytes, _Tally] = field(default_factory=dict)

    def record(self, root: bytes, nbytes: int) -> None:
        """One chunk of ``nbytes`` of ``root`` is being sent on this connection."""
        t = self.served.setdefault(root, _Tally())
        t.bytes += nbytes
        t.chunks += 1

    def unreceipted(self, root: bytes) -> tuple[int, int]:
        """(bytes, chunks) sent of ``root`` that no accepted receipt covers yet."""
        s = self.served.get(root, _Tally())
        r = self.receipted.get(root, _Tally())
        return s.bytes - r.bytes, s.chunks - r.chunks

    def check(
        self,
        signed: SignedReceipt,
        *,
        provider: str,
        peer: str,
        domain: ReceiptDomain,
        policy: ReceiptPolicy,
        now: float,
    ) -> None:
        """Raise :class:`ReceiptRefused` unless ``signed`` is acceptable on this connection."""
        r = signed.receipt
        try:
            signer = recover_signer(signed, domain)
        except ReceiptError as exc:
            raise ReceiptRefused("signature", str(exc)) from None
        if signer != r.receiver:
            raise ReceiptRefused("signature", f"signed by {signer}, not by receiver {r.receiver}")
        if r.provider != provider:
            raise ReceiptRefused("not-provider", f"provider {r.provider} is not {provider}")
        if r.receiver != peer:
            raise ReceiptRefused("wrong-receiver", f"receiver {r.receiver} is not peer {peer}")
        if r.bytes_served == 0:
            raise ReceiptRefused("empty", "bytesServed is 0")
        root = r.content_root
        if root not in self.served:
            raise ReceiptRefused("root-not-served", f"nothing of 0x{root.hex()} sent here")
        left_bytes, left_chunks = self.unreceipted(root)
        if r.bytes_served > left_bytes or r.chunks > left_chunks:
            raise ReceiptRefused(
                "exceeds-served",
                f"claims {r.bytes_served} bytes/{r.chunks} chunks, "
                f"{left_bytes} bytes/{left_chunks} chunks unreceipted",
            )
        if not covers_price(r.payment, r.bytes_served, policy.price_per_gib):
            need = payment_for(r.bytes_served, policy.price_per_gib)
            raise ReceiptRefused("underpaid", f"payment {r.payment} < {need} wei")
        if abs(r.issued_at - now) > policy.max_skew:
            raise ReceiptRefused(
                "clock-skew", f"issuedAt {r.issued_at} is {r.issued_at - now:+.0f}s from now"
            )

    def settle(self, signed: SignedReceipt) -> None:
        """Book an accepted receipt: its bytes and chunks are no longer claimable here."""
        r = signed.receipt
        t = self.receipted.setdefault(r.content_root, _Tally())
        t.bytes += r.bytes_served
        t.chunks += r.chunks
