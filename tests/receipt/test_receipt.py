"""EIP-712 receipts: signing, recovery, malleability, codec and JSON round trips."""

from __future__ import annotations

import contextlib

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from node.receipt import (
    DEFAULT_PRICE_PER_GIB,
    GIB,
    RECEIPT_TYPE_STRING,
    RECEIPT_TYPES,
    SECP256K1_N,
    WIRE_SIZE,
    BadReceiptSignature,
    InvalidReceipt,
    MalformedReceipt,
    Receipt,
    ReceiptDomain,
    ReceiptMismatch,
    SignedReceipt,
    covers_price,
    decode_receipt,
    encode_receipt,
    payment_for,
    receipt_digest,
    recover_signer,
    sign_receipt,
    verify_receipt,
)

from .._hyp import examples

RECEIVER = Account.from_key(b"\x11" * 32)
PROVIDER = Account.from_key(b"\x22" * 32)
DOMAIN = ReceiptDomain(131277322940537, "0x" + "ab" * 20)

u64 = st.integers(0, 2**64 - 1)
u128 = st.integers(0, 2**128 - 1)
receipts = st.builds(
    Receipt,
    content_root=st.binary(min_size=32, max_size=32),
    provider=st.just(PROVIDER.address),
    receiver=st.just(RECEIVER.address),
    bytes_served=u64,
    chunks=st.integers(0, 2**32 - 1),
    payment=u128,
    nonce=u64,
    issued_at=u64,
)


def _receipt(**kw: object) -> Receipt:
    base: dict[str, object] = {
        "content_root": b"\x01" * 32,
        "provider": PROVIDER.address,
        "receiver": RECEIVER.address,
        "bytes_served": 1 << 20,
        "chunks": 1,
        "payment": 10**12,
        "nonce": 7,
        "issued_at": 1_700_000_000,
    }
    base.update(kw)
    return Receipt(**base)  # type: ignore[arg-type]


def _malleate(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    return sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


@settings(max_examples=examples(40), deadline=None)
@given(receipts)
def test_sign_recover_roundtrip(receipt: Receipt) -> None:
    signed = sign_receipt(RECEIVER, receipt, DOMAIN)
    assert recover_signer(signed, DOMAIN) == RECEIVER.address
    assert verify_receipt(signed, DOMAIN, RECEIVER.address, PROVIDER.address) == RECEIVER.address
    assert decode_receipt(encode_receipt(signed)) == signed
    assert SignedReceipt.from_json(signed.to_json()) == signed


@settings(max_examples=examples(40), deadline=None)
@given(receipts)
def test_manual_digest_matches_eth_account(receipt: Receipt) -> None:
    msg = encode_typed_data(
        domain_data=DOMAIN.as_eip712(),
        message_types=RECEIPT_TYPES,
        message_data=receipt.as_eip712(),
    )
    assert _hash_eip191_message(msg) == receipt_digest(receipt, DOMAIN)


def test_malleated_signature_rejected_though_it_recovers() -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    evil = SignedReceipt(signed.receipt, _malleate(signed.signature))
    # The high-s twin is a valid ECDSA signature for the same key ...
    assert Account._recover_hash(
        receipt_digest(signed.receipt, DOMAIN), signature=evil.signature
    ) == (RECEIVER.address)
    # ... and still refused.
    with pytest.raises(BadReceiptSignature, match="high s"):
        verify_receipt(evil, DOMAIN)


@pytest.mark.parametrize("v", [0, 1, 26, 29])
def test_bad_v_rejected(v: int) -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    with pytest.raises(BadReceiptSignature):
        recover_signer(SignedReceipt(signed.receipt, signed.signature[:64] + bytes([v])), DOMAIN)


def test_zero_r_and_short_signature_rejected() -> None:
    r = _receipt()
    with pytest.raises(BadReceiptSignature):
        recover_signer(SignedReceipt(r, bytes(64) + b"\x1b"), DOMAIN)
    with pytest.raises(BadReceiptSignature):
        recover_signer(SignedReceipt(r, b"\x01" * 64), DOMAIN)


@pytest.mark.parametrize(
    "change",
    [
        {"bytes_served": 2 << 20},
        {"chunks": 2},
        {"payment": 10**12 - 1},
        {"nonce": 8},
        {"issued_at": 1},
        {"content_root": b"\x02" * 32},
        {"provider": "0x" + "33" * 20},
    ],
)
def test_altered_field_breaks_signature(change: dict[str, object]) -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    altered = SignedReceipt(_receipt(**change), signed.signature)
    with pytest.raises(ReceiptMismatch) as info:
        verify_receipt(altered, DOMAIN)
    assert info.value.field == "signer"


def test_other_domain_breaks_signature() -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    for other in (
        ReceiptDomain(31337, DOMAIN.verifying_contract),
        ReceiptDomain(DOMAIN.chain_id, "0x" + "cd" * 20),
    ):
        with pytest.raises(ReceiptMismatch):
            verify_receipt(signed, other)


def test_expected_parties_checked() -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    with pytest.raises(ReceiptMismatch) as info:
        verify_receipt(signed, DOMAIN, expected_provider=RECEIVER.address)
    assert info.value.field == "provider"
    with pytest.raises(ReceiptMismatch) as info:
        verify_receipt(signed, DOMAIN, expected_receiver=PROVIDER.address)
    assert info.value.field == "receiver"


def test_only_receiver_signs() -> None:
    with pytest.raises(InvalidReceipt):
        sign_receipt(PROVIDER, _receipt(), DOMAIN)


@pytest.mark.parametrize(
    "bad",
    [
        {"content_root": b"\x01" * 31},
        {"bytes_served": -1},
        {"bytes_served": 2**64},
        {"chunks": 2**32},
        {"payment": 2**128},
        {"payment": -1},
        {"nonce": True},
        {"provider": "0x1234"},
    ],
)
def test_out_of_range_fields(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidReceipt):
        _receipt(**bad)


def test_wire_layout_is_fixed() -> None:
    signed = sign_receipt(RECEIVER, _receipt(), DOMAIN)
    raw = encode_receipt(signed)
    assert len(raw) == WIRE_SIZE == 182
    assert raw[0] == 2
    assert raw[1:33] == b"\x01" * 32
    assert raw[33:53] == bytes.fromhex(PROVIDER.address[2:])
    assert raw[53:73] == bytes.fromhex(RECEIVER.address[2:])
    assert int.from_bytes(raw[73:81], "big") == 1 << 20
    assert int.from_bytes(raw[81:85], "big") == 1
    assert raw[85:101] == (10**12).to_bytes(16, "big")
    assert int.from_bytes(raw[101:109], "big") == 7
    assert int.from_bytes(raw[109:117], "big") == 1_700_000_000
    assert raw[117:] == signed.signature


@given(st.binary(max_size=250))
def test_decode_garbage_is_typed(data: bytes) -> None:
    with contextlib.suppress(MalformedReceipt):
        decode_receipt(data)


def test_decode_rejects_unknown_version() -> None:
    raw = bytearray(encode_receipt(sign_receipt(RECEIVER, _receipt(), DOMAIN)))
    raw[0] = 1  # the retired v1 format (no payment) is refused even at the right length
    with pytest.raises(MalformedReceipt, match="version"):
        decode_receipt(bytes(raw))


@pytest.mark.parametrize("text", ["{", "[]", '{"contentRoot": "0x00"}', "null"])
def test_bad_json_is_typed(text: str) -> None:
    with pytest.raises(MalformedReceipt):
        SignedReceipt.from_json(text)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def test_type_string_and_digest_by_hand() -> None:
    """The digest is keccak over the EIP-712 encoding of docs/incentives.md section 3.2,
    computed here from the spec text, not from the module's own struct_hash."""
    spec = (
        "Receipt(bytes32 contentRoot,address provider,address receiver,"
        "uint64 bytesServed,uint32 chunks,uint128 payment,uint64 nonce,uint64 issuedAt)"
    )
    assert spec == RECEIPT_TYPE_STRING
    r = _receipt(payment=123456789 * 10**18)
    struct_hash = keccak(
        keccak(text=spec)
        + r.content_root
        + bytes(12) + bytes.fromhex(PROVIDER.address[2:])
        + bytes(12) + bytes.fromhex(RECEIVER.address[2:])
        + _word(1 << 20) + _word(1) + _word(123456789 * 10**18) + _word(7)
        + _word(1_700_000_000)
    )  # fmt: skip
    domain_sep = keccak(
        keccak(
            text="EIP712Domain(string name,string version,uint256 chainId,"
            "address verifyingContract)"
        )
        + keccak(text="BCAI Transfer Receipts")
        + keccak(text="2")
        + _word(131277322940537)
        + bytes(12) + b"\xab" * 20
    )  # fmt: skip
    assert DOMAIN.version == "2"
    assert receipt_digest(r, DOMAIN) == keccak(b"\x19\x01" + domain_sep + struct_hash)


@settings(max_examples=examples(200), deadline=None)
@given(u64, st.integers(0, 10**30))
def test_payment_for_is_the_least_covering_payment(nbytes: int, price: int) -> None:
    pay = payment_for(nbytes, price)
    assert covers_price(pay, nbytes, price)
    assert pay == 0 or not covers_price(pay - 1, nbytes, price)


def test_payment_for_examples() -> None:
    assert payment_for(GIB, DEFAULT_PRICE_PER_GIB) == 10**15
    assert payment_for(1, DEFAULT_PRICE_PER_GIB) == 931323  # 10**15 / 2**30 = 931322.57, ceil
    assert payment_for(1, 1) == 1  # one byte is never free
    assert payment_for(0, DEFAULT_PRICE_PER_GIB) == 0
    assert payment_for(2**64 - 1, DEFAULT_PRICE_PER_GIB) < 2**128
    with pytest.raises(InvalidReceipt):
        payment_for(-1, 1)


def test_json_payment_is_a_decimal_string() -> None:
    signed = sign_receipt(RECEIVER, _receipt(payment=2**127 + 1), DOMAIN)
    obj = signed.to_json_obj()
    assert obj["payment"] == str(2**127 + 1)
    assert SignedReceipt.from_json_obj(obj) == signed
    assert SignedReceipt.from_json_obj({**obj, "payment": 2**127 + 1}) == signed
    for bad in ("0x10", "-1", "1e3", None, True):
        with pytest.raises(MalformedReceipt):
            SignedReceipt.from_json_obj({**obj, "payment": bad})
    no_payment = {k: v for k, v in obj.items() if k != "payment"}
    with pytest.raises(MalformedReceipt):
        SignedReceipt.from_json_obj(no_payment)
