"""Handshake identity payload: binds an Ethereum address to a Noise static key."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from node import wire

from .._hyp import examples


@pytest.fixture(scope="module")
def account() -> LocalAccount:
    return Account.from_key(b"\x42" * 32)


STATIC = bytes(range(32))


def test_roundtrip(account: LocalAccount) -> None:
    caps = wire.Capabilities(flags=int(wire.CapFlag.PROVIDER), max_outstanding=64)
    payload = wire.make_identity_payload(account, STATIC, caps)
    assert len(payload) == wire.IDENTITY_PAYLOAD_LEN == 97
    peer = wire.verify_identity_payload(payload, STATIC, account.address.lower())
    assert peer == wire.PeerIdentity(account.address, STATIC, 1, caps)


def test_signature_is_eip191_over_the_domain_and_key(account: LocalAccount) -> None:
    from eth_account.messages import encode_defunct

    payload = wire.make_identity_payload(account, STATIC)
    sig = payload[22:87]
    msg = encode_defunct(primitive=b"bcai-transfer noise static key v1:" + STATIC)
    assert Account.recover_message(msg, signature=sig) == account.address
    assert payload[:2] == b"\x00\x01" and payload[2:22] == bytes.fromhex(account.address[2:])


def test_other_static_key_is_bad_signature(account: LocalAccount) -> None:
    payload = wire.make_identity_payload(account, STATIC)
    with pytest.raises(wire.BadSignature):
        wire.verify_identity_payload(payload, os.urandom(32))


def test_claiming_another_address_is_bad_signature(account: LocalAccount) -> None:
    payload = bytearray(wire.make_identity_payload(account, STATIC))
    payload[2:22] = bytes.fromhex(Account.create().address[2:])
    with pytest.raises(wire.BadSignature):
        wire.verify_identity_payload(bytes(payload), STATIC)


def test_unexpected_address_is_mismatch(account: LocalAccount) -> None:
    payload = wire.make_identity_payload(account, STATIC)
    with pytest.raises(wire.IdentityMismatch):
        wire.verify_identity_payload(payload, STATIC, Account.create().address)


def test_unknown_version_is_unsupported(account: LocalAccount) -> None:
    payload = b"\x00\x02" + wire.make_identity_payload(account, STATIC)[2:]
    with pytest.raises(wire.UnsupportedVersion) as info:
        wire.verify_identity_payload(payload, STATIC)
    assert isinstance(info.value, wire.IdentityError)
    assert info.value.code is wire.ErrorCode.UNSUPPORTED_VERSION


def test_extensions_are_ignored_up_to_the_cap(account: LocalAccount) -> None:
    payload = wire.make_identity_payload(account, STATIC)
    assert wire.verify_identity_payload(payload + b"\xee" * 1024, STATIC).address
    with pytest.raises(wire.MalformedIdentity):
        wire.verify_identity_payload(payload + b"\xee" * 1025, STATIC)


def test_local_misuse(account: LocalAccount) -> None:
    with pytest.raises(wire.LocalProtocolError):
        wire.make_identity_payload(account, b"short")
    with pytest.raises(wire.LocalProtocolError):
        wire.verify_identity_payload(wire.make_identity_payload(account, STATIC), b"short")


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=200), st.data())
def test_garbage_raises_only_identity_errors(
    account: LocalAccount, garbage: bytes, data: st.DataObject
) -> None:
    real = wire.make_identity_payload(account, STATIC)
    flips = data.draw(st.lists(st.integers(0, len(real) - 1), max_size=4, unique=True))
    mutated = bytearray(real)
    for i in flips:
        mutated[i] ^= 0xFF
    for candidate in (garbage, b"\x00\x01" + garbage, bytes(mutated)):
        try:
            peer = wire.verify_identity_payload(candidate, STATIC)
        except wire.IdentityError:
            continue
        # only flips confined to the capabilities/extension area can still verify
        assert candidate == bytes(mutated) and all(i >= 87 for i in flips)
        assert peer.address == account.address


def test_a_verified_pair_is_remembered_failures_are_not(
    account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature recovery (~17 ms in pure Python) runs once per (payload, static key):
    a peer reconnecting, or a flood from one key, costs a lookup; the expected address is
    still checked each time; a failing pair is recovered (and refused) every time."""
    from node.wire import _identity

    calls = []
    real = _identity.recover_address

    def counting(*a: object, **kw: object) -> str:
        calls.append(1)
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_identity, "recover_address", counting)
    static = os.urandom(32)
    payload = wire.make_identity_payload(account, static)
    assert not _identity.identity_verified(payload, static)
    for _ in range(3):
        assert wire.verify_identity_payload(payload, static).address == account.address
    assert len(calls) == 1 and _identity.identity_verified(payload, static)
    with pytest.raises(wire.IdentityMismatch):
        wire.verify_identity_payload(payload, static, "0x" + "11" * 20)
    other = os.urandom(32)
    for _ in range(2):
        with pytest.raises(wire.BadSignature):
            wire.verify_identity_payload(payload, other)
    assert len(calls) == 3 and not _identity.identity_verified(payload, other)
