"""A small content's first chunk-root page is asked with the Want (one round trip less), only
of the best-ranked peer and only when nothing of the root is held; real TCP on 127.0.0.1,
real LevelDB stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

import node.transfer._fetch as fetch_mod
from node.store import Store
from node.transfer import PeerAddr, fetch, serve_node
from node.transport import PeerConnection
from node.wire import GetChunkRoots, Want

from .helpers import make_identity, read_all

CHUNK = 256 * 1024


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the receiver sends, in order, with "manifest read" where it read a Manifest."""
    log: list[str] = []
    send = PeerConnection.send

    async def recording(self: PeerConnection, *messages: Any) -> None:
        log.extend(type(m).__name__ for m in messages if isinstance(m, (Want, GetChunkRoots)))
        await send(self, *messages)

    price = fetch_mod._Fetch._price

    async def after_manifest(self: Any, peer: Any) -> Any:
        log.append("manifest read")
        return await price(self, peer)

    monkeypatch.setattr(PeerConnection, "send", recording)
    monkeypatch.setattr(fetch_mod._Fetch, "_price", after_manifest)
    return log


async def test_first_page_goes_with_the_want(tmp_path: Path, sent: list[str]) -> None:
    prov_id, recv_id = make_identity(), make_identity()
    (tmp_path / "a").mkdir()
    src = Store.open(tmp_path / "a" / "store", durable=False)
    data = os.urandom(3 * CHUNK + 7)
    (tmp_path / "a" / "f").write_bytes(data)
    root = src.add_file(tmp_path / "a" / "f", chunk_size=CHUNK).root
    dst = Store.open(tmp_path / "b", durable=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(src, prov_id, task_status=task_status)
            )
            peer = PeerAddr(host, port, prov_id.address)
            result = await fetch(dst, recv_id, root, [peer])
            assert sent == ["Want", "GetChunkRoots", "manifest read"]
            # held (complete now): no chunk-root page is asked at all
            sent.clear()
            again = await fetch(dst, recv_id, root, [peer])
            assert sent == ["Want", "manifest read"]
            nursery.cancel_scope.cancel()
    assert result.fetched_chunks == 4 and again.fetched_chunks == 0
    assert read_all(dst, root) == data
