"""Fuzz ``node.wire.MessageDecoder`` (decrypted stream -> messages) and ``decode_chunk_piece``.

Typed errors allowed to escape: ``RemoteProtocolError`` and its subclasses. A recoverable one
lets reading continue (as the transport does, answering ``ErrorMsg``); a fatal one must be
sticky. Invariants: every decoded message re-encodes inside ``BODY_BOUNDS`` for its kind and
decodes back to an equal message; the decoder never holds more than one maximal message plus
the last feed; the ChunkData fast path agrees with the general decoder; without recoverable
errors the re-encoded messages are the stream byte for byte.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import _common

    from node.wire import (
        BODY_BOUNDS,
        MAX_MESSAGE_LEN,
        NEED_DATA,
        PEER_CLOSED,
        ChunkData,
        MessageDecoder,
        RemoteProtocolError,
        decode_chunk_piece,
        encode,
    )
    from node.wire._limits import MESSAGE_HEADER_LEN, Kind

Finding = _common.Finding


def _check(msg: object) -> bytes:
    raw = encode(msg)  # type: ignore[arg-type]
    kind = Kind(raw[4])
    lo, hi = BODY_BOUNDS[kind]
    if not lo <= len(raw) - MESSAGE_HEADER_LEN <= hi:
        raise Finding(f"{kind.name} re-encodes to a body of {len(raw) - 5} outside {lo}..{hi}")
    again = MessageDecoder()
    again.receive_data(raw)
    back = again.next_event()
    if back != msg:
        raise Finding(f"{kind.name} does not round-trip: {msg!r} -> {back!r}")
    return raw


def body(data: bytes) -> None:
    stream, feeds = _common.split_feeds(data)
    dec = MessageDecoder()
    out: list[bytes] = []
    clean = True
    fatal: RemoteProtocolError | None = None

    def drain(after_eof: bool) -> bool:
        nonlocal clean, fatal
        while True:
            try:
                ev = dec.next_event()
            except RemoteProtocolError as exc:
                if exc.recoverable:
                    clean = False
                    continue
                fatal = exc
                return False
            if ev is NEED_DATA:
                if after_eof:
                    raise Finding("NEED_DATA after EOF")
                return True
            if ev is PEER_CLOSED:
                if not after_eof:
                    raise Finding("PEER_CLOSED before EOF")
                return True
            out.append(_check(ev))

    for feed in feeds:
        piece = decode_chunk_piece(feed)
        if piece is not None:
            probe = MessageDecoder()
            probe.receive_data(feed)
            general = probe.next_event()
            if not isinstance(general, ChunkData) or general != piece:
                raise Finding("decode_chunk_piece disagrees with MessageDecoder")
        dec.receive_data(feed)
        if not drain(after_eof=False):
            break
        if dec.buffered > MAX_MESSAGE_LEN + 4 + len(feed):
            raise Finding(f"decoder holds {dec.buffered} bytes")
    else:
        dec.receive_eof()
        drain(after_eof=True)
    if fatal is not None:
        try:
            dec.next_event()
        except RemoteProtocolError as again:
            if again is not fatal:
                raise Finding("a fatal error was not sticky") from None
        else:
            raise Finding("decoder recovered from a fatal error")
        return
    if clean and b"".join(out) != stream:
        raise Finding("messages do not re-encode to the stream")


def main() -> None:
    atheris.Setup(sys.argv, _common.guarded("messages", body))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
