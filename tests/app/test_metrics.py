"""node.app._metrics.Metrics: hooks in, Prometheus exposition out (parsed with prometheus_client's
own parser), label bounds under a flood of identities, and one real loopback transfer."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest
import trio
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.app._metrics import OTHER, Metrics
from node.store import Store
from node.transfer import PeerAddr, Provider, fetch, serve_node
from node.transfer._observer import TransferObserver

from ..transfer.helpers import fetch_served, make_identity, read_all, store_with

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by (name, sorted labels)."""
    text = generate_latest(m.registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def by_peer(samples: dict, name: str) -> dict[str, float]:
    return {dict(k[1])["peer"]: v for k, v in samples.items() if k[0] == name}


def test_implements_transfer_observer() -> None:
    hooks = [n for n in vars(TransferObserver) if not n.startswith("_")]
    assert set(hooks) >= {"chunk_received", "chunk_served", "connection_opened"}
    for name in hooks:
        want = inspect.signature(getattr(TransferObserver, name))
        got = inspect.signature(getattr(Metrics, name))
        assert list(got.parameters) == list(want.parameters), name


def test_hooks_feed_the_exposition() -> None:
    m = Metrics(clock=Clock())
    m.connection_opened(A, False)
    m.connection_opened(B, True)
    m.connection_opened(B, True)
    m.connection_closed(B, True)
    for _ in range(3):
        m.chunk_received(A, 1000, 0.02)
    m.chunk_rejected(A, "corrupt")
    m.chunk_rejected(A, "timeout")
    m.chunk_rejected(A, "made-up reason")
    m.requests_outstanding(A, 5, 16)
    m.chunk_served(B, 700, 0.004)
    m.chunk_served(B, 300, 0.3)
    m.cache_hit()
    m.cache_hit(2)
    m.cache_miss()
    m.set_chain_queue(7)
    m.set_queue_depth("serve", 3)
    m.set_active_transfers(2, 1)
    s = scrape(m)
    assert value(s, "bcai_received_bytes_total") == 3000
    assert value(s, "bcai_sent_bytes_total") == 1000
    assert value(s, "bcai_chunks_received_total") == 3
    assert value(s, "bcai_chunks_served_total") == 2
    assert value(s, "bcai_chunks_rejected_total", reason="corrupt") == 1
    assert value(s, "bcai_chunks_rejected_total", reason="timeout") == 1
    assert value(s, "bcai_chunks_rejected_total", reason="other") == 1
    assert value(s, "bcai_chunk_success_ratio") == pytest.approx(0.5)
    assert value(s, "bcai_connections", direction="outbound") == 1
    assert value(s, "bcai_connections", direction="inbound") == 1
    assert value(s, "bcai_connections_opened_total", direction="inbound") == 2
    assert value(s, "bcai_requests_outstanding") == 5
    assert value(s, "bcai_window_chunks") == 16
    assert value(s, "bcai_peer_requests_outstanding", peer=A) == 5
    assert value(s, "bcai_peer_window_chunks", peer=A) == 16
    assert value(s, "bcai_peer_received_bytes_total", peer=A) == 3000
    assert value(s, "bcai_peer_sent_bytes_total", peer=B) == 1000
    assert value(s, "bcai_peer_chunks_rejected_total", peer=A) == 3
    assert value(s, "bcai_peer_reliability_ratio", peer=A) == pytest.approx(0.5)
    assert value(s, "bcai_peer_latency_seconds", peer=A) == pytest.approx(0.02)
    assert value(s, "bcai_cache_hits_total") == 3 and value(s, "bcai_cache_misses_total") == 1
    assert value(s, "bcai_cache_hit_ratio") == pytest.approx(0.75)
    assert value(s, "bcai_compression_ratio") == 1.0
    assert value(s, "bcai_chain_queue_depth") == 7
    assert value(s, "bcai_queue_depth", queue="serve") == 3
    assert value(s, "bcai_transfers_active", direction="in") == 2
    assert value(s, "bcai_transfers_active", direction="out") == 1
    # the histograms: one served chunk in the 5 ms bucket, the other above 0.25 s
    assert value(s, "bcai_chunk_serve_seconds_bucket", le="0.005") == 1
    assert value(s, "bcai_chunk_serve_seconds_bucket", le="0.25") == 1
    assert value(s, "bcai_chunk_serve_seconds_bucket", le="0.5") == 2
    assert value(s, "bcai_chunk_receive_seconds_count") == 3
    assert value(s, "bcai_chunk_serve_p95_seconds") == pytest.approx(0.3)
    assert value(s, "bcai_metrics_errors_total") == 0
    # closing the fetch connection clears what was in flight
    m.connection_closed(A, False)
    s = scrape(m)
    assert value(s, "bcai_requests_outstanding") == 0
    assert value(s, "bcai_connections", direction="outbound") == 0


def test_empty_metrics_are_nan_not_zero() -> None:
    s = scrape(Metrics())
    for name in (
        "bcai_chunk_success_ratio",
        "bcai_chunk_receive_p95_seconds",
        "bcai_chunk_serve_p95_seconds",
        "bcai_cache_hit_ratio",
    ):
        assert math.isnan(value(s, name)), name
    assert value(s, "bcai_received_bytes_total") == 0


def test_bad_values_never_raise_and_are_counted() -> None:
    m = Metrics()
    m.chunk_received(A, -5, 0.1)
    m.chunk_received(A, 10, float("nan"))
    m.chunk_served(A, 10, float("inf"))
    m.chunk_received(A, "lots", 0.1)  # type: ignore[arg-type]
    m.requests_outstanding(A, -1, 4)
    m.connection_closed(B, True)  # never opened
    m.set_chain_queue("x")  # type: ignore[arg-type]
    for i in range(40):
        m.set_queue_depth(f"q{i}", i)
    s = scrape(m)
    assert value(s, "bcai_received_bytes_total") == 0
    assert value(s, "bcai_sent_bytes_total") == 0
    assert value(s, "bcai_connections", direction="inbound") == 0
    assert value(s, "bcai_compression_ratio") == 1.0
    queues = [k for k in s if k[0] == "bcai_queue_depth"]
    assert len(queues) == 16
    assert m.errors == 7 + 24
    assert value(s, "bcai_metrics_errors_total") == m.errors


def test_registries_are_private() -> None:
    one, two = Metrics(), Metrics()
    one.chunk_received(A, 100, 0.01)
    assert value(scrape(one), "bcai_received_bytes_total") == 100
    assert value(scrape(two), "bcai_received_bytes_total") == 0
    assert b"bcai_" not in generate_latest(REGISTRY)


def test_identity_flood_keeps_labels_and_memory_bounded() -> None:
    clock = Clock()
    m = Metrics(max_peer_labels=4, max_tracked=16, clock=clock)
    total = 0
    for i in range(5000):
        peer = f"0x{i:040x}"
        m.connection_opened(peer, True)
        m.chunk_served(peer, 1000 + i, 0.001)
        m.chunk_rejected(peer, "corrupt")
        m.connection_closed(peer, True)
        total += 1000 + i
        clock.now += 0.01
    s = scrape(m)
    sent = by_peer(s, "bcai_peer_sent_bytes_total")
    assert OTHER in sent and len(sent) <= 5
    assert sum(sent.values()) == total == value(s, "bcai_sent_bytes_total")
    assert sum(by_peer(s, "bcai_peer_chunks_rejected_total").values()) == 5000
    for name in {k[0] for k in s if k[0].startswith("bcai_peer_")}:
        assert len(by_peer(s, name)) <= 5, name
    assert value(s, "bcai_peers_tracked") <= 4 + 2 * 16 + 1
    snap = m.snapshot()
    assert snap["peers_tracked"] <= 4 + 2 * 16 + 1 and len(snap["peers"]) <= 50
    assert m.errors == 0
    # a peer address of any length becomes a bounded label value
    m.chunk_served("x" * 10_000, 1, 0.001)
    assert all(len(dict(k[1]).get("peer", "")) <= 64 for k in scrape(m))


def test_heavy_peer_takes_a_slot_and_every_series_stays_monotonic() -> None:
    clock = Clock()
    m = Metrics(max_peer_labels=2, max_tracked=8, clock=clock)
    m.chunk_received(A, 10_000, 0.01)
    m.chunk_received(B, 20_000, 0.01)
    m.chunk_received(C, 5 << 20, 0.01)  # no slot left: counted under "other"
    first = scrape(m)  # the scrape rebalances: C beats A (the weakest) by far
    got = by_peer(first, "bcai_peer_received_bytes_total")
    assert set(got) == {B, C, OTHER}
    assert got[C] == 0  # its series starts at its promotion
    assert got[OTHER] == 10_000 + (5 << 20)  # C's earlier bytes stay in other, A's moved there
    m.chunk_received(C, 1000, 0.01)
    m.chunk_received(A, 1000, 0.01)
    second = scrape(m)
    again = by_peer(second, "bcai_peer_received_bytes_total")
    assert again[C] == 1000 and again[OTHER] == got[OTHER] + 1000
    for peer in got:
        assert again[peer] >= got[peer], peer
    assert sum(again.values()) == value(second, "bcai_received_bytes_total")
    # a small newcomer does not churn the slots (hysteresis)
    m.chunk_received("0x" + "d" * 40, 2000, 0.01)
    assert set(by_peer(scrape(m), "bcai_peer_received_bytes_total")) == {B, C, OTHER}
    # the snapshot keeps every tracked peer's own totals, labelled or not
    rows = {r["address"]: r for r in m.snapshot()["peers"]}
    assert rows[A]["bytes_in"] == 11_000 and not rows[A]["labelled"]
    assert rows[C]["bytes_in"] == (5 << 20) + 1000 and rows[C]["labelled"]


def test_rates_p95_and_ratio_follow_time() -> None:
    clock = Clock()
    m = Metrics(clock=clock)
    for i in range(2000):  # 100 chunks/s of 10 kB for 20 s: 1 MB/s in and out
        m.chunk_received(A, 10_000, (i % 100 + 1) / 1000)  # 1..100 ms
        m.chunk_served(B, 10_000, 0.002)
        clock.now += 0.01
    snap = m.snapshot()
    assert snap["rate_in"] == pytest.approx(1e6, rel=0.05)
    assert snap["rate_out"] == pytest.approx(1e6, rel=0.05)
    assert snap["receive_p95_ms"] == pytest.approx(95.0)
    assert snap["serve_p95_ms"] == pytest.approx(2.0)
    assert snap["chunk_success_ratio"] == 1.0
    for _ in range(100):
        m.chunk_rejected(A, "timeout")
    assert m.snapshot()["chunk_success_ratio"] < 1.0
    clock.now += 61  # idle: rates decay, the p95 window empties
    snap = m.snapshot()
    assert snap["rate_in"] < 1e6 * 1e-4 and snap["receive_p95_ms"] is None
    assert math.isnan(value(scrape(m), "bcai_chunk_receive_p95_seconds"))


def test_snapshot_is_json_and_has_the_status_peer_fields() -> None:
    m = Metrics()
    m.connection_opened(C, True)  # connected, no traffic yet: still listed
    m.chunk_received(A, 512, 0.003)
    m.chunk_served(B, 1024, 0.001, 512)  # compressed 2:1; the 512 received went raw
    snap = json.loads(json.dumps(m.snapshot(), allow_nan=False))
    rows = {r["address"]: r for r in snap["peers"]}
    need = {"address", "inbound", "bytes_in", "bytes_out", "chunks_ok", "chunks_bad", "latency_ms"}
    assert need <= set(rows[A]) and need <= set(rows[C])
    assert rows[C]["inbound"] and rows[C]["bytes_in"] == 0
    assert rows[A]["latency_ms"] == pytest.approx(3.0) and rows[A]["chunks_ok"] == 1
    assert snap["compression_ratio"] == pytest.approx((512 + 1024) / (512 + 512))
    assert snap["bytes_in"] == 512 and snap["wire_bytes_in"] == 512
    assert snap["wire_bytes_out"] == 512
    assert snap["connections"] == {"inbound": 1, "outbound": 0}


async def test_real_loopback_transfer_is_measured(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    src, root, data = store_with(tmp_path / "a", 5 * 256 * 1024 + 17, chunk_size=256 * 1024)
    dst = Store.open(tmp_path / "b", durable=False)
    served, received = Metrics(), Metrics()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider_id, observer=served, task_status=task_status
                )
            )
            await fetch(
                dst,
                receiver_id,
                root,
                [PeerAddr(host, port, provider_id.address)],
                observer=received,
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    r, s = scrape(received), scrape(served)
    assert value(r, "bcai_received_bytes_total") == len(data)
    assert value(r, "bcai_chunks_received_total") == 6
    assert value(r, "bcai_peer_received_bytes_total", peer=provider_id.address) == len(data)
    assert value(r, "bcai_chunk_receive_seconds_count") == 6
    assert value(r, "bcai_connections_opened_total", direction="outbound") >= 1
    assert value(r, "bcai_requests_outstanding") == 0
    assert value(s, "bcai_sent_bytes_total") == len(data)
    assert value(s, "bcai_peer_sent_bytes_total", peer=receiver_id.address) == len(data)
    assert value(s, "bcai_chunk_serve_seconds_count") == 6
    assert value(s, "bcai_connections_opened_total", direction="inbound") >= 1
    assert value(r, "bcai_metrics_errors_total") == 0 == value(s, "bcai_metrics_errors_total")
    snap = received.snapshot()
    assert snap["peers"][0]["address"] == provider_id.address
    assert snap["peers"][0]["chunks_ok"] == 6 and snap["receive_p95_ms"] is not None


def test_wire_bytes_are_counted_beside_content_bytes_per_direction() -> None:
    m = Metrics()
    m.chunk_received(A, 1000, 0.01, 250)  # a frame of a quarter of the chunk
    m.chunk_received(A, 1000, 0.01)  # no wire size given: sent as it is
    m.chunk_served(B, 4000, 0.01, 1000)
    m.chunk_served(B, 10, 0.01, -1)  # a bad wire size: the chunk counts, raw; an error
    s = scrape(m)
    assert value(s, "bcai_chunk_wire_bytes_total", direction="in") == 1250
    assert value(s, "bcai_chunk_content_bytes_total", direction="in") == 2000
    assert value(s, "bcai_chunk_wire_bytes_total", direction="out") == 1010
    assert value(s, "bcai_chunk_content_bytes_total", direction="out") == 4010
    assert value(s, "bcai_received_bytes_total") == 2000  # the content counters are unchanged
    assert value(s, "bcai_compression_ratio") == pytest.approx(6010 / 2260)
    assert m.errors == 1
    assert value(scrape(Metrics()), "bcai_compression_ratio") == 1.0  # nothing counted yet


async def test_a_compressed_loopback_transfer_shows_its_saving(tmp_path: Path) -> None:
    """Real TCP, real stores, the provider compressing: the wire counters of both ends equal
    what the transfer itself counted, and are well below the content."""
    row = b'{"id": %d, "user": "u%05d", "ok": true}\n'
    rows = b"".join(row % (i, i % 977) for i in range(40000))
    src = Store.open(tmp_path / "a", durable=False)
    m = src.add_bytes(rows, chunk_size=256 * 1024)
    dst = Store.open(tmp_path / "b", durable=False)
    provider_id, receiver_id = make_identity(), make_identity()
    served, received = Metrics(), Metrics()
    prov = Provider(src, provider_id.address, observer=served)
    with trio.fail_after(30):
        result = await fetch_served(
            src,
            provider_id,
            dst,
            receiver_id,
            m.root,
            serve={"provider": prov},
            observer=received,
            compress=True,
        )
    assert read_all(dst, m.root) == rows
    r, s = scrape(received), scrape(served)
    assert value(r, "bcai_chunk_content_bytes_total", direction="in") == len(rows)
    assert value(s, "bcai_chunk_content_bytes_total", direction="out") == len(rows)
    wire_in = value(r, "bcai_chunk_wire_bytes_total", direction="in")
    wire_out = value(s, "bcai_chunk_wire_bytes_total", direction="out")
    assert wire_in == result.wire_bytes == wire_out == prov.stats.wire_bytes
    assert wire_in < 0.5 * len(rows)
    assert value(r, "bcai_compression_ratio") > 2.0 and value(s, "bcai_compression_ratio") > 2.0
