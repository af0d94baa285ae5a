"""Small gets through a long-running node (issue #11): kept provider connections and the last
receipt's answer taken in the background (``Node.keep_connections``, docs/transfer.md).

Real TCP on 127.0.0.1, real LevelDB, the node's own fetch path."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.app import open_node
from node.transfer import serve_node
from node.transfer._provider import Provider
from tests._procs import ENV, cli

MiB = 1 << 20
PASS = ENV["BCAI_PASSPHRASE"]


def _init(data: Path) -> None:
    status, _out, err = cli(data, "init")
    assert status == 0, err


def _roots(provider: Any, tmp: Path, n: int) -> list[bytes]:
    roots = []
    for i in range(n):
        src = tmp / f"f{i}.bin"
        src.write_bytes(os.urandom(MiB))
        roots.append(bytes.fromhex(provider.add(src)["root"][2:]))
    return roots


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


@pytest.fixture
def slow_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers answer receipts 0.4 s late (so "did not wait" is observable)."""
    orig = Provider._on_receipt

    async def delayed(self: Provider, *args: Any) -> None:
        await trio.sleep(0.4)
        await orig(self, *args)

    monkeypatch.setattr(Provider, "_on_receipt", delayed)


async def test_second_get_reuses_the_connection_and_acks_later(
    tmp_path: Path, slow_acks: None
) -> None:
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    with open_node(prov, passphrase=PASS) as provider:
        roots = _roots(provider, tmp_path, 2)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store,
                    provider.identity,
                    receipt_box=provider.receipts,
                    task_status=task_status,
                )
            )
            peer = f"{host}:{port}/{provider.address}"
            with open_node(recv, passphrase=PASS) as node:
                node.keep_connections(nursery)
                t0 = trio.current_time()
                out = await node.fetch(roots[0], [peer], output=tmp_path / "o0")
                assert trio.current_time() - t0 < 0.4  # not held for the ReceiptAck
                [rep] = out["providers"]
                assert rep["receipt_acked"] == "pending" and rep["receipt_nonce"] is not None
                [t] = node.status()["transfers"]
                assert t["state"] == "done" and t["receipts"] == "pending"
                await _until(lambda: node.status()["transfers"][0]["receipts"] == "acked")
                # the ack is in: the second get takes the kept connection
                out2 = await node.fetch(roots[1], [peer], output=tmp_path / "o1")
                pool = node.status()["connection_pool"]
                assert (pool["dials"], pool["reuses"], pool["late_answers"]) == (1, 1, 1)
                await _until(lambda: node.status()["transfers"][1]["receipts"] == "acked")
                assert out2["providers"][0]["receipt_acked"] == "pending"
            nursery.cancel_scope.cancel()
        # the provider booked both receipts (the background acks were real)
        assert provider.receipts.counts()["pending"] == 2
    for i in range(2):
        assert (tmp_path / f"o{i}").read_bytes() == (tmp_path / f"f{i}.bin").read_bytes()


async def test_without_kept_connections_the_get_waits_for_the_ack(
    tmp_path: Path, slow_acks: None
) -> None:
    """A one-shot node (the CLI without a daemon) exits after the get: it waits."""
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    with open_node(prov, passphrase=PASS) as provider:
        [root] = _roots(provider, tmp_path, 1)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store,
                    provider.identity,
                    receipt_box=provider.receipts,
                    task_status=task_status,
                )
            )
            with open_node(recv, passphrase=PASS) as node:
                out = await node.fetch(root, [f"{host}:{port}/{provider.address}"])
                assert out["providers"][0]["receipt_acked"] is True
                assert node.status()["transfers"][0]["receipts"] == "acked"
                assert node.status()["connection_pool"] is None
            nursery.cancel_scope.cancel()


async def test_kept_connection_broken_under_the_get_is_redialled(tmp_path: Path) -> None:
    """A kept connection that dies as a get takes it (the provider closed it in that instant):
    the get runs once more on a new connection and succeeds."""
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    with open_node(prov, passphrase=PASS) as provider:
        roots = _roots(provider, tmp_path, 2)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    provider.store, provider.identity, task_status=task_status
                )
            )
            peer = f"{host}:{port}/{provider.address}"
            with open_node(recv, passphrase=PASS) as node:
                pool = node.keep_connections(nursery)
                await node.fetch(roots[0], [peer])
                dial = pool.dial

                async def sabotage(*args: Any, **kw: Any) -> Any:
                    conn = await dial(*args, **kw)
                    if conn.reused:  # as if the provider's close crossed our borrow
                        await conn.conn.stream.transport_stream.aclose()
                    return conn

                pool.dial = sabotage  # type: ignore[method-assign]
                out = await node.fetch(roots[1], [peer], output=tmp_path / "o1")
                assert out["fetched_chunks"] == 1
                assert (pool.stats.dials, pool.stats.reuses) == (2, 1)
                assert [t["state"] for t in node.status()["transfers"]] == ["done", "done"]
            nursery.cancel_scope.cancel()
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "f1.bin").read_bytes()


def test_gets_through_a_running_daemon_reuse_its_connection(tmp_path: Path) -> None:
    """Two ``bcai serve`` processes: a receiver daemon's gets through its HTTP API (the CLI's
    client) take one connection to the provider, answer before the last ReceiptAck with the
    receipt booked by the provider later, and stream one 100% progress line per get."""
    from node.app import RemoteNode
    from tests._procs import ServeProcess

    prov, recv = tmp_path / "prov", tmp_path / "recv"
    _init(prov)
    _init(recv)
    srcs = []
    for i in range(3):
        srcs.append(tmp_path / f"f{i}.bin")
        srcs[-1].write_bytes(os.urandom(MiB + i))
    with ServeProcess(prov) as server, ServeProcess(recv, "--no-fsync") as receiver:
        token = (recv / "run" / "api.token").read_text().strip()
        api = RemoteNode(receiver.info["api"], token, data_dir=recv)
        ptoken = (prov / "run" / "api.token").read_text().strip()
        papi = RemoteNode(server.info["api"], ptoken, data_dir=prov)
        for i, src in enumerate(srcs):
            root = bytes.fromhex(papi.add(src)["root"][2:])
            seen: list[dict[str, Any]] = []
            out = api.fetch(root, [server.peer], output=tmp_path / f"o{i}", progress=seen.append)
            assert (tmp_path / f"o{i}").read_bytes() == src.read_bytes()
            assert [p["done_bytes"] for p in seen].count(src.stat().st_size) == 1
            assert out["providers"][0]["receipt_acked"] in (True, "pending")
        status = api.status()
        pool = status["connection_pool"]
        assert (pool["dials"], pool["reuses"], pool["idle"]) == (1, 2, 1)
        deadline = time.monotonic() + 10
        while any(t["receipts"] != "acked" for t in api.status()["transfers"]):
            assert time.monotonic() < deadline, api.status()["transfers"]
            time.sleep(0.05)
        assert papi.status()["receipts"]["pending"] == 3  # the provider booked all three
