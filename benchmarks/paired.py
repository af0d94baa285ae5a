"""Paired gets: the same kind of get through a receiver daemon of each code version, round by round.

On a noisy 2-core VM two benchmark runs minutes apart differ by more than a change of a few
milliseconds; this compares versions under the same conditions instead. One provider daemon
(from the first tree) and one receiver daemon per tree, all on 127.0.0.1. Every round adds one
fresh random content per receiver (untimed) and each receiver gets its own through its API,
the order rotating (and reversing every other cycle) between rounds. Each receiver gets a
content of its own: receivers of one content would become each other's swarm peers and serve
each other on the same cores.

    git worktree add /tmp/old <rev> && cp node/content/_ctree.so /tmp/old/node/content/
    .venv/bin/python benchmarks/paired.py [--rounds 24] [--size-mib 100] [--copy] /tmp/old .

Each TREE is a checkout of this repository (its ``node`` package is what its daemon runs; the
interpreter is this one). Prints, per tree, the median, mean, p10 and p90 wall of the API get
(request to parsed result), and for each tree after the first the median of the per-round
differences against the first and in how many rounds it was slower.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from node.app import RemoteNode  # noqa: E402

ENV = {
    **os.environ,
    "BCAI_INSECURE_FAST_KDF": "1",
    "BCAI_PASSPHRASE": "bench",
    "BCAI_LOG_LEVEL": "warning",
}


class Serve:
    """``bcai serve`` of one tree on a fresh data dir: its API client and process."""

    def __init__(self, data: Path, tree: Path, *extra: str) -> None:
        base = [sys.executable, "-m", "node.cli", "-d", str(data), "--json"]
        subprocess.run([*base, "init"], env=ENV, check=True, capture_output=True, cwd=tree)
        self.log = open(data.parent / f"{data.name}.log", "w")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [*base, "serve", "--listen", "127.0.0.1:0", "--no-chain", *extra],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=tree,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bcai serve in {tree} did not start: see {self.log.name}")
        info: dict[str, Any] = json.loads(line)
        self.peer = f"{info['listen']}/{info['address']}"
        token = (data / "run" / "api.token").read_text().strip()
        self.api = RemoteNode(info["api"], token, data_dir=data)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path, help="checkouts to compare (first: baseline)")
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--size-mib", type=int, default=100)
    ap.add_argument("--copy", action="store_true", help="get -o without --link")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds before each timed get")
    a = ap.parse_args()
    trees = [t.resolve() for t in a.trees]
    size, link = a.size_mib << 20, not a.copy
    work = Path(tempfile.mkdtemp(prefix="bcai-paired-"))
    daemons: list[Serve] = []
    try:
        prov = Serve(work / "prov", trees[0])
        daemons.append(prov)
        recv = [Serve(work / f"recv{k}", t, "--no-fsync") for k, t in enumerate(trees)]
        daemons += recv
        times: list[list[float]] = [[] for _ in trees]
        for n in range(a.rounds + 1):  # round 0 warms every receiver up (dial, imports)
            roots = []
            for k in range(len(trees)):
                src = work / f"src{k}.bin"
                src.write_bytes(os.urandom(size if n else 1 << 20))
                roots.append(bytes.fromhex(prov.api.add(src)["root"][2:]))
            order = list(range(len(trees)))
            order = order[n % len(order) :] + order[: n % len(order)]
            if (n // len(order)) % 2:
                order.reverse()
            for k in order:
                dst = work / f"dst{k}.bin"
                dst.unlink(missing_ok=True)
                time.sleep(a.pause)
                t0 = time.perf_counter()
                recv[k].api.fetch(roots[k], [prov.peer], output=dst, link=link)
                if n:
                    times[k].append((time.perf_counter() - t0) * 1e3)
            for k, root in enumerate(roots):  # disk stays bounded: nothing kept between rounds
                (work / f"dst{k}.bin").unlink(missing_ok=True)
                recv[k].api.rm(root, force=True)
                prov.api.rm(root, force=True)
        way = "linked" if link else "copying"
        print(f"{a.rounds} rounds, {a.size_mib} MiB, {way}: API get wall, ms")
        for tree, t in zip(trees, times, strict=True):
            print(
                f"{tree}: median {statistics.median(t):.1f}  mean {statistics.mean(t):.1f}  "
                f"p10 {_pct(t, 0.1):.1f}  p90 {_pct(t, 0.9):.1f}"
            )
        for tree, t in zip(trees[1:], times[1:], strict=True):
            diff = [x - y for x, y in zip(t, times[0], strict=True)]
            print(
                f"{tree} - {trees[0]}: median paired difference {statistics.median(diff):+.1f} "
                f"ms, slower in {sum(d > 0 for d in diff)} of {len(diff)} rounds"
            )
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
