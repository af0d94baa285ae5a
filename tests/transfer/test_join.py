"""One way into a running fetch: a given peer whose offer comes late and a peer learned through
the swarm both join through ``_Fetch._join`` (agreement with the agreed manifest, their Have,
a rank from the ledger, a window from the scheduler). Real TCP on 127.0.0.1, real LevelDB
stores and ledger, one trio process.

What the single path fixes (each failed while the two mechanisms were separate):

- a given peer that offers after the grace, in a swarm fetch, is spared like the other given
  peers (the shallow spare window), not treated like a learned peer;
- a learned peer offering a manifest of another shape is dropped as a liar: named in
  ``refused``, a bad mark in the ledger, never dialled again (it used to be forgotten quietly);
- a learned peer is ranked by its ledger score among the given ones (it used to be appended
  last, whatever the ledger said).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from node.content import Manifest
from node.ledger import LocalLedger, open_ledger_db
from node.store import Store
from node.transfer import PeerAddr, Provider, SwarmOptions, fetch, serve_node
from node.transfer._swarm import SPARE_WINDOW
from node.transport import PeerConnection
from node.wire import HaveAll, ManifestMsg, Price, Want

from .helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


class _Late(Provider):
    """Answers Want honestly, after ``delay`` seconds."""

    delay = 0.6

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        await trio.sleep(self.delay)
        await super()._on_want(conn, msg)


class _Slow(Provider):
    """Honest, each chunk read takes ``delay`` (so the fetch runs long enough to be joined)."""

    delay = 0.05

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        await trio.sleep(self.delay)
        return await super()._read(root, index, after)


class _Bigger(Provider):
    """Answers Want with a manifest 3 chunks longer than the real one; counts its Wants."""

    wants = 0

    async def _on_want(self, conn: PeerConnection, msg: Want) -> None:
        type(self).wants += 1
        root = bytes(msg.root)
        d = self.store.get_manifest(root).to_dict()
        d["size"] += 3 * d["chunk_size"]
        forged = Manifest.from_dict(d).to_bytes()
        await conn.send(
            ManifestMsg(root, forged), Price(root, self.policy.price_per_gib), HaveAll(root)
        )


class _Windows:
    """A TransferObserver that keeps each peer's largest reported window (chunks)."""

    def __init__(self) -> None:
        self.window: dict[str, int] = defaultdict(int)

    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        self.window[peer] = max(self.window[peer], window)

    def chunk_received(self, *a: Any) -> None: ...
    def chunk_rejected(self, *a: Any) -> None: ...
    def chunk_served(self, *a: Any) -> None: ...
    def connection_opened(self, *a: Any) -> None: ...
    def connection_closed(self, *a: Any) -> None: ...


def _copy(src: Store, tmp: Path, name: str) -> Store:
    store = Store.open(tmp / name, durable=False)
    store.add_file(tmp / "a" / "src.bin", chunk_size=CHUNK)
    return store


async def _serve(nursery: trio.Nursery, store: Store, ident: Any, prov: Provider) -> PeerAddr:
    host, port = await nursery.start(
        lambda task_status: serve_node(store, ident, provider=prov, task_status=task_status)
    )
    return PeerAddr(host, port, ident.address)


async def test_a_late_given_peer_in_a_swarm_is_spared_like_the_others(tmp_path: Path) -> None:
    origin_store, root, data = store_with(tmp_path / "a", 24 * CHUNK + 7, chunk_size=CHUNK)
    late_store = _copy(origin_store, tmp_path, "late")
    origin_id, late_id, me = make_identity(), make_identity(), make_identity()
    seen = _Windows()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            origin = await _serve(
                nursery, origin_store, origin_id, _Slow(origin_store, origin_id.address)
            )
            late = await _serve(nursery, late_store, late_id, _Late(late_store, late_id.address))
            dst = Store.open(tmp_path / "dst", durable=False)
            result = await fetch(
                dst,
                me,
                root,
                [origin, late],
                offer_grace=0.1,  # the transfer starts without the late peer
                swarm=SwarmOptions(),
                observer=seen,
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert result.providers[late_id.address].bytes > 0  # it joined and served
    assert seen.window[origin_id.address] == SPARE_WINDOW
    assert seen.window[late_id.address] == SPARE_WINDOW  # before: 16, a learned peer's


async def test_learned_peers_join_through_the_same_checks(tmp_path: Path) -> None:
    """A learned liar is dropped and recorded; an honest learned peer with a better ledger
    record than the origin is ranked before it."""
    origin_store, root, data = store_with(tmp_path / "a", 32 * CHUNK + 7, chunk_size=CHUNK)
    honest_store = _copy(origin_store, tmp_path, "honest")
    liar_store = _copy(origin_store, tmp_path, "liar")
    origin_id, honest_id, liar_id, me = (make_identity() for _ in range(4))
    db = open_ledger_db(str(tmp_path / "ledger"))
    ledger = LocalLedger(db)
    ledger.record_chunk(origin_id.address, CHUNK, 1.0, 0.0)  # 256 KiB/s
    ledger.record_chunk(honest_id.address, CHUNK, 0.01, 0.0)  # 25 MiB/s
    _Bigger.wants = 0
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                origin = await _serve(
                    nursery, origin_store, origin_id, _Slow(origin_store, origin_id.address)
                )
                honest = await _serve(
                    nursery, honest_store, honest_id, Provider(honest_store, honest_id.address)
                )
                liar = await _serve(
                    nursery, liar_store, liar_id, _Bigger(liar_store, liar_id.address)
                )
                dst = Store.open(tmp_path / "dst", durable=False)
                result = await fetch(
                    dst,
                    me,
                    root,
                    [origin],
                    ledger=ledger,
                    swarm=SwarmOptions(learned=lambda: [str(liar), str(honest)], pex_interval=0.2),
                )
                nursery.cancel_scope.cancel()
        assert read_all(dst, root) == data
        assert result.providers[honest_id.address].bytes > 0
        assert "ManifestMismatch" in result.refused[liar_id.address]
        assert ledger.get(liar_id.address).bad_chunks == 1
        assert _Bigger.wants == 1  # never dialled again
        assert liar_id.address not in result.providers
        assert result.ranking == [honest_id.address, origin_id.address]
    finally:
        db.close()
