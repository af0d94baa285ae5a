"""EIP-712 domains built from the chain, and the validators' allocation signatures.

Chain ids differ between backends (py-evm 131277322940537, anvil 31337, mainnets...), so domains
are always built from ``backend.chain_id`` and the deployed address, never hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.identity import keccak256 as keccak
from node.identity import to_checksum_address
from node.receipt import BadReceiptSignature, ReceiptDomain, check_signature_form

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "ALLOCATION_TYPES",
    "RewardsDomain",
    "allocation_digest",
    "receipt_domain",
    "recover_allocation_signer",
    "sign_allocation",
]

ALLOCATION_TYPES = {
    "Allocation": [
        {"name": "epoch", "type": "uint64"},
        {"name": "token", "type": "address"},
        {"name": "merkleRoot", "type": "bytes32"},
        {"name": "total", "type": "uint256"},
    ]
}
_ALLOCATION_TYPEHASH = keccak(
    b"Allocation(uint64 epoch,address token,bytes32 merkleRoot,uint256 total)"
)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def receipt_domain(chain_id: int, transfer_receipts: str) -> ReceiptDomain:
    """The domain receipts for ``transfer_receipts`` on chain ``chain_id`` are signed under."""
    return ReceiptDomain(chain_id, transfer_receipts)


@dataclass(frozen=True)
class RewardsDomain:
    """EIP-712 domain of ``HostingRewards`` ("BCAI Hosting Rewards", version "1")."""

    chain_id: int
    verifying_contract: str

    def _inner(self) -> ReceiptDomain:
        return ReceiptDomain(
            self.chain_id, self.verifying_contract, name="BCAI Hosting Rewards", version="1"
        )

    def as_eip712(self) -> dict[str, Any]:
        return self._inner().as_eip712()

    def separator(self) -> bytes:
        return self._inner().separator()


def allocation_digest(
    domain: RewardsDomain, epoch: int, token: str, merkle_root: bytes, total: int
) -> bytes:
    """Equals ``HostingRewards.hashAllocation(epoch, token, merkleRoot, total)``."""
    struct = keccak(
        _ALLOCATION_TYPEHASH
        + epoch.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(to_checksum_address(token)[2:])
        + merkle_root
        + total.to_bytes(32, "big")
    )
    return keccak(b"\x19\x01" + domain.separator() + struct)


def sign_allocation(
    validator: LocalAccount,
    domain: RewardsDomain,
    epoch: int,
    token: str,
    merkle_root: bytes,
    total: int,
) -> bytes:
    """A validator's 65-byte signature over ``Allocation(epoch, token, merkleRoot, total)``."""
    from eth_account.messages import encode_typed_data

    message = encode_typed_data(
        domain_data=domain.as_eip712(),
        message_types=ALLOCATION_TYPES,
        message_data={
            "epoch": epoch,
            "token": to_checksum_address(token),
            "merkleRoot": merkle_root,
            "total": total,
        },
    )
    return bytes(validator.sign_message(message).signature)


def recover_allocation_signer(
    domain: RewardsDomain, epoch: int, token: str, merkle_root: bytes, total: int, signature: bytes
) -> str:
    try:
        v, r, s = check_signature_form(signature)
    except BadReceiptSignature as exc:
        raise ValueError(str(exc)) from None
    digest = allocation_digest(domain, epoch, token, merkle_root, total)
    from eth_keys import keys

    sig = keys.Signature(vrs=(v - 27, r, s))
    return sig.recover_public_key_from_msg_hash(digest).to_checksum_address()
