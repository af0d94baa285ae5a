"""A fetch over real TCP takes bulk chunks (docs/protocol.md 5.14b) without copying them: the
buffer each chunk was decrypted into is the one verified and stored; a chunk of one piece,
and every chunk from a provider talking to a receiver without BULK, still arrive as pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from node.store import Store
from node.transfer import FetchResult, _fetch
from node.transport import PeerConnection
from node.wire import MAX_CHUNK_PIECE, CapFlag

from .helpers import fetch_served, make_identity, read_all, store_with

CHUNK = 256 * 1024


class Spy:
    """What ``_Fetch`` handed out for bulk data and what it then stored (the real methods run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.given: list[Any] = []
        self.stored: list[tuple[int, Any]] = []
        bulk_buffer, store_chunk = _fetch._Fetch._bulk_buffer, _fetch._Fetch._store_chunk

        def spy_bulk(run: Any, *args: Any) -> Any:
            buf = bulk_buffer(run, *args)
            if buf is not None:
                self.given.append(buf)
            return buf

        def spy_store(run: Any, index: int, data: Any, *args: Any) -> None:
            self.stored.append((index, data))
            store_chunk(run, index, data, *args)

        monkeypatch.setattr(_fetch._Fetch, "_bulk_buffer", spy_bulk)
        monkeypatch.setattr(_fetch._Fetch, "_store_chunk", spy_store)


async def fetched(tmp_path: Path, size: int, **kwargs: Any) -> FetchResult:
    """``size`` bytes in 256 KiB chunks, served and fetched over 127.0.0.1; bytes checked."""
    src, root, data = store_with(tmp_path / "a", size, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    try:
        with trio.fail_after(30):
            result = await fetch_served(src, make_identity(), dst, make_identity(), root, **kwargs)
        assert read_all(dst, root) == data
    finally:
        src.close()
        dst.close()
    return result


@pytest.mark.parametrize("tail", [1000, 100_000])  # a last chunk of one piece, or bulk
async def test_bulk_chunks_are_stored_from_the_buffer_they_were_decrypted_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: int
) -> None:
    spy = Spy(monkeypatch)
    assert (await fetched(tmp_path, 5 * CHUNK + tail)).fetched_chunks == 6
    bulk = 6 if tail > MAX_CHUNK_PIECE else 5
    assert len(spy.given) == bulk  # one buffer per bulk chunk, none for a piece
    uncopied = [i for i, buf in spy.stored if any(buf is g for g in spy.given)]
    assert sorted(uncopied) == list(range(bulk))  # each stored from where it was decrypted


async def test_a_receiver_without_bulk_gets_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    start = PeerConnection.start
    hellos: list[int] = []

    async def start_without_bulk(conn: PeerConnection) -> None:
        caps = conn.wire.capabilities
        if caps.flags & CapFlag.BULK:  # the receiver's side: as an older fetch would say
            conn.wire.capabilities = type(caps)(caps.flags & ~CapFlag.BULK)
            conn.stream.pause_after = None
        await start(conn)
        assert conn.peer_hello is not None
        hellos.append(conn.peer_hello.capabilities.flags)

    monkeypatch.setattr(PeerConnection, "start", start_without_bulk)
    assert (await fetched(tmp_path, 3 * CHUNK)).fetched_chunks == 3
    assert spy.given == [] and all(not flags & CapFlag.BULK for flags in hellos)


async def test_a_rate_capped_fetch_takes_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a cap paces what the fetch reads, bulk chunks come as pieces (paced one by one)."""
    spy = Spy(monkeypatch)
    assert (await fetched(tmp_path, 3 * CHUNK, limit_rate=64 * CHUNK)).fetched_chunks == 3
    assert spy.given == []  # no chunk taken whole
