"""Small updates through a running node: a fresh 1 MiB (16 MiB, 100 MiB) content per get.

Two ``bcai serve`` daemons on 127.0.0.1: a provider, which gets each content through its API
(untimed), and a receiver, whose API does the timed gets. Each size is measured two ways:

- ``api``: one ``POST /api/v1/get`` through :class:`node.app.RemoteNode` (the CLI's own thin
  client, stdlib ``http.client``), timed from the request to the parsed result: connection to
  the provider, manifest, chunks, verification, ``-o`` file, receipt, NDJSON answer;
- ``cli``: ``bcai get ROOT --peer P -o F`` as a process, timed from spawn to exit (interpreter
  start-up, imports, the same API call, the result line).

Every get is of a content the receiver has never seen (a fresh random file each time), so
nothing is "already complete"; the output file is checked against the source (untimed). The
receiver daemon runs with ``serve --no-fsync`` (as benchmarks/transfer.py's receivers, scp
and libtorrent: no fsync); ``--fsync`` measures the durable store.

    .venv/bin/python benchmarks/small.py [--sizes 1m,16m,100m] [--runs 20] [--cli-runs 10]
        [--chunk-size auto] [--fsync] [--out benchmarks/results/small.json]

Reports, per size and way: median, p95 and min wall, the daemon's own ``elapsed`` (inside the
fetch) and MB/s at the median; and both daemons' peak RSS (``VmHWM``) at the end, and the
receiver's ``connection_pool`` counters (the receiver keeps its connection to the provider
between gets and answers before the last ReceiptAck: docs/transfer.md, "Small gets through a
running node"; the warm-up gets dial it).
"""

from __future__ import annotations

import argparse
import hashlib
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

from benchmarks._daemon import Daemon as _Daemon  # noqa: E402
from benchmarks._util import precompile  # noqa: E402

SIZES = {"1m": 1 << 20, "4m": 4 << 20, "16m": 16 << 20, "100m": 100 << 20}
ENV = {
    **os.environ,
    "BCAI_INSECURE_FAST_KDF": "1",
    "BCAI_PASSPHRASE": "bench",
    "BCAI_LOG_LEVEL": "warning",
}


def Daemon(data: Path, *extra: str) -> _Daemon:
    return _Daemon(data, *extra, env=ENV)


def _bcai(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "node.cli", "-d", str(data), "--json", *args]


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * len(s)) - 1))]


def _fresh(work: Path, size: int, n: int) -> tuple[Path, str]:
    src = work / f"src-{size}-{n}.bin"
    data = os.urandom(size)
    src.write_bytes(data)
    return src, hashlib.sha256(data).hexdigest()


def _check(dst: Path, digest: str) -> None:
    h = hashlib.sha256()
    with open(dst, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != digest:
        raise SystemExit(f"{dst}: wrong bytes")


def measure(
    prov: Daemon,
    recv: Daemon,
    work: Path,
    size: int,
    way: str,
    runs: int,
    chunk: int | None,
    link: bool = False,
) -> list[dict[str, Any]]:
    out = []
    for n in range(runs):
        src, digest = _fresh(work, size, n)
        root = bytes.fromhex(prov.api.add(src, chunk_size=chunk)["root"][2:])
        dst = work / "dst.bin"
        dst.unlink(missing_ok=True)
        if way == "api":
            t0 = time.perf_counter()
            res = recv.api.fetch(root, [prov.peer], output=dst, link=link)
            wall = time.perf_counter() - t0
        else:
            cmd = _bcai(recv.data, "get", "0x" + root.hex(), "--peer", prov.peer, "-o", str(dst))
            cmd += ["--link"] if link else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"bcai get failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
            res = json.loads(proc.stdout.splitlines()[-1])
        _check(dst, digest)
        src.unlink()
        # keep the stores small: the receiver drops what it fetched, the provider its copy
        recv.api.rm(root)
        prov.api.rm(root)
        out.append({"way": way, "size": size, "wall": wall, "elapsed": res.get("elapsed")})
    return out


def summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall"] for r in recs]
    inside = [r["elapsed"] for r in recs if r["elapsed"] is not None]
    med = statistics.median(walls)
    return {
        "runs": len(walls),
        "median_ms": 1e3 * med,
        "p95_ms": 1e3 * _p95(walls),
        "min_ms": 1e3 * min(walls),
        "daemon_elapsed_median_ms": 1e3 * statistics.median(inside) if inside else None,
        "MBps_at_median": recs[0]["size"] / med / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1m,16m,100m", help=f"of {', '.join(SIZES)}")
    ap.add_argument("--runs", type=int, default=20, help="API gets per size")
    ap.add_argument("--cli-runs", type=int, default=10, help="CLI gets per size (0: none)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed API gets first")
    ap.add_argument(
        "--chunk-size",
        default="auto",
        help="the provider's add chunk size (default auto, the node's own: D41)",
    )
    ap.add_argument("--fsync", action="store_true", help="durable receiver store")
    ap.add_argument(
        "--link",
        action="store_true",
        help="get -o FILE --link (the store refers to FILE; compare with transfer.py's "
        "bcai_daemon_link); default: the store keeps its own copy",
    )
    ap.add_argument(
        "--add-cached",
        help="the provider's [node] add_cached (bytes of each add left in the page cache; "
        "0: every chunk written O_DIRECT, so each get reads from the disk); default: the node's",
    )
    ap.add_argument("--work", type=Path, help="scratch dir (default: a new temp dir, removed)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "small.json")
    a = ap.parse_args()
    from node.config import parse_size

    chunk = None if a.chunk_size == "auto" else parse_size(a.chunk_size)
    precompile()
    work = a.work or Path(tempfile.mkdtemp(prefix="bcai-small-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("prov", "recv"):
        shutil.rmtree(work / name, ignore_errors=True)
        subprocess.run(_bcai(work / name, "init"), env=ENV, check=True, capture_output=True)
    if a.add_cached is not None:
        from node.config import load_config, save_config

        cfg = load_config(work / "prov")
        cfg.node.add_cached = parse_size(a.add_cached)
        save_config(work / "prov", cfg)
    started: list[Daemon] = []
    results: dict[str, Any] = {"sizes": {}, "link": a.link, "fsync": a.fsync}
    results["add_cached"] = a.add_cached
    try:
        prov = Daemon(work / "prov")
        started.append(prov)
        recv = Daemon(work / "recv", *(() if a.fsync else ("--no-fsync",)))
        started.append(recv)
        measure(prov, recv, work, SIZES["1m"], "api", a.warmup, chunk)
        for name in a.sizes.split(","):
            size = SIZES[name]
            row = {}
            for way, runs in (("api", a.runs), ("cli", a.cli_runs)):
                if runs <= 0:
                    continue
                recs = measure(prov, recv, work, size, way, runs, chunk, a.link)
                row[way] = summary(recs)
                s = row[way]
                print(
                    f"{name:5s} {way}: median {s['median_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f}  "
                    f"min {s['min_ms']:7.1f}  (daemon's fetch {s['daemon_elapsed_median_ms']:.1f}"
                    f" ms)  {s['MBps_at_median']:7.1f} MB/s",
                    flush=True,
                )
            results["sizes"][name] = row
        results["peak_rss_mib"] = {"provider": prov.peak_rss_mib(), "receiver": recv.peak_rss_mib()}
        print("peak RSS MiB:", results["peak_rss_mib"])
        results["receiver_connection_pool"] = recv.api.status().get("connection_pool")
        print("receiver connection pool:", results["receiver_connection_pool"])
    finally:
        for daemon in started:
            daemon.stop()
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
