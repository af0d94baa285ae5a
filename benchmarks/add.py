"""`bcai add` against `sha256sum` on the same 1 GiB and 4 GiB files, plus peak memory.

For each size: warm the page cache, run ``sha256sum FILE`` and ``bcai add FILE`` (fresh data
directory, a real subprocess) alternately ``--repeat`` times, and report the median wall-time
ratio add / sha256sum and bcai's peak RSS. Goals: ratio <= 1.0; peak RSS < 100 MiB and flat
(1 GiB vs 4 GiB within 5 MiB). The store is also run alone (no CLI imports), durable and
with ``durable=False``, to separate the store's cost from the CLI's start-up and from the
disk's write-back (sha256sum writes nothing).

    .venv/bin/python benchmarks/add.py [--sizes 1,4] [--repeat 3] [--dir /tmp/bcai-bench]

Writes benchmarks/results/add.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import (
    REPO,
    GiB,
    Measured,
    MiB,
    ensure_random_file,
    machine,
    markdown_table,
    mib,
    precompile,
    run_measured,
    warm_cache,
    write_json,
)

STORE_ONLY = (
    "import sys; from node.store import Store; "
    "s = Store.open(sys.argv[1], durable=sys.argv[3] == '1'); "
    "print(s.add_file(sys.argv[2]).root_hex); s.close()"
)


def _env(home: Path) -> dict[str, str]:
    return dict(
        os.environ,
        BCAI_HOME=str(home),
        BCAI_INSECURE_FAST_KDF="1",
        BCAI_PASSPHRASE="bench",
        BCAI_LOG_LEVEL="warning",
    )


def _fresh_home(work: Path) -> Path:
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    run_measured([sys.executable, "-m", "node.cli", "init"], env=_env(home), cwd=REPO).check()
    return home


def bench_size(work: Path, size: int, repeat: int) -> dict[str, Any]:
    src = ensure_random_file(work / f"random-{size // GiB}GiB.bin", size)
    warm_cache(src)
    sha: list[Measured] = []
    add: list[Measured] = []
    store_only: list[Measured] = []
    no_fsync: list[Measured] = []
    roots = set()
    for _ in range(repeat):
        sha.append(run_measured(["sha256sum", str(src)]).check())
        home = _fresh_home(work)
        m = run_measured(
            [sys.executable, "-m", "node.cli", "--json", "add", str(src)], env=_env(home), cwd=REPO
        ).check()
        roots.add(json.loads(m.stdout)["root"])
        add.append(m)
        shutil.rmtree(home, ignore_errors=True)
        store_dir = work / "store-only"
        shutil.rmtree(store_dir, ignore_errors=True)
        for durable, into in (("1", store_only), ("0", no_fsync)):
            m2 = run_measured(
                [sys.executable, "-c", STORE_ONLY, str(store_dir), str(src), durable], cwd=REPO
            ).check()
            roots.add(m2.stdout.strip().splitlines()[-1])
            into.append(m2)
            shutil.rmtree(store_dir, ignore_errors=True)
    startup = run_measured([sys.executable, "-m", "node.cli", "--help"], cwd=REPO).check()
    if len(roots) != 1:
        raise RuntimeError(f"runs disagree on the root: {roots}")
    med = statistics.median
    sha_s = med(m.wall_s for m in sha)
    add_s = med(m.wall_s for m in add)
    so_s = med(m.wall_s for m in store_only)
    nf_s = med(m.wall_s for m in no_fsync)
    return {
        "size_bytes": size,
        "root": roots.pop(),
        "repeat": repeat,
        "sha256sum_s": [m.wall_s for m in sha],
        "bcai_add_s": [m.wall_s for m in add],
        "store_only_add_s": [m.wall_s for m in store_only],
        "store_only_no_fsync_s": [m.wall_s for m in no_fsync],
        "ratio_store_only_no_fsync_over_sha256sum": nf_s / sha_s,
        "cli_startup_s": startup.wall_s,
        "cli_startup_rss_bytes": startup.peak_rss_bytes,
        "ratio_add_over_sha256sum": add_s / sha_s,
        "ratio_store_only_over_sha256sum": so_s / sha_s,
        "bcai_add_peak_rss_bytes": max(m.peak_rss_bytes for m in add),
        "store_only_peak_rss_bytes": max(m.peak_rss_bytes for m in store_only),
        "sha256sum_median_s": sha_s,
        "bcai_add_median_s": add_s,
        "store_only_median_s": so_s,
        "store_only_no_fsync_median_s": nf_s,
        "add_throughput_MiBps": size / MiB / add_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4", help="file sizes in GiB, comma separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bcai-bench"), help="work directory")
    ap.add_argument("--keep-files", action="store_true", help="keep the random input files")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    precompile()
    sizes = [int(float(s) * GiB) for s in args.sizes.split(",")]
    results = [bench_size(args.dir, size, args.repeat if size <= GiB else 1) for size in sizes]
    by_size = {r["size_bytes"]: r for r in results}
    checks: dict[str, Any] = {
        "ratio_le_1": all(r["ratio_add_over_sha256sum"] <= 1.0 for r in results),
        "rss_under_100MiB": all(r["bcai_add_peak_rss_bytes"] < 100 * MiB for r in results),
    }
    if GiB in by_size and 4 * GiB in by_size:
        delta = abs(
            by_size[4 * GiB]["bcai_add_peak_rss_bytes"] - by_size[GiB]["bcai_add_peak_rss_bytes"]
        )
        checks["rss_delta_1_vs_4GiB_bytes"] = delta
        checks["rss_flat_within_5MiB"] = delta <= 5 * MiB
    out = {"machine": machine(), "results": results, "checks": checks}
    path = write_json("add.json", out)
    rows = [
        [
            f"{r['size_bytes'] // GiB} GiB",
            f"{r['sha256sum_median_s']:.2f}",
            f"{r['bcai_add_median_s']:.2f}",
            f"{r['ratio_add_over_sha256sum']:.2f}",
            f"{r['store_only_median_s']:.2f}",
            f"{r['ratio_store_only_over_sha256sum']:.2f}",
            f"{r['store_only_no_fsync_median_s']:.2f}",
            f"{r['ratio_store_only_no_fsync_over_sha256sum']:.2f}",
            mib(r["bcai_add_peak_rss_bytes"]),
            mib(r["store_only_peak_rss_bytes"]),
            f"{r['cli_startup_s']:.2f}",
        ]
        for r in results
    ]
    print(
        markdown_table(
            [
                "size",
                "sha256sum s",
                "bcai add s",
                "ratio",
                "store-only s",
                "ratio (store)",
                "store no-fsync s",
                "ratio (no-fsync)",
                "bcai RSS MiB",
                "store RSS MiB",
                "CLI start-up s",
            ],
            rows,
        )
    )
    print()
    print("checks:", json.dumps(checks))
    print(f"wrote {path}")
    if not args.keep_files:
        for f in args.dir.glob("random-*.bin"):
            f.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
