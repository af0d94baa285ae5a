"""A crowd fetching one root serves itself: real TCP on 127.0.0.1, real LevelDB stores, one
trio process. Each receiver serves its store (with the swarm extension) while it fetches; it
knows only the origin and learns the others from it (Announce, GetPeers/Peers), hears of their
new chunks by Have updates, and takes from the origin only what no learned peer holds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio

from node.store import Store
from node.transfer import Provider, SwarmOptions, SwarmProvider, fetch, serve_node
from node.transfer._fetch import PeerAddr

from .helpers import make_identity, read_all, store_with

SIZE = 8 * 1024 * 1024
CHUNK = 256 * 1024


class SlowOrigin(Provider):
    """An origin whose upload is the scarce resource: each chunk read takes ``delay``."""

    delay = 0.03

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        await trio.sleep(self.delay)
        return await super()._read(root, index, after)


def _swarm_provider(store: Store) -> SwarmProvider:
    return SwarmProvider(store, update_interval=0.1, pex_interval=0.2)


async def test_receivers_serve_each_other_and_spare_the_origin(tmp_path: Path) -> None:
    origin_store, root, data = store_with(tmp_path / "origin", SIZE, chunk_size=CHUNK)
    origin_id = make_identity()
    origin = SlowOrigin(origin_store, origin_id.address, swarm=_swarm_provider(origin_store))
    n = 3
    stores = [Store.open(tmp_path / f"r{i}", durable=False) for i in range(n)]
    ids = [make_identity() for _ in range(n)]
    provs = [
        Provider(s, i.address, swarm=_swarm_provider(s)) for s, i in zip(stores, ids, strict=True)
    ]
    results = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    origin_store, origin_id, provider=origin, task_status=task_status
                )
            )
            ports = []
            for store, ident, prov in zip(stores, ids, provs, strict=True):
                ports.append(
                    (
                        await nursery.start(
                            lambda task_status, s=store, i=ident, p=prov: serve_node(
                                s, i, provider=p, task_status=task_status
                            )
                        )
                    )[1]
                )
            origin_addr = PeerAddr(host, port, origin_id.address)

            async with trio.open_nursery() as crowd:

                async def one(i: int) -> None:
                    results.append(
                        await fetch(
                            stores[i],
                            ids[i],
                            root,
                            [origin_addr],
                            swarm=SwarmOptions(listen_port=ports[i], pex_interval=0.2),
                        )
                    )

                for i in range(n):
                    crowd.start_soon(one, i)
            nursery.cancel_scope.cancel()
    for store in stores:
        assert read_all(store, root) == data
    from_peers = sum(
        rep.bytes for r in results for a, rep in r.providers.items() if a != origin_id.address
    )
    from_origin = sum(
        rep.bytes for r in results for a, rep in r.providers.items() if a == origin_id.address
    )
    assert from_peers + from_origin == n * SIZE
    assert from_peers > 0, "no chunk went peer to peer"
    # the origin's own count (it also counts chunks a receiver got twice in the endgame)
    assert origin.stats.bytes_served < n * SIZE
    ratio = origin.stats.bytes_served / SIZE
    assert origin.stats.bytes_served <= 0.85 * n * SIZE, (ratio, from_peers)
    assert sum(p.swarm.updates_sent for p in provs if p.swarm is not None) > 0
    assert sum(p.stats.bytes_served for p in provs) >= from_peers
    for store in stores:
        store.close()
    origin_store.close()
