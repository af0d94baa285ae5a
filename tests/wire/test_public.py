"""The public face of node.wire is exactly what other layers are told to use."""

from __future__ import annotations

from node import wire

EXPECTED = {
    "ALLOWED", "BODY_BOUNDS", "BULK_HEADER_LEN", "BadSignature", "Cancel", "CapFlag",
    "Capabilities", "ChunkData",
    "ChunkRoots", "Complete", "DEFAULT_FLAGS", "ErrorCode", "ErrorMsg", "FrameDecoder",
    "GetChunkRoots", "Goodbye", "Have", "HaveAll", "Hello", "IDENTITY_DOMAIN",
    "IDENTITY_PAYLOAD_LEN", "IdentityError", "IdentityMismatch", "IdentityVersionError", "Kind",
    "LocalProtocolError", "MAX_CHUNK_PIECE", "MAX_MESSAGE_LEN", "MAX_REQUEST_INDICES",
    "MAX_ROOTS_PER_PAGE", "MESSAGE_TYPES", "MalformedFrame", "MalformedIdentity",
    "MalformedMessage", "ManifestMsg", "Message", "MessageDecoder", "MessageTooLarge",
    "NEED_DATA", "NOISE_MAX_MESSAGE", "NOISE_MAX_PLAINTEXT", "NotFound", "PEER_CLOSED",
    "PROLOGUE", "PROTOCOL_VERSION", "PeerIdentity", "Phase", "Ping", "Pong", "Price", "Progress",
    "ProtocolState", "ReceiptAck", "ReceiptMsg", "ReceiveBuffer", "RemoteProtocolError",
    "Request", "SUPPORTED_VERSIONS", "Sentinel", "Side", "UnknownKind", "UnsupportedVersion",
    "Want", "WireConnection", "WireError", "chunk_data_header", "decode_body",
    "decode_chunk_piece", "decode_code",
    "encode", "encode_frame", "encode_parts", "frame_header", "make_identity_payload",
    "verify_identity_payload",
    "Announce", "GetPeers", "Peers", "PeerEntry", "MAX_PEERS_PER_MESSAGE",  # swarm extension
    "ChunkCodec", "CompressedChunkError", "CompressedSizeMismatch", "CompressionPolicy",
    "CorruptCompressedChunk", "LevelTuner", "CompressPlan", "ChunkDataZ",  # compression
}  # fmt: skip


def test_public_names() -> None:
    public = {n for n in dir(wire) if not n.startswith("_")}
    assert public == EXPECTED


def test_error_hierarchy() -> None:
    assert issubclass(wire.LocalProtocolError, ValueError)
    for exc in (wire.MalformedMessage, wire.MessageTooLarge, wire.UnknownKind,
                wire.UnsupportedVersion, wire.MalformedFrame):  # fmt: skip
        assert issubclass(exc, wire.RemoteProtocolError)
        assert issubclass(exc, wire.WireError)
    for ident in (wire.BadSignature, wire.IdentityMismatch, wire.MalformedIdentity):
        assert issubclass(ident, wire.IdentityError)


def test_prologue_matches_noise_default() -> None:
    from node.noise import DEFAULT_PROLOGUE, MAX_PLAINTEXT_LEN

    assert wire.PROLOGUE == DEFAULT_PROLOGUE == b"bcai/1"
    assert wire.NOISE_MAX_PLAINTEXT == MAX_PLAINTEXT_LEN


def test_spec_caps_table_matches_the_code() -> None:
    import re
    from pathlib import Path

    spec = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    rows = re.findall(
        r"^\|\s*(\d+)\s*\|\s*0x[0-9a-f]{2}\s*\|\s*\w+\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|$", spec, re.M
    )
    table = {int(k): (int(lo), int(hi)) for k, lo, hi in rows}
    assert table == {int(k): v for k, v in wire.BODY_BOUNDS.items()}
