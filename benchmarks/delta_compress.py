"""Delta sync and wire compression, the issue-12 acceptance runs, side by side.

    .venv/bin/python benchmarks/delta_compress.py                 # full size (1 GiB, 256 MiB)
    .venv/bin/python benchmarks/delta_compress.py --capped 100M   # loopback and a 100 MB/s link
    .venv/bin/python benchmarks/delta_compress.py --delta-size 64 --data-size 32 --rounds 2

One origin (``bcai serve --no-chain``) holds every content; receivers run ``bcai get --json``
(their own data dirs) and the numbers come from its JSON: ``wire_bytes`` (chunk payload bytes
received, after compression), ``fetched_bytes``, ``local_bytes`` (taken from content already
held: delta) and ``elapsed`` (the transfer, without process start). Every result is checked
against the content's SHA-256 (``-o`` file).

1. **Delta**: a random v1 of ``--delta-size`` MiB is added to the receiver; the origin holds v2
   = v1 with ``--changed`` (5%) of its 1 MiB chunks changed in place, and v2b = v1 with 5% of
   its size appended. Acceptance: v2's ``wire_bytes`` <= 6% of its size; the appended case
   moves the appended part.
2. **Compressible**: a CSV of ``--data-size`` MiB (log-like rows). Two receivers fetch it,
   ``[network] compress = true`` and ``false``, ``--rounds`` times each under a cap,
   ``--loopback-rounds`` (default twice ``--rounds``) on loopback, whose short fetches are
   the most exposed to disk noise, alternating which goes first, after one untimed fetch by
   each receiver ("warm", reported apart: the store wrote the chunks with ``O_DIRECT``, so
   the first fetch of a root reads them from disk; and the origin's first compressed fetch
   of a root is the one that times its compressor, the cost a provider pays once per root,
   docs/transfer.md; ``--no-warm`` leaves both to the first rounds), the content removed
   between rounds, dirty pages written back (``sync``) before each fetch (so no fetch runs
   beside the writeback of the add or of the fetch before it; 0.2 s for 256 MiB here).
   Acceptance: a median transfer time no slower than without, and >= 20% fewer bytes on the
   wire where compressing is chosen (the last round's bytes; every round's saving is
   reported too). Reported beside the ratio of the medians: each round's on/off ratio and
   their median, and the median CPU seconds of each arm, the origin daemon's during the
   get (``/proc``) and the ``bcai get`` process's (start-up included).
3. **Random**: the same with random bytes. Acceptance: median within 5% of uncompressed.

``--limit-rate RATE`` (e.g. ``100M``) caps the receivers' downloads (``[network] limit_rate``,
paced on wire bytes) to stand in for a network link; ``--capped RATE`` runs 2 and 3 a second
time under that cap, so one run reports both links. Whether a connection compresses is the
provider's rate probe (docs/transfer.md): on loopback, where both ends share the CPU and no
link is saved, compressing is the slower mode and the probe holds raw after one probe of it
(the bytes saved there are that probe's); under a cap it holds compressed, and the >= 20%
bound applies (the ``ok`` of the capped CSV row).

The origin keeps frames in a 32 MiB cache: a small compressed content fits and later rounds
do not compress again (the first "on" round is the cold one); 256 MiB of CSV does not fit.

Run it on a quiet machine: on a loaded 2-core VM the wall times are noise. Not part of
``make test``; small versions of the same checks are in tests/transfer/test_delta_compress.py
and tests/e2e/test_delta_e2e.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swarm import Daemon, MiB, bcai, init

#: every content here is added with 1 MiB chunks, the unit the delta numbers are counted in
#: (the node's own default, auto, would give 4 MiB ones: docs/decisions.md D41)
CHUNK = ("--chunk-size", "1MiB")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def _random_file(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def _csv_file(path: Path, size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    cities = [f"city-{i}" for i in range(500)]
    with open(path, "wb") as f:
        f.write(b"id,ts,user,city,amount,status\n")
        written, i = 0, 0
        while written < size:
            rows = []
            for _ in range(10000):
                rows.append(
                    f"{i},{1_700_000_000 + 7 * i},u{rng.randrange(10**6):06d},"
                    f"{rng.choice(cities)},{rng.random() * 1000:.2f},"
                    f"{'ok' if rng.random() < 0.9 else 'retry'}\n"
                )
                i += 1
            block = "".join(rows).encode()[: size - written]
            f.write(block)
            written += len(block)


def _config(data: Path, *, compress: bool = True, limit_rate: str | None = None) -> None:
    cfg = data / "config.toml"
    text = cfg.read_text()
    if not compress:
        text = text.replace("compress = true", "compress = false")
    if limit_rate:
        lines = [ln for ln in text.splitlines() if not ln.startswith("limit_rate =")]
        text = "\n".join(lines).replace("[network]", f'[network]\nlimit_rate = "{limit_rate}"', 1)
    cfg.write_text(text + "\n")


def _cpu_of(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` so far (Linux ``/proc``; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _get(
    data: Path, root: str, peer: str, out: Path, origin: Daemon | None = None
) -> dict[str, Any]:
    """``bcai get``; with ``origin``, the CPU seconds each end spent on it are added:
    ``cpu_origin_s`` (the serving daemon, during the get) and ``cpu_receiver_s`` (the ``bcai
    get`` process, its start-up and imports included, the same for both arms)."""
    o0, r0 = (_cpu_of(origin.proc.pid) if origin else None), _children_cpu()
    got: dict[str, Any] = bcai(data, "get", root, "--peer", peer, "-o", str(out))
    if origin is not None:
        o1 = _cpu_of(origin.proc.pid)
        got["cpu_origin_s"] = round(o1 - o0, 3) if o0 is not None and o1 is not None else None
        got["cpu_receiver_s"] = round(_children_cpu() - r0, 3)
    return got


def _row(got: dict[str, Any], digest: str, out: Path) -> dict[str, Any]:
    ok = _sha256(out) == digest
    out.unlink()
    return {
        "size": got["size"],
        "wire_bytes": got["wire_bytes"],
        "fetched_bytes": got["fetched_bytes"],
        "local_bytes": got.get("local_bytes", 0),
        "wire_fraction": round(got["wire_bytes"] / got["size"], 4) if got["size"] else 0.0,
        "elapsed_s": got["elapsed"],
        "wall_s": got.get("wall"),
        "cpu_origin_s": got.get("cpu_origin_s"),
        "cpu_receiver_s": got.get("cpu_receiver_s"),
        "sha256_ok": ok,
    }


def delta(work: Path, origin: Daemon, origin_dir: Path, args: argparse.Namespace) -> dict:
    size = int(args.delta_size * MiB)
    v1 = work / "v1.bin"
    _random_file(v1, size, 1)
    n = -(-size // MiB)
    rng = random.Random(2)
    changed = sorted(rng.sample(range(n), max(1, round(n * args.changed))))
    v2 = work / "v2.bin"
    shutil.copyfile(v1, v2)
    with open(v2, "r+b") as f:
        for i in changed:
            f.seek(i * MiB + rng.randrange(min(MiB, size - i * MiB)))
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
    v2b = work / "v2b.bin"
    shutil.copyfile(v1, v2b)
    appended = int(size * args.changed)
    with open(v2b, "ab") as f:
        f.write(random.Random(3).randbytes(appended))
    rows = {}
    for name, path in (("in_place", v2), ("appended", v2b)):
        root = bcai(origin_dir, "add", str(path), *CHUNK)["root"]
        recv = work / f"delta-{name}"
        init(recv, swarm=False)
        bcai(recv, "add", str(v1), *CHUNK)
        got = _get(recv, root, origin.peer, work / "out.bin")
        rows[name] = _row(got, _sha256(path), work / "out.bin")
    rows["in_place"]["changed_chunks"] = len(changed)
    rows["in_place"]["ok"] = rows["in_place"]["wire_fraction"] <= 0.06
    rows["appended"]["appended_bytes"] = appended
    rows["appended"]["ok"] = rows["appended"]["wire_bytes"] <= appended + MiB
    for path in (v1, v2, v2b):
        path.unlink()
    return rows


def compare(
    work: Path,
    origin: Daemon,
    origin_dir: Path,
    args: argparse.Namespace,
    kind: str,
    limit_rate: str | None,
) -> dict:
    size = int(args.data_size * MiB)
    src = work / f"{kind}.bin"
    (_csv_file if kind == "csv" else lambda p, s: _random_file(p, s, 7))(src, size)
    digest = _sha256(src)
    root = bcai(origin_dir, "add", str(src), *CHUNK)["root"]
    src.unlink()
    tag = f"{kind}-{limit_rate or 'lo'}"
    recv = {"on": work / f"{tag}-on", "off": work / f"{tag}-off"}
    init(recv["on"], swarm=False)
    init(recv["off"], swarm=False)
    _config(recv["on"], limit_rate=limit_rate)
    _config(recv["off"], compress=False, limit_rate=limit_rate)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    warm: dict[str, dict[str, Any]] = {}
    if args.warm:  # one untimed fetch per receiver first: the store wrote the chunks with
        # O_DIRECT, so the first fetch reads them from disk (and the origin's first reads warm
        # its caches); the "on" one is the origin's first compressed fetch of the root, whose
        # compressed probe times the compressor (later ones know the root's speed: the
        # ceiling, docs/transfer.md); its time is reported as "warm", not in the medians
        for mode in ("off", "on"):
            os.sync()
            got = _get(recv[mode], root, origin.peer, work / "out.bin", origin)
            warm[mode] = _row(got, digest, work / "out.bin")
            bcai(recv[mode], "rm", root, "--force")
    rounds = args.rounds if limit_rate else (args.loopback_rounds or 2 * args.rounds)
    for r in range(rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            os.sync()  # the add's (or the last fetch's) writeback is not this fetch's work
            got = _get(recv[mode], root, origin.peer, work / "out.bin", origin)
            runs[mode].append(_row(got, digest, work / "out.bin"))
            bcai(recv[mode], "rm", root, "--force")
    med = {m: statistics.median(x["elapsed_s"] for x in runs[m]) for m in runs}
    wire = {m: runs[m][-1]["wire_bytes"] for m in runs}
    savings = [round(1 - x["wire_bytes"] / x["size"], 4) if x["size"] else 0.0 for x in runs["on"]]
    # each round's on/off pair (fetched back to back, order alternating): the median of their
    # ratios is less sensitive to a slow stretch of the disk than the ratio of the medians
    pairs = [
        round(a["elapsed_s"] / b["elapsed_s"], 3) if b["elapsed_s"] else None
        for a, b in zip(runs["on"], runs["off"], strict=True)
    ]

    def cpu(mode: str, key: str) -> float | None:
        xs = [x[key] for x in runs[mode] if x.get(key) is not None]
        return round(statistics.median(xs), 3) if xs else None

    out: dict[str, Any] = {
        "size": size,
        "limit_rate": limit_rate,
        "rounds": rounds,
        "runs": runs,
        "warm": warm,
        "median_elapsed_s": med,
        "wire_bytes": wire,
        "wire_saving": round(1 - wire["on"] / wire["off"], 4) if wire["off"] else 0.0,
        "wire_saving_runs": savings,
        "time_ratio_on_off": round(med["on"] / med["off"], 3) if med["off"] else None,
        "round_ratios": pairs,
        "median_round_ratio": statistics.median(p for p in pairs if p is not None)
        if any(p is not None for p in pairs)
        else None,
        "median_cpu_s": {
            m: {"origin": cpu(m, "cpu_origin_s"), "receiver": cpu(m, "cpu_receiver_s")}
            for m in runs
        },
    }
    if kind == "csv":  # no slower; the bytes bound where compressing is chosen (a link)
        out["ok"] = med["on"] <= med["off"] and (limit_rate is None or out["wire_saving"] >= 0.2)
    else:
        out["ok"] = med["on"] <= 1.05 * med["off"]
    out["sha256_ok"] = all(x["sha256_ok"] for m in runs for x in runs[m])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bcai-delta-"))
    origin: Daemon | None = None
    try:
        origin_dir = work / "origin"
        init(origin_dir)
        origin = Daemon(origin_dir)
        result: dict[str, Any] = {"delta": delta(work, origin, origin_dir, args)}
        links = [args.limit_rate] + ([args.capped] if args.capped else [])
        for link in links:
            suffix = "" if link == args.limit_rate else "_capped"
            for kind in ("csv", "random"):
                result[kind + suffix] = compare(work, origin, origin_dir, args, kind, link)
        result["all_ok"] = all(
            r["ok"] and r["sha256_ok"] for r in result["delta"].values()
        ) and all(r["ok"] and r["sha256_ok"] for k, r in result.items() if k not in ("delta",))
        return result
    finally:
        if origin is not None:
            origin.stop()
        if not args.workdir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delta-size", type=float, default=1024, help="v1 size in MiB (1024)")
    ap.add_argument("--changed", type=float, default=0.05, help="fraction changed (0.05)")
    ap.add_argument("--data-size", type=float, default=256, help="CSV/random size, MiB (256)")
    ap.add_argument("--rounds", type=int, default=3, help="fetches per mode (3)")
    ap.add_argument(
        "--loopback-rounds",
        type=int,
        help="fetches per mode on loopback (no cap; default twice --rounds: its fetches are "
        "short, so disk noise weighs more)",
    )
    ap.add_argument("--limit-rate", help="receivers' download cap, e.g. 100M (none: loopback)")
    ap.add_argument("--capped", help="also compare csv/random under this cap, e.g. 100M")
    ap.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="no untimed fetch before the compared ones (the first then reads a cold store)",
    )
    ap.add_argument("--workdir", help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return 0 if result["all_ok"] else 1
    for name, r in result["delta"].items():
        print(
            f"delta {name:9s} {r['size'] / MiB:8.1f} MiB: wire {r['wire_bytes'] / MiB:7.1f} MiB "
            f"({100 * r['wire_fraction']:.2f}%), local {r['local_bytes'] / MiB:7.1f} MiB, "
            f"{r['elapsed_s']:.2f} s, sha256 {'ok' if r['sha256_ok'] else 'BAD'}"
            f"  {'PASS' if r['ok'] else 'FAIL'}"
        )
    for kind in [k for k in result if k.startswith(("csv", "random"))]:
        r = result[kind]
        med = r["median_elapsed_s"]
        link = r["limit_rate"] or "loopback"
        print(
            f"{kind.split('_')[0]:6s} {link:8s} {r['size'] / MiB:6.1f} MiB: "
            f"wire on {r['wire_bytes']['on'] / MiB:7.1f} "
            f"/ off {r['wire_bytes']['off'] / MiB:7.1f} MiB (saving {100 * r['wire_saving']:.1f}%"
            f", per run on {[round(100 * x, 1) for x in r['wire_saving_runs']]})"
            f"; median {med['on']:.2f} s on / {med['off']:.2f} s off "
            f"(x{r['time_ratio_on_off']}; median of the {r['rounds']} rounds' ratios "
            f"x{r['median_round_ratio']}), per run on "
            f"{[x['elapsed_s'] for x in r['runs']['on']]} off "
            f"{[x['elapsed_s'] for x in r['runs']['off']]}  {'PASS' if r['ok'] else 'FAIL'}"
        )
        c = r["median_cpu_s"]
        w = r["warm"]
        print(
            f"       CPU s (median): origin on {c['on']['origin']} / off {c['off']['origin']}, "
            f"receiver process on {c['on']['receiver']} / off {c['off']['receiver']}"
            + (
                f"; warm (untimed) on {w['on']['elapsed_s']} s "
                f"({100 * (1 - w['on']['wire_fraction']):.1f}% saved) / off "
                f"{w['off']['elapsed_s']} s"
                if w
                else ""
            )
        )
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
