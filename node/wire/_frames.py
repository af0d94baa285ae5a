"""Noise message framing on TCP: ``u16 BE length | Noise message`` (handshake or transport).

A Noise message is at most 65535 bytes (the u16 cannot say more) and at least 16 (every
transport message carries a 16-byte tag; XX handshake messages are longer still).
"""

from __future__ import annotations

import struct
from typing import Final

from ._buffer import BufferedInput
from ._errors import LocalProtocolError, MalformedMessage
from ._limits import FRAME_HEADER_LEN, NOISE_MAX_MESSAGE, NOISE_TAG_LEN
from ._sentinels import NEED_DATA, PEER_CLOSED, Sentinel

MIN_FRAME: Final = NOISE_TAG_LEN
_U16 = struct.Struct(">H")


class MalformedFrame(MalformedMessage):
    """A Noise frame length is impossible (below 16) or the stream ended mid-frame."""

    recoverable = False


def frame_header(n: int) -> bytes:
    """The 2-byte length that precedes a Noise message of ``n`` bytes."""
    if not MIN_FRAME <= n <= NOISE_MAX_MESSAGE:
        raise LocalProtocolError(f"Noise message of {n} bytes cannot be framed")
    return _U16.pack(n)


def encode_frame(noise_message: bytes) -> bytes:
    """``frame_header(len(m)) + m``."""
    return frame_header(len(noise_message)) + noise_message


class FrameDecoder(BufferedInput):
    """Split a TCP byte stream into Noise messages. Holds at most one frame plus one read."""

    def __init__(self) -> None:
        super().__init__()
        self._error: MalformedFrame | None = None

    def next_frame(self) -> bytes | Sentinel:
        """The next whole Noise message, ``NEED_DATA``, or ``PEER_CLOSED`` after a clean EOF."""
        frame = self.next_frame_view()
        return frame if isinstance(frame, Sentinel) else bytes(frame)

    def frame_views(self) -> list[memoryview]:
        """Every whole Noise message buffered now, as :meth:`next_frame_view` would return
        them one by one (``[]``: need data or at the end; call that method for which).

        The messages that lie inside one received read are split from it in one loop (a
        read of 1 MiB holds ~16), with no per-message buffer bookkeeping; a message that
        spans reads goes through :meth:`next_frame_view`.
        """
        if self._error is not None:
            raise self._error
        frames: list[memoryview] = []
        buf = self._buf
        unpack = _U16.unpack_from
        while True:
            part = buf.head()
            if part is not None:
                end = len(part)
                off = 0
                while off + FRAME_HEADER_LEN <= end:
                    (n,) = unpack(part, off)
                    if n < MIN_FRAME:
                        buf.drop(off)
                        self._error = MalformedFrame(
                            f"Noise frame of {n} bytes is below {MIN_FRAME}"
                        )
                        raise self._error
                    stop = off + FRAME_HEADER_LEN + n
                    if stop > end:
                        break
                    frames.append(part[off + FRAME_HEADER_LEN : stop])
                    off = stop
                if off:
                    buf.drop(off)
                    if off == end:
                        continue  # the next read may start with whole messages too
            frame = self.next_frame_view()  # one spanning two reads, or none
            if not isinstance(frame, memoryview):
                return frames
            frames.append(frame)

    def next_frame_view(self) -> memoryview | Sentinel:
        """As :meth:`next_frame`, without copying: a read-only view of the received bytes.

        The view stays valid after later calls (fed ``bytes`` are never modified; a frame
        spanning several feeds is joined into a fresh object).
        """
        if self._error is not None:
            raise self._error
        head = self._buf.consume(FRAME_HEADER_LEN)
        if head is not None:
            (n,) = _U16.unpack(head)
            if n < MIN_FRAME:
                self._error = MalformedFrame(f"Noise frame of {n} bytes is below {MIN_FRAME}")
                raise self._error
            body = self._buf.consume(n)
            if body is not None:
                self._buf.commit()
                return body
        self._buf.rollback()
        if not self._eof:
            return NEED_DATA
        if len(self._buf) == 0:
            return PEER_CLOSED
        self._error = MalformedFrame("stream ended inside a Noise frame")
        raise self._error
