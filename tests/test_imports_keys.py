"""``node.identity``'s secp256k1, keccak and keystore code against eth-account's (D34).

The data plane signs receipts and handshakes and opens the keystore without eth-account; these
tests hold it to eth-account's results on random keys and messages, so a signature made either
way verifies either way, and a keystore eth-account wrote opens here (and a wrong passphrase,
a damaged MAC or a damaged file does not).
"""

from __future__ import annotations

import copy
import os

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_utils import is_address as eth_is_address
from eth_utils import keccak as eth_keccak
from eth_utils import to_checksum_address as eth_checksum

from node.identity import (
    KeyAccount,
    account_signature,
    decrypt_keystore,
    eip191_digest,
    is_address,
    keccak256,
    recover_address,
    sign_digest,
    to_checksum_address,
)


@pytest.mark.parametrize("seed", range(25))
def test_signatures_equal_eth_accounts_and_recover(seed: int) -> None:
    local = Account.create()
    ours = KeyAccount(local.key)
    assert ours.address == local.address and ours.key == bytes(local.key)
    digest = os.urandom(32)
    signature = sign_digest(local.key, digest)
    assert signature == bytes(local.unsafe_sign_hash(digest).signature)
    assert signature == ours.sign_hash(digest) == account_signature(local, digest)
    assert recover_address(digest, signature) == local.address
    message = os.urandom(seed + 1)
    assert eip191_digest(message) == _hash_eip191_message(encode_defunct(primitive=message))
    handshake = account_signature(ours, eip191_digest(message))
    assert Account.recover_message(encode_defunct(primitive=message), signature=handshake) == (
        local.address
    )


def test_recovery_refuses_what_does_not_recover() -> None:
    digest = os.urandom(32)
    good = sign_digest(os.urandom(32), digest)
    for bad in (good[:64] + bytes([29]), bytes(64) + bytes([27]), good[:64], b""):
        with pytest.raises(ValueError):
            recover_address(digest, bad)
    with pytest.raises(ValueError):
        recover_address(digest[:31], good)
    with pytest.raises(ValueError):
        sign_digest(os.urandom(32), digest + b"x")


def test_keccak_checksums_and_addresses_match_eth_utils() -> None:
    for _ in range(50):
        data = os.urandom(int.from_bytes(os.urandom(1), "big"))
        assert keccak256(data) == eth_keccak(data)
        raw = os.urandom(20)
        for form in (raw, raw.hex(), "0x" + raw.hex(), "0X" + raw.hex().upper()):
            assert to_checksum_address(form) == eth_checksum(form)
    for value in ("0x" + "ab" * 20, "ab" * 20, "0x" + "ab" * 19, "0x" + "zz" * 20, 7, b"x" * 20):
        assert is_address(value) == eth_is_address(value), value
    for bad in ("0x" + "ab" * 19, "0x" + "gg" * 20, b"x" * 19):
        with pytest.raises(ValueError):
            to_checksum_address(bad)


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_keystores_eth_account_wrote_open_here(kdf: str) -> None:
    local = Account.create()
    keystore = Account.encrypt(
        local.key, "pässword", kdf=kdf, iterations=16 if kdf == "scrypt" else 64
    )
    assert decrypt_keystore(keystore, "pässword") == bytes(local.key)
    with pytest.raises(ValueError, match="MAC"):
        decrypt_keystore(keystore, "password")
    damaged = copy.deepcopy(keystore)
    ct = damaged["crypto"]["ciphertext"]  # its first byte flipped (setting it to 00 was
    damaged["crypto"]["ciphertext"] = f"{int(ct[:2], 16) ^ 0xFF:02x}" + ct[2:]  # a no-op 1 in 256)
    with pytest.raises(ValueError, match="MAC"):
        decrypt_keystore(damaged, "pässword")
    broken = copy.deepcopy(keystore)
    del broken["crypto"]["kdfparams"]
    with pytest.raises(ValueError, match="malformed"):
        decrypt_keystore(broken, "pässword")


def test_key_account_is_a_local_account_for_the_chain() -> None:
    """Anything beyond address/key/sign_hash goes to a LocalAccount built from the same key."""
    local = Account.create()
    ours = KeyAccount(local.key)
    tx = {
        "to": "0x" + "11" * 20,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "nonce": 0,
        "chainId": 31337,
    }
    assert ours.sign_transaction(tx).raw_transaction == local.sign_transaction(tx).raw_transaction
    assert local.address in repr(ours) and local.key.hex() not in repr(ours)
    for bad in (b"\x00" * 32, b"\xff" * 32, b"\x01" * 31):
        with pytest.raises(ValueError):
            KeyAccount(bad)
