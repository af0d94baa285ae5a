"""Load benchmark: many protocol peers against one `bcai serve`, in one run.

    .venv/bin/python benchmarks/load.py [--peers 1,10,100,1000] [--chunk-sizes 256KiB,1MiB]
        [--duration 10] [--warmup 2] [--loads 0.5,1.5] [--inflight auto] [--client-procs auto]
        [--connections 10000 --hold 75] [--control-peers 8 --control-window 16] [--no-control]
        [--py-spy FILE] [--quick] [--out FILE]

The whole issue-11 acceptance table, defaults (~15 min on 2 cores; run it on a quiet machine,
the node niced like nothing else): ``nice -n 0 .venv/bin/python benchmarks/load.py``. A smoke
run: ``--quick`` (4 peers, 20 idle connections, sub-second phases). ``--py-spy FILE`` samples
the node (raw collapsed stacks) for the whole run.

Order: the peer phases (below), then the control-rate mode (``--control-peers`` peers over the
client workers, each keeping ``--control-window`` requests in flight: Ping only, Want only,
then mixed; requests/s, RTT, the node's CPU per request), then the idle mode on a freshly
started node (so the memory per idle connection is not hidden by memory freed by the earlier
phases), then the acceptance table (each criterion, measured value, target, met).

One `bcai serve --no-chain` process (its own data directory, ``BCAI_INSECURE_FAST_KDF=1``) holds
one content per chunk size (``bcai add --chunk-size``). Client peers are trio tasks in
``python -m benchmarks._peers`` worker processes (``--client-procs``, default 2 for > 1 peer:
this machine has 2 cores and decrypting is as much work as encrypting, so one client process
would be the bound); each peer has its own identity and connects from its own loopback
address group (``127.1.x.y``, at most ``--peers-per-ip`` peers per address), so the node's
per-IP caps apply as to real peers. ``[network] connections_high/low`` are set above the peer
count (``--high``/``--low``); every other admission limit keeps its default.

For each peer count N, after the peers are connected, and for each chunk size:

1. ``closed``: each peer keeps k requests in flight (one chunk index per Request; ``--inflight
   auto`` = min(4, 1024 // N), the node queues at most 1024 indices across all peers and
   refuses more with BUSY). This is saturation; its chunk rate is the capacity C.
2. ``open`` at each fraction f of ``--loads``: Poisson arrivals at f x C chunks/s, spread
   evenly over the peers; an arrival finding the peer's window (``--window``, default k) full
   waits client-side, and its latency counts from its arrival (no coordinated omission).
   f < 1 is below saturation, f > 1 above it.

Per phase: aggregate chunks/s and MB/s in the measured window (after ``--warmup``),
latency p50/p95/p99 (Request written -> last byte), fairness = max/min of per-peer bytes
(``null`` if an admitted peer got nothing: ``peers_with_zero`` counts them), connection
refusals by reason (connect phase) and request refusals (BUSY), the server's CPU
(utime+stime from /proc/PID/stat, % of one core) and RSS (VmRSS sampled every 0.2 s, peak in
the phase), and the clients' CPU.

``--connections N`` (idle mode, after the peer phases if both are asked): N authenticated idle
connections (``--client-procs`` raised to one worker per 2,500, each raising its own open-file
limit; the node raises its own at start) held for ``--hold`` seconds (default 75 s: past the
60 s idle timeout, so keep-alives are exercised). Once connected the idle workers are reniced
(``--idle-nice``, default 19): they stand for peers on other machines, whose CPU (answering
the node's Pings) must not be taken from the measured peer's client on this one. Reported:
server RSS before/after and the memory per idle connection, connections still open at the
end, refusals, and, before and while they are held, a new peer's closed-loop chunk rate
(256 KiB, k = 4) and the control request rate and RTT (``--control-peers`` peers keeping 16
Ping/Want each in flight); the new peer's fetch once more with the idle workers stopped
(SIGSTOP: sockets open, the node still pinging them; what is left of the gap is the node's
own cost); and the node's and the idle workers' CPU over the rest of the hold (nothing but
the idle connections: ``quiet_hold``).

Output: the JSON report (``--out``, default benchmarks/results/load.json) and a markdown
table on stdout. ``--quick`` is the test's size (4 peers, 1.5 s phases, small content).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("BCAI_INSECURE_FAST_KDF", "1")
os.environ.setdefault("BCAI_PASSPHRASE", "bench")
os.environ.setdefault("BCAI_LOG_LEVEL", "warning")

from benchmarks._util import machine, markdown_table  # noqa: E402

MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
#: Indices the node's provider queues across all peers before answering Request with BUSY
#: (``[network] upload_queue``, default 1024; load.py leaves it at its default).
NODE_MAX_QUEUED = 1024
IDLE_PER_WORKER = 2500


def parse_size(text: str) -> int:
    from node.config import parse_size as ps

    return ps(text)


# -- server -----------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """CPU seconds (utime + stime) of process ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class Proc:
    """Samples /proc/PID of the server: CPU seconds and RSS (peak per phase)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def cpu(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def hwm(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.rss())
            except OSError:
                return

    def phase(self) -> tuple[float, float]:
        """Start a phase: (cpu seconds, wall) now; the peak restarts."""
        self.peak = self.rss()
        return self.cpu(), time.monotonic()

    def phase_end(self, start: tuple[float, float]) -> dict[str, Any]:
        cpu, wall = self.cpu() - start[0], time.monotonic() - start[1]
        return {
            "server_cpu_s": round(cpu, 3),
            "server_cpu_pct": round(100 * cpu / wall, 1) if wall else 0.0,
            "server_rss_peak_mib": round(max(self.peak, self.rss()) / MiB, 1),
        }

    def stop(self) -> None:
        self._stop.set()


def _cli(data: Path, *args: str) -> dict[str, Any]:
    from node.cli import main as bcai_main

    out, err = io.StringIO(), io.StringIO()
    status = bcai_main(["-d", str(data), "--json", *args], stdout=out, stderr=err)
    if status != 0:
        raise SystemExit(f"bcai {' '.join(args)} failed: {out.getvalue()} {err.getvalue()}")
    return dict(json.loads(out.getvalue().splitlines()[-1]))


def prepare_server(
    work: Path,
    chunk_sizes: list[int],
    content: int,
    high: int,
    low: int,
    congestion: str = "auto",
) -> tuple[Path, dict[int, dict[str, Any]]]:
    """A data directory with one content per chunk size; ``[network]`` watermarks set."""
    from node.config import load_config, save_config

    data = work / "server"
    _cli(data, "init")
    cfg = load_config(data)
    cfg.network.connections_high = high
    cfg.network.connections_low = low
    cfg.network.congestion = congestion
    save_config(data, cfg)
    roots = {}
    for cs in chunk_sizes:
        # one content per chunk size: the content root does not depend on the chunk size, so
        # adding the same bytes twice would give back the first manifest and its chunks
        src = work / f"content-{cs}.bin"
        src.write_bytes(random.randbytes(content))
        got = _cli(data, "add", str(src), "--chunk-size", str(cs))
        if got["chunk_size"] != cs:
            raise SystemExit(f"bcai add gave chunk size {got['chunk_size']}, asked for {cs}")
        roots[cs] = {"root": got["root"], "nchunks": int(got["chunks"])}
        src.unlink()
    return data, roots


def _pin(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` pinning the child to ``cpus`` (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Server:
    def __init__(self, data: Path, cpus: set[int] | None) -> None:
        self.log = open(data / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "BCAI_LOG_LEVEL": os.environ.get("BCAI_SERVER_LOG_LEVEL", "info")}
        cmd = [sys.executable, "-m", "node.cli", "-d", str(data), "--json", "serve"]
        cmd += ["--listen", "127.0.0.1:0", "--no-chain"]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO,
            preexec_fn=_pin(cpus),  # before exec: every thread the node starts inherits it
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bcai serve did not start; see {data / 'serve.log'}")
        info = json.loads(line)
        host, port = info["listen"].rsplit(":", 1)
        self.host, self.port, self.address = host, int(port), info["address"]
        self.mon = Proc(self.proc.pid)
        self.start_rss = self.mon.rss()
        self.start_hwm = self.mon.hwm()
        self.spy: subprocess.Popen[bytes] | None = None

    def profile(self, out: Path) -> None:
        """Sample the node with py-spy (raw collapsed stacks) until :meth:`stop`."""
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "-p", str(self.proc.pid), "-f", "raw", "-o", str(out)]
        self.spy = subprocess.Popen([*cmd, "-r", "200", "--nonblocking"], cwd=REPO)

    def stop(self) -> int:
        self.mon.stop()
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


# -- client workers ----------------------------------------------------------------------------


class Worker:
    """One ``python -m benchmarks._peers`` process."""

    def __init__(self, setup: dict[str, Any], cpus: set[int] | None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._peers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            preexec_fn=_pin(cpus),
        )
        self.send(setup)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"load worker {self.proc.pid} died (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def quit(self) -> None:
        try:
            self.send({"cmd": "quit"})
            self.read()
        except (OSError, SystemExit):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Clients:
    """Peers spread over several worker processes; commands go to all, results are merged."""

    def __init__(
        self,
        server: Server,
        peers: int,
        procs: int,
        *,
        first: int,
        ip_count: int,
        idle: bool,
        cpus: set[int] | None,
        ip_prefix: str = "127.1",
    ) -> None:
        procs = max(1, min(procs, peers))
        share = [peers // procs + (1 if i < peers % procs else 0) for i in range(procs)]
        self.workers = []
        g = first
        for n in share:
            setup = {
                "host": server.host,
                "port": server.port,
                "server": server.address,
                "peers": n,
                "first": g,
                "ip_count": ip_count,
                "ip_prefix": ip_prefix,
                "idle": idle,
                # below the node's per-IP handshake cap (8) with peers interleaved over IPs
                "concurrency": max(1, min(32, 6 * ip_count) // procs),
                "retries": 3,
            }
            self.workers.append(Worker(setup, cpus))
            g += n
        t0 = time.monotonic()
        got = [w.read() for w in self.workers]
        self.connect_s = time.monotonic() - t0
        self.connected = sum(r["connected"] for r in got)
        #: the slowest worker's time from its first connect to its last admitted peer
        self.handshakes_s = max(r["handshakes_s"] for r in got)
        self.attempts = sum(r["attempts"] for r in got)
        self.refused: Counter[str] = Counter()
        for r in got:
            self.refused.update(r["refused"])

    def command(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        for w in self.workers:
            w.send(cmd)
        return [w.read() for w in self.workers]

    def signal(self, signum: int) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.proc.send_signal(signum)

    def quit(self) -> None:
        for w in self.workers:
            w.quit()


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(1000 * x, 2)


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [x for r in results for x in r["latencies"]]
    window = results[0]["window_s"]
    out: dict[str, Any] = {
        "peers_active": sum(r["peers"] for r in results),
        "latency_ms": {
            "p50": ms(pct(lat, 0.5)),
            "p95": ms(pct(lat, 0.95)),
            "p99": ms(pct(lat, 0.99)),
        },
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 3),
        "client_cpu_pct": round(100 * sum(r["cpu_s"] for r in results) / window, 1),
        "window_s": window,
    }
    ended: Counter[str] = Counter()
    for r in results:
        ended.update(r.get("ended", {}))
    out["connections_ended"] = dict(ended)  # since connecting, by reason
    if "peer_bytes" in results[0]:
        pb = [b for r in results for b in r["peer_bytes"]]
        chunks = sum(c for r in results for c in r["peer_chunks"])
        refusals: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for r in results:
            refusals.update(r["refusals"])
            errors.update(r["errors"])
        out.update(
            chunks=chunks,
            chunks_per_s=round(chunks / window, 1),
            MB_per_s=round(sum(pb) / window / 1e6, 1),
            # null when an admitted peer got nothing in the window (see peers_with_zero)
            fairness_max_min=(round(max(pb) / min(pb), 3) if pb and min(pb) else None),
            peers_with_zero=sum(1 for b in pb if b == 0),
            request_refusals=dict(refusals),
            errors=dict(errors),
            backlog_at_end=sum(r["backlog_at_end"] for r in results),
            drained=all(r["drained"] for r in results),
        )
    else:
        out.update(answered=len(lat), requests_per_s=round(len(lat) / window, 1))
    return out


# -- phases ------------------------------------------------------------------------------------


def inflight_for(n: int, arg: str, window_cap: int) -> int:
    k = max(1, min(4, NODE_MAX_QUEUED // n)) if arg == "auto" else int(arg)
    return max(1, min(k, window_cap))


def run_phase(
    server: Server, clients: Clients, cmd: dict[str, Any], warmup: float, duration: float
) -> dict[str, Any]:
    cmd = {**cmd, "start_at": time.time() + 0.3, "warmup": warmup, "duration": duration}
    for w in clients.workers:
        w.send(cmd)
    # The server's CPU and RSS cover the measured window (the workers answer after it, once
    # their in-flight requests are drained).
    time.sleep(max(0.0, cmd["start_at"] + warmup - time.time()))
    start = server.mon.phase()
    time.sleep(max(0.0, cmd["start_at"] + warmup + duration - time.time()))
    srv = server.mon.phase_end(start)
    res = merge([w.read() for w in clients.workers])
    res.update(srv)
    # the node's CPU per unit of work: robust to a noisy machine, unlike the rates
    done = res.get("chunks", res.get("answered", 0))
    key = "server_cpu_ms_per_chunk" if "chunks" in res else "server_cpu_us_per_request"
    scale = 1e3 if "chunks" in res else 1e6
    res[key] = round(scale * res["server_cpu_s"] / done, 3) if done else None
    return res


def peers_mode(server: Server, roots: dict[int, dict[str, Any]], a: argparse.Namespace) -> list:
    rows = []
    for n in a.peer_counts:
        procs = a.client_procs if a.client_procs else (1 if n == 1 else 2)
        ip_count = max(1, math.ceil(n / a.peers_per_ip))
        clients = Clients(
            server, n, procs, first=0, ip_count=ip_count, idle=False, cpus=a.client_cpus_set
        )
        conn = {
            "peers": n,
            "connected": clients.connected,
            "attempts": clients.attempts,
            "refused": dict(clients.refused),
            "connect_s": round(clients.connect_s, 2),
            "handshakes_s": clients.handshakes_s,
            "client_procs": len(clients.workers),
        }
        print(f"N={n}: {clients.connected}/{n} connected in {clients.connect_s:.1f}s, "
              f"refused {dict(clients.refused)}", flush=True)  # fmt: skip
        try:
            for cs, info in roots.items():
                window_cap = min(256, info["nchunks"] - 1)
                k = inflight_for(n, a.inflight, window_cap)
                base = {
                    "cmd": "run",
                    "root": info["root"],
                    "nchunks": info["nchunks"],
                    "chunk_size": cs,
                    "k": k,
                    # open loop: at most this many in flight per peer, the rest waits
                    # client-side (a real fetcher's window); default k, like the closed loop
                    "max_outstanding": k if a.window == "k" else min(int(a.window), window_cap),
                }
                closed = run_phase(
                    server, clients, {**base, "mode": "closed"}, a.warmup, a.duration
                )
                phases = [{"mode": "closed", "offered_chunks_per_s": None, **closed}]
                capacity = closed["chunks_per_s"]
                for f in a.load_fractions:
                    rate = max(1.0, f * capacity)
                    cmd = {**base, "mode": "open", "rate_per_peer": rate / clients.connected}
                    r = run_phase(server, clients, cmd, a.warmup, a.duration)
                    phases.append(
                        {"mode": f"open {f:g}x", "offered_chunks_per_s": round(rate, 1), **r}
                    )
                for p in phases:
                    row = {"peers": n, "chunk_size": cs, "inflight": k, **p}
                    rows.append(row)
                    print(_line(row), flush=True)
            if rows and "connections_ended" in rows[-1]:  # trimmed or lost since connecting
                conn["ended_later"] = rows[-1]["connections_ended"]
        finally:
            clients.quit()
        rows.append({"peers": n, "connect": conn})
    return rows


def _line(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"  N={r['peers']} {r['chunk_size'] // 1024}KiB {r['mode']:10s} "
        f"{r['chunks_per_s']:8.1f} chunks/s {r['MB_per_s']:7.1f} MB/s p50/95/99 "
        f"{lat['p50']}/{lat['p95']}/{lat['p99']} ms fair {r['fairness_max_min']} "
        f"srv cpu {r['server_cpu_pct']}% rss {r['server_rss_peak_mib']} MiB "
        f"cli cpu {r['client_cpu_pct']}% busy {r['request_refusals']}"
    )


def idle_mode(
    server: Server, roots: dict[int, dict[str, Any]], a: argparse.Namespace, *, fresh: bool
) -> dict:
    cs = min(roots)
    info = roots[cs]
    # the active side: control peers + one fetching peer, on their own IPs (after the idle ones)
    active = Clients(
        server,
        a.control_peers + 1,
        1,
        first=0,
        ip_count=a.control_peers + 1,
        idle=False,
        ip_prefix="127.2",
        cpus=a.client_cpus_set,
    )
    fetch_cmd = {
        "cmd": "run",
        "mode": "closed",
        "root": info["root"],
        "nchunks": info["nchunks"],
        "chunk_size": cs,
        "k": min(4, info["nchunks"] - 1),
        "max_outstanding": min(256, info["nchunks"] - 1),
    }
    control_cmd = {
        "cmd": "control",
        "kind": "mixed",
        "peers": a.control_peers,
        "window": a.control_window,
        "root": info["root"],
    }

    def probes(tag: str) -> dict[str, Any]:
        ctl = _control(server, active, control_cmd, a)
        one = _one_fetch(server, active, fetch_cmd, a)
        print(
            f"  {tag}: control {ctl['requests_per_s']} req/s p95 {ctl['latency_ms']['p95']} ms;"
            f" one peer {one['MB_per_s']} MB/s p95 {one['latency_ms']['p95']} ms",
            flush=True,
        )
        return {"control": ctl, "one_peer_fetch": one}

    out: dict[str, Any] = {
        "connections_target": a.connections,
        # after peer phases the allocator reuses their freed memory: the per-connection
        # figure is then an underestimate; run the idle mode alone (--peers 0) for it
        "fresh_server": fresh,
    }
    idle: Clients | None = None
    try:
        time.sleep(a.settle)
        if not a.quick:  # first-use costs on both sides stay out of "before"
            probes("warm-up (not reported)")
        out["before"] = probes("before")
        time.sleep(a.settle)
        rss_before = server.mon.rss()
        procs = max(a.client_procs or 1, math.ceil(a.connections / IDLE_PER_WORKER))
        t0 = time.monotonic()
        idle = Clients(
            server,
            a.connections,
            procs,
            first=0,
            ip_count=max(1, math.ceil(a.connections / a.peers_per_ip)),
            idle=True,
            cpus=a.client_cpus_set,
        )
        print(
            f"idle: {idle.connected}/{a.connections} connected in {idle.connect_s:.1f}s, "
            f"refused {dict(idle.refused)}",
            flush=True,
        )
        # The idle peers stand for peers on other machines: their CPU (answering the node's
        # keep-alive Pings, one per 30 s each) is not the node's and must not be taken from the
        # new peer's client on this machine, so their workers yield to everything else.
        for w in idle.workers if a.idle_nice else ():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, w.proc.pid, a.idle_nice)
        time.sleep(2 * a.settle)
        rss_after = server.mon.rss()
        held = idle.connected
        out.update(
            connected=held,
            attempts=idle.attempts,
            refused=dict(idle.refused),
            connect_s=round(idle.connect_s, 2),
            handshakes_s=idle.handshakes_s,
            accepted_per_s=round(held / idle.handshakes_s, 1) if idle.handshakes_s else None,
            client_procs=len(idle.workers),
            server_rss_before_mib=round(rss_before / MiB, 1),
            server_rss_after_mib=round(rss_after / MiB, 1),
            server_threads=server.mon.threads(),
            bytes_per_idle_connection=round((rss_after - rss_before) / held) if held else None,
        )
        out["while_held"] = probes("while held")
        # the same fetch with the idle workers stopped (sockets open, the node still pinging
        # them; their Pongs wait): what is left of the gap is the node's own cost
        idle.signal(signal.SIGSTOP)
        try:
            one = _one_fetch(server, active, fetch_cmd, a)
        finally:
            idle.signal(signal.SIGCONT)
        print(f"  while held, holders stopped: one peer {one['MB_per_s']} MB/s", flush=True)
        out["while_held_holders_stopped"] = {"one_peer_fetch": one}
        time.sleep(a.settle)  # the Pongs held back by the stop are read first
        left = a.hold - (time.monotonic() - t0 - idle.connect_s)
        if left > 0:  # the rest of the hold, nothing but the idle: what they cost
            pids = [w.proc.pid for w in idle.workers]
            cpu0, wcpu0, t1 = server.mon.cpu(), sum(map(_cpu_s, pids)), time.monotonic()
            time.sleep(left)
            dt = time.monotonic() - t1
            out["quiet_hold"] = {
                "seconds": round(dt, 1),
                "server_cpu_pct": round(100 * (server.mon.cpu() - cpu0) / dt, 1),
                "idle_workers_cpu_pct": round(100 * (sum(map(_cpu_s, pids)) - wcpu0) / dt, 1),
            }
            print(f"  quiet hold: {out['quiet_hold']}", flush=True)
        counts = idle.command({"cmd": "count"})
        ended: Counter[str] = Counter()
        for c in counts:
            ended.update(c["ended"])
        out.update(
            hold_s=round(time.monotonic() - t0 - idle.connect_s, 1),
            still_open_at_end=sum(c["open"] for c in counts),
            ended_during_hold=dict(ended),
            server_rss_end_mib=round(server.mon.rss() / MiB, 1),
        )
        out["at_end"] = probes("at end")
        b, w = out["before"], out["while_held"]
        out["one_peer_ratio_held_vs_before"] = _ratio(
            w["one_peer_fetch"]["MB_per_s"], b["one_peer_fetch"]["MB_per_s"]
        )
        out["one_peer_ratio_holders_stopped_vs_before"] = _ratio(
            one["MB_per_s"], b["one_peer_fetch"]["MB_per_s"]
        )
        out["idle_nice"] = a.idle_nice
        out["control_ratio_held_vs_before"] = _ratio(
            w["control"]["requests_per_s"], b["control"]["requests_per_s"]
        )
    finally:
        if idle is not None:
            idle.quit()
        active.quit()
    return out


def control_mode(server: Server, roots: dict[int, dict[str, Any]], a: argparse.Namespace) -> list:
    """Control requests alone: ``--control-peers`` peers (over the client workers), each
    keeping ``--control-window`` requests in flight, for each kind (Ping, Want, mixed)."""
    info = roots[min(roots)]
    procs = a.client_procs or 2
    clients = Clients(
        server,
        a.control_peers,
        procs,
        first=0,
        ip_count=a.control_peers,
        idle=False,
        ip_prefix="127.3",
        cpus=a.client_cpus_set,
    )
    rows = []
    try:
        for kind in ("ping", "want", "mixed"):
            cmd = {
                "cmd": "control",
                "kind": kind,
                "peers": a.control_peers,  # every peer of each worker
                "window": a.control_window,
                "root": info["root"],
            }
            r = run_phase(server, clients, cmd, a.warmup, a.control_duration)
            r.update(kind=kind, peers=clients.connected, window=a.control_window)
            rows.append(r)
            lat = r["latency_ms"]
            print(
                f"  control {kind:5s} {r['requests_per_s']:9.1f} req/s RTT p50/95/99 "
                f"{lat['p50']}/{lat['p95']}/{lat['p99']} ms srv cpu {r['server_cpu_pct']}% "
                f"({r['server_cpu_us_per_request']} us/req) cli cpu {r['client_cpu_pct']}%",
                flush=True,
            )
    finally:
        clients.quit()
    return rows


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _control(server: Server, clients: Clients, cmd: dict[str, Any], a: argparse.Namespace) -> dict:
    # the control peers are the first ``control_peers`` of the one active worker
    return run_phase(server, clients, cmd, a.warmup, a.control_duration)


def _one_fetch(
    server: Server, clients: Clients, cmd: dict[str, Any], a: argparse.Namespace
) -> dict:
    # only the fetching peer (the worker's last); the control peers stay quiet meanwhile
    return run_phase(server, clients, {**cmd, "only_last": True}, a.warmup, a.control_duration)


# -- report ------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    parts = []
    rows = [r for r in report.get("peers", []) if "mode" in r]
    if rows:
        table = []
        for r in rows:
            lat = r["latency_ms"]
            active = r["peers_active"]
            table.append(
                (
                    r["peers"] if active == r["peers"] else f"{active} of {r['peers']}",
                    f"{r['chunk_size'] // 1024} KiB",
                    r["mode"],
                    r["inflight"] if r["mode"] == "closed" else "-",
                    r["offered_chunks_per_s"] if r["offered_chunks_per_s"] is not None else "sat.",
                    r["chunks_per_s"],
                    r["MB_per_s"],
                    f"{lat['p50']} / {lat['p95']} / {lat['p99']}",
                    r["fairness_max_min"]
                    if r["fairness_max_min"] is not None
                    else f"inf ({r['peers_with_zero']} peers got 0)",
                    sum(r["request_refusals"].values()),
                    r["server_cpu_pct"],
                    r["server_cpu_ms_per_chunk"],
                    r["server_rss_peak_mib"],
                    r["client_cpu_pct"],
                )
            )
        parts.append(
            markdown_table(
                [
                    "peers",
                    "chunk",
                    "load",
                    "k",
                    "offered chunks/s",
                    "chunks/s",
                    "MB/s",
                    "latency ms p50 / p95 / p99",
                    "fairness max/min",
                    "req. refused",
                    "server CPU %",
                    "server CPU ms/chunk",
                    "server RSS MiB",
                    "client CPU %",
                ],
                table,
            )
        )
        conns = [r["connect"] for r in report["peers"] if "connect" in r]
        parts.append(
            markdown_table(
                [
                    "peers",
                    "connected",
                    "attempts",
                    "refused (reason: count)",
                    "ended later (reason: count)",
                    "setup s (handshakes s)",
                ],
                [
                    (
                        c["peers"],
                        c["connected"],
                        c["attempts"],
                        _reasons(c["refused"]),
                        _reasons(c.get("ended_later", {})),
                        f"{c['connect_s']} ({c['handshakes_s']})",
                    )
                    for c in conns
                ],
            )
        )
    ctl = report.get("control")
    if ctl:
        parts.append(
            markdown_table(
                [
                    "control kind",
                    "peers x window",
                    "req/s",
                    "RTT ms p50 / p95 / p99",
                    "server CPU %",
                    "server CPU us/req",
                    "client CPU %",
                ],
                [
                    (
                        r["kind"],
                        f"{r['peers']} x {r['window']}",
                        r["requests_per_s"],
                        " / ".join(str(r["latency_ms"][q]) for q in ("p50", "p95", "p99")),
                        r["server_cpu_pct"],
                        r["server_cpu_us_per_request"],
                        r["client_cpu_pct"],
                    )
                    for r in ctl
                ],
            )
        )
    idle = report.get("idle")
    if idle:
        per = idle.get("bytes_per_idle_connection")
        parts.append(
            markdown_table(
                [
                    "idle connections",
                    "held",
                    "still open at end",
                    "refused",
                    "RSS before / after MiB",
                    "per idle connection",
                    "accepted per s",
                    "hold s",
                    "fresh node",
                ],
                [
                    (
                        idle["connections_target"],
                        idle["connected"],
                        idle["still_open_at_end"],
                        _reasons(idle["refused"]),
                        f"{idle['server_rss_before_mib']} / {idle['server_rss_after_mib']}",
                        f"{per / 1024:.1f} KiB" if per is not None else "-",
                        idle["accepted_per_s"],
                        idle["hold_s"],
                        "yes" if idle["fresh_server"] else "no (per connection: low)",
                    )
                ],
            )
        )
        probe_rows = []
        for tag in ("before", "while_held", "at_end"):
            p = idle[tag]
            c, f = p["control"], p["one_peer_fetch"]
            probe_rows.append(
                (
                    tag.replace("_", " "),
                    c["requests_per_s"],
                    f"{c['latency_ms']['p50']} / {c['latency_ms']['p95']}",
                    f["MB_per_s"],
                    f"{f['latency_ms']['p50']} / {f['latency_ms']['p95']}",
                    c["server_cpu_pct"],
                )
            )
            stopped = idle.get("while_held_holders_stopped") if tag == "while_held" else None
            if stopped:
                f = stopped["one_peer_fetch"]
                lat = f"{f['latency_ms']['p50']} / {f['latency_ms']['p95']}"
                probe_rows.append(("... idle workers stopped", "-", "-", f["MB_per_s"], lat, "-"))
        parts.append(
            markdown_table(
                [
                    "",
                    "control req/s",
                    "control RTT ms p50 / p95",
                    "one new peer MB/s",
                    "its latency ms p50 / p95",
                    "server CPU % (control)",
                ],
                probe_rows,
            )
        )
    acc = report.get("acceptance")
    if acc:
        parts.append(
            markdown_table(
                ["acceptance (issue 11)", "measured", "target", "met"],
                [(x["what"], x["value"], x["target"], x["met"]) for x in acc],
            )
        )
    return "\n\n".join(parts)


def acceptance(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue-11 load criteria from this run's rows (``met`` is null when not measured)."""
    rows = [r for r in report.get("peers", []) if "mode" in r]

    def row(n: int, mode: str, cs: int = 256 * 1024) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["peers"] == n and r["mode"] == mode and r["chunk_size"] == cs),
            None,
        )

    out: list[dict[str, Any]] = []

    def add(what: str, value: Any, target: str, met: bool | None) -> None:
        out.append({"what": what, "value": value, "target": target, "met": met})

    for cs in sorted({r["chunk_size"] for r in rows}):
        c100, c1000 = row(100, "closed", cs), row(1000, "closed", cs)
        tag = f"{cs // 1024} KiB"
        if c100 and c1000:
            ratio = _ratio(c1000["chunks_per_s"], c100["chunks_per_s"])
            add(f"closed chunks/s, 1,000 / 100 peers ({tag})", ratio, ">= 0.8", ratio >= 0.8)
        if c1000:
            f = c1000["fairness_max_min"]
            add(
                f"fairness max/min, 1,000 peers closed ({tag})", f, "<= 2", f is not None and f <= 2
            )
    half = row(1000, "open 0.5x")
    if half:
        p95 = half["latency_ms"]["p95"]
        add(
            "p95 ms, 1,000 peers, 256 KiB, 0.5x capacity",
            p95,
            "< 100",
            p95 is not None and p95 < 100,
        )
    idle = report.get("idle")
    if idle:
        held = idle["still_open_at_end"]
        add("idle connections held to the end", held, f">= {idle['connections_target']}",
            held >= idle["connections_target"])  # fmt: skip
        ratio = idle.get("one_peer_ratio_held_vs_before")
        add("new peer MB/s while held / before", ratio, ">= 0.8 (full speed)",
            ratio is not None and ratio >= 0.8)  # fmt: skip
        stopped = idle.get("one_peer_ratio_holders_stopped_vs_before")
        if stopped is not None:
            add("... idle workers stopped (the node's own cost) / before", stopped, "-", None)
        quiet = idle.get("quiet_hold")
        if quiet:
            cpus = f"{quiet['server_cpu_pct']} / {quiet['idle_workers_cpu_pct']}"
            add("node CPU % holding them (nothing else) / idle workers' CPU %", cpus, "-", None)
        per = idle.get("bytes_per_idle_connection")
        add("memory per idle connection (KiB)", round(per / 1024, 1) if per else None, "stated",
            None)  # fmt: skip
    ctl = report.get("control")
    if ctl:
        best = max(r["requests_per_s"] for r in ctl)
        add("control requests/s (best kind)", best, ">= 10,000", best >= 10_000)
        mixed = next((r["requests_per_s"] for r in ctl if r["kind"] == "mixed"), None)
        if mixed is not None:
            add("control requests/s (Ping + Want mixed)", mixed, ">= 10,000", mixed >= 10_000)
    return out


def _reasons(c: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "-"


def _cpus(text: str | None) -> set[int] | None:
    if not text:
        return None
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--peers", default="1,10,100,1000", help="peer counts, comma-separated")
    ap.add_argument("--chunk-sizes", default="256KiB,1MiB")
    ap.add_argument("--content", default="64MiB", help="content size per chunk size")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--loads", default="0.5,1.5", help="open-loop rates, fractions of capacity")
    ap.add_argument("--inflight", default="auto", help="closed-loop requests per peer")
    ap.add_argument(
        "--window", default="k", help="open loop: requests in flight per peer at most (k: same)"
    )
    ap.add_argument("--client-procs", type=int, default=0, help="0: 2 (1 for one peer)")
    ap.add_argument("--peers-per-ip", type=int, default=16, help="peers per loopback address")
    ap.add_argument("--high", type=int, default=0, help="connections_high (0: above the peers)")
    ap.add_argument("--low", type=int, default=0, help="connections_low (0: high - 64)")
    ap.add_argument(
        "--congestion",
        default="auto",
        help="the server's [network] congestion (auto, system, cubic, bbr; docs/decisions.md D36)",
    )
    ap.add_argument(
        "--connections", type=int, default=10000, help="idle mode: hold N connections (0: skip)"
    )
    ap.add_argument("--hold", type=float, default=75.0, help="idle mode: seconds to hold them")
    ap.add_argument(
        "--idle-nice",
        type=int,
        default=19,
        help="idle mode: niceness of the idle connections' workers once connected (0: as is)",
    )
    ap.add_argument("--control-peers", type=int, default=8)
    ap.add_argument("--control-duration", type=float, default=5.0)
    ap.add_argument("--control-window", type=int, default=16, help="control requests in flight")
    ap.add_argument("--no-control", action="store_true", help="skip the control-rate mode")
    ap.add_argument("--server-cpus", help="pin `bcai serve` to these CPUs, e.g. 0")
    ap.add_argument("--client-cpus", help="pin the client workers, e.g. 1-3")
    ap.add_argument("--py-spy", type=Path, help="profile the node: py-spy raw stacks to FILE")
    ap.add_argument("--quick", action="store_true", help="tiny run for the test")
    ap.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "load.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.peers = "4" if a.peers == ap.get_default("peers") else a.peers
        a.content = "4MiB" if a.content == ap.get_default("content") else a.content
        a.duration = min(a.duration, 1.0)
        a.warmup = min(a.warmup, 0.2)
        a.hold = min(a.hold, 1.0)
        a.control_peers = min(a.control_peers, 2)
        a.control_duration = min(a.control_duration, 0.5)
        if a.connections == ap.get_default("connections"):
            a.connections = 20
    a.peer_counts = [int(x) for x in a.peers.split(",") if x and x != "0"]
    a.load_fractions = [float(x) for x in a.loads.split(",") if x]
    a.client_cpus_set = _cpus(a.client_cpus)
    chunk_sizes = [parse_size(x) for x in a.chunk_sizes.split(",")]
    most = max([*a.peer_counts, a.connections + a.control_peers + 1, 1])
    high = a.high or max(256, most + 64)
    low = a.low or max(1, high - 64)

    a.settle = 0.2 if a.quick else 1.0
    if not a.quick:  # byte-code for the worker processes' imports (see benchmarks/_util.py)
        from benchmarks._util import precompile

        precompile()
    with tempfile.TemporaryDirectory(prefix="bcai-load-") as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, roots = prepare_server(
            work, chunk_sizes, parse_size(a.content), high, low, a.congestion
        )
        server = Server(data, _cpus(a.server_cpus))
        if a.py_spy:
            server.profile(a.py_spy)
        report: dict[str, Any] = {
            "machine": machine(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "config": {
                "connections_high": high,
                "connections_low": low,
                "congestion": a.congestion,
                "content_bytes": parse_size(a.content),
                "duration_s": a.duration,
                "warmup_s": a.warmup,
                "loads": a.load_fractions,
                "peers_per_ip": a.peers_per_ip,
                "quick": a.quick,
            },
            "server": {
                "pid": server.proc.pid,
                "rss_at_start_mib": round(server.start_rss / MiB, 1),
                "peak_rss_at_start_mib": round(server.start_hwm / MiB, 1),
            },
        }
        try:
            if a.peer_counts:
                report["peers"] = peers_mode(server, roots, a)
            if a.control_peers and not a.no_control:
                report["control"] = control_mode(server, roots, a)
            report["server"]["peak_rss_mib"] = round(server.mon.hwm() / MiB, 1)
            if a.connections and (a.peer_counts or report.get("control")):
                # a fresh node for the idle mode: after the phases above its allocator would
                # reuse their freed memory and the per-connection figure would come out low
                report["server"]["exit"] = server.stop()
                server = Server(data, _cpus(a.server_cpus))
                report["idle_server"] = {
                    "pid": server.proc.pid,
                    "rss_at_start_mib": round(server.start_rss / MiB, 1),
                }
            if a.connections:
                report["idle"] = idle_mode(server, roots, a, fresh=True)
                report["idle_server"] = {
                    **report.get("idle_server", {}),
                    "peak_rss_mib": round(server.mon.hwm() / MiB, 1),
                }
            report["acceptance"] = acceptance(report)
        finally:
            report["server"]["exit"] = server.stop()
            if a.work is None:
                (work / "server" / "serve.log").unlink(missing_ok=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print()
    print(markdown(report))
    print("wrote", a.out)
    return report


if __name__ == "__main__":
    main()
