"""EIP-712 transfer receipts: the receiver's signed statement "this provider served me N bytes".

No web3 and no eth-account: the digest is built here and signed or recovered with
libsecp256k1 (``node.identity``), so the transfer engine (layer 4) can sign and check receipts
without ~20 MiB of imports; the signature is the one eth-account's ``sign_typed_data`` makes
(tests/receipt compare them). The ``chain`` package submits receipts to ``TransferReceipts``,
which verifies the same digest.

Typed struct (must match ``contracts/src/TransferReceipts.sol`` exactly; docs/incentives.md
section 3.2)::

    Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,
            uint32 chunks,uint128 payment,uint64 nonce,uint64 issuedAt)

Domain: name "BCAI Transfer Receipts", version "2", ``chainId`` and ``verifyingContract`` taken
from the chain the receipts go to (see ``chain.eip712.receipt_domain``).

``payment`` is what the receiver pays the provider for these bytes, in wei, debited from the
receiver's escrow when the provider cashes the receipt. It must be at least
``payment_for(bytes_served, price)`` for the provider's stated price, and the contract refuses
any receipt below the protocol floor ``minPricePerGiB`` (``Underpaid``). A receipt is for the
bytes delivered since the previous receipt on the same connection, never cumulative.

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and ``s`` in the lower half of the
curve order (EIP-2). OpenZeppelin's ECDSA rejects high-s on chain; we reject it here too, so a
malleated copy of a receipt is never forwarded.

Compact binary form (all integers big-endian, 182 bytes, fixed layout, fields in struct
order)::

    offset size field
         0    1 format version (0x02)
         1   32 contentRoot
        33   20 provider
        53   20 receiver
        73    8 bytesServed   (uint64)
        81    4 chunks        (uint32)
        85   16 payment       (uint128, wei)
       101    8 nonce         (uint64)
       109    8 issuedAt      (uint64, unix seconds)
       117   65 signature     r(32) || s(32) || v(1)

Format version 1 (166 bytes, no payment, domain version "1") is no longer accepted: its
receipts cannot be cashed on the v2 contract.

Nonces are chosen by the receiver and must be unique per receiver; the contract keeps a bitmap of
256 nonces per storage word, so sequential nonces are far cheaper to submit than random ones.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from node.identity import (
    account_signature,
    is_address,
    keccak256,
    recover_address,
    to_checksum_address,
)

__all__ = [
    "DEFAULT_PRICE_PER_GIB",
    "FORMAT_VERSION",
    "GIB",
    "RECEIPT_TYPES",
    "RECEIPT_TYPE_STRING",
    "SECP256K1_N",
    "WIRE_SIZE",
    "BadReceiptSignature",
    "InvalidReceipt",
    "MalformedReceipt",
    "Receipt",
    "ReceiptDomain",
    "ReceiptError",
    "ReceiptMismatch",
    "SignedReceipt",
    "check_signature_form",
    "covers_price",
    "decode_receipt",
    "encode_receipt",
    "payment_for",
    "receipt_digest",
    "recover_signer",
    "sign_receipt",
    "verify_receipt",
]

DOMAIN_NAME = "BCAI Transfer Receipts"
DOMAIN_VERSION = "2"
FORMAT_VERSION = 2
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2

RECEIPT_TYPE_STRING = (
    "Receipt(bytes32 contentRoot,address provider,address receiver,uint64 bytesServed,"
    "uint32 chunks,uint128 payment,uint64 nonce,uint64 issuedAt)"
)
RECEIPT_TYPES: dict[str, list[dict[str, str]]] = {
    "Receipt": [
        {"name": "contentRoot", "type": "bytes32"},
        {"name": "provider", "type": "address"},
        {"name": "receiver", "type": "address"},
        {"name": "bytesServed", "type": "uint64"},
        {"name": "chunks", "type": "uint32"},
        {"name": "payment", "type": "uint128"},
        {"name": "nonce", "type": "uint64"},
        {"name": "issuedAt", "type": "uint64"},
    ]
}
_DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_RECEIPT_TYPEHASH = keccak256(RECEIPT_TYPE_STRING.encode())

_BODY = struct.Struct(">B32s20s20sQI16sQQ")
SIGNATURE_SIZE = 65
WIRE_SIZE = _BODY.size + SIGNATURE_SIZE
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_U128 = (1 << 128) - 1

GIB = 1 << 30
#: Protocol floor ``minPricePerGiB`` of the deployment defaults (``chain.deploy.DeployParams``),
#: in wei per GiB: the default price a provider states and the default most a receiver pays.
DEFAULT_PRICE_PER_GIB = 10**15


def payment_for(bytes_served: int, price_per_gib: int) -> int:
    """The least payment (wei) for ``bytes_served`` bytes at ``price_per_gib`` wei per GiB.

    ``ceil(bytes_served * price_per_gib / 2**30)``, exact integers: a receipt paying this much
    passes the contract's ``payment * 2^30 >= bytesServed * minPricePerGiB`` check whenever
    ``price_per_gib >= minPricePerGiB``.
    """
    if bytes_served < 0 or price_per_gib < 0:
        raise InvalidReceipt("bytes_served and price_per_gib must be >= 0")
    return -(-bytes_served * price_per_gib // GIB)


def covers_price(payment: int, bytes_served: int, price_per_gib: int) -> bool:
    """``payment`` pays for ``bytes_served`` at ``price_per_gib`` (the contract's rule)."""
    return payment * GIB >= bytes_served * price_per_gib


# ---------------------------------------------------------------------------------------- errors


class ReceiptError(Exception):
    """Root of every receipt error."""


class InvalidReceipt(ReceiptError, ValueError):
    """Local misuse: a field out of range or of the wrong type."""


class MalformedReceipt(ReceiptError, ValueError):
    """Remote fault: bytes or JSON from a peer that do not decode to a receipt."""


class BadReceiptSignature(ReceiptError):
    """Remote fault: the signature is malformed, malleable (high s) or does not recover."""


class ReceiptMismatch(ReceiptError):
    """Remote fault: a valid signature, but by someone else or for another provider/receiver."""

    def __init__(self, field: str, expected: str, actual: str) -> None:
        super().__init__(f"receipt {field} is {actual}, expected {expected}")
        self.field = field
        self.expected = expected
        self.actual = actual


# ---------------------------------------------------------------------------------------- types


def _address(value: Any, name: str) -> str:
    if isinstance(value, bytes) and len(value) == 20:
        return to_checksum_address(value)
    if not isinstance(value, str) or not is_address(value):
        raise InvalidReceipt(f"{name} is not an address: {value!r}")
    return to_checksum_address(value)


def _uint(value: Any, bound: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= bound:
        raise InvalidReceipt(f"{name} out of range: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ReceiptDomain:
    """EIP-712 domain of the ``TransferReceipts`` contract a receipt is bound to."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "verifying_contract", _address(self.verifying_contract, "verifying_contract")
        )
        _uint(self.chain_id, (1 << 256) - 1, "chain_id")

    def as_eip712(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def separator(self) -> bytes:
        """The EIP-712 domain separator (same as OZ ``_domainSeparatorV4()``)."""
        return keccak256(
            _DOMAIN_TYPEHASH
            + keccak256(self.name.encode())
            + keccak256(self.version.encode())
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(self.verifying_contract[2:])
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the receiver attests: ``provider`` served ``bytes_served`` bytes of ``content_root``."""

    content_root: bytes
    provider: str
    receiver: str
    bytes_served: int
    chunks: int
    payment: int
    nonce: int
    issued_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.content_root, bytes) or len(self.content_root) != 32:
            raise InvalidReceipt("content_root must be 32 bytes")
        object.__setattr__(self, "provider", _address(self.provider, "provider"))
        object.__setattr__(self, "receiver", _address(self.receiver, "receiver"))
        _uint(self.bytes_served, _U64, "bytes_served")
        _uint(self.chunks, _U32, "chunks")
        _uint(self.payment, _U128, "payment")
        _uint(self.nonce, _U64, "nonce")
        _uint(self.issued_at, _U64, "issued_at")

    def as_eip712(self) -> dict[str, Any]:
        return {
            "contentRoot": self.content_root,
            "provider": self.provider,
            "receiver": self.receiver,
            "bytesServed": self.bytes_served,
            "chunks": self.chunks,
            "payment": self.payment,
            "nonce": self.nonce,
            "issuedAt": self.issued_at,
        }

    def as_tuple(self) -> tuple[bytes, str, str, int, int, int, int, int]:
        """ABI tuple order, for ``submitBatch``."""
        return (
            self.content_root,
            self.provider,
            self.receiver,
            self.bytes_served,
            self.chunks,
            self.payment,
            self.nonce,
            self.issued_at,
        )

    def struct_hash(self) -> bytes:
        return keccak256(
            _RECEIPT_TYPEHASH
            + self.content_root
            + bytes(12)
            + bytes.fromhex(self.provider[2:])
            + bytes(12)
            + bytes.fromhex(self.receiver[2:])
            + self.bytes_served.to_bytes(32, "big")
            + self.chunks.to_bytes(32, "big")
            + self.payment.to_bytes(32, "big")
            + self.nonce.to_bytes(32, "big")
            + self.issued_at.to_bytes(32, "big")
        )


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt and the receiver's 65-byte signature (``r || s || v``)."""

    receipt: Receipt
    signature: bytes

    def to_bytes(self) -> bytes:
        return encode_receipt(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedReceipt:
        return decode_receipt(data)

    def to_json_obj(self) -> dict[str, Any]:
        r = self.receipt
        return {
            "contentRoot": "0x" + r.content_root.hex(),
            "provider": r.provider,
            "receiver": r.receiver,
            "bytesServed": r.bytes_served,
            "chunks": r.chunks,
            "payment": str(r.payment),
            "nonce": r.nonce,
            "issuedAt": r.issued_at,
            "signature": "0x" + self.signature.hex(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), sort_keys=True)

    @classmethod
    def from_json_obj(cls, obj: Any) -> SignedReceipt:
        try:
            receipt = Receipt(
                content_root=_hex_bytes(obj["contentRoot"], 32),
                provider=obj["provider"],
                receiver=obj["receiver"],
                bytes_served=obj["bytesServed"],
                chunks=obj["chunks"],
                payment=_json_uint(obj["payment"]),
                nonce=obj["nonce"],
                issued_at=obj["issuedAt"],
            )
            signature = _hex_bytes(obj["signature"], SIGNATURE_SIZE)
        except (KeyError, TypeError, InvalidReceipt) as exc:
            raise MalformedReceipt(f"bad receipt JSON: {exc}") from None
        return cls(receipt, signature)

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedReceipt:
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise MalformedReceipt(f"bad receipt JSON: {exc}") from None
        return cls.from_json_obj(obj)


def _json_uint(value: Any) -> int:
    """A uint128 from JSON: a decimal string (how we write it) or a plain integer."""
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedReceipt(f"payment must be a decimal string, got {value!r}")


def _hex_bytes(value: Any, size: int) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedReceipt("expected 0x-prefixed hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedReceipt("bad hex") from None
    if len(raw) != size:
        raise MalformedReceipt(f"expected {size} bytes, got {len(raw)}")
    return raw


# ---------------------------------------------------------------------------------------- codec


def encode_receipt(signed: SignedReceipt) -> bytes:
    """The 182-byte wire form (layout in the module docstring)."""
    r = signed.receipt
    if len(signed.signature) != SIGNATURE_SIZE:
        raise InvalidReceipt("signature must be 65 bytes")
    return (
        _BODY.pack(
            FORMAT_VERSION,
            r.content_root,
            bytes.fromhex(r.provider[2:]),
            bytes.fromhex(r.receiver[2:]),
            r.bytes_served,
            r.chunks,
            r.payment.to_bytes(16, "big"),
            r.nonce,
            r.issued_at,
        )
        + signed.signature
    )


def decode_receipt(data: bytes) -> SignedReceipt:
    """Parse the wire form; raises ``MalformedReceipt``. Does not check the signature."""
    if len(data) != WIRE_SIZE:
        raise MalformedReceipt(f"receipt must be {WIRE_SIZE} bytes, got {len(data)}")
    fields = _BODY.unpack_from(data)
    version, root, provider, receiver, served, chunks, payment, nonce, issued = fields
    if version != FORMAT_VERSION:
        raise MalformedReceipt(f"unknown receipt format version {version}")
    receipt = Receipt(
        content_root=root,
        provider=to_checksum_address(provider),
        receiver=to_checksum_address(receiver),
        bytes_served=served,
        chunks=chunks,
        payment=int.from_bytes(payment, "big"),
        nonce=nonce,
        issued_at=issued,
    )
    return SignedReceipt(receipt, bytes(data[_BODY.size :]))


# ---------------------------------------------------------------------------------------- crypto


class _Signer(Protocol):
    @property
    def address(self) -> Any: ...

    @property
    def key(self) -> Any: ...


def receipt_digest(receipt: Receipt, domain: ReceiptDomain) -> bytes:
    """The EIP-712 digest the receiver signs (equals ``TransferReceipts.hashReceipt``)."""
    return keccak256(b"\x19\x01" + domain.separator() + receipt.struct_hash())


def sign_receipt(account: _Signer, receipt: Receipt, domain: ReceiptDomain) -> SignedReceipt:
    """Sign ``receipt`` as its receiver (a ``node.identity.KeyAccount`` or an eth-account
    ``LocalAccount``): the signature eth-account's EIP-712 ``sign_typed_data`` makes."""
    if to_checksum_address(account.address) != receipt.receiver:
        raise InvalidReceipt("only the receiver signs a receipt")
    signature = account_signature(account, receipt_digest(receipt, domain))
    check_signature_form(signature)  # libsecp256k1 always produces low-s; keep it honest
    return SignedReceipt(receipt, signature)


def check_signature_form(signature: bytes) -> tuple[int, int, int]:
    """Return ``(v, r, s)``; raise ``BadReceiptSignature`` unless canonical (EIP-2, v 27/28)."""
    if len(signature) != SIGNATURE_SIZE:
        raise BadReceiptSignature(f"signature must be 65 bytes, got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise BadReceiptSignature(f"signature v must be 27 or 28, got {v}")
    if not 0 < r < SECP256K1_N or not 0 < s <= _HALF_N:
        raise BadReceiptSignature("malleable or out-of-range signature (high s)")
    return v, r, s


def recover_signer(signed: SignedReceipt, domain: ReceiptDomain) -> str:
    """The checksummed address that signed ``signed`` under ``domain``."""
    check_signature_form(signed.signature)
    digest = receipt_digest(signed.receipt, domain)
    try:
        return recover_address(digest, signed.signature)
    except ValueError as exc:
        raise BadReceiptSignature(str(exc)) from None


def verify_receipt(
    signed: SignedReceipt,
    domain: ReceiptDomain,
    expected_receiver: str | None = None,
    expected_provider: str | None = None,
) -> str:
    """Check the signature is the receiver's (and optionally who the parties are).

    Returns the signer. Raises ``BadReceiptSignature`` or ``ReceiptMismatch``.
    """
    signer = recover_signer(signed, domain)
    r = signed.receipt
    if signer != r.receiver:
        raise ReceiptMismatch("signer", r.receiver, signer)
    if expected_receiver is not None and r.receiver != to_checksum_address(expected_receiver):
        raise ReceiptMismatch("receiver", to_checksum_address(expected_receiver), r.receiver)
    if expected_provider is not None and r.provider != to_checksum_address(expected_provider):
        raise ReceiptMismatch("provider", to_checksum_address(expected_provider), r.provider)
    return signer
