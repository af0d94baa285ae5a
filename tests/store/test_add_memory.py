"""An add reads ahead of its hashers at most ``AHEAD_BYTES`` of chunks, whatever the chunk size
(session 11: with 4 MiB chunks two per worker were 32 MiB of buffers, and a daemon adding a
100 MiB content peaked at 114-118 MiB). Counted on a real add: the distinct buffers the
hashers are handed are the buffers the add allocated."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from node.store import Store, _add

MiB = 1 << 20


@pytest.mark.parametrize(("chunk", "most"), [(4 * MiB, 4), (MiB, 8), (256 * 1024, 8)])
def test_an_add_holds_at_most_ahead_bytes_of_chunks_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, most: int
) -> None:
    assert 16 * MiB == _add.AHEAD_BYTES
    assert _add.pending_chunks(4, chunk) == most
    buffers: set[int] = set()
    lock = threading.Lock()
    real = _add._hash_and_write

    def counting(store: Store, data: memoryview, *args: object) -> object:
        with lock:
            buffers.add(id(data.obj))
        return real(store, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_add, "_hash_and_write", counting)
    data = os.urandom(12 * chunk)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with Store.open(tmp_path / "s", durable=False, workers=4) as store:
        root = store.add_file(src, chunk_size=chunk).root
        assert b"".join(store.iter_verified(root)) == data
    # the pending chunks, plus the one being read when the oldest is drained
    assert len(buffers) <= most + 1
