"""benchmarks/load.py at a tiny size: real `bcai serve`, real worker processes, real TCP.

Checks the report's shape and that its numbers hang together (not the node's speed: this runs
on a loaded machine). One run covers both modes: 4 peers closed loop + open loop at half the
measured capacity, then 20 idle authenticated connections held while control requests and one
new peer's fetch are measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHUNK = 256 * 1024

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs /proc and 127.0.0.0/8")


def _pct_ok(lat: dict[str, float | None]) -> None:
    p50, p95, p99 = lat["p50"], lat["p95"], lat["p99"]
    assert p50 is not None and p95 is not None and p99 is not None, lat
    assert 0 < p50 <= p95 <= p99 < 30_000, lat


def test_load_quick_report(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    env = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "t"}
    proc = subprocess.run(
        [sys.executable, "benchmarks/load.py", "--quick", "--peers", "4", "--chunk-sizes",
         "256KiB,1MiB", "--loads", "0.5", "--connections", "20", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fairness max/min" in proc.stdout and "per idle connection" in proc.stdout
    report = json.loads(out.read_text())
    assert report["server"]["exit"] == 0
    assert report["config"]["connections_high"] >= 20

    rows = [r for r in report["peers"] if "mode" in r]
    assert [(r["chunk_size"], r["mode"]) for r in rows] == [
        (CHUNK, "closed"), (CHUNK, "open 0.5x"), (4 * CHUNK, "closed"), (4 * CHUNK, "open 0.5x")
    ]  # fmt: skip
    (conn,) = [r["connect"] for r in report["peers"] if "connect" in r]
    assert conn["connected"] == 4 and conn["client_procs"] == 2
    for r in rows:
        assert r["peers_active"] == 4
        assert r["chunks"] > 0 and r["chunks_per_s"] > 0
        # bytes and chunks are counted from the same completed chunks, of the asked size
        mb = r["chunks_per_s"] * r["chunk_size"] / 1e6
        assert r["MB_per_s"] == pytest.approx(mb, rel=0.02, abs=0.2)
        _pct_ok(r["latency_ms"])
        assert r["fairness_max_min"] is None or r["fairness_max_min"] >= 1.0
        assert r["server_cpu_s"] > 0 and 0 < r["server_cpu_pct"] < 400
        assert 10 < r["server_rss_peak_mib"] < 1024
        assert r["client_cpu_s"] > 0
        assert isinstance(r["request_refusals"], dict)
        assert r["drained"], r  # nothing left in flight after the window
    for closed, half in (rows[:2], rows[2:]):
        assert closed["offered_chunks_per_s"] is None
        # open loop offered at half of the closed loop's measured rate; Poisson over ~1 s
        assert half["offered_chunks_per_s"] == pytest.approx(0.5 * closed["chunks_per_s"], rel=0.01)
        assert half["chunks_per_s"] <= 1.6 * half["offered_chunks_per_s"] + 20
    # k = min(4, free indices): 4 MiB of content is 16 chunks of 256 KiB, 4 of 1 MiB
    assert rows[0]["inflight"] == 4 and rows[2]["inflight"] == 3

    idle = report["idle"]
    assert idle["connected"] == 20 and idle["still_open_at_end"] == 20
    assert isinstance(idle["bytes_per_idle_connection"], int)
    assert 0 < idle["handshakes_s"] <= idle["connect_s"] and idle["accepted_per_s"] > 0
    assert idle["server_rss_after_mib"] > 10
    for tag in ("before", "while_held", "at_end"):
        ctl, one = idle[tag]["control"], idle[tag]["one_peer_fetch"]
        assert ctl["answered"] > 0 and ctl["requests_per_s"] > 0
        assert ctl["latency_ms"]["p95"] is not None
        assert one["peers_active"] == 1 and one["MB_per_s"] > 0
    assert idle["one_peer_ratio_held_vs_before"] > 0
    # the same fetch with the idle workers stopped (the node's own cost), workers reniced
    stopped = idle["while_held_holders_stopped"]["one_peer_fetch"]
    assert stopped["peers_active"] == 1 and stopped["MB_per_s"] > 0
    assert idle["one_peer_ratio_holders_stopped_vs_before"] > 0 and idle["idle_nice"] == 19

    # control-rate mode: each kind answered, the node's CPU per request stated
    assert [c["kind"] for c in report["control"]] == ["ping", "want", "mixed"]
    for c in report["control"]:
        assert c["answered"] > 0 and c["requests_per_s"] > 0
        assert c["server_cpu_us_per_request"] is not None and c["server_cpu_us_per_request"] > 0
    # the idle mode ran on a freshly started node (memory per connection not hidden)
    assert idle["fresh_server"] is True and report["idle_server"]["pid"] != report["server"]["pid"]
    for r in rows:
        assert r["server_cpu_ms_per_chunk"] > 0
    what = {x["what"]: x for x in report["acceptance"]}
    assert what["idle connections held to the end"]["met"] is True
    assert "control requests/s (Ping + Want mixed)" in what
    assert "acceptance (issue 11)" in proc.stdout
