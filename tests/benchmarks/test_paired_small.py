"""benchmarks/paired.py at a tiny size: real `bcai serve` daemons (a provider and one receiver
per tree), real TCP. Checks that every round is timed for every tree and the paired summary is
printed (not the node's speed: two receivers of this same tree on a loaded machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8")


@pytest.mark.parametrize("way", ["--link", "--copy"])
def test_paired_gets_of_two_trees(way: str) -> None:
    extra = ["--copy"] if way == "--copy" else []
    proc = subprocess.run(
        [sys.executable, "benchmarks/paired.py", "--rounds", "2", "--size-mib", "2",
         "--pause", "0", *extra, ".", str(REPO)],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert ("copying" if extra else "linked") in out.splitlines()[0]
    medians = re.findall(r": median ([\d.]+)\s+mean", out)
    assert len(medians) == 2 and all(0 < float(m) < 30_000 for m in medians), out
    assert re.search(r"median paired difference [-+][\d.]+ ms, slower in [0-2] of 2 rounds", out)
