"""Transfer receipts: the EIP-712 struct a receiver signs, and its 165-byte wire form.

The receiver of content signs a ``Receipt`` for the bytes it received and verified from a
provider; the provider collects receipts and submits them on chain in batches. The same struct
hash is checked by the receipts contract, so the type string and domain below are fixed:

    Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,
            uint32 chunks,uint64 nonce,uint64 issuedAt)
    domain: name "BCAI Transfer Receipts", version "1", chainId, verifyingContract

Wire layout (all integers big-endian): contentRoot 32 | provider 20 | receiver 20 |
bytesServed u64 | chunks u32 | nonce u64 | issuedAt u64 | signature 65 (r 32 | s 32 | v 1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_canonical_address, to_checksum_address

from ._errors import LocalProtocolError, MalformedMessage
from ._limits import ADDRESS_LEN, RECEIPT_LEN, ROOT_LEN, SIGNATURE_LEN

RECEIPT_DOMAIN_NAME: Final = "BCAI Transfer Receipts"
RECEIPT_DOMAIN_VERSION: Final = "1"
RECEIPT_TYPE_STRING: Final = (
    "Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,"
    "uint32 chunks,uint64 nonce,uint64 issuedAt)"
)
RECEIPT_TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Receipt": [
        {"name": "contentRoot", "type": "bytes32"},
        {"name": "provider", "type": "address"},
        {"name": "receiver", "type": "address"},
        {"name": "bytesServed", "type": "uint64"},
        {"name": "chunks", "type": "uint32"},
        {"name": "nonce", "type": "uint64"},
        {"name": "issuedAt", "type": "uint64"},
    ],
}

_FIELDS = struct.Struct(f">{ROOT_LEN}s{ADDRESS_LEN}s{ADDRESS_LEN}sQIQQ")
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class ReceiptDomain:
    """The EIP-712 domain: which chain and which receipts contract the signature is for."""

    chain_id: int
    verifying_contract: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": RECEIPT_DOMAIN_NAME,
            "version": RECEIPT_DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """The fields a receiver attests to. Addresses are checksummed 0x-hex strings."""

    content_root: bytes
    provider: str
    receiver: str
    bytes_served: int
    chunks: int
    nonce: int
    issued_at: int

    def __post_init__(self) -> None:
        if len(self.content_root) != ROOT_LEN:
            raise LocalProtocolError("content_root must be 32 bytes")
        for name, value, top in (
            ("bytes_served", self.bytes_served, _U64),
            ("chunks", self.chunks, _U32),
            ("nonce", self.nonce, _U64),
            ("issued_at", self.issued_at, _U64),
        ):
            if not 0 <= value <= top:
                raise LocalProtocolError(f"{name} out of range: {value}")

    def typed_data(self, domain: ReceiptDomain) -> dict[str, Any]:
        """The full EIP-712 message, as ``eth_account.messages.encode_typed_data`` takes it."""
        return {
            "types": RECEIPT_TYPES,
            "primaryType": "Receipt",
            "domain": domain.to_dict(),
            "message": {
                "contentRoot": bytes(self.content_root),
                "provider": to_checksum_address(self.provider),
                "receiver": to_checksum_address(self.receiver),
                "bytesServed": self.bytes_served,
                "chunks": self.chunks,
                "nonce": self.nonce,
                "issuedAt": self.issued_at,
            },
        }

    def signable(self, domain: ReceiptDomain) -> SignableMessage:
        return encode_typed_data(full_message=self.typed_data(domain))

    def sign(self, account: LocalAccount, domain: ReceiptDomain) -> SignedReceipt:
        """Sign as the receiver. Raises ``LocalProtocolError`` if ``account`` is not it."""
        if account.address != to_checksum_address(self.receiver):
            raise LocalProtocolError("receipts are signed by their receiver")
        sig = account.sign_message(self.signable(domain)).signature
        return SignedReceipt(self, bytes(sig))


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A ``Receipt`` plus the receiver's 65-byte signature (r | s | v, v in {27, 28})."""

    receipt: Receipt
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_LEN:
            raise LocalProtocolError("signature must be 65 bytes")

    def recover(self, domain: ReceiptDomain) -> str:
        """Address that produced the signature (checksummed); raises ``MalformedMessage``."""
        try:
            return str(
                Account.recover_message(self.receipt.signable(domain), signature=self.signature)
            )
        except Exception as exc:  # eth-keys raises several unrelated types for bad input
            raise MalformedMessage(f"unrecoverable receipt signature: {exc}") from None

    def is_valid(self, domain: ReceiptDomain) -> bool:
        """True when the signature recovers to the receipt's receiver."""
        try:
            return self.recover(domain) == to_checksum_address(self.receipt.receiver)
        except MalformedMessage:
            return False

    def to_bytes(self) -> bytes:
        r = self.receipt
        return (
            _FIELDS.pack(
                r.content_root,
                to_canonical_address(r.provider),
                to_canonical_address(r.receiver),
                r.bytes_served,
                r.chunks,
                r.nonce,
                r.issued_at,
            )
            + self.signature
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> SignedReceipt:
        if len(data) != RECEIPT_LEN:
            raise MalformedMessage(f"receipt must be {RECEIPT_LEN} bytes, got {len(data)}")
        root, prov, recv, nbytes, chunks, nonce, issued = _FIELDS.unpack_from(data)
        receipt = Receipt(
            root,
            to_checksum_address(prov),
            to_checksum_address(recv),
            nbytes,
            chunks,
            nonce,
            issued,
        )
        return cls(receipt, bytes(data[_FIELDS.size :]))
