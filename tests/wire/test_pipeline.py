"""The whole stack in memory: Noise XX (node.noise) carrying identity payloads, then framed,
encrypted wire messages, including a 1 MiB chunk in MAX_CHUNK_PIECE pieces."""

from __future__ import annotations

import hashlib

from eth_account import Account

from node import wire
from node.noise import KeyPair, NoiseConnection


def frames_of(noise: NoiseConnection, plaintext: bytes) -> bytes:
    out = []
    for i in range(0, len(plaintext), wire.NOISE_MAX_PLAINTEXT):
        out.append(wire.encode_frame(noise.encrypt(plaintext[i : i + wire.NOISE_MAX_PLAINTEXT])))
    return b"".join(out)


def test_handshake_identity_and_chunk_transfer() -> None:
    alice, bob = Account.from_key(b"\x01" * 32), Account.from_key(b"\x02" * 32)
    ka, kb = KeyPair.generate(), KeyPair.generate()
    ini = NoiseConnection.initiator(ka, prologue=wire.PROLOGUE, ciphers=("ChaChaPoly",))
    res = NoiseConnection.responder(kb, prologue=wire.PROLOGUE)

    # XX: msg1 empty payload; msg2 carries the responder's identity; msg3 the initiator's
    fd_i, fd_r = wire.FrameDecoder(), wire.FrameDecoder()
    fd_r.receive_data(wire.encode_frame(ini.write_handshake(b"")))
    m1 = fd_r.next_frame()
    assert isinstance(m1, bytes) and res.read_handshake(m1) == b""
    fd_i.receive_data(
        wire.encode_frame(res.write_handshake(wire.make_identity_payload(bob, kb.public)))
    )
    m2 = fd_i.next_frame()
    assert isinstance(m2, bytes)
    payload2 = ini.read_handshake(m2)
    assert ini.remote_static is not None
    peer_b = wire.verify_identity_payload(payload2, ini.remote_static, bob.address)
    fd_r.receive_data(
        wire.encode_frame(ini.write_handshake(wire.make_identity_payload(alice, ka.public)))
    )
    m3 = fd_r.next_frame()
    assert isinstance(m3, bytes)
    payload3 = res.read_handshake(m3)
    assert res.remote_static is not None
    peer_a = wire.verify_identity_payload(payload3, res.remote_static)
    assert (peer_a.address, peer_b.address) == (alice.address, bob.address)
    assert ini.handshake_complete and res.handshake_complete

    a, b = wire.WireConnection(agent="alice"), wire.WireConnection(agent="bob")

    def deliver(src_noise: NoiseConnection, dst_noise: NoiseConnection, fd: wire.FrameDecoder,
                dst: wire.WireConnection, plaintext: bytes) -> list[wire.Message]:  # fmt: skip
        fd.receive_data(frames_of(src_noise, plaintext))
        got: list[wire.Message] = []
        while isinstance(frame := fd.next_frame(), bytes):
            dst.receive_data(dst_noise.decrypt(frame))
            while not isinstance(ev := dst.next_event(), wire.Sentinel):
                got.append(ev)
        return got

    root = hashlib.sha256(b"content").digest()
    deliver(ini, res, fd_r, b, a.send(a.hello()))
    deliver(res, ini, fd_i, a, b.send(b.hello()))
    assert deliver(ini, res, fd_r, b, a.send(wire.Request(root, 1, (0,)))) == [
        wire.Request(root, 1, (0,))
    ]

    chunk = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()
    for off in range(0, len(chunk), wire.MAX_CHUNK_PIECE):
        piece = memoryview(chunk)[off : off + wire.MAX_CHUNK_PIECE]
        header, data = b.send_parts(wire.ChunkData(root, 0, off, len(chunk), piece))
        plaintext = bytes(header) + data
        assert len(plaintext) <= wire.NOISE_MAX_PLAINTEXT  # one Noise message per piece
        (ev,) = deliver(res, ini, fd_i, a, plaintext)
        assert isinstance(ev, wire.ChunkData) and ev.offset == off
        received += ev.data
    assert received == chunk
    assert a.state.outstanding(wire.Side.US) == 0
