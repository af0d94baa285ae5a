"""A crowd fetching one root serves itself: one origin, N receivers, all ``bcai serve`` daemons.

    .venv/bin/python benchmarks/swarm.py                       # 256 MiB, 16 receivers
    .venv/bin/python benchmarks/swarm.py --size 16 --receivers 4 --json
    .venv/bin/python benchmarks/swarm.py --chain     # receivers know only the root and the chain

The origin is a ``bcai serve`` holding a random root of ``--size`` MiB. Each receiver is a
``bcai serve`` of its own (own data dir, fast KDF) that knows only the root and the origin:
all receivers run ``bcai get ROOT --peer ORIGIN`` at the same moment, through their daemons, so
each one serves the chunks it has verified while it fetches and learns the others by peer
exchange (node/transfer/_swarm.py, docs/protocol.md 5.20). Reported: each receiver's wall time
and SHA-256 check (``bcai cat`` through its daemon, hashed here), the origin's upload
(``bcai_sent_bytes_total`` on its /metrics, before and after) against the content size, the
total wall time, and the baseline in the same run: the same fetch ``--receivers`` times in a
row by one receiver with ``[network] swarm = false`` (the origin alone), its content removed
between runs.

With ``--chain`` the receivers know only the root and the chain: the origin starts anvil
(``bcai chain up --anvil``), publishes the root, announces its endpoint and commits to slot 0
through its running node; each receiver attaches to that chain and runs ``bcai get ROOT`` with
no ``--peer`` (discovery: the host directory, node/app/_discovery.py).

Exit status 0 when every receiver got the right bytes (and, with ``--max-origin X``, the origin
uploaded at most X times the content size). Not part of ``make test``; a small version runs
in tests/e2e/test_swarm_e2e.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._daemon import Daemon as _Daemon  # noqa: E402

MiB = 1 << 20
ENV = {
    **os.environ,
    "BCAI_INSECURE_FAST_KDF": "1",
    "BCAI_PASSPHRASE": "swarm-bench",
    "BCAI_LOG_LEVEL": os.environ.get("BCAI_LOG_LEVEL", "warning"),
}


def bcai(data: Path, *args: str, timeout: float = 3600) -> Any:
    """``bcai -d DATA --json ARGS``: the last JSON line of its output (raises on failure)."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), "--json", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"bcai {' '.join(args)} failed ({proc.returncode}): "
            f"{proc.stdout[-800:]} {proc.stderr[-800:]}"
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def Daemon(data: Path) -> _Daemon:
    return _Daemon(data, env=ENV)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def init(data: Path, *, swarm: bool = True) -> None:
    bcai(data, "init")
    if not swarm:
        cfg = data / "config.toml"
        cfg.write_text(cfg.read_text().replace("swarm = true", "swarm = false"))


def content_sha256(data: Path, root: str) -> str:
    """SHA-256 of the verified content, streamed from ``bcai cat`` (through the daemon)."""
    h = hashlib.sha256()
    with subprocess.Popen(
        [sys.executable, "-m", "node.cli", "-d", str(data), "cat", root],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            h.update(block)
    if proc.returncode != 0:
        raise RuntimeError(f"bcai cat failed in {data}")
    return h.hexdigest()


def timed_get(data: Path, root: str, peer: str | None, extra: list[str]) -> dict[str, Any]:
    """``bcai get ROOT`` through the receiver's daemon; ``peer`` None: found on chain."""
    t0 = time.monotonic()
    out = bcai(data, "get", root, *(("--peer", peer) if peer else ()), *extra)
    out = out or {}
    return {"wall_s": time.monotonic() - t0, "summary": out}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bcai-swarm-"))
    work.mkdir(parents=True, exist_ok=True)
    size = int(args.size * MiB)
    daemons: list[Daemon] = []
    chain_up = None
    chain_mode = bool(getattr(args, "chain", False))
    try:
        origin_dir = work / "origin"
        init(origin_dir)
        src = work / "content.bin"
        with open(src, "wb") as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(os.urandom(n))
                left -= n
        want = hashlib.sha256(src.read_bytes()).hexdigest()
        added = bcai(origin_dir, "add", str(src), "--chunk-size", args.chunk_size)
        root = added["root"]
        src.unlink()
        if chain_mode:  # anvil; the origin registers the root and hosts slot 0
            port = _free_port()
            chain_up = bcai(origin_dir, "chain", "up", "--anvil", "--port", str(port))
            bcai(origin_dir, "publish", root)
        origin = Daemon(origin_dir)
        daemons.append(origin)
        if chain_mode:  # through the running node; receivers find it in the host directory
            bcai(origin_dir, "host", "announce", origin.info["listen"])
            bcai(origin_dir, "host", "commit", root, "--slot", "0", "--stake", "0.05eth")
        recv_dirs = [work / f"r{i:02d}" for i in range(args.receivers)]
        with ThreadPoolExecutor(max_workers=min(8, args.receivers)) as pool:
            list(pool.map(init, recv_dirs))
        if chain_mode:  # one at a time: each attach funds its node from the same dev account
            for d in recv_dirs:
                bcai(d, "chain", "attach", str(origin_dir))
        receivers = [Daemon(d) for d in recv_dirs]
        daemons += receivers
        extra = ["--limit-rate", args.limit_rate] if args.limit_rate else []

        # -- the swarm: every receiver at once ------------------------------------------------
        sent0 = origin.sent_bytes()
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.receivers) as pool:
            known = None if chain_mode else origin.peer
            gets = list(pool.map(lambda d: timed_get(d, root, known, extra), recv_dirs))
        swarm_wall = time.monotonic() - t0
        origin_up = origin.sent_bytes() - sent0
        with ThreadPoolExecutor(max_workers=4) as pool:
            hashes = list(pool.map(lambda d: content_sha256(d, root), recv_dirs))
        per = []
        for d, g, h in zip(recv_dirs, gets, hashes, strict=True):
            provs = g["summary"].get("providers", [])
            from_origin = sum(p["bytes"] for p in provs if p["address"] == origin.info["address"])
            from_peers = sum(p["bytes"] for p in provs if p["address"] != origin.info["address"])
            per.append(
                {
                    "receiver": d.name,
                    "wall_s": round(g["wall_s"], 3),
                    "sha256_ok": h == want,
                    "from_origin_bytes": from_origin,
                    "from_peers_bytes": from_peers,
                    "peers_used": len(provs),
                }
            )
        for r in receivers:
            r.stop()

        # -- the baseline: the same fetches one after another, from the origin alone ---------
        baseline: dict[str, Any] | None = None
        if not args.no_baseline:
            base_dir = work / "baseline"
            init(base_dir, swarm=False)
            if chain_mode:  # the origin takes receipts on that chain only
                bcai(base_dir, "chain", "attach", str(work / "origin"))
            base = Daemon(base_dir)
            daemons.append(base)
            sent0 = origin.sent_bytes()
            walls = []
            t0 = time.monotonic()
            for _ in range(args.receivers):
                walls.append(timed_get(base_dir, root, origin.peer, extra)["wall_s"])
                bcai(base_dir, "rm", root, "--force")
            baseline = {
                "wall_s": round(time.monotonic() - t0, 3),
                "per_fetch_s": [round(w, 3) for w in walls],
                "origin_upload_bytes": origin.sent_bytes() - sent0,
            }
            base.stop()
    finally:
        for d in daemons:
            d.stop()
        if chain_mode and chain_up is not None:
            subprocess.run(
                [sys.executable, "-m", "node.cli", "-d", str(work / "origin"), "chain", "down"],
                env=ENV,
                capture_output=True,
                cwd=REPO,
                timeout=60,
            )
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "size_bytes": size,
        "receivers": args.receivers,
        "chunk_size": args.chunk_size,
        "limit_rate": args.limit_rate,
        "discovery": "chain (anvil host directory)" if chain_mode else "--peer ORIGIN",
        "root": root,
        "all_ok": all(p["sha256_ok"] for p in per),
        "swarm_wall_s": round(swarm_wall, 3),
        "origin_upload_bytes": origin_up,
        "origin_upload_x": round(origin_up / size, 3) if size else 0.0,
        "peer_to_peer_bytes": sum(p["from_peers_bytes"] for p in per),
        "per_receiver": per,
        "baseline": baseline,
        "speedup": round(baseline["wall_s"] / swarm_wall, 2) if baseline and swarm_wall else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=256, help="content size in MiB (256)")
    ap.add_argument("--receivers", type=int, default=16, help="receivers (16)")
    ap.add_argument("--chunk-size", default="1MiB", help="chunk size of the content (1MiB)")
    ap.add_argument("--limit-rate", help="each receiver's download cap, e.g. 8M (none)")
    ap.add_argument(
        "--chain",
        action="store_true",
        help="receivers know only the root and the chain: anvil, the origin publishes, "
        "announces and hosts slot 0; `bcai get ROOT` without --peer",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the sequential baseline")
    ap.add_argument("--max-origin", type=float, help="fail if the origin uploads more x size")
    ap.add_argument("--workdir", help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"root {result['root']}  {args.size:g} MiB x {args.receivers} receivers")
        for p in result["per_receiver"]:
            print(
                f"  {p['receiver']}  {p['wall_s']:7.2f} s  "
                f"sha256 {'ok' if p['sha256_ok'] else 'BAD'}"
                f"  origin {p['from_origin_bytes'] / MiB:7.1f} MiB  peers "
                f"{p['from_peers_bytes'] / MiB:7.1f} MiB ({p['peers_used']} providers)"
            )
        print(
            f"swarm: {result['swarm_wall_s']:.2f} s wall, origin uploaded "
            f"{result['origin_upload_bytes'] / MiB:.1f} MiB = {result['origin_upload_x']:.2f}x "
            f"the content; peer to peer {result['peer_to_peer_bytes'] / MiB:.1f} MiB"
        )
        if result["baseline"]:
            b = result["baseline"]
            print(
                f"baseline ({args.receivers} sequential fetches from the origin alone): "
                f"{b['wall_s']:.2f} s, origin uploaded {b['origin_upload_bytes'] / MiB:.1f} MiB;"
                f" swarm speed-up {result['speedup']}x"
            )
    ok = result["all_ok"]
    if args.max_origin is not None and result["origin_upload_x"] > args.max_origin:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
