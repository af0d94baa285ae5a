"""Shared helpers for the node.noise tests: key pairs and an in-memory connection pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.noise import KeyPair, NoiseConnection

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
VECTOR_FILES = (
    VECTOR_DIR / "25519_ChaChaPoly_SHA256.json",
    VECTOR_DIR / "25519_AESGCM_SHA256.json",
)
"""The cacophony + snow Noise vectors of both suites (mcginty/snow tests/vectors/cacophony.txt
and snow.txt, every ``*_25519_<cipher>_SHA256`` entry), copied into the repo."""


def load_vectors() -> list[dict[str, Any]]:
    """Every vector of both suites' vector files."""
    vectors: list[dict[str, Any]] = []
    for path in VECTOR_FILES:
        with path.open() as f:
            vectors += json.load(f)["vectors"]
    return vectors


def run_handshake(
    initiator: NoiseConnection,
    responder: NoiseConnection,
    payloads: tuple[bytes, bytes, bytes] = (b"", b"", b""),
) -> list[bytes]:
    """Pipe XX messages between the two connections; return the payloads each side read."""
    received = []
    writer, reader = initiator, responder
    for payload in payloads:
        message = writer.write_handshake(payload)
        received.append(reader.read_handshake(message))
        writer, reader = reader, writer
    return received


@pytest.fixture
def pair() -> tuple[NoiseConnection, NoiseConnection]:
    """A fresh initiator and responder with their own static keys, handshake not started."""
    return (
        NoiseConnection.initiator(KeyPair.generate()),
        NoiseConnection.responder(KeyPair.generate()),
    )


@pytest.fixture
def connected(
    pair: tuple[NoiseConnection, NoiseConnection],
) -> tuple[NoiseConnection, NoiseConnection]:
    """An initiator and responder that completed the XX handshake."""
    run_handshake(*pair)
    return pair
