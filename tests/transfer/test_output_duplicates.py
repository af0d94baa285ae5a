"""A chunk the store already took is never written to ``-o`` again from a second copy.

In the endgame two peers may deliver the same chunk. The store's ``put`` verifies the second
copy too (a lie raises ``ChunkMismatch``: its sender is blamed, never credited, session 11) and
writes no copy of a chunk it already holds, so a second copy never reaches the output file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.content import Manifest, hash_file
from node.store import ChunkMismatch, Store
from node.transfer._fetch import _Fetch
from node.transfer._output import OutputFile

CS = 256 * 1024


def test_a_second_copy_of_a_stored_chunk_does_not_reach_the_output(tmp_path: Path) -> None:
    data = os.urandom(2 * CS)
    src = tmp_path / "src"
    src.write_bytes(data)
    res = hash_file(src, chunk_size=CS, collect_roots=True)
    assert res.chunk_roots is not None
    m = Manifest(root=res.root, size=len(data), chunk_size=CS)
    with Store.open(tmp_path / "store", durable=False) as store:
        store.begin_partial(m, iter(res.chunk_roots))
        f = _Fetch.__new__(_Fetch)  # only what _store_chunk touches
        f.output = OutputFile(tmp_path / "out.bin", m, durable=False, store=store)
        f.writer = store.partial_writer(m.root, copy=f.output)  # as _Fetch._transfer sets it up
        f.sched = object()  # type: ignore[assignment]  # read for compressed chunks only
        try:
            f._store_chunk(0, bytearray(data[:CS]))
            f.writer.flush()  # committed: present
            with pytest.raises(ChunkMismatch):  # the duplicate, a lie: checked and refused
                f._store_chunk(0, bytearray(b"\x00" * CS))
            f._store_chunk(0, bytearray(data[:CS]))  # a true duplicate: taken, not written
            f._store_chunk(1, bytearray(data[CS:]))
            f.writer.flush()
            f.output.finish(store)
        finally:
            f.output.close()
    assert (tmp_path / "out.bin").read_bytes() == data
