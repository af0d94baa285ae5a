"""The node's memory and cold tiers from config.toml to /metrics: the provider's cache hits and
misses are the node's ``bcai_cache_*`` series (real LevelDB, real TCP on 127.0.0.1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.app import open_node
from node.config import ConfigError, config_from_dict, load_config, save_config
from node.store import Store
from node.transfer import fetch, serve_node
from tests._procs import ENV, cli

from ..store.test_nowait_reads import _is_resident
from ..transfer.helpers import make_identity

MiB = 1 << 20


def _samples(registry: object) -> dict[str, float]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_config_keys_are_typed(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {"node": {"memory_cache": "512MiB", "cold_dir": "cold", "hot_limit": "2 GiB"}}
    )
    assert cfg.node.memory_cache == 512 * MiB and cfg.node.hot_limit == 2 << 30
    assert cfg.cold_path(tmp_path) == tmp_path / "cold"  # relative to the data dir
    assert config_from_dict({}).node.memory_cache == 64 * MiB  # on by default
    assert config_from_dict({"node": {"memory_cache": 0}}).node.memory_cache == 0  # off
    with pytest.raises(ConfigError, match="hot_limit needs cold_dir"):
        config_from_dict({"node": {"hot_limit": "1GiB"}})
    with pytest.raises(ConfigError, match="not a size"):
        config_from_dict({"node": {"memory_cache": "lots"}})
    with pytest.raises(ConfigError, match="cold_dir"):
        config_from_dict({"node": {"cold_dir": 5}})


async def test_cache_hits_reach_the_node_metrics(tmp_path: Path) -> None:
    data_dir = tmp_path / "prov"
    status, _, err = cli(data_dir, "init")
    assert status == 0, err
    cfg = load_config(data_dir)
    cfg.node.memory_cache = 16 * MiB
    cfg.node.cold_dir = "cold"
    save_config(data_dir, cfg)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * MiB))  # 2 chunks of 1 MiB
    peers = 3
    stores = [Store.open(tmp_path / f"r{i}", durable=False) for i in range(peers)]
    ids = [make_identity() for _ in range(peers)]
    try:
        with open_node(data_dir, passphrase=ENV["BCAI_PASSPHRASE"]) as node:
            root = bytes.fromhex(node.add(src)["root"][2:])
            assert node.store.tier_stats()["cold_dir"] == str(data_dir / "cold")
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(
                    lambda task_status: serve_node(
                        node.store, node.identity, task_status=task_status
                    )
                )
                for i in range(peers):  # one after the other: a deterministic count
                    await fetch(stores[i], ids[i], root, [(host, port, node.identity.address)])
                nursery.cancel_scope.cancel()
            s = _samples(node.metrics.registry)
            mem = node.store.tier_stats()["memory"]
            # peer 1: the doorkeeper's first reads; peer 2: verified reads that admit; peer 3:
            # memory
            assert (s["bcai_cache_misses_total"], s["bcai_cache_hits_total"]) == (4, 2)
            assert (mem["misses"], mem["hits"]) == (4, 2)
            assert s["bcai_cache_hit_ratio"] == pytest.approx(2 / 6)
    finally:
        for st in stores:
            st.close()


def test_node_add_leaves_add_cached_bytes_in_the_page_cache(tmp_path: Path) -> None:
    """config.toml's ``[node] add_cached`` reaches the node's store (tests/store/test_add_cached.py
    has the byte-exact rule)."""
    data_dir = tmp_path / "prov"
    status, _, err = cli(data_dir, "init")
    assert status == 0, err
    cfg = load_config(data_dir)
    cfg.node.add_cached = MiB  # of a 2 MiB content: the first chunk
    save_config(data_dir, cfg)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(2 * MiB))
    with open_node(data_dir, passphrase=ENV["BCAI_PASSPHRASE"]) as node:
        assert node.store.add_cached == MiB
        node.add(src)
        files = [f for f in (data_dir / "store" / "chunks").glob("*/*") if f.is_file()]
        if not node.store._files.direct or not hasattr(os, "RWF_NOWAIT"):
            pytest.skip("O_DIRECT or RWF_NOWAIT does not apply on this file system")
        assert sorted(_is_resident(f) for f in files) == [False, True]
