"""Sealing and opening streams, record by record (sans-IO: bytes in, bytes out).

The plaintext stream the records carry is ``data || zero padding || trailer``, where the trailer
is the plaintext size (u64) and its RFC 6962 content root (what ``bcai add`` of the plaintext
would print), and the padding is the least that makes the whole a multiple of the record size.
So the sealed size tells the plaintext size only to within a record, and the opener checks the
size, the padding and the root besides every record's tag.

Record ``i`` is ChaCha20-Poly1305 under the payload key with nonce ``i || last`` and the header
as associated data (the STREAM construction): a record moved, dropped, repeated, cut off at the
end or taken from another sealing fails its tag.

Memory: the sealer holds under one record of plaintext; the opener one record of ciphertext and
one of plaintext (the padding and trailer can reach into the last-but-one record), plus what
one ``feed`` call hands it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from node.content import DEFAULT_CHUNK_SIZE, ChunkedHasher

from ._errors import MalformedSeal, NotSealed, SealTampered
from ._format import (
    DEFAULT_RECORD_SHIFT,
    HEADER_SIZE,
    MAGIC,
    TAG_SIZE,
    TRAILER,
    TRAILER_SIZE,
    ContentKey,
    Keys,
    new_header,
    open_header,
    padded_length,
    parse_header,
    record_nonce,
)

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class SealResult:
    """What a sealing or opening saw: the plaintext's size and content root, the records."""

    size: int
    plaintext_root: bytes
    records: int


class Sealer:
    """Turn plaintext into a sealed stream: ``header`` first, then ``update``/``finalize``.

    ``update`` returns the records completed so far (possibly ``b""``); ``finalize`` the last
    one or two, after which :attr:`result` holds the plaintext size and root.
    """

    def __init__(self, key: ContentKey, *, record_shift: int = DEFAULT_RECORD_SHIFT) -> None:
        keys = new_header(key, record_shift=record_shift)
        self.header: bytes = keys.header.raw
        self._aead = ChaCha20Poly1305(keys.payload_key)
        self._record = keys.header.record_size
        self._buf = bytearray()
        self._index = 0
        self._size = 0
        self._hasher = ChunkedHasher(DEFAULT_CHUNK_SIZE)
        self.result: SealResult | None = None

    def _seal(self, data: Buffer, last: bool) -> bytes:
        out = self._aead.encrypt(record_nonce(self._index, last), bytes(data), self.header)
        self._index += 1
        return out

    def update(self, data: Buffer) -> bytes:
        if self.result is not None:
            raise ValueError("the sealer is finalized")
        self._hasher.update(data)
        self._size += len(data)
        buf = self._buf
        buf += data
        rs = self._record
        if len(buf) < rs:
            return b""
        # A record full of data is never the last one: the trailer always follows it.
        view = memoryview(buf)
        out = []
        off = 0
        while len(buf) - off >= rs:
            out.append(self._seal(view[off : off + rs], last=False))
            off += rs
        view.release()
        del buf[:off]
        return b"".join(out)

    def finalize(self) -> bytes:
        if self.result is not None:
            raise ValueError("the sealer is finalized")
        root, size, _ = self._hasher.finalize()
        rs = self._record
        tail = bytearray(self._buf)
        self._buf = bytearray()
        pad = padded_length(size, rs) - size - TRAILER_SIZE
        tail += bytes(pad) + TRAILER.pack(size, root)
        assert len(tail) % rs == 0 and 0 < len(tail) <= 2 * rs
        out = []
        for off in range(0, len(tail), rs):
            out.append(self._seal(tail[off : off + rs], last=off + rs == len(tail)))
        self.result = SealResult(size, root, self._index)
        return b"".join(out)


class Opener:
    """Open a sealed stream fed in pieces of any size; returns authenticated plaintext.

    ``feed`` returns the plaintext known to be data so far; ``close`` the rest, after checking
    that the stream ended on a last record, the padding is zeros and the size and content root
    in the trailer match what came out. Errors: NotSealed, MalformedSeal, WrongKey (from the
    header), SealTampered (records, trailer, truncation).
    """

    def __init__(self, key: ContentKey) -> None:
        self._key = key
        self._keys: Keys | None = None
        self._aead: ChaCha20Poly1305 | None = None
        self._buf = bytearray()
        self._held: bytes | None = None  # plaintext of the newest record not yet known as data
        self._index = 0
        self._emitted = 0
        self._hasher = ChunkedHasher(DEFAULT_CHUNK_SIZE)
        self.result: SealResult | None = None

    def _open(self, record: Buffer, last: bool) -> bytes:
        assert self._aead is not None and self._keys is not None
        try:
            data = self._aead.decrypt(
                record_nonce(self._index, last), bytes(record), self._keys.header.raw
            )
        except InvalidTag:
            where = "the stream is cut short or altered" if last else "altered or out of order"
            raise SealTampered(
                f"encrypted record {self._index} fails authentication ({where})"
            ) from None
        self._index += 1
        return data

    def _emit(self, data: bytes) -> bytes:
        self._hasher.update(data)
        self._emitted += len(data)
        return data

    def feed(self, data: Buffer) -> bytes:
        if self.result is not None:
            raise ValueError("the opener is closed")
        buf = self._buf
        buf += data
        if self._keys is None:
            if len(buf) < HEADER_SIZE:
                if len(buf) >= len(MAGIC) and buf[: len(MAGIC)] != MAGIC:
                    raise NotSealed("the content is not encrypted (no bcai seal header)")
                return b""
            self._keys = open_header(bytes(buf[:HEADER_SIZE]), self._key)
            self._aead = ChaCha20Poly1305(self._keys.payload_key)
            del buf[:HEADER_SIZE]
        rs = self._keys.header.record_size + TAG_SIZE
        # Keep the newest whole record back: only the end of the stream says it is the last.
        if len(buf) <= rs:
            return b""
        out = []
        view = memoryview(buf)
        off = 0
        while len(buf) - off > rs:
            plain = self._open(view[off : off + rs], last=False)
            off += rs
            if self._held is not None:
                out.append(self._emit(self._held))
            self._held = plain
        view.release()
        del buf[:off]
        return b"".join(out)

    def close(self) -> bytes:
        if self.result is not None:
            raise ValueError("the opener is closed")
        if self._keys is None:
            if not self._buf:
                raise NotSealed("the content is not encrypted (it is empty)")
            parse_header(bytes(self._buf))
            raise MalformedSeal("the seal header is cut short")
        rs = self._keys.header.record_size
        if len(self._buf) != rs + TAG_SIZE:
            raise SealTampered(
                f"the encrypted stream is cut short: it ends {len(self._buf)} bytes into "
                f"record {self._index} of {rs + TAG_SIZE}"
            )
        last = self._open(self._buf, last=True)
        self._buf = bytearray()
        tail = (self._held or b"") + last
        self._held = None
        size, root = TRAILER.unpack(tail[-TRAILER_SIZE:])
        data_left = size - self._emitted
        pad_len = len(tail) - TRAILER_SIZE - data_left
        if data_left < 0 or pad_len < 0 or padded_length(size, rs) != self._index * rs:
            raise SealTampered(
                f"the decrypted trailer states {size} bytes, which {self._index} records "
                "cannot hold"
            )
        if any(tail[data_left : data_left + pad_len]):
            raise SealTampered("the padding after the plaintext is not zeros")
        out = self._emit(tail[:data_left])
        got_root, got_size, _ = self._hasher.finalize()
        if got_size != size or got_root != root:
            raise SealTampered(
                f"the decrypted plaintext hashes to 0x{got_root.hex()}, the sealer committed "
                f"to 0x{root.hex()}"
            )
        self.result = SealResult(size, root, self._index)
        return out


class OpenedStream:
    """Plaintext of an iterable of sealed pieces; ``result`` once fully iterated.

    Yields only authenticated records; the last pieces come after the trailer checks, so a
    consumer that saw the iteration end without an error got exactly the sealed plaintext.
    ``close`` closes the source iterator.
    """

    def __init__(self, pieces: Iterable[Buffer], key: ContentKey) -> None:
        self._pieces = pieces
        self._opener = Opener(key)
        self._gen = self._run()

    @property
    def result(self) -> SealResult | None:
        return self._opener.result

    def _run(self) -> Generator[bytes, None, None]:
        opener = self._opener
        for piece in self._pieces:
            out = opener.feed(piece)
            if out:
                yield out
        out = opener.close()
        if out:
            yield out

    def __iter__(self) -> Iterator[bytes]:
        return self._gen

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def open_sealed(pieces: Iterable[Buffer], key: ContentKey) -> OpenedStream:
    """The plaintext of sealed ``pieces`` (any split), checked as it goes."""
    return OpenedStream(pieces, key)


class SealReader:
    """A binary reader of the sealed stream of ``source`` (a plaintext reader).

    What ``Store.add_file`` ingests for ``bcai add --encrypt``: ``readinto``/``read`` return
    ciphertext; the plaintext is read in ``read_size`` pieces. ``result`` once it reached EOF.
    """

    def __init__(
        self,
        source: BinaryIO,
        key: ContentKey,
        *,
        record_shift: int = DEFAULT_RECORD_SHIFT,
        read_size: int = 1 << 20,
    ) -> None:
        self._source = source
        self._sealer = Sealer(key, record_shift=record_shift)
        self._out = bytearray(self._sealer.header)
        self._pos = 0
        self._eof = False
        self._read_size = read_size

    @property
    def result(self) -> SealResult | None:
        return self._sealer.result

    def _fill(self, want: int) -> None:
        while len(self._out) - self._pos < want and not self._eof:
            data = self._source.read(self._read_size)
            if self._pos:
                del self._out[: self._pos]
                self._pos = 0
            if not data:
                self._eof = True
                self._out += self._sealer.finalize()
            else:
                self._out += self._sealer.update(data)

    def readinto(self, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        self._fill(len(mv))
        n = min(len(mv), len(self._out) - self._pos)
        mv[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while piece := self.read(1 << 20):
                chunks.append(piece)
            return b"".join(chunks)
        self._fill(size)
        out = bytes(self._out[self._pos : self._pos + size])
        self._pos += len(out)
        return out

    def readable(self) -> bool:
        return True


def seal_bytes(data: Buffer, key: ContentKey, *, record_shift: int = DEFAULT_RECORD_SHIFT) -> bytes:
    """The sealed stream of ``data`` (for small contents and tests)."""
    sealer = Sealer(key, record_shift=record_shift)
    return sealer.header + sealer.update(data) + sealer.finalize()


def open_bytes(sealed: Buffer, key: ContentKey) -> bytes:
    """The plaintext of a whole sealed stream."""
    opener = Opener(key)
    return opener.feed(sealed) + opener.close()
