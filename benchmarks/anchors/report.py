#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""Markdown summary of bench.json: median (min-max) MB/s, median peak RSS/CPU per side.
usage: python3 report.py [/tmp/anchors/results/bench.json]"""
import json, statistics as st, sys
from collections import OrderedDict

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/anchors/results/bench.json"
rows = json.load(open(path))
groups = OrderedDict()
for r in rows:
    groups.setdefault((r["size"], r["method"]), []).append(r)
for size in dict.fromkeys(r["size"] for r in rows):
    print(f"\n### {size}  (MB = 10^6 B; RSS = peak summed VmRSS of side's process tree, MiB; "
          f"anon = RssAnon; CPU = CPU-seconds, % of wall)\n")
    print("| method | MB/s median (min-max) | wall s (median) | sender peak RSS (anon) | receiver peak RSS (anon) "
          "| CPU send / recv | integrity ok |")
    print("|---|---|---|---|---|---|---|")
    for (sz, m), rs in groups.items():
        if sz != size:
            continue
        mb = [r["MBps"] for r in rs]
        med = lambda k: st.median(r[k] for r in rs)
        wall = med("wall_s")
        cs, cr = med("send_cpu_s"), med("recv_cpu_s")
        ok = all(r["sha256_ok"] for r in rs)
        print(f"| {m} | {st.median(mb):.0f} ({min(mb):.0f}-{max(mb):.0f}) | {wall:.2f} "
              f"| {med('send_peak_rss_MiB'):.0f} ({med('send_peak_anon_MiB'):.0f}) "
              f"| {med('recv_peak_rss_MiB'):.0f} ({med('recv_peak_anon_MiB'):.0f}) "
              f"| {cs:.2f} ({100*cs/wall:.0f}%) / {cr:.2f} ({100*cr/wall:.0f}%) "
              f"| {'yes' if ok else 'NO'} {len(rs)}/{len(rs)} |")
