"""Segment-tree hashing speed of the C kernel (node.content._accel), per path, on 1 MiB chunks.

One run = ``tree_root`` over every chunk of a 16 MiB buffer (16 distinct 1 MiB chunks, so
the data comes from memory as on the receive path). Paths: ``sha-ni`` (the interleaved SHA-NI
code, when the CPU has it) and ``openssl`` (SHA256_Init/Update/Final per message, the
fallback and the code before it), each alone and with a second Python thread spinning (the
event loop's share of the GIL: the kernel releases it once per chunk and must take it back).

    nice -n 19 .venv/bin/python benchmarks/hash_tree.py [--repeat R] [--json PATH]

Prints GB/s from the wall-time median and from this thread's CPU-time median over R runs
(CPU time is what a loaded machine inflates least), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.content import _accel

CHUNK = 1 << 20
CHUNKS = 16


def _run(kernel: Any, data: memoryview, repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.thread_time()
        for i in range(CHUNKS):
            kernel.tree_root(data[i * CHUNK : (i + 1) * CHUNK])
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    nbytes = CHUNKS * CHUNK
    return nbytes / statistics.median(walls) / 1e9, nbytes / statistics.median(cpus) / 1e9


def _spinning(kernel: Any, data: memoryview, repeat: int) -> tuple[float, float]:
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        return _run(kernel, data, repeat)
    finally:
        stop.set()
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = memoryview(os.urandom(CHUNKS * CHUNK))
    rows: list[dict[str, Any]] = []
    for name, sha_ni in (("openssl", False), ("sha-ni", True)):
        kernel = _accel.load(sha_ni=sha_ni)
        if kernel is None or kernel.sha_ni != sha_ni:
            print(f"{name}: not available here")
            continue
        _run(kernel, data, 1)  # warm up
        for spin in (False, True):
            wall, cpu = (_spinning if spin else _run)(kernel, data, args.repeat)
            rows.append({"path": name, "spinner": spin, "wall_GBps": wall, "cpu_GBps": cpu})
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.repeat} runs of 16 x 1 MiB")
    print("| path | second thread | GB/s (wall) | GB/s (thread CPU) |")
    print("|---|---|---|---|")
    for r in rows:
        spin = "spinning" if r["spinner"] else "-"
        print(f"| {r['path']} | {spin} | {r['wall_GBps']:.2f} | {r['cpu_GBps']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
