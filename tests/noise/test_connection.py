"""NoiseConnection: XX between two in-memory peers, ordering, limits, failure handling."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.noise import (
    MAX_MESSAGE_LEN,
    MAX_PLAINTEXT_LEN,
    DecryptError,
    KeyPair,
    LocalProtocolError,
    NoiseConnection,
    NoiseProtocolError,
    NonceExhausted,
    RemoteProtocolError,
)

from .._hyp import examples
from .conftest import run_handshake

Pair = tuple[NoiseConnection, NoiseConnection]


# -- a good session ---------------------------------------------------------------------


def test_xx_completes_and_authenticates_both_statics() -> None:
    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    # a message-1 payload of its own: the initiator offers no extra cipher
    a = NoiseConnection.initiator(a_key, ciphers=("ChaChaPoly",))
    b = NoiseConnection.responder(b_key)
    assert a.is_our_turn and not b.is_our_turn
    received = run_handshake(a, b, (b"one", b"two", b"three"))
    assert received == [b"one", b"two", b"three"]
    assert a.handshake_complete and b.handshake_complete
    assert a.remote_static == b_key.public
    assert b.remote_static == a_key.public
    assert a.handshake_hash == b.handshake_hash
    assert len(a.handshake_hash) == 32


def test_remote_static_known_after_message_2_for_initiator_and_3_for_responder(
    pair: Pair,
) -> None:
    a, b = pair
    b.read_handshake(a.write_handshake())
    assert a.remote_static is None and b.remote_static is None
    a.read_handshake(b.write_handshake())
    assert a.remote_static is not None and b.remote_static is None
    b.read_handshake(a.write_handshake())
    assert b.remote_static is not None


@pytest.mark.parametrize("size", [0, 1, 4096, MAX_PLAINTEXT_LEN])
def test_transport_both_ways(connected: Pair, size: int) -> None:
    a, b = connected
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for sender, receiver in ((a, b), (b, a), (a, b)):
        message = sender.encrypt(data)
        assert len(message) == size + 16
        assert receiver.decrypt(message) == data


def test_transport_accepts_bytearray_and_memoryview(connected: Pair) -> None:
    a, b = connected
    buf = bytearray(b"x" * 100 + b"payload" + b"y" * 100)
    message = a.encrypt(memoryview(buf)[100:107])
    assert b.decrypt(bytearray(message)) == b"payload"
    assert a.decrypt(memoryview(b.encrypt(bytearray(b"back")))) == b"back"


def test_sessions_use_fresh_keys(pair: Pair) -> None:
    """Same static keys, two handshakes: different hashes and different ciphertexts."""
    a_key, b_key = KeyPair.generate(), KeyPair.generate()
    sessions = []
    for _ in range(2):
        a, b = NoiseConnection.initiator(a_key), NoiseConnection.responder(b_key)
        run_handshake(a, b)
        sessions.append((a.handshake_hash, a.encrypt(b"same")))
    assert sessions[0][0] != sessions[1][0]
    assert sessions[0][1] != sessions[1][1]


def test_rekey_in_step_keeps_working_and_out_of_step_fails(connected: Pair) -> None:
    a, b = connected
    a.rekey_outgoing()
    b.rekey_incoming()
    assert b.decrypt(a.encrypt(b"after rekey")) == b"after rekey"
    b.rekey_outgoing()
    with pytest.raises(DecryptError):
        a.decrypt(b.encrypt(b"peer did not rekey"))


# -- ordering -------------------------------------------------------------------------


def test_responder_cannot_write_first_and_initiator_cannot_read_first(pair: Pair) -> None:
    a, b = pair
    with pytest.raises(LocalProtocolError):
        b.write_handshake()
    with pytest.raises(LocalProtocolError):
        a.read_handshake(b"\x00" * 48)
    assert not a.broken and not b.broken
    run_handshake(a, b)  # wrong-order calls changed nothing
    assert a.handshake_complete and b.handshake_complete


def test_writing_twice_in_a_row_is_refused(pair: Pair) -> None:
    a, b = pair
    b.read_handshake(a.write_handshake())
    with pytest.raises(LocalProtocolError):
        a.write_handshake()
    with pytest.raises(LocalProtocolError):
        b.read_handshake(b"")


def test_transport_before_handshake_and_handshake_after_it_are_refused(pair: Pair) -> None:
    a, b = pair
    with pytest.raises(LocalProtocolError):
        a.encrypt(b"too early")
    with pytest.raises(LocalProtocolError):
        a.decrypt(b"\x00" * 32)
    with pytest.raises(LocalProtocolError):
        _ = a.handshake_hash
    run_handshake(a, b)
    with pytest.raises(LocalProtocolError):
        a.write_handshake()
    with pytest.raises(LocalProtocolError):
        b.read_handshake(b"\x00" * 64)


# -- sizes ----------------------------------------------------------------------------


def test_plaintext_limit(connected: Pair) -> None:
    a, _ = connected
    with pytest.raises(LocalProtocolError):
        a.encrypt(bytes(MAX_PLAINTEXT_LEN + 1))
    assert not a.broken


def test_oversized_transport_message_breaks_the_connection(connected: Pair) -> None:
    _, b = connected
    with pytest.raises(RemoteProtocolError):
        b.decrypt(bytes(MAX_MESSAGE_LEN + 1))
    assert b.broken


def test_handshake_payload_limit_per_message(pair: Pair) -> None:
    a, b = pair
    # Message 1 is "e" (32 bytes) + clear payload; message 2 adds e, s+tag and a payload tag.
    with pytest.raises(LocalProtocolError):
        a.write_handshake(bytes(MAX_MESSAGE_LEN - 32 + 1))
    assert not a.broken
    message = a.write_handshake(bytes(MAX_MESSAGE_LEN - 32))
    assert len(message) == MAX_MESSAGE_LEN
    b.read_handshake(message)
    with pytest.raises(LocalProtocolError):
        b.write_handshake(bytes(MAX_MESSAGE_LEN - 96 + 1))
    message = b.write_handshake(bytes(MAX_MESSAGE_LEN - 96))
    assert len(message) == MAX_MESSAGE_LEN
    a.read_handshake(message)


def test_oversized_handshake_message_is_refused(pair: Pair) -> None:
    _, b = pair
    with pytest.raises(RemoteProtocolError):
        b.read_handshake(bytes(MAX_MESSAGE_LEN + 1))
    assert b.broken


@pytest.mark.parametrize("cut", [0, 1, 31, 32 + 31, 32 + 48, 32 + 48 + 15])
def test_truncated_message_2_fails_closed(pair: Pair, cut: int) -> None:
    a, b = pair
    b.read_handshake(a.write_handshake())
    message = b.write_handshake()
    assert len(message) == 96
    with pytest.raises(NoiseProtocolError):
        a.read_handshake(message[:cut])
    assert a.broken and not a.handshake_complete


# -- tampering ------------------------------------------------------------------------


def _flip(message: bytes, position: int, bit: int) -> bytes:
    out = bytearray(message)
    out[position % len(out)] ^= 1 << bit
    return bytes(out)


@settings(max_examples=examples(300), deadline=None)
@given(
    index=st.integers(0, 2),
    position=st.integers(0, 10_000),
    bit=st.integers(0, 7),
    payloads=st.lists(st.binary(max_size=24), min_size=3, max_size=3),
)
@example(index=0, position=31, bit=7, payloads=[b"", b"", b""])  # X25519 ignores this bit
def test_any_flipped_handshake_bit_fails_closed(
    index: int, position: int, bit: int, payloads: list[bytes]
) -> None:
    """Flip one bit of one message: someone raises, and the handshake never completes on both."""
    a = NoiseConnection.initiator(KeyPair.generate(), ciphers=("ChaChaPoly",))
    b = NoiseConnection.responder(KeyPair.generate())
    writer, reader = a, b
    failed: NoiseConnection | None = None
    for i in range(3):
        message = writer.write_handshake(payloads[i])
        if i == index:
            message = _flip(message, position, bit)
        try:
            reader.read_handshake(message)
        except (DecryptError, NoiseProtocolError):
            failed = reader
            break
        writer, reader = reader, writer
    assert failed is not None, "a tampered handshake went through"
    assert failed.broken and not failed.handshake_complete
    assert not (a.handshake_complete and b.handshake_complete)
    with pytest.raises(LocalProtocolError):
        failed.read_handshake(b"\x00" * 96)
    with pytest.raises(LocalProtocolError):
        failed.write_handshake()
    with pytest.raises(LocalProtocolError):
        failed.encrypt(b"")


@pytest.mark.parametrize(
    "ciphers", [("ChaChaPoly",), ("AESGCM", "ChaChaPoly")], ids=["chachapoly", "offer-aesgcm"]
)
def test_every_single_bit_flip_of_an_empty_payload_handshake_fails(
    ciphers: tuple[str, ...],
) -> None:
    """Exhaustive over the 192 bytes of an XX handshake with empty payloads (1536 runs), and
    over the 193 with the AESGCM offer in message 1 (a flipped offer byte must not complete)."""
    first = 32 + (len(ciphers) - 1)
    for index, length in enumerate((first, 96, 64)):
        for position in range(length):
            for bit in range(8):
                a = NoiseConnection.initiator(KeyPair.generate(), ciphers=ciphers)
                b = NoiseConnection.responder(KeyPair.generate(), ciphers=ciphers)
                writer, reader = a, b
                with pytest.raises(NoiseProtocolError):
                    for i in range(3):
                        message = writer.write_handshake()
                        assert len(message) == length or i != index
                        if i == index:
                            message = _flip(message, position, bit)
                        reader.read_handshake(message)
                        writer, reader = reader, writer
                assert reader.broken
                assert not (a.handshake_complete and b.handshake_complete)


@settings(max_examples=examples(100), deadline=None)
@given(position=st.integers(0, 10_000), bit=st.integers(0, 7), data=st.binary(max_size=64))
def test_any_flipped_transport_bit_breaks_the_connection(
    position: int, bit: int, data: bytes
) -> None:
    a = NoiseConnection.initiator(KeyPair.generate())
    b = NoiseConnection.responder(KeyPair.generate())
    run_handshake(a, b)
    with pytest.raises(DecryptError):
        b.decrypt(_flip(a.encrypt(data), position, bit))
    assert b.broken and not b.handshake_complete
    with pytest.raises(LocalProtocolError):
        b.decrypt(a.encrypt(data))
    with pytest.raises(LocalProtocolError):
        b.encrypt(b"")


def test_replayed_and_reordered_transport_messages_fail(connected: Pair) -> None:
    a, b = connected
    a.encrypt(b"1")  # lost in transit
    second = a.encrypt(b"2")
    with pytest.raises(DecryptError):
        b.decrypt(second)

    a, b = (
        NoiseConnection.initiator(KeyPair.generate()),
        NoiseConnection.responder(KeyPair.generate()),
    )
    run_handshake(a, b)
    message = a.encrypt(b"once")
    assert b.decrypt(message) == b"once"
    with pytest.raises(DecryptError):
        b.decrypt(message)


def test_prologue_mismatch_fails_at_message_2() -> None:
    a = NoiseConnection.initiator(KeyPair.generate(), prologue=b"bcai/1")
    b = NoiseConnection.responder(KeyPair.generate(), prologue=b"bcai/2")
    b.read_handshake(a.write_handshake())
    with pytest.raises(DecryptError):
        a.read_handshake(b.write_handshake())
    assert a.broken


def test_low_order_ephemeral_is_rejected(pair: Pair) -> None:
    """An all-zero ephemeral would give an all-zero DH: the responder refuses to go on."""
    _, b = pair
    b.read_handshake(bytes(32))
    with pytest.raises(RemoteProtocolError):
        b.write_handshake()
    assert b.broken


def test_messages_from_another_session_fail(connected: Pair) -> None:
    a, _ = connected
    c, d = (
        NoiseConnection.initiator(KeyPair.generate()),
        NoiseConnection.responder(KeyPair.generate()),
    )
    run_handshake(c, d)
    with pytest.raises(DecryptError):
        d.decrypt(a.encrypt(b"cross-session"))


# -- nonces ---------------------------------------------------------------------------


def test_send_and_receive_nonces_exhaust(connected: Pair) -> None:
    a, b = connected
    a._set_nonces_for_testing(send=2**64 - 2)
    b._set_nonces_for_testing(recv=2**64 - 2)
    assert b.decrypt(a.encrypt(b"last")) == b"last"
    with pytest.raises(NonceExhausted):
        a.encrypt(b"one too many")
    b._set_nonces_for_testing(recv=2**64 - 1)
    with pytest.raises(NonceExhausted):
        b.decrypt(bytes(32))


def test_nonce_hook_refuses_before_handshake(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        pair[0]._set_nonces_for_testing(send=1)


def test_transport_into_preallocated_buffers(connected: Pair) -> None:
    a, b = connected
    frame = bytearray(MAX_PLAINTEXT_LEN + 16)
    plain = bytearray(MAX_PLAINTEXT_LEN)
    for size in (0, 1, MAX_PLAINTEXT_LEN):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        n = a.encrypt_into(data, frame)
        assert n == size + 16
        assert b.decrypt_into(memoryview(frame)[:n], plain) == size and plain[:size] == data
    with pytest.raises(LocalProtocolError):
        a.encrypt_into(bytes(MAX_PLAINTEXT_LEN + 1), bytearray(70000))
    n = a.encrypt_into(b"tampered", frame)
    frame[0] ^= 1
    with pytest.raises(DecryptError):
        b.decrypt_into(memoryview(frame)[:n], plain)
    with pytest.raises(LocalProtocolError):  # broken after a failed read
        b.decrypt_into(memoryview(frame)[:n], plain)


# -- cipher negotiation (docs/protocol.md section 2) ---------------------------------------

AES, CHACHA = ("AESGCM", "ChaChaPoly"), ("ChaChaPoly",)


@pytest.mark.parametrize(
    ("ini", "res", "agreed"),
    [(AES, AES, "AESGCM"), (AES, CHACHA, "ChaChaPoly"), (CHACHA, AES, "ChaChaPoly")],
    ids=["both-offer", "responder-chacha-only", "initiator-chacha-only"],
)
def test_the_cipher_is_negotiated_in_message_1(
    ini: tuple[str, ...], res: tuple[str, ...], agreed: str
) -> None:
    a = NoiseConnection.initiator(KeyPair.generate(), ciphers=ini)
    b = NoiseConnection.responder(KeyPair.generate(), ciphers=res)
    run_handshake(a, b)
    assert a.cipher == b.cipher == agreed
    assert a.handshake_hash == b.handshake_hash
    for _ in range(3):  # both directions, several nonces, in the agreed cipher
        assert b.decrypt(a.encrypt(b"ping")) == b"ping"
        assert a.decrypt(b.encrypt(b"pong")) == b"pong"


def test_a_responder_that_ignores_the_offer_gets_chachapoly() -> None:
    """A peer from before the offer: plain Noise_XX_25519_ChaChaPoly_SHA256, payload unread."""
    from node.noise import HandshakeState

    a = NoiseConnection.initiator(KeyPair.generate(), ciphers=AES)
    old = NoiseConnection(
        HandshakeState(
            b"Noise_XX_25519_ChaChaPoly_SHA256", initiator=False, prologue=b"bcai/1",
            s=KeyPair.generate(),
        )
    )  # fmt: skip
    run_handshake(a, old)
    assert a.cipher == "ChaChaPoly"
    assert old.decrypt(a.encrypt(b"x")) == b"x"


@pytest.mark.parametrize("tamper", [b"", b"\x01", b"\x02\x02", b"\x07"])
def test_an_altered_offer_breaks_the_handshake_instead_of_downgrading_it(tamper: bytes) -> None:
    """A man in the middle strips or rewrites the offer: the responder answers in what it
    read, but the offer is in ``h`` on both sides, so message 2 fails at the initiator."""
    a = NoiseConnection.initiator(KeyPair.generate(), ciphers=AES)
    b = NoiseConnection.responder(KeyPair.generate(), ciphers=AES)
    m1 = a.write_handshake()
    assert m1[32:] == b"\x02"
    b.read_handshake(m1[:32] + tamper)
    with pytest.raises(DecryptError):
        a.read_handshake(b.write_handshake())
    assert a.broken and not a.handshake_complete


def test_an_offer_and_a_message_1_payload_do_not_mix() -> None:
    a = NoiseConnection.initiator(KeyPair.generate(), ciphers=AES)
    with pytest.raises(LocalProtocolError):
        a.write_handshake(b"payload")
    with pytest.raises(LocalProtocolError):
        NoiseConnection.initiator(KeyPair.generate(), ciphers=("Rot13",))


def test_local_ciphers_follow_the_cpu_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.noise import _connection

    monkeypatch.setattr(_connection, "_cpu_has_aes", lambda: True)
    assert _connection.local_ciphers() == AES
    monkeypatch.setattr(_connection, "_cpu_has_aes", lambda: False)
    assert _connection.local_ciphers() == CHACHA
    monkeypatch.setenv("BCAI_NOISE_CIPHERS", "AESGCM")
    assert _connection.local_ciphers() == AES
    monkeypatch.setenv("BCAI_NOISE_CIPHERS", "ChaChaPoly")
    assert _connection.local_ciphers() == CHACHA
