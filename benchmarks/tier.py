"""The memory tier under a crowd: N receivers fetching one root from one node, several rounds.

    .venv/bin/python benchmarks/tier.py                     # 256 MiB, 16 receivers, 3 rounds
    .venv/bin/python benchmarks/tier.py --size 16 --receivers 4 --rounds 2 --json

One origin (``bcai serve``, ``[node] memory_cache`` above the content size) holds a random root;
each round, ``--receivers`` receivers (``[network] swarm = false``: every byte comes from the
origin) fetch it at the same moment with ``bcai get --peer ORIGIN`` and then drop it. Reported
per round and in all: the origin's ``bcai_cache_hits_total`` / ``bcai_cache_misses_total`` from
its /metrics (hit ratio), the chunk bytes it served, and every receiver's SHA-256 check. With
the tier off (``--memory-cache 0``) every chunk served is a disk read; with it on, only the
misses are. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swarm import Daemon, MiB, bcai, content_sha256, init


def _counter(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    import hashlib
    import os

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bcai-tier-"))
    size = int(args.size * MiB)
    daemons: list[Daemon] = []
    rounds: list[dict[str, Any]] = []
    try:
        origin_dir = work / "origin"
        init(origin_dir)
        cfg = origin_dir / "config.toml"
        text = re.sub(r"(?m)^memory_cache = .*$", "", cfg.read_text())
        cfg.write_text(text.replace("[node]", f"[node]\nmemory_cache = {args.memory_cache}", 1))
        src = work / "content.bin"
        src.write_bytes(os.urandom(size))
        want = hashlib.sha256(src.read_bytes()).hexdigest()
        root = bcai(origin_dir, "add", str(src), "--chunk-size", args.chunk_size)["root"]
        src.unlink()
        origin = Daemon(origin_dir)
        daemons.append(origin)
        metrics = origin.info["metrics"]
        recv_dirs = [work / f"r{i:02d}" for i in range(args.receivers)]
        with ThreadPoolExecutor(max_workers=min(8, args.receivers)) as pool:
            list(pool.map(lambda d: init(d, swarm=False), recv_dirs))
        for n in range(args.rounds):
            hits0 = _counter(metrics, "bcai_cache_hits_total")
            miss0 = _counter(metrics, "bcai_cache_misses_total")
            sent0 = origin.sent_bytes()
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.receivers) as pool:
                list(pool.map(lambda d: bcai(d, "get", root, "--peer", origin.peer), recv_dirs))
            wall = time.monotonic() - t0
            with ThreadPoolExecutor(max_workers=4) as pool:
                ok = all(h == want for h in pool.map(lambda d: content_sha256(d, root), recv_dirs))
            for d in recv_dirs:
                bcai(d, "rm", root, "--force")
            hits = _counter(metrics, "bcai_cache_hits_total") - hits0
            misses = _counter(metrics, "bcai_cache_misses_total") - miss0
            rounds.append(
                {
                    "round": n + 1,
                    "wall_s": round(wall, 3),
                    "served_bytes": origin.sent_bytes() - sent0,
                    "cache_hits": int(hits),
                    "cache_misses": int(misses),
                    "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
                    "all_ok": ok,
                }
            )
    finally:
        for d in daemons:
            d.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    hits = sum(r["cache_hits"] for r in rounds)
    misses = sum(r["cache_misses"] for r in rounds)
    return {
        "size_bytes": size,
        "receivers": args.receivers,
        "rounds": rounds,
        "memory_cache": args.memory_cache,
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "disk_reads": misses,
        "chunks_served": hits + misses,
        "all_ok": all(r["all_ok"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=256, help="content size in MiB (256)")
    ap.add_argument("--receivers", type=int, default=16, help="receivers (16)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    ap.add_argument("--chunk-size", default="1MiB", help="chunk size (1MiB)")
    ap.add_argument("--memory-cache", default='"512MiB"', help="origin's memory tier (TOML)")
    ap.add_argument("--workdir", help="keep everything here")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for r in result["rounds"]:
            print(
                f"round {r['round']}: {r['wall_s']} s, hit ratio {r['hit_ratio']}, "
                f"disk reads {r['cache_misses']}, ok {r['all_ok']}"
            )
        print(f"all rounds: hit ratio {result['hit_ratio']}, disk reads {result['disk_reads']}")
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
