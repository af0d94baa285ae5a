"""The swarm benchmark, small: an origin and 4 receivers, all ``bcai serve`` processes, the
receivers knowing only the root and the origin. Every receiver gets the right bytes and the
origin uploads less than once per receiver (the rest goes peer to peer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_small_swarm_spares_the_origin(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import swarm  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    args = argparse.Namespace(
        size=16,
        receivers=4,
        chunk_size="256KiB",
        limit_rate=None,
        no_baseline=True,
        max_origin=None,
        workdir=str(tmp_path / "swarm"),
        keep=True,
    )
    result = swarm.run(args)
    assert result["all_ok"], result["per_receiver"]
    assert all(p["sha256_ok"] for p in result["per_receiver"])
    size = result["size_bytes"]
    assert result["origin_upload_bytes"] >= size  # every byte left the origin at least once
    # At this size, on a loaded 2-core machine, a swarm of 4 spares the origin 10-45% (seen
    # 2.2x-3.5x of the content); the acceptance bound (<= 3x for 16 receivers of 256 MiB) is
    # the full benchmark's (docs/benchmarks.md, "Swarm"). Here: strictly less than one upload
    # per receiver, and some bytes went peer to peer.
    assert result["origin_upload_bytes"] < 4 * size, result
    assert result["peer_to_peer_bytes"] > 0, result
