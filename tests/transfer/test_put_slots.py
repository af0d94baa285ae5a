"""The put slots hold at most ``PUT_BUFFER_BYTES`` of chunks (issue #11): a content of 4 MiB
chunks is verified and written 3 chunks at a time whatever ``put_workers`` says, so the
receiver's memory does not grow 4x with the chunk size; 1 MiB chunks keep every slot."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from node.store import Store
from node.transfer import _fetch

from .helpers import fetch_served, make_identity, read_all, store_with

MiB = 1 << 20


class Busy:
    """How many ``_store_chunk`` calls (the put workers) ran at once, at most."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.most = 0
        lock = threading.Lock()
        real = _fetch._Fetch._store_chunk

        def store_chunk(run: Any, *args: Any) -> Any:
            with lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.2)  # long enough for every free slot to fill
                return real(run, *args)
            finally:
                with lock:
                    self.now -= 1

        monkeypatch.setattr(_fetch._Fetch, "_store_chunk", store_chunk)


@pytest.mark.parametrize(("chunk", "cap"), [(4 * MiB, 3), (2 * MiB, 6), (MiB, 8)])
async def test_put_slots_hold_at_most_12_mib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, cap: int
) -> None:
    assert 12 * MiB == _fetch.PUT_BUFFER_BYTES
    busy = Busy(monkeypatch)
    src, root, data = store_with(tmp_path / "a", 12 * chunk, chunk_size=chunk)
    dst = Store.open(tmp_path / "b", durable=False)
    try:
        with trio.fail_after(60):
            await fetch_served(src, make_identity(), dst, make_identity(), root, put_workers=8)
        assert read_all(dst, root) == data
    finally:
        src.close()
        dst.close()
    assert busy.most <= cap
    assert busy.most > (3 if chunk == MiB else cap - 1)  # 1 MiB chunks use more than 3 slots
