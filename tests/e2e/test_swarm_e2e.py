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
        # 4 MB/s each: a transfer lasts ~4 s, long enough for peer exchange and Have updates
        # to matter; unthrottled on loopback 16 MiB is gone in 0.2 s, before any peer is learned
        limit_rate="4M",
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
    # At 4 MB/s per receiver the origin sends ~2.5x the content (quiet machine, twice); the
    # acceptance bound (<= 3x for 16 receivers of 256 MiB) is the full benchmark's
    # (docs/benchmarks.md, "Swarm"). Here, with room for a loaded CI machine: <= 3.5x.
    assert result["origin_upload_bytes"] <= 3.5 * size, result
    assert result["peer_to_peer_bytes"] > 0, result
