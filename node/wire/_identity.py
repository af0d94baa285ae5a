"""The identity payload carried inside the Noise XX handshake.

A node is known by its Ethereum address. It proves that the Noise static key it handshakes
with belongs to that address by signing, with its secp256k1 account key, the EIP-191
(``personal_sign``) message ``IDENTITY_DOMAIN || noise_static_public_key``, the way libp2p's
Noise handshake signs ``"noise-libp2p-static-key:" || static_key``. Noise XX authenticates the
static key itself (the peer must hold its private half to finish the handshake), so the pair
binds the session to the address.

XX carries payloads in all three messages; this payload goes in message 2 (responder, encrypted
under ``ee``) and message 3 (initiator, encrypted under ``se``). Message 1 has an empty payload.

Layout (big-endian): version u16 | address 20 | signature 65 (r | s | v) | capabilities 10
(flags u32, max_message_size u32, max_outstanding u16) | extensions (0..``MAX_EXTENSIONS``
bytes, ignored by v1). Total 97 bytes in v1.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from node.identity import account_signature, eip191_digest, recover_address, to_checksum_address

from ._caps import Capabilities
from ._errors import (
    BadSignature,
    IdentityMismatch,
    IdentityVersionError,
    LocalProtocolError,
    MalformedIdentity,
    MalformedMessage,
)
from ._limits import ADDRESS_LEN, CAPS_LEN, PROTOCOL_VERSION, SIGNATURE_LEN, SUPPORTED_VERSIONS

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

IDENTITY_DOMAIN: Final = b"bcai-transfer noise static key v1:"
STATIC_KEY_LEN: Final = 32
IDENTITY_PAYLOAD_LEN: Final = 2 + ADDRESS_LEN + SIGNATURE_LEN + CAPS_LEN
MAX_EXTENSIONS: Final = 1024
_HEAD = struct.Struct(f">H{ADDRESS_LEN}s{SIGNATURE_LEN}s")
VERIFY_CACHE_SIZE: Final = 4096
"""Verified (payload, static key) pairs remembered: recovering the signer is the costly part
of a handshake (~0.1 ms with libsecp256k1, ~17 ms where eth-keys ran pure Python), and a
peer that reconnects (an honest client, or a flood from one key) presents the very same bytes
each time."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """An authenticated peer: who it is (address), its Noise key, version and capabilities."""

    address: str
    noise_static: bytes
    version: int
    capabilities: Capabilities


def _signed_message(noise_static_pub: bytes) -> bytes:
    return IDENTITY_DOMAIN + noise_static_pub


def make_identity_payload(
    account: LocalAccount, noise_static_pub: bytes, caps: Capabilities | None = None
) -> bytes:
    """Build this node's handshake payload (97 bytes) binding ``account`` to its Noise key."""
    if len(noise_static_pub) != STATIC_KEY_LEN:
        raise LocalProtocolError("noise static public key must be 32 bytes")
    sig = account_signature(account, eip191_digest(_signed_message(noise_static_pub)))
    caps = caps if caps is not None else Capabilities()
    address = bytes.fromhex(account.address[2:])
    return _HEAD.pack(PROTOCOL_VERSION, address, sig) + caps.to_bytes()


def verify_identity_payload(
    payload: bytes, remote_static: bytes, expected_address: str | None = None
) -> PeerIdentity:
    """Check a peer's handshake payload against the static key Noise authenticated.

    ``remote_static`` is ``NoiseConnection.remote_static`` after reading the message that
    carried ``payload``. Raises ``IdentityVersionError`` (an ``UnsupportedVersion``) for an
    unknown version, ``MalformedIdentity`` when it does not parse, ``BadSignature`` when the
    signature does not recover to the claimed address, ``IdentityMismatch`` when the address is
    not ``expected_address`` (compared case-insensitively). Thread-safe; a pair that verified
    is remembered (``VERIFY_CACHE_SIZE``, least recently used forgotten first).
    """
    if len(remote_static) != STATIC_KEY_LEN:
        raise LocalProtocolError("remote static key must be 32 bytes")
    key = (bytes(remote_static), bytes(payload))
    with _cache_lock:
        peer = _cache.get(key)
        if peer is not None:
            _cache.move_to_end(key)
    if peer is None:
        peer = _verify(key[1], key[0])
        with _cache_lock:
            _cache[key] = peer
            while len(_cache) > VERIFY_CACHE_SIZE:
                _cache.popitem(last=False)
    if expected_address is not None and to_checksum_address(expected_address) != peer.address:
        raise IdentityMismatch(f"expected {expected_address}, peer is {peer.address}")
    return peer


def identity_verified(payload: bytes, remote_static: bytes) -> bool:
    """Is this (payload, static key) pair in the cache of verified ones (then
    :func:`verify_identity_payload` costs microseconds, not a signature recovery)?"""
    with _cache_lock:
        return (bytes(remote_static), bytes(payload)) in _cache


_cache: OrderedDict[tuple[bytes, bytes], PeerIdentity] = OrderedDict()
_cache_lock = threading.Lock()


def _verify(payload: bytes, remote_static: bytes) -> PeerIdentity:
    """The checks of :func:`verify_identity_payload`, uncached, without the expected address
    (only successes are cached: a failure costs the sender a new connection each time)."""
    if len(payload) < 2:
        raise MalformedIdentity("identity payload too short")
    version = int.from_bytes(payload[:2], "big")
    if version not in SUPPORTED_VERSIONS:
        raise IdentityVersionError(f"unsupported protocol version {version}")
    if not IDENTITY_PAYLOAD_LEN <= len(payload) <= IDENTITY_PAYLOAD_LEN + MAX_EXTENSIONS:
        raise MalformedIdentity(f"identity payload has bad length {len(payload)}")
    _v, raw_addr, sig = _HEAD.unpack_from(payload)
    try:
        caps = Capabilities.from_bytes(payload[_HEAD.size : IDENTITY_PAYLOAD_LEN])
    except MalformedMessage as exc:
        raise MalformedIdentity(str(exc)) from None
    claimed = to_checksum_address(raw_addr)
    if sig[64] not in (27, 28):
        raise BadSignature("signature v must be 27 or 28")
    try:
        recovered = recover_address(eip191_digest(_signed_message(remote_static)), sig)
    except Exception as exc:  # ValueError for invalid points/scalars
        raise BadSignature(f"signature does not recover: {type(exc).__name__}") from None
    if recovered != claimed:
        raise BadSignature("signature is not by the claimed address over this static key")
    return PeerIdentity(claimed, bytes(remote_static), version, caps)
