"""Capabilities and limits a node advertises (handshake payload and Hello)."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from ._errors import LocalProtocolError, MalformedMessage
from ._limits import CAPS_LEN, DEFAULT_MAX_OUTSTANDING, MAX_MESSAGE_LEN

_CAPS = struct.Struct(">IIH")
assert _CAPS.size == CAPS_LEN


class CapFlag(enum.IntFlag):
    """Capability bits (u32). Unknown bits from newer peers are kept and otherwise ignored."""

    PROVIDER = 1 << 0
    """Serves content (answers Want, GetChunkRoots, Request)."""
    RECEIPTS = 1 << 1
    """Signs receipts for content it receives, and accepts them for content it serves."""
    PARTIAL = 1 << 2
    """May hold part of a content and announces it with Have bitfields."""
    SWARM = 1 << 3
    """Speaks the swarm extension: Announce, GetPeers/Peers, and Have updates after Announce."""
    COMPRESS = 1 << 4
    """Accepts chunks sent as zstd frames (ChunkData pieces of kind 0x25, ``compressed``)."""
    BULK = 1 << 5
    """Accepts a raw chunk as ONE ChunkData message (offset 0, the whole chunk, up to 4 MiB,
    more than ``max_message_size``): its 49-byte header alone in a Noise message, its data in
    the Noise messages after it, each full but the last (docs/protocol.md 5.14b)."""


DEFAULT_FLAGS: Final = CapFlag.PROVIDER | CapFlag.RECEIPTS | CapFlag.PARTIAL


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a node can do and the limits it enforces on what it receives.

    ``max_message_size``: largest message ``length`` field it accepts; at least
    ``MAX_MESSAGE_LEN`` in v1 (present so later versions may raise it).
    ``max_outstanding``: how many chunk indices the peer may have requested from it and not yet
    had answered (served in full, cancelled, or refused); more is ``RATE_LIMITED``.
    """

    flags: int = int(DEFAULT_FLAGS)
    max_message_size: int = MAX_MESSAGE_LEN
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING

    def __post_init__(self) -> None:
        if not 0 <= self.flags < 1 << 32:
            raise LocalProtocolError("flags must fit in u32")
        if not MAX_MESSAGE_LEN <= self.max_message_size < 1 << 32:
            raise LocalProtocolError(f"max_message_size must be in [{MAX_MESSAGE_LEN}, 2**32)")
        if not 1 <= self.max_outstanding < 1 << 16:
            raise LocalProtocolError("max_outstanding must be in [1, 65535]")

    def has(self, flag: CapFlag) -> bool:
        return bool(self.flags & flag)

    def to_bytes(self) -> bytes:
        return _CAPS.pack(self.flags, self.max_message_size, self.max_outstanding)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Capabilities:
        """Parse 10 bytes; out-of-range limits are ``MalformedMessage`` (remote fault)."""
        if len(data) != CAPS_LEN:
            raise MalformedMessage("capabilities must be 10 bytes")
        flags, max_msg, max_out = _CAPS.unpack(data)
        try:
            return cls(flags, max_msg, max_out)
        except LocalProtocolError as exc:
            raise MalformedMessage(f"bad capabilities: {exc}", recoverable=True) from None
