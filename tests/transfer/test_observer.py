"""TransferObserver hooks over a real loopback transfer (fetch + serve_node, real LevelDB)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import trio

from node.store import Store
from node.transfer import NULL_OBSERVER, PeerAddr, Provider, TransferObserver, fetch, serve_node

from .helpers import make_identity, read_all, store_with

CHUNK = 256 * 1024


class _Corrupting(Provider):
    """Flips one byte of every chunk it sends; sets ``reading`` when it reads its first."""

    def __init__(self, *args: object, reading: trio.Event, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reading = reading

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        self.reading.set()
        got = await super()._read(root, index, after)
        if isinstance(got, Exception):
            return got
        raw = bytearray(got)
        raw[len(raw) // 2] ^= 0xFF
        return bytes(raw)


class _AfterCorrupt(Provider):
    """Reads nothing until the corrupting provider has read a chunk to send, so the test does
    not depend on which provider the scheduler (or the machine's load) favours first."""

    def __init__(self, *args: object, gate: trio.Event, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = gate

    async def _read(self, root: bytes, index: int, after: Sequence[int] = ()) -> bytes | Exception:
        await self.gate.wait()
        return await super()._read(root, index, after)


class Recorder:
    """Records every hook call; checks each one's arguments as it comes."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.received: dict[str, int] = Counter()
        self.served: dict[str, int] = Counter()
        self.rejected: list[tuple[str, str]] = []
        self.outstanding: list[tuple[str, int, int]] = []
        self.opened: list[tuple[str, bool]] = []
        self.closed: list[tuple[str, bool]] = []

    def chunk_received(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        assert nbytes > 0 and seconds >= 0
        assert wire_bytes is not None and 0 < wire_bytes <= nbytes  # never more than the chunk
        self.calls["received"] += 1
        self.received[peer] += nbytes

    def chunk_rejected(self, peer: str, reason: str) -> None:
        assert reason in ("corrupt", "timeout")
        self.rejected.append((peer, reason))

    def requests_outstanding(self, peer: str, count: int, window: int) -> None:
        assert count >= 0 and window >= 1
        self.outstanding.append((peer, count, window))

    def chunk_served(
        self, peer: str, nbytes: int, seconds: float, wire_bytes: int | None = None
    ) -> None:
        assert nbytes > 0 and seconds >= 0
        assert wire_bytes is not None and 0 < wire_bytes <= nbytes  # never more than the chunk
        self.calls["served"] += 1
        self.served[peer] += nbytes

    def connection_opened(self, peer: str, inbound: bool) -> None:
        self.opened.append((peer, inbound))

    def connection_closed(self, peer: str, inbound: bool) -> None:
        self.closed.append((peer, inbound))


def test_recorder_and_null_observer_satisfy_the_protocol() -> None:
    rec: TransferObserver = Recorder()
    null: TransferObserver = NULL_OBSERVER
    for obs in (rec, null):
        obs.chunk_received("0x1", 1, 0.0, 1)
        obs.connection_closed("0x1", True)


async def test_hooks_count_a_real_transfer(tmp_path: Path) -> None:
    provider_id, receiver_id = make_identity(), make_identity()
    size = 9 * CHUNK + 77
    src, root, data = store_with(tmp_path / "a", size, chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    served, got = Recorder(), Recorder()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(
                lambda task_status: serve_node(
                    src, provider_id, observer=served, task_status=task_status
                )
            )
            result = await fetch(
                dst,
                receiver_id,
                root,
                [PeerAddr(host, port, provider_id.address)],
                observer=got,
                initial_window=2,
            )
            with trio.fail_after(5):  # the provider notices the close on its own time
                while not served.closed:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    p, r = provider_id.address, receiver_id.address
    # receiver side: every verified chunk once, bytes exact, nothing rejected
    assert got.calls["received"] == result.fetched_chunks == 10
    assert got.received == {p: size}
    assert got.rejected == []
    assert got.opened == [(p, False)] and got.closed == [(p, False)]
    # in flight: never above the window, reached 2+ (window 2 at start), back to 0 at the end
    assert got.outstanding and all(a == p and c <= w for a, c, w in got.outstanding)
    assert max(c for _, c, _ in got.outstanding) >= 2
    assert got.outstanding[-1][1] == 0
    # provider side: every chunk served once (one source: no endgame copies), to the receiver
    assert served.calls["served"] == 10 and served.served == {r: size}
    assert served.opened == [(r, True)] and served.closed == [(r, True)]
    assert served.calls["received"] == 0 and got.calls["served"] == 0


async def test_corrupt_chunks_are_reported_per_peer(tmp_path: Path) -> None:
    good_id, bad_id, receiver_id = make_identity(), make_identity(), make_identity()
    size = 12 * CHUNK
    good, root, data = store_with(tmp_path / "good", size, chunk_size=CHUNK)
    (tmp_path / "bad").mkdir()
    bad = Store.open(tmp_path / "bad" / "store", durable=False)
    bad.add_file(tmp_path / "good" / "src.bin", chunk_size=CHUNK)
    dst = Store.open(tmp_path / "b", durable=False)
    got = Recorder()
    # The good provider waits for the bad one's first read (and holds at most 2 requests
    # meanwhile), so the bad one is asked for chunks however fast the good one would be.
    corrupted = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            gh, gp = await nursery.start(
                lambda task_status: serve_node(
                    good,
                    good_id,
                    provider=_AfterCorrupt(good, good_id.address, gate=corrupted),
                    task_status=task_status,
                )
            )
            bh, bp = await nursery.start(
                lambda task_status: serve_node(
                    bad,
                    bad_id,
                    provider=_Corrupting(bad, bad_id.address, reading=corrupted),
                    task_status=task_status,
                )
            )
            result = await fetch(
                dst,
                receiver_id,
                root,
                [PeerAddr(bh, bp, bad_id.address), PeerAddr(gh, gp, good_id.address)],
                observer=got,
                initial_window=2,
            )
            nursery.cancel_scope.cancel()
    assert read_all(dst, root) == data
    assert (bad_id.address, "corrupt") in got.rejected
    assert {a for a, _ in got.rejected} == {bad_id.address}
    assert got.received.get(bad_id.address, 0) == result.providers[bad_id.address].bytes == 0
    assert got.received[good_id.address] == size
    assert sorted(got.opened) == sorted(got.closed)
    assert {a for a, _ in got.opened} == {good_id.address, bad_id.address}
