"""The public cacophony/snow vectors for 25519_ChaChaPoly_SHA256 and 25519_AESGCM_SHA256,
run on both sides.

For each vector: both HandshakeStates are built from the given keys, ephemerals, prologues and
psks; every message is written by its sender (compared byte for byte with the vector's
ciphertext) and read by its receiver (compared with the payload); the handshake hashes must
match the vector; the messages after Split go through the transport CipherStates. Message ``i``
is sent by the initiator when ``i`` is even, except in one-way patterns where the initiator
sends every message.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.noise import HandshakeState, KeyPair, NoiseConnection, UnsupportedProtocolError
from node.noise._patterns import parse_protocol_name

from .conftest import load_vectors

VECTORS = load_vectors()


def _supported(vector: dict[str, Any]) -> bool:
    try:
        parse_protocol_name(vector["protocol_name"])
    except UnsupportedProtocolError:
        return False
    return True


def _params() -> list[Any]:
    params = []
    for i, vector in enumerate(VECTORS):
        marks = [] if _supported(vector) else [pytest.mark.skip(reason="unsupported pattern")]
        params.append(pytest.param(vector, id=f"{i:03d}-{vector['protocol_name']}", marks=marks))
    return params


def _hex(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return None if value is None else bytes.fromhex(value)


def _key_pair(vector: dict[str, Any], key: str) -> KeyPair | None:
    private = _hex(vector, key)
    return None if private is None else KeyPair.from_private(private)


def _side(vector: dict[str, Any], prefix: str) -> HandshakeState:
    return HandshakeState(
        vector["protocol_name"],
        initiator=prefix == "init",
        prologue=_hex(vector, f"{prefix}_prologue") or b"",
        s=_key_pair(vector, f"{prefix}_static"),
        e=_key_pair(vector, f"{prefix}_ephemeral"),
        rs=_hex(vector, f"{prefix}_remote_static"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{prefix}_psks", [])],
    )


def test_every_vector_in_the_file_is_supported() -> None:
    """All 110 vectors of each suite (38 patterns, psk variants included) run; none skipped."""
    assert len(VECTORS) == 220
    assert sum("_AESGCM_" in v["protocol_name"] for v in VECTORS) == 110
    assert all(_supported(v) for v in VECTORS)


@pytest.mark.parametrize("vector", _params())
def test_vector(vector: dict[str, Any]) -> None:
    init, resp = _side(vector, "init"), _side(vector, "resp")
    one_way = init.pattern.one_way
    transport: tuple[Any, Any] | None = None
    for i, message in enumerate(vector["messages"]):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        initiator_sends = one_way or i % 2 == 0
        if transport is None:
            sender, receiver = (init, resp) if initiator_sends else (resp, init)
            assert sender.is_our_turn and not receiver.is_our_turn
            assert sender.write_message(payload) == expected, f"handshake message {i}"
            assert receiver.read_message(expected) == payload
            if init.complete:
                assert resp.complete
                assert init.handshake_hash == resp.handshake_hash
                if "handshake_hash" in vector:
                    assert init.handshake_hash.hex() == vector["handshake_hash"]
                (i_c1, i_c2), (r_c1, r_c2) = init.ciphers, resp.ciphers
                transport = ((i_c1, r_c1), (r_c2, i_c2))
            else:
                assert not resp.complete
        else:
            send, recv = transport[0] if initiator_sends else transport[1]
            assert send.encrypt_with_ad(b"", payload) == expected, f"transport message {i}"
            assert recv.decrypt_with_ad(b"", expected) == payload
    assert transport is not None, "the vector never completed its handshake"


XX_VECTORS = [
    pytest.param(v, id=f"{i:03d}")
    for i, v in enumerate(VECTORS)
    if v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_SHA256"
]


@pytest.mark.parametrize("vector", XX_VECTORS)
def test_xx_vectors_through_noise_connection(vector: dict[str, Any]) -> None:
    """NoiseConnection assigns send/receive ciphers the right way round on both sides."""
    init, resp = NoiseConnection(_side(vector, "init")), NoiseConnection(_side(vector, "resp"))
    for i, message in enumerate(vector["messages"]):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        if i < 3:
            assert sender.write_handshake(payload) == expected
            assert receiver.read_handshake(expected) == payload
        else:
            assert sender.encrypt(payload) == expected
            assert receiver.decrypt(expected) == payload
    assert init.handshake_hash == resp.handshake_hash
    if "handshake_hash" in vector:
        assert init.handshake_hash.hex() == vector["handshake_hash"]
    assert init.remote_static == KeyPair.from_private(bytes.fromhex(vector["resp_static"])).public
    assert resp.remote_static == KeyPair.from_private(bytes.fromhex(vector["init_static"])).public
