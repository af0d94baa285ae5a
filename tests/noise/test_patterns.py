"""Pattern tables, protocol-name parsing, HandshakeState set-up checks, the public API."""

from __future__ import annotations

import itertools

import pytest

import node.noise
from node.noise import (
    PATTERNS,
    HandshakeState,
    KeyPair,
    LocalProtocolError,
    UnsupportedProtocolError,
)
from node.noise._patterns import parse_protocol_name

FUNDAMENTAL = ["NN", "NK", "NX", "XN", "XK", "XX", "KN", "KK", "KX", "IN", "IK", "IX"]
SUFFIX = "_25519_ChaChaPoly_SHA256"


def test_table_holds_one_way_fundamental_and_deferred_patterns() -> None:
    assert len(PATTERNS) == 3 + 12 + 23
    assert {"N", "K", "X", *FUNDAMENTAL} <= set(PATTERNS)
    assert {name for name, p in PATTERNS.items() if p.one_way} == {"N", "K", "X"}
    assert PATTERNS["XX"].messages == (("e",), ("e", "ee", "s", "es"), ("s", "se"))
    assert PATTERNS["IK"].responder_pre == ("s",)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_is_well_formed(name: str) -> None:
    """Each DH token comes after both keys it needs are known to both sides."""
    pattern = PATTERNS[name]
    known = {("i", t) for t in pattern.initiator_pre} | {("r", t) for t in pattern.responder_pre}
    for i, message in enumerate(pattern.messages):
        side = "i" if i % 2 == 0 else "r"
        for token in message:
            if token in ("e", "s"):
                assert (side, token) not in known, f"{name}: {token} sent twice"
                known.add((side, token))
            else:
                assert ("i", token[0]) in known and ("r", token[1]) in known, f"{name}: {token}"
    assert len(pattern.messages) == 1 if pattern.one_way else len(pattern.messages) >= 2


def test_psk_modifiers_place_tokens() -> None:
    xx = parse_protocol_name("Noise_XXpsk3" + SUFFIX).pattern
    assert xx.messages[2] == ("s", "se", "psk")
    nn = parse_protocol_name("Noise_NNpsk0+psk2" + SUFFIX).pattern
    assert nn.messages == (("psk", "e"), ("e", "ee", "psk"))
    assert nn.psk_count == 2


@pytest.mark.parametrize(
    "name",
    [
        "Noise_XXfallback" + SUFFIX,
        "Noise_XX_448_ChaChaPoly_SHA256",
        "Noise_XX_25519_AESGCM_BLAKE2s",
        "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "Noise_XXpsk4" + SUFFIX,
        "Noise_ZZ" + SUFFIX,
        "Noisy_XX" + SUFFIX,
        "Noise_XX",
    ],
)
def test_unsupported_names_are_refused(name: str) -> None:
    with pytest.raises(UnsupportedProtocolError):
        HandshakeState(name, initiator=True, s=KeyPair.generate())


def test_missing_keys_and_psks_are_refused_up_front() -> None:
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_XX" + SUFFIX, initiator=True)
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_IK" + SUFFIX, initiator=True, s=KeyPair.generate())
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_NNpsk0" + SUFFIX, initiator=True)
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_NNpsk0" + SUFFIX, initiator=True, psks=[bytes(31)])
    with pytest.raises(LocalProtocolError):
        KeyPair.from_private(bytes(31))
    HandshakeState("Noise_NN" + SUFFIX, initiator=True)  # needs nothing


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_completes_with_random_keys_and_psks(name: str) -> None:
    """Beyond the vectors: fresh keys, payloads each way, transport both directions."""
    full = f"Noise_{name}psk0+psk{len(PATTERNS[name].messages)}{SUFFIX}"
    i_s, r_s = KeyPair.generate(), KeyPair.generate()
    psks = [b"\x01" * 32, b"\x02" * 32]
    init = HandshakeState(full, initiator=True, s=i_s, rs=r_s.public, psks=psks)
    resp = HandshakeState(full, initiator=False, s=r_s, rs=i_s.public, psks=psks)
    for turn in itertools.count():
        if init.complete:
            break
        writer, reader = (init, resp) if turn % 2 == 0 else (resp, init)
        assert reader.read_message(writer.write_message(b"p%d" % turn)) == b"p%d" % turn
    assert resp.complete and init.handshake_hash == resp.handshake_hash
    (c1, c2), (d1, d2) = init.ciphers, resp.ciphers
    assert d1.decrypt_with_ad(b"", c1.encrypt_with_ad(b"", b"to responder")) == b"to responder"
    if not init.pattern.one_way:
        assert c2.decrypt_with_ad(b"", d2.encrypt_with_ad(b"", b"to initiator")) == b"to initiator"


def test_public_names() -> None:
    assert set(node.noise.__all__) == {
        "DEFAULT_PROLOGUE",
        "MAX_MESSAGE_LEN",
        "MAX_PLAINTEXT_LEN",
        "PATTERNS",
        "PROTOCOL_NAME",
        "CipherState",
        "DecryptError",
        "HandshakePattern",
        "HandshakeState",
        "KeyPair",
        "LocalProtocolError",
        "NoiseConnection",
        "NoiseError",
        "NoiseProtocolError",
        "NonceExhausted",
        "RemoteProtocolError",
        "SymmetricState",
        "UnsupportedProtocolError",
    }
    for name in node.noise.__all__:
        assert getattr(node.noise, name) is not None
    assert node.noise.PROTOCOL_NAME == b"Noise_XX_25519_ChaChaPoly_SHA256"
    assert node.noise.DEFAULT_PROLOGUE == b"bcai/1"
    assert (node.noise.MAX_MESSAGE_LEN, node.noise.MAX_PLAINTEXT_LEN) == (65535, 65519)


def test_error_tree() -> None:
    n = node.noise
    assert issubclass(n.LocalProtocolError, n.NoiseProtocolError)
    assert issubclass(n.RemoteProtocolError, n.NoiseProtocolError)
    assert issubclass(n.DecryptError, n.RemoteProtocolError)
    assert issubclass(n.UnsupportedProtocolError, ValueError)
    assert issubclass(n.NonceExhausted, n.NoiseError)
    assert issubclass(n.NoiseProtocolError, n.NoiseError)


def test_key_pair_repr_hides_the_private_key() -> None:
    kp = KeyPair.generate()
    assert kp.private.hex() not in repr(kp)
    assert KeyPair.from_private(kp.private) == kp
