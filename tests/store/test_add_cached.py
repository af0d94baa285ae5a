"""``add_cached``: an add leaves its first ``add_cached`` bytes in the page cache and writes the
rest with ``O_DIRECT`` (issue #11: a provider serving a 100 MiB content it had just added read
every chunk back from the disk, ~20 % slower than the large-file rate).

Real chunk files on the test's file system; whether a file is in the page cache is the
kernel's answer (a whole-file ``RWF_NOWAIT`` read). Skipped where ``O_DIRECT`` or the probe does
not apply (tmpfs keeps every page: there is nothing to leave out).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.config import NodeConfig, config_from_dict
from node.content import chunk_root
from node.store import Store

from .conftest import CS
from .test_nowait_reads import _is_resident

CHUNKS = 4


def _add(tmp_path: Path, add_cached: int) -> tuple[Store, list[Path], bytes]:
    data = os.urandom(CHUNKS * CS)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    store = Store.open(tmp_path / "s", durable=False, add_cached=add_cached)
    root = store.add_file(src, chunk_size=CS).root
    files = [store._files.path(chunk_root(data[i * CS : (i + 1) * CS])) for i in range(CHUNKS)]
    if not store._files.direct or not hasattr(os, "RWF_NOWAIT"):
        store.close()
        pytest.skip("O_DIRECT or RWF_NOWAIT does not apply on this file system")
    return store, files, root


@pytest.mark.parametrize(
    ("add_cached", "cached"),
    [(0, 0), (CS, 1), (2 * CS + 1, 2), (CHUNKS * CS, CHUNKS), (1 << 40, CHUNKS)],
)
def test_the_first_add_cached_bytes_stay_in_the_page_cache(
    tmp_path: Path, add_cached: int, cached: int
) -> None:
    store, files, root = _add(tmp_path, add_cached)
    with store:
        # a chunk is cached when it lies wholly inside the first add_cached bytes
        assert [_is_resident(f) for f in files] == [i < cached for i in range(CHUNKS)]
        # and the content reads back whole either way
        assert store.verify(root).ok


def test_node_config_sets_add_cached() -> None:
    assert NodeConfig().add_cached == 256 << 20  # on by default
    assert config_from_dict({"node": {"add_cached": "64MiB"}}).node.add_cached == 64 << 20
    assert config_from_dict({"node": {"add_cached": 0}}).node.add_cached == 0
    assert config_from_dict({"node": {"add_cached": "none"}}).node.add_cached == 0
