"""Induced bottlenecks on real loopback fetches (real TCP, real LevelDB), each named by the
analyser from what it measures; the tuner's change measured on the slow-peer case; the node
shows verdicts and decisions in ``status()``.

The analyser is told nothing about the set-up: the rate-capped peer is a provider with an upload
cap, the throttled disk a store whose writes sleep, the CPU-bound receiver one whose chunk
verification burns 0.12 s of CPU per chunk beside a thread that spins.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

import node.store._partial as partial
from node.app import open_node
from node.app._tuner import Knobs, Tuner, Watch, watching
from node.config import load_config, save_config
from node.store import Store
from node.transfer import Shaper, fetch, serve_node
from tests._procs import ENV, cli

from ..transfer.helpers import make_identity

MiB = 1 << 20


def _content(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    path.write_bytes(os.urandom(size))
    return path


@contextlib.asynccontextmanager
async def _providers(
    tmp: Path, files: list[Path], caps: list[float | None], chunk_size: int
) -> AsyncIterator[tuple[list[bytes], list[tuple[str, int, str]]]]:
    """One served store per cap (bytes/s upload, None: uncapped), each holding ``files``."""
    stores = [Store.open(tmp / f"p{i}", durable=False) for i in range(len(caps))]
    roots = [stores[0].add_file(f, chunk_size=chunk_size).root for f in files]
    for st in stores[1:]:
        for f in files:
            st.add_file(f, chunk_size=chunk_size)
    try:
        async with trio.open_nursery() as nursery:
            addrs = []
            for st, cap in zip(stores, caps, strict=True):
                ident = make_identity()
                upload = Shaper(upload=cap) if cap else None

                async def serve(
                    task_status: Any, st: Store = st, ident: Any = ident, upload: Any = upload
                ) -> None:
                    await serve_node(st, ident, upload=upload, task_status=task_status)

                host, port = await nursery.start(serve)
                addrs.append((host, port, ident.address))
            yield roots, addrs
            nursery.cancel_scope.cancel()
    finally:
        for st in stores:
            st.close()


async def _watched_fetch(
    tmp: Path,
    name: str,
    root: bytes,
    addrs: list[tuple[str, int, str]],
    tuner: Tuner | None = None,
    **kwargs: Any,
) -> tuple[Watch, float]:
    """Fetch ``root`` into a fresh store the way the node does (watched); (watch, seconds)."""
    store = Store.open(tmp / name, durable=False)
    try:
        t0 = time.monotonic()
        async with watching(
            tuner, name, shaper=kwargs.pop("shaper", None), lane=kwargs.get("lane")
        ) as w:
            await fetch(store, make_identity(), root, addrs, observer=w.observer(None), **kwargs)
        return w, time.monotonic() - t0
    finally:
        store.close()


def _dominant(watch: Watch) -> tuple[str, float]:
    counts = Counter(v.bound for v in watch.verdicts)
    assert counts, "no verdict at all"
    bound, n = counts.most_common(1)[0]
    return bound, n / sum(counts.values())


async def test_a_rate_capped_peer_is_named(tmp_path: Path) -> None:
    src = _content(tmp_path, "a.bin", 6 * MiB)
    async with _providers(tmp_path, [src], [2 * MiB], MiB) as (roots, addrs):
        with trio.fail_after(60):
            watch, seconds = await _watched_fetch(tmp_path, "r", roots[0], addrs)
    bound, share = _dominant(watch)
    assert bound == f"peer:{addrs[0][2]}" and share >= 0.75, watch.verdicts
    e = watch.verdicts[-1].evidence
    assert e["cpu_busy"] < 0.85 and e["rx_backlog_share"] < 0.5
    assert 1.0 * MiB < e["peers"][addrs[0][2]]["rate_busy"] < 2.6 * MiB
    assert seconds > 2  # 6 MiB at 2 MiB/s


async def test_a_throttled_disk_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _content(tmp_path, "a.bin", 8 * MiB)
    put = partial.PartialWriter.put

    def slow_put(self: partial.PartialWriter, index: int, data: Any) -> bool:
        time.sleep(0.2)  # a disk that takes 200 ms per 256 KiB write
        return put(self, index, data)

    monkeypatch.setattr(partial.PartialWriter, "put", slow_put)
    async with _providers(tmp_path, [src], [None], 256 * 1024) as (roots, addrs):
        with trio.fail_after(60):
            # 3 slots (not the default 8): the 200 ms writes must bound this 8 MiB fetch long
            # enough for the analyser's ticks
            t = Tuner(defaults=Knobs(put_workers=3))
            watch, _ = await _watched_fetch(tmp_path, "r", roots[0], addrs, tuner=t, put_workers=3)
    bound, share = _dominant(watch)
    assert bound == "disk" and share >= 0.75, watch.verdicts
    assert watch.verdicts[-1].evidence["rx_backlog_share"] >= 0.5
    assert t.knobs.put_workers == 6  # and the next fetch overlaps twice the writes


async def test_a_cpu_bound_receiver_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _content(tmp_path, "a.bin", 48 * MiB)
    put = partial.PartialWriter.put

    def heavy_put(self: partial.PartialWriter, index: int, data: Any) -> bool:
        # verification that costs 0.12 s of CPU per chunk on any machine (a fixed number of
        # hashes was over in < MIN_SPAN on a fast CI box: no verdict at all): 48 chunks on 2
        # cores keep the fetch CPU-bound for >= 2.9 s, several ticks
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.12:
            hashlib.sha256(data).digest()
        return put(self, index, data)

    monkeypatch.setattr(partial.PartialWriter, "put", heavy_put)
    stop = threading.Event()

    def spin() -> None:  # a competing busy thread (holds the GIL whenever it can)
        x = 0
        while not stop.is_set():
            x += 1

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        async with _providers(tmp_path, [src], [None], MiB) as (roots, addrs):
            with trio.fail_after(120):
                watch, _ = await _watched_fetch(tmp_path, "r", roots[0], addrs)
    finally:
        stop.set()
        spinner.join()
    bound, share = _dominant(watch)
    assert bound == "cpu" and share >= 0.75, watch.verdicts
    assert watch.verdicts[-1].evidence["cpu_busy"] >= 0.85


async def test_our_own_cap_is_the_rate_cap_not_the_peer(tmp_path: Path) -> None:
    src = _content(tmp_path, "a.bin", 6 * MiB)
    shaper = Shaper()
    async with _providers(tmp_path, [src], [None], MiB) as (roots, addrs):
        with shaper.lane("download", rate=2 * MiB) as lane, trio.fail_after(60):
            watch, _ = await _watched_fetch(
                tmp_path, "r", roots[0], addrs, shaper=shaper, lane=lane
            )
    bound, share = _dominant(watch)
    assert bound == "rate_cap" and share >= 0.75, watch.verdicts
    assert watch.verdicts[-1].evidence["cap"] == 2 * MiB


async def test_slow_peers_are_named_and_neither_fetch_waits_for_them(tmp_path: Path) -> None:
    """Three providers of two 32 MiB contents (1 MiB chunks): one at 16 MiB/s, two at 1 MiB/s.
    A fetch of B with the default knobs; a fetch of A analysed (slow peers, named), after which
    the tuner lowers the initial window; B again with the tuner's knobs.

    With 16 chunks each, the slow peers used to hold chunks the fast one then waited for (each
    had copied the other's in the endgame, so no third copy was allowed): the default fetch took
    5-15 s and the tuned one 1.7 s. The endgame now copies a chunk whose holders are behind the
    fast peer's pace (node.transfer._scheduler), so both are near the optimum (32/18 = 1.8 s)."""
    a = _content(tmp_path, "a.bin", 32 * MiB)
    b = _content(tmp_path, "b.bin", 32 * MiB)
    # 16x apart (a slow peer is >= 4x slower than the fastest): at 8x a loaded CI machine
    # once measured the peers as alike ("network") in most ticks
    async with _providers(tmp_path, [a, b], [16 * MiB, 1 * MiB, 1 * MiB], MiB) as (roots, addrs):
        slow = {f"peer:{addr}" for _, _, addr in addrs[1:]}
        with trio.fail_after(120):
            _, before = await _watched_fetch(tmp_path, "base", roots[1], addrs)
            tuner = Tuner()
            learn, _ = await _watched_fetch(tmp_path, "learn", roots[0], addrs, tuner=tuner)
            window = tuner.window_for(16)
            kwargs: dict[str, Any] = tuner.fetch_kwargs(lambda n: True)
            _, after = await _watched_fetch(
                tmp_path, "tuned", roots[1], addrs, initial_window=window, **kwargs
            )
    # the two slow peers are alike, so the verdict names one or the other from tick to tick:
    # together they are what bounds the fetch
    named = Counter("slow" if v.bound in slow else v.bound for v in learn.verdicts)
    assert named.most_common(1)[0][0] == "slow", learn.verdicts
    [decision] = [d for d in tuner.decisions if d.knob != "none"]
    assert (decision.knob, decision.old, decision.new) == ("initial_window", 16, 2)
    print(f"slow-peer case: default {before:.2f} s, tuned {after:.2f} s")
    # measured on a 2-core box, quiet and beside two busy loops: default 1.80-1.81 s, tuned
    # 1.74-1.75 s; before the endgame rule the default took 3.9-14.9 s (a slow peer's
    # 16 chunks at 1 MiB/s). The bound leaves CI's load a 4x margin.
    assert before < 7.5 and after < 7.5, (before, after)


async def test_node_status_shows_verdicts_and_decisions(tmp_path: Path) -> None:
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    for d in (prov, recv):
        status, _, err = cli(d, "init")
        assert status == 0, err
    cfg = load_config(recv)
    cfg.tuning.max_put_workers = 4
    save_config(recv, cfg)
    src = _content(tmp_path, "a.bin", 4 * MiB)
    with open_node(prov, passphrase=ENV["BCAI_PASSPHRASE"]) as provider:
        root = bytes.fromhex(provider.add(src, chunk_size=MiB)["root"][2:])
        shaper = Shaper(upload=1 * MiB)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store, provider.identity, upload=shaper, task_status=task_status
                )
            )
            with open_node(recv, passphrase=ENV["BCAI_PASSPHRASE"]) as node:
                seen: list[Any] = []

                def look(_: Any) -> None:
                    seen.append(node.status()["transfers"][-1]["bottleneck"])

                with trio.fail_after(60):
                    await node.fetch(root, [f"{host}:{port}/{provider.address}"], progress=look)
                st = node.status()
            nursery.cancel_scope.cancel()
    peer = f"peer:{provider.address}"
    assert any(v and v["bound"] == peer for v in seen)  # shown while it ran
    [t] = st["transfers"]
    assert t["bottleneck"]["bound"] == peer and t["bottleneck"]["evidence"]["peers"]
    tuning = st["tuning"]
    assert tuning["enabled"] and tuning["bounds"]["max_put_workers"] == 4
    [d] = tuning["decisions"]
    assert (d["transfer"], d["bound"], d["knob"]) == (t["id"], peer, "none")
    assert tuning["next"] == tuning["defaults"]
