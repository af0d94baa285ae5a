"""Decrypted byte stream -> messages, with every length capped before anything is buffered.

``MessageDecoder.receive_data(plaintext)`` takes Noise plaintexts in order (any split);
``next_event()`` returns a message, ``NEED_DATA`` or ``PEER_CLOSED``. The 5-byte header is read
first and its length checked against the per-kind cap (``BODY_BOUNDS``) and the advertised
``max_message_size``; only then are body bytes awaited. So the buffer never holds more than
one maximal message plus whatever the caller fed since the last ``NEED_DATA``.

Errors: oversize or zero lengths and truncation at EOF are fatal (the stream cannot be
resynchronised; the error is raised again on every later call). A bad body or an unknown kind
is recoverable: the message was consumed, the caller may answer ``ErrorMsg`` and read on.
A body error that is not recoverable (``UnsupportedVersion``: a Hello of a version this node
does not speak) is fatal too, and as sticky, although the stream itself is still in sync:
nothing the peer sends after it can be understood.
"""

from __future__ import annotations

import struct

from ._buffer import BufferedInput
from ._codec import decode_body
from ._errors import (
    LocalProtocolError,
    MalformedMessage,
    MessageTooLarge,
    RemoteProtocolError,
    UnknownKind,
)
from ._limits import BODY_BOUNDS, MAX_MESSAGE_LEN, MESSAGE_HEADER_LEN, Kind
from ._messages import Message
from ._sentinels import NEED_DATA, PEER_CLOSED, Sentinel

_HEADER = struct.Struct(">IB")
_KNOWN = {int(k): k for k in Kind}


class MessageDecoder(BufferedInput):
    """Sans-IO message decoder for one direction of one connection (fed decrypted bytes)."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_LEN) -> None:
        if max_message_size < MAX_MESSAGE_LEN:
            raise LocalProtocolError(f"max_message_size must be >= {MAX_MESSAGE_LEN}")
        super().__init__()
        self.max_message_size = max_message_size
        self._error: RemoteProtocolError | None = None

    @property
    def idle(self) -> bool:
        """Nothing buffered, no error, no EOF: the next bytes start a new message."""
        return self._error is None and not self._eof and len(self._buf) == 0

    def _fatal(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        exc.recoverable = False
        self._error = exc
        return exc

    def next_event(self) -> Message | Sentinel:
        """The next message, ``NEED_DATA``, or ``PEER_CLOSED``; raises ``RemoteProtocolError``."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        head = buf.consume(MESSAGE_HEADER_LEN)
        if head is None:
            return self._starved()
        length, raw_kind = _HEADER.unpack(head)
        if length == 0:
            raise self._fatal(MalformedMessage("message length 0 (no kind byte)"))
        body_len = length - 1
        kind = _KNOWN.get(raw_kind)
        if kind is None:
            if length > self.max_message_size:
                raise self._fatal(
                    MessageTooLarge(f"unknown kind {raw_kind} with length {length}", kind=raw_kind)
                )
        else:
            lo, hi = BODY_BOUNDS[kind]
            if body_len > hi:
                raise self._fatal(
                    MessageTooLarge(f"{kind.name} body {body_len} > cap {hi}", kind=kind)
                )
        body = buf.consume(body_len)
        if body is None:
            return self._starved()
        buf.commit()
        if kind is None:
            raise UnknownKind(f"unknown message kind {raw_kind}", kind=raw_kind)
        if body_len < lo:
            raise MalformedMessage(
                f"{kind.name} body {body_len} < minimum {lo}", recoverable=True, kind=kind
            )
        try:
            return decode_body(kind, body)
        except RemoteProtocolError as exc:
            if not exc.recoverable:  # e.g. a Hello of an unknown version: the session is over
                raise self._fatal(exc) from None
            raise

    def _starved(self) -> Sentinel:
        self._buf.rollback()
        if not self._eof:
            return NEED_DATA
        if len(self._buf) == 0:
            return PEER_CLOSED
        raise self._fatal(MalformedMessage("stream ended inside a message"))
