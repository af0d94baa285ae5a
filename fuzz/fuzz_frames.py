"""Fuzz ``node.wire.FrameDecoder``: ``u16 length | Noise message`` framing on TCP.

Typed errors allowed to escape: ``MalformedFrame`` (a ``WireError``). Invariants: every frame
returned is 16..65535 bytes; the decoder never holds more than one maximal frame plus the
last feed; the frames re-encode (``encode_frame``) to a prefix of the stream; after a fatal
error the same error is raised again.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import _common

    from node.wire import NEED_DATA, PEER_CLOSED, FrameDecoder, MalformedFrame, encode_frame
    from node.wire._limits import FRAME_HEADER_LEN, NOISE_MAX_MESSAGE, NOISE_TAG_LEN

Finding = _common.Finding


def body(data: bytes) -> None:
    stream, feeds = _common.split_feeds(data)
    dec = FrameDecoder()
    out: list[bytes] = []
    try:
        for feed in feeds:
            dec.receive_data(feed)
            while True:
                frame = dec.next_frame()
                if frame is NEED_DATA:
                    break
                if frame is PEER_CLOSED:
                    raise Finding("PEER_CLOSED before EOF")
                assert isinstance(frame, bytes)
                if not NOISE_TAG_LEN <= len(frame) <= NOISE_MAX_MESSAGE:
                    raise Finding(f"frame of {len(frame)} bytes escaped the bounds")
                out.append(frame)
            if dec.buffered > FRAME_HEADER_LEN + NOISE_MAX_MESSAGE + len(feed):
                raise Finding(f"decoder holds {dec.buffered} bytes")
        dec.receive_eof()
        while True:
            frame = dec.next_frame()
            if frame is PEER_CLOSED:
                break
            if frame is NEED_DATA:
                raise Finding("NEED_DATA after EOF")
            out.append(frame)
    except MalformedFrame as exc:
        try:
            dec.next_frame()
        except MalformedFrame as again:
            if again is not exc:
                raise Finding("a fatal frame error was not sticky") from None
        else:
            raise Finding("decoder recovered from a fatal error") from None
        return
    joined = b"".join(encode_frame(f) for f in out)
    if joined != stream:
        raise Finding("frames do not re-encode to the stream")


def main() -> None:
    atheris.Setup(sys.argv, _common.guarded("frames", body))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
