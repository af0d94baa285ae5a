"""Receive buffer with tentative consumption, commit and rollback (after wsproto's ``Buffer``).

Incoming byte strings are kept as they arrive, not concatenated: a read that lies inside one
of them is returned as a memoryview slice without copying (the common case for ChunkData,
whose messages each fit one Noise plaintext); only a read spanning several is joined.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from ._errors import LocalProtocolError


class ReceiveBuffer:
    """Bytes received and not yet committed as consumed."""

    __slots__ = ("_parts", "_size", "_taken")

    def __init__(self) -> None:
        self._parts: deque[memoryview] = deque()
        self._size = 0
        self._taken = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``. Mutable inputs are copied (the caller may reuse them)."""
        if not data:
            return
        if isinstance(data, bytes):
            view = memoryview(data)
        elif isinstance(data, memoryview) and data.readonly:
            view = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        else:
            view = memoryview(bytes(data))
        self._parts.append(view)
        self._size += len(view)

    def __len__(self) -> int:
        """Bytes held, including ones tentatively consumed but not committed."""
        return self._size

    @property
    def available(self) -> int:
        """Bytes that can still be consumed before the next commit/rollback."""
        return self._size - self._taken

    def consume(self, n: int) -> memoryview | None:
        """Tentatively take the next ``n`` bytes, or None (and take nothing) if not all here."""
        if n > self.available:
            return None
        if n == 0:
            return memoryview(b"")
        skip = self._taken
        self._taken += n
        for i, part in enumerate(self._parts):
            if skip >= len(part):
                skip -= len(part)
                continue
            if skip + n <= len(part):
                return part[skip : skip + n]
            out = bytearray(part[skip:])
            for nxt in islice(self._parts, i + 1, None):
                need = n - len(out)
                if need <= 0:
                    break
                out += nxt[:need]
            return memoryview(bytes(out))
        raise AssertionError("unreachable: available said the bytes were here")

    def commit(self) -> None:
        """Drop everything consumed since the last commit/rollback."""
        drop = self._taken
        self._size -= drop
        self._taken = 0
        while drop:
            head = self._parts[0]
            if len(head) <= drop:
                self._parts.popleft()
                drop -= len(head)
            else:
                self._parts[0] = head[drop:]
                drop = 0

    def rollback(self) -> None:
        """Un-take everything consumed since the last commit/rollback."""
        self._taken = 0

    def head(self) -> memoryview | None:
        """The oldest part not yet consumed, whole, when nothing is tentatively taken (else
        ``None``): lets a decoder walk one received read with ``unpack_from`` and then
        :meth:`drop` what it used, instead of a consume/commit per message."""
        if self._taken or not self._parts:
            return None
        return self._parts[0]

    def drop(self, n: int) -> None:
        """Commit ``n`` bytes of :meth:`head` as consumed."""
        self._taken = n
        self.commit()


class BufferedInput:
    """What both stream decoders share: a :class:`ReceiveBuffer` fed until end of stream."""

    def __init__(self) -> None:
        self._buf = ReceiveBuffer()
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes held (for tests and metrics)."""
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes; ``bytes`` inputs are kept without copying."""
        if self._eof:
            raise LocalProtocolError("receive_data after receive_eof")
        self._buf.feed(data)

    def receive_eof(self) -> None:
        """The underlying stream ended; the decoder then reports ``PEER_CLOSED``."""
        self._eof = True
